# -*- test-case-name: raftmux.test.test_mvcc_etcd -*-
"""
L{raftmux.mvcc.KeySpace} against a real etcd 3.4 (skipped when
/usr/bin/etcd or etcdctl is missing): one fixed script of KV, lease and
compaction requests goes to etcd's JSON gateway and, through the same
checks etcd's gRPC layer makes (L{raftmux.mvcc.validate}), to a key space.
Every response must be equal once the header's cluster ID, member ID and
raft term are cleared; every error must have etcd's gRPC code and
message; HashKV (asked with etcdctl, since the gateway's
``/v3/maintenance/hash`` is ``Hash``) must give etcd's hash at every
revision asked; a watch from history with ``prev_kv`` must carry etcd's
events.
"""

import json
import os
import shutil
import tempfile
from io import BytesIO

from google.protobuf import json_format
from twisted.internet import defer, reactor
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.client import Agent, FileBodyProducer, readBody
from twisted.web.http_headers import Headers

from raftmux.cluster import freePort
from raftmux.etcdpb import rpc_pb2 as pb
from raftmux.mvcc import KeySpace, errors, validate
from raftmux.rafthttp.testing import LoggedProcess

ETCD = "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"

RR = pb.RangeRequest


def cmp(key, target, result, **kw):
    return pb.Compare(key=key, target=getattr(pb.Compare, target),
                      result=getattr(pb.Compare, result), **kw)


def opPut(key, value=b"", **kw):
    return pb.RequestOp(request_put=pb.PutRequest(key=key, value=value, **kw))


def opRange(key, end=b"", **kw):
    return pb.RequestOp(request_range=RR(key=key, range_end=end, **kw))


def opDelete(key, end=b"", **kw):
    return pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=key, range_end=end, **kw))


def opTxn(**kw):
    return pb.RequestOp(request_txn=pb.TxnRequest(**kw))


# (gateway path, request, key-space call) -- the script.
def _ks(name, check=None):
    def call(ks, request):
        if check is not None:
            check(request)
        result = getattr(ks, name)(request)
        return result if name == "range" else result.response
    return call


RANGE = ("/v3/kv/range", RR, _ks("range", validate.checkRangeRequest))
PUT = ("/v3/kv/put", pb.PutRequest, _ks("put", validate.checkPutRequest))
DELETE = ("/v3/kv/deleterange", pb.DeleteRangeRequest,
          _ks("deleteRange", validate.checkDeleteRequest))
TXN = ("/v3/kv/txn", pb.TxnRequest, _ks("txn", validate.checkTxn))
COMPACT = ("/v3/kv/compaction", pb.CompactionRequest, _ks("compact"))
GRANT = ("/v3/lease/grant", pb.LeaseGrantRequest, _ks("leaseGrant"))
REVOKE = ("/v3/lease/revoke", pb.LeaseRevokeRequest, _ks("leaseRevoke"))

RESPONSES = {
    "/v3/kv/range": pb.RangeResponse, "/v3/kv/put": pb.PutResponse,
    "/v3/kv/deleterange": pb.DeleteRangeResponse, "/v3/kv/txn": pb.TxnResponse,
    "/v3/kv/compaction": pb.CompactionResponse, "/v3/lease/grant": pb.LeaseGrantResponse,
    "/v3/lease/revoke": pb.LeaseRevokeResponse,
}

ALL = dict(key=b"\x00", range_end=b"\x00")


def script():
    """The steps: (kind, request) with kind one of the tuples above, or HASH."""
    s = []

    def add(kind, **kw):
        s.append((kind, kind[1](**kw)))

    for i, k in enumerate([b"a", b"ab", b"abc", b"b", b"c", b"d"]):
        add(PUT, key=k, value=b"v%d" % (i,))
    add(PUT, key=b"a", value=b"v9", prev_kv=True)
    add(PUT, key=b"b", value=b"", prev_kv=True)
    add(PUT, key=b"c", ignore_value=True)
    add(PUT, key=b"zz", ignore_value=True)
    add(PUT, key=b"a", value=b"x", ignore_value=True)
    add(PUT, key=b"", value=b"x")
    add(PUT, key=b"a", lease=77)
    add(RANGE, key=b"a")
    add(RANGE, key=b"a", range_end=b"b")
    add(RANGE, key=b"ab", range_end=b"\x00", limit=2)
    add(RANGE, limit=3, **ALL)
    add(RANGE, limit=6, **ALL)
    add(RANGE, count_only=True, limit=1, **ALL)
    add(RANGE, keys_only=True, key=b"a", range_end=b"c")
    add(RANGE, key=b"a", revision=2)
    add(RANGE, key=b"a", revision=-5)
    add(RANGE, key=b"a", revision=99)
    add(RANGE, key=b"c", range_end=b"a")
    add(RANGE, key=b"")
    for target in ("KEY", "VERSION", "CREATE", "MOD", "VALUE"):
        for order in ("NONE", "ASCEND", "DESCEND"):
            add(RANGE, sort_target=getattr(RR, target), sort_order=getattr(RR, order), **ALL)
            add(RANGE, sort_target=getattr(RR, target), sort_order=getattr(RR, order),
                limit=2, **ALL)
    add(RANGE, min_mod_revision=5, **ALL)
    add(RANGE, max_mod_revision=5, limit=1, **ALL)
    add(RANGE, min_create_revision=4, max_create_revision=6, **ALL)
    s.append((HASH, 0))
    add(DELETE, key=b"zz")
    add(DELETE, key=b"ab", range_end=b"b", prev_kv=True)
    add(DELETE, key=b"")
    add(TXN, compare=[cmp(b"new", "VERSION", "EQUAL", version=0)],
        success=[opPut(b"new", b"1"), opRange(b"new"), opRange(b"a", revision=3)],
        failure=[opRange(b"new")])
    add(TXN, compare=[cmp(b"new", "VERSION", "EQUAL", version=0)],
        success=[opPut(b"new", b"2")], failure=[opRange(b"new"), opRange(b"a", b"\x00")])
    add(TXN, compare=[cmp(b"absent", "VALUE", "NOT_EQUAL", value=b"q")],
        success=[opPut(b"s")], failure=[opPut(b"f")])
    add(TXN, compare=[cmp(b"a", "MOD", "GREATER", mod_revision=0, range_end=b"c"),
                      cmp(b"b", "CREATE", "LESS", create_revision=100),
                      cmp(b"c", "VALUE", "EQUAL", value=b"v4"),
                      cmp(b"d", "LEASE", "EQUAL", lease=0)],
        success=[opRange(b"a"), opDelete(b"d", prev_kv=True), opRange(b"d"),
                 opPut(b"e", prev_kv=True), opDelete(b"nothing")])
    add(TXN, success=[opTxn(compare=[cmp(b"e", "VERSION", "EQUAL", version=1)],
                            success=[opPut(b"n1"), opTxn(failure=[opPut(b"n2")])],
                            failure=[opPut(b"n3")]),
                      opRange(b"n", b"o")])
    add(TXN, compare=[cmp(b"a", "VERSION", "EQUAL", version=5)], success=[opRange(b"a")],
        failure=[opRange(b"a", count_only=True), opDelete(b"nothing")])
    add(TXN)
    add(TXN, success=[opPut(b"x"), opPut(b"x")])
    add(TXN, success=[opPut(b"x"), opDelete(b"w", b"y")])
    add(TXN, success=[opPut(b"x", lease=5)])
    add(TXN, success=[opDelete(b"a", b"\x00"), opPut(b"b", b"after-from-key-delete")])
    add(TXN, success=[opTxn(success=[opPut(b"q1")]), opTxn(success=[opDelete(b"q1")])])
    add(TXN, success=[opPut(b"nokey", ignore_value=True)])
    add(TXN, success=[opRange(b"a", revision=500)])
    add(TXN, success=[opRange(b"a", revision=-1)])
    add(TXN, success=[pb.RequestOp()])
    add(TXN, success=[opPut(b"")])
    add(TXN, compare=[pb.Compare(key=b"")])
    s.append((HASH, 0))
    s.append((HASH, 9))
    s.append((WATCH, pb.WatchCreateRequest(key=b"a", range_end=b"\x00", start_revision=2,
                                           prev_kv=True)))
    add(GRANT, ID=100, TTL=3600)
    add(GRANT, ID=100, TTL=3600)
    add(GRANT, ID=101, TTL=9000000001)
    add(PUT, key=b"l1", value=b"1", lease=100)
    add(PUT, key=b"l2", value=b"2", lease=100)
    add(PUT, key=b"l1", ignore_lease=True, value=b"3")
    add(PUT, key=b"l3", value=b"3", lease=100)
    add(PUT, key=b"l3", value=b"4")
    add(PUT, key=b"l1", lease=5, ignore_lease=True)
    add(RANGE, key=b"l", range_end=b"m")
    add(REVOKE, ID=100)
    add(REVOKE, ID=100)
    add(RANGE, key=b"l", range_end=b"m")
    add(GRANT, ID=102, TTL=3600)
    add(REVOKE, ID=102)
    add(COMPACT, revision=1000)
    add(COMPACT, revision=8)
    add(COMPACT, revision=8)
    add(COMPACT, revision=7)
    add(RANGE, key=b"a", revision=7)
    add(RANGE, revision=8, **ALL)
    add(TXN, success=[opRange(b"a", revision=7)])
    add(TXN, success=[opRange(b"a", revision=-1)])
    s.append((HASH, 0))
    s.append((HASH, 8))
    s.append((HASH, 12))
    s.append((HASH, 7))
    s.append((WATCH, pb.WatchCreateRequest(key=b"a", range_end=b"\x00", start_revision=8,
                                           prev_kv=True)))
    add(COMPACT, revision=20)
    s.append((HASH, 0))
    s.append((HASH, 21))
    add(RANGE, revision=20, **ALL)
    return s


HASH = "hashkv"
WATCH = "watch"


class _JSONLines(Protocol):
    """Collects a streamed gateway body until ``enough(objects)`` says so."""

    def __init__(self, enough):
        self.enough = enough
        self.objects = []
        self.buffer = b""
        self.done = defer.Deferred()

    def dataReceived(self, data):
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if line.strip():
                self.objects.append(json.loads(line))
        if not self.done.called and self.enough(self.objects):
            self.done.callback(self.objects)
            self.transport.stopProducing()

    def connectionLost(self, reason):
        if not self.done.called:
            self.done.callback(self.objects)


class EtcdDifferentialTests(TestCase):

    timeout = 120

    async def startEtcd(self):
        if not (os.path.exists(ETCD) and os.path.exists(ETCDCTL)):
            raise SkipTest("etcd 3.4 (%s) and etcdctl are not installed" % (ETCD,))
        self.dir = tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        self.addCleanup(shutil.rmtree, self.dir, True)
        peer = "http://127.0.0.1:%d" % (freePort(),)
        self.client = "http://127.0.0.1:%d" % (freePort(),)
        log = self.logFile = open(os.path.join(self.dir, "etcd.log"), "wb")
        self.addCleanup(log.close)
        self.etcd = LoggedProcess(log)
        process = reactor.spawnProcess(self.etcd, ETCD, [
            ETCD, "--name", "m", "--data-dir", os.path.join(self.dir, "m"),
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--listen-client-urls", self.client, "--advertise-client-urls", self.client,
            "--initial-cluster", "m=%s" % (peer,)], env=dict(os.environ))
        self.addCleanup(lambda: self.etcd.ended)
        self.addCleanup(lambda: process.signalProcess("TERM")
                        if process.pid is not None else None)
        self.agent = Agent(reactor)
        for _ in range(200):
            try:
                response = await self.agent.request(
                    b"GET", (self.client + "/health").encode())
                body = await readBody(response)
                if b'"true"' in body:
                    return
            except Exception:
                pass
            await deferLater(reactor, 0.05, lambda: None)
        raise AssertionError("etcd did not become healthy; log:\n%s" % (self.etcdLog(),))

    def etcdLog(self):
        self.logFile.flush()
        with open(os.path.join(self.dir, "etcd.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-3000:]

    async def post(self, path, message):
        body = json.dumps(json_format.MessageToDict(
            message, preserving_proto_field_name=True)).encode()
        response = await self.agent.request(
            b"POST", (self.client + path).encode(),
            Headers({b"content-type": [b"application/json"]}),
            FileBodyProducer(BytesIO(body)))
        return json.loads(await readBody(response))

    async def hashKV(self, revision):
        out, err, code = await getProcessOutputAndValue(
            ETCDCTL, ["--endpoints", self.client, "--command-timeout=5s",
                      "endpoint", "hashkv", "--rev", str(revision), "-w", "json"],
            env=dict(os.environ, ETCDCTL_API="3"))
        if code != 0:
            return ("error", err.decode().strip())
        result = json.loads(out)[0]["HashKV"]
        return (result["hash"], result.get("compact_revision", 0),
                result["header"]["revision"])

    async def watch(self, create, expected):
        """etcd's events for ``create`` once it has sent ``expected`` of them."""
        body = json.dumps({"create_request": json_format.MessageToDict(
            create, preserving_proto_field_name=True)}).encode()
        response = await self.agent.request(
            b"POST", (self.client + "/v3/watch").encode(),
            Headers({b"content-type": [b"application/json"]}),
            FileBodyProducer(BytesIO(body)))

        def events(objects):
            return [e for o in objects for e in o.get("result", {}).get("events", [])]

        lines = _JSONLines(lambda objects: len(events(objects)) >= expected)
        response.deliverBody(lines)
        objects = await lines.done.addTimeout(15, reactor)
        parsed = []
        for e in events(objects):
            parsed.append(json_format.ParseDict(e, pb.WatchResponse().events.add()))
        return parsed

    async def test_script(self):
        """Every step of the script answers as etcd answers."""
        await self.startEtcd()
        ks = KeySpace()
        compared = 0
        for kind, request in script():
            if kind == HASH:
                theirs = await self.hashKV(request)
                try:
                    resp = ks.hashKV(request)
                    ours = (resp.hash, resp.compact_revision, resp.header.revision)
                except errors.EtcdError as e:
                    ours = ("error", e.message)
                if ours[0] == "error":
                    self.assertIn(ours[1], theirs[1], "hashkv --rev %d" % (request,))
                else:
                    self.assertEqual(ours, theirs, "hashkv --rev %d" % (request,))
                compared += 1
                continue
            if kind == WATCH:
                ours, _ = ks.eventsSince(request.key, request.range_end, request.start_revision)
                ours = [e.toProto(prevKv=request.prev_kv) for e in ours]
                self.assertGreater(sum(e.HasField("prev_kv") for e in ours), 2)
                theirs = await self.watch(request, len(ours))
                self.assertEqual(theirs, ours, "watch %s" % (request,))
                compared += 1
                continue
            path, _, call = kind
            theirs = await self.post(path, request)
            label = "%s %s" % (path, json_format.MessageToJson(request, indent=None))
            try:
                ours = call(ks, request)
            except errors.EtcdError as e:
                self.assertEqual((theirs.get("code"), theirs.get("error")),
                                 (int(e.code), e.message), label)
                compared += 1
                continue
            self.assertNotIn("error", theirs, label)
            parsed = json_format.ParseDict(theirs, RESPONSES[path]())
            parsed.header.cluster_id = 0
            parsed.header.member_id = 0
            parsed.header.raft_term = 0
            self.assertEqual(parsed, ours, label)
            compared += 1
        self.assertGreater(compared, 100)
