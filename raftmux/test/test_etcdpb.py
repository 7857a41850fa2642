# -*- test-case-name: raftmux.test.test_etcdpb -*-
"""
L{raftmux.etcdpb} and L{raftmux.grpcpb}: etcd 3.4's messages as compiled
here encode to etcd's bytes (golden hex from a Go program built against
Debian's etcdserverpb), decode them back, and the service tables say what
a descriptor-driven gRPC server needs.
"""

import os
import shutil
import subprocess
import tempfile

from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from raftmux import etcdpb, grpcpb
from raftmux.etcdpb import kv_pb2, raft_internal_pb2
from raftmux.etcdpb import rpc_pb2 as pb
from raftmux.grpcpb import health_pb2

# Printed by GO_PROGRAM (below), marshalling the same values with etcd 3.4's
# own (gogoproto) code; GoldenTests.test_goAgrees rebuilds and reruns it.
GOLDEN = [
    ("PutRequest", "0a03666f6f120362617218b4242001",
     pb.PutRequest(key=b"foo", value=b"bar", lease=0x1234, prev_kv=True)),
    ("RangeRequest", "0a0161120100180a20072802300340016003",
     pb.RangeRequest(key=b"a", range_end=b"\x00", limit=10, revision=7,
                     sort_order=pb.RangeRequest.DESCEND, sort_target=pb.RangeRequest.MOD,
                     keys_only=True, min_create_revision=3)),
    ("RangeResponse",
     "0a1a08b298eaf1948386fccd0110cdd2918bd2b881cf8e01180c200212180a026b311002180520032a0176"
     "30ffffffffffffffffff01120a0a026b3210041804200118012005",
     pb.RangeResponse(
         header=pb.ResponseHeader(cluster_id=0xCDF818194E3A8C32, member_id=0x8E9E05C52164694D,
                                  revision=12, raft_term=2),
         kvs=[kv_pb2.KeyValue(key=b"k1", create_revision=2, mod_revision=5, version=3,
                              value=b"v", lease=-1),
              kv_pb2.KeyValue(key=b"k2", create_revision=4, mod_revision=4, version=1)],
         more=True, count=5)),
    ("TxnRequest",
     "0a051a016b20000a0e080110031a016b3a01788204016c120812060a016b120176120b22091a071a050a017a"
     "18011a050a030a016b",
     pb.TxnRequest(
         compare=[pb.Compare(result=pb.Compare.EQUAL, target=pb.Compare.VERSION, key=b"k",
                             version=0),
                  pb.Compare(result=pb.Compare.GREATER, target=pb.Compare.VALUE, key=b"k",
                             range_end=b"l", value=b"x")],
         success=[pb.RequestOp(request_put=pb.PutRequest(key=b"k", value=b"v")),
                  pb.RequestOp(request_txn=pb.TxnRequest(failure=[pb.RequestOp(
                      request_delete_range=pb.DeleteRangeRequest(key=b"z", prev_kv=True))]))],
         failure=[pb.RequestOp(request_range=pb.RangeRequest(key=b"k"))])),
    ("WatchResponse",
     "0a021809100118015a0e120c0a01611009180920012a01315a17080112050a016218091a0c0a016210031808"
     "20022a0132",
     pb.WatchResponse(
         header=pb.ResponseHeader(revision=9), watch_id=1, created=True,
         events=[kv_pb2.Event(type=kv_pb2.Event.PUT, kv=kv_pb2.KeyValue(
                     key=b"a", create_revision=9, mod_revision=9, version=1, value=b"1")),
                 kv_pb2.Event(type=kv_pb2.Event.DELETE,
                              kv=kv_pb2.KeyValue(key=b"b", mod_revision=9),
                              prev_kv=kv_pb2.KeyValue(key=b"b", create_revision=3,
                                                      mod_revision=8, version=2, value=b"2"))])),
    ("InternalRaftRequest", "220a0a03666f6f1203626172a2060a0888ef99abc5e88c9111",
     raft_internal_pb2.InternalRaftRequest(
         header=raft_internal_pb2.RequestHeader(ID=0x1122334455667788),
         put=pb.PutRequest(key=b"foo", value=b"bar"))),
    ("LeaseGrantResponse", "0a021801108be49b859df6dda669183c",
     pb.LeaseGrantResponse(header=pb.ResponseHeader(revision=1), ID=0x694D77B1D0A6F20B, TTL=60)),
    ("TxnResponse", "0a02180310011a0612040a0218031a0422020a00",
     pb.TxnResponse(header=pb.ResponseHeader(revision=3), succeeded=True, responses=[
         pb.ResponseOp(response_put=pb.PutResponse(header=pb.ResponseHeader(revision=3))),
         pb.ResponseOp(response_txn=pb.TxnResponse(header=pb.ResponseHeader()))])),
]


GOPATH_ETCD = "/usr/share/gocode"
GO_PROGRAM = r"""package main

import (
	"encoding/hex"
	"fmt"

	pb "go.etcd.io/etcd/etcdserver/etcdserverpb"
	"go.etcd.io/etcd/mvcc/mvccpb"
)

type marshaler interface{ Marshal() ([]byte, error) }

func out(name string, m marshaler) {
	b, err := m.Marshal()
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s %s\n", name, hex.EncodeToString(b))
}

func main() {
	out("PutRequest", &pb.PutRequest{Key: []byte("foo"), Value: []byte("bar"), Lease: 0x1234, PrevKv: true})
	out("RangeRequest", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), Limit: 10, Revision: 7,
		SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_MOD, KeysOnly: true, MinCreateRevision: 3})
	out("RangeResponse", &pb.RangeResponse{
		Header: &pb.ResponseHeader{ClusterId: 0xcdf818194e3a8c32, MemberId: 0x8e9e05c52164694d, Revision: 12, RaftTerm: 2},
		Kvs: []*mvccpb.KeyValue{{Key: []byte("k1"), CreateRevision: 2, ModRevision: 5, Version: 3, Value: []byte("v"), Lease: -1},
			{Key: []byte("k2"), CreateRevision: 4, ModRevision: 4, Version: 1}},
		More: true, Count: 5})
	out("TxnRequest", &pb.TxnRequest{
		Compare: []*pb.Compare{
			{Result: pb.Compare_EQUAL, Target: pb.Compare_VERSION, Key: []byte("k"), TargetUnion: &pb.Compare_Version{Version: 0}},
			{Result: pb.Compare_GREATER, Target: pb.Compare_VALUE, Key: []byte("k"), RangeEnd: []byte("l"), TargetUnion: &pb.Compare_Value{Value: []byte("x")}},
		},
		Success: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}}},
			{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Failure: []*pb.RequestOp{
				{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("z"), PrevKv: true}}}}}}},
		},
		Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k")}}}},
	})
	out("WatchResponse", &pb.WatchResponse{
		Header: &pb.ResponseHeader{Revision: 9}, WatchId: 1, Created: true,
		Events: []*mvccpb.Event{
			{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("a"), CreateRevision: 9, ModRevision: 9, Version: 1, Value: []byte("1")}},
			{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte("b"), ModRevision: 9},
				PrevKv: &mvccpb.KeyValue{Key: []byte("b"), CreateRevision: 3, ModRevision: 8, Version: 2, Value: []byte("2")}},
		}})
	out("InternalRaftRequest", &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 0x1122334455667788},
		Put: &pb.PutRequest{Key: []byte("foo"), Value: []byte("bar")}})
	out("LeaseGrantResponse", &pb.LeaseGrantResponse{Header: &pb.ResponseHeader{Revision: 1}, ID: 0x694d77b1d0a6f20b, TTL: 60})
	out("TxnResponse", &pb.TxnResponse{Header: &pb.ResponseHeader{Revision: 3}, Succeeded: true,
		Responses: []*pb.ResponseOp{{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{Header: &pb.ResponseHeader{Revision: 3}}}},
			{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: &pb.TxnResponse{Header: &pb.ResponseHeader{}}}}}})
}
"""


class GoldenTests(SynchronousTestCase):

    def test_goAgrees(self):
        """
        The Go program prints GOLDEN's bytes (built offline against
        Debian's etcd sources; skipped without Go or those sources).
        """
        goBinary = shutil.which("go")
        if goBinary is None or not os.path.isdir(
                os.path.join(GOPATH_ETCD, "src/go.etcd.io/etcd/etcdserver/etcdserverpb")):
            raise SkipTest("Go or Debian's etcd sources (golang-etcd-server-dev) missing")
        work = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, work, True)
        source = os.path.join(work, "src", "golden")
        os.makedirs(source)
        with open(os.path.join(source, "main.go"), "w") as f:
            f.write(GO_PROGRAM)
        env = dict(os.environ, GOPATH="%s:%s" % (work, GOPATH_ETCD), GO111MODULE="off",
                   GOFLAGS="")
        if not any(env.get(name) for name in ("GOCACHE", "XDG_CACHE_HOME", "HOME")):
            env["GOCACHE"] = os.path.join(work, "cache")
        binary = os.path.join(work, "golden")
        subprocess.run([goBinary, "build", "-o", binary, "."], cwd=source, env=env,
                       check=True, timeout=300, capture_output=True)
        out = subprocess.run([binary], check=True, timeout=30, capture_output=True).stdout
        printed = dict(line.split() for line in out.decode().splitlines())
        self.assertEqual(printed, {name: hexBytes for name, hexBytes, _ in GOLDEN})

    def test_encode(self):
        """Each message encodes to the bytes etcd's Go code wrote."""
        for name, hexBytes, message in GOLDEN:
            self.assertEqual(message.SerializeToString().hex(), hexBytes, name)

    def test_decode(self):
        """etcd's bytes decode to the same message and back to the same bytes."""
        for name, hexBytes, message in GOLDEN:
            decoded = type(message).FromString(bytes.fromhex(hexBytes))
            self.assertEqual(decoded, message, name)
            self.assertEqual(decoded.SerializeToString().hex(), hexBytes, name)

    def test_nestedEmptyHeaderKept(self):
        """A present-but-empty header (etcd's nested txn response) survives a round trip."""
        resp = pb.TxnResponse.FromString(bytes.fromhex("1a0422020a00"))
        self.assertTrue(resp.responses[0].response_txn.HasField("header"))


class RoundTripTests(SynchronousTestCase):

    @settings(max_examples=200, deadline=None)
    @given(key=st.binary(max_size=20), value=st.binary(max_size=50),
           revs=st.lists(st.integers(-2 ** 63, 2 ** 63 - 1), min_size=4, max_size=4),
           kind=st.sampled_from([kv_pb2.Event.PUT, kv_pb2.Event.DELETE]))
    def test_eventRoundTrip(self, key, value, revs, kind):
        kv = kv_pb2.KeyValue(key=key, value=value, create_revision=revs[0],
                             mod_revision=revs[1], version=revs[2], lease=revs[3])
        response = pb.WatchResponse(watch_id=revs[0], compact_revision=revs[1],
                                    events=[kv_pb2.Event(type=kind, kv=kv, prev_kv=kv)])
        self.assertEqual(pb.WatchResponse.FromString(response.SerializeToString()), response)

    @settings(max_examples=200, deadline=None)
    @given(st.recursive(
        st.builds(lambda k, v: pb.RequestOp(request_put=pb.PutRequest(key=k, value=v)),
                  st.binary(max_size=5), st.binary(max_size=5)),
        lambda ops: st.builds(
            lambda yes, no: pb.RequestOp(request_txn=pb.TxnRequest(success=yes, failure=no)),
            st.lists(ops, max_size=3), st.lists(ops, max_size=3)),
        max_leaves=10))
    def test_nestedTxnRoundTrip(self, op):
        request = pb.TxnRequest(success=[op])
        self.assertEqual(pb.TxnRequest.FromString(request.SerializeToString()), request)

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=100))
    def test_randomBytes(self, data):
        """Random input either parses or raises DecodeError, nothing else."""
        for cls in (pb.TxnRequest, pb.WatchRequest, raft_internal_pb2.InternalRaftRequest):
            try:
                cls.FromString(data)
            except DecodeError:
                pass

    def test_truncated(self):
        data = GOLDEN[3][2].SerializeToString()
        for n in range(1, len(data)):
            try:
                pb.TxnRequest.FromString(data[:n])
            except DecodeError:
                pass


class ServiceTableTests(SynchronousTestCase):

    def test_services(self):
        self.assertEqual(sorted(etcdpb.SERVICES), [
            "etcdserverpb.Auth", "etcdserverpb.Cluster", "etcdserverpb.KV",
            "etcdserverpb.Lease", "etcdserverpb.Maintenance", "etcdserverpb.Watch"])
        self.assertEqual(len(etcdpb.METHODS), 39)

    def test_methods(self):
        """Paths, classes and streaming flags for unary and streaming rpcs."""
        rng = etcdpb.METHODS["/etcdserverpb.KV/Range"]
        self.assertEqual((rng.service, rng.name, rng.requestClass, rng.responseClass,
                          rng.clientStreaming, rng.serverStreaming),
                         ("etcdserverpb.KV", "Range", pb.RangeRequest, pb.RangeResponse,
                          False, False))
        watch = etcdpb.METHODS["/etcdserverpb.Watch/Watch"]
        self.assertEqual((watch.clientStreaming, watch.serverStreaming), (True, True))
        keepAlive = etcdpb.METHODS["/etcdserverpb.Lease/LeaseKeepAlive"]
        self.assertEqual((keepAlive.requestClass, keepAlive.clientStreaming), (
            pb.LeaseKeepAliveRequest, True))
        snap = etcdpb.METHODS["/etcdserverpb.Maintenance/Snapshot"]
        self.assertEqual((snap.clientStreaming, snap.serverStreaming), (False, True))

    def test_health(self):
        check, watch = grpcpb.methods(grpcpb.HEALTH)
        self.assertEqual((check.path, check.requestClass, check.responseClass,
                          check.serverStreaming),
                         ("/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest,
                          health_pb2.HealthCheckResponse, False))
        self.assertEqual((watch.path, watch.serverStreaming), ("/grpc.health.v1.Health/Watch", True))
        self.assertEqual(health_pb2.HealthCheckResponse(
            status=health_pb2.HealthCheckResponse.SERVING).SerializeToString(), b"\x08\x01")

    def test_routes(self):
        """The gateway routes etcd declares, including its second bindings."""
        routes = {(path, service, rpc) for _, path, service, rpc in etcdpb.ROUTES}
        self.assertIn(("/v3/kv/range", "etcdserverpb.KV", "Range"), routes)
        self.assertIn(("/v3/kv/lease/revoke", "etcdserverpb.Lease", "LeaseRevoke"), routes)
        self.assertIn(("/v3/watch", "etcdserverpb.Watch", "Watch"), routes)
        self.assertEqual({method for method, _, _, _ in etcdpb.ROUTES}, {"POST"})
        first = [r for r in etcdpb.ROUTES if r[1] == "/v3/maintenance/hash"][0]
        self.assertEqual(first[3], "Hash")

    def test_strippedProtos(self):
        """The committed .proto files carry no gogoproto or google.api annotation."""
        here = os.path.dirname(etcdpb.__file__)
        names = [n for n in os.listdir(here) if n.endswith(".proto")]
        self.assertEqual(sorted(names), ["auth.proto", "etcdserver.proto", "kv.proto",
                                         "raft_internal.proto", "rpc.proto"])
        for name in names:
            with open(os.path.join(here, name)) as f:
                text = f.read()
            body = text.split("syntax", 1)[1]
            self.assertNotIn("gogoproto", body, name)
            self.assertNotIn("google.api", body, name)
            self.assertIn("stripped for Python", text, name)
