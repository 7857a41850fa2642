# -*- test-case-name: raftmux.test.test_grpc_etcd -*-
"""
etcd's v3 API over gRPC (``raftmux.grpc.etcd``), in memory, on the fake
single-member node of ``raftmux.etcd.testing``: every rpc is routed,
unary answers and etcd's errors come through as gRPC statuses, the
streaming services (Watch, LeaseKeepAlive, Snapshot) work with
back-pressure, and ``hasleader`` metadata is honoured.
"""

import hashlib

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from raftmux.etcd.api import EtcdAPI
from raftmux.etcd.maintenance import readSnapshotFile
from raftmux.etcd.testing import FakeEtcdNode
from raftmux.etcdpb import METHODS, SERVICES
from raftmux.etcdpb import rpc_pb2 as pb
from raftmux.grpc import Code, GRPCError
from raftmux.grpc.etcd import etcdGRPCServer, etcdServices, grpcError
from raftmux.grpc.testing import MemoryGRPC
from raftmux.grpcpb import HEALTH, health_pb2
from raftmux.mvcc import errors

T0 = 1700000000.0


class EtcdGRPCTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.node = FakeEtcdNode(self.clock)
        self.api = EtcdAPI(self.node, self.clock)
        self.api.startService()
        self.addCleanup(self.api.stopService)
        self.server = etcdGRPCServer(self.api)
        self.memory = MemoryGRPC(self.server, clock=self.clock)
        client = self.memory.client
        self.kv = client.stub(SERVICES["etcdserverpb.KV"])
        self.watch = client.stub(SERVICES["etcdserverpb.Watch"])
        self.lease = client.stub(SERVICES["etcdserverpb.Lease"])
        self.maintenance = client.stub(SERVICES["etcdserverpb.Maintenance"])
        self.cluster = client.stub(SERVICES["etcdserverpb.Cluster"])

    def ok(self, d):
        self.memory.flush()
        return self.successResultOf(d)

    def error(self, d, cls):
        self.memory.flush()
        e = self.failureResultOf(d, GRPCError).value
        self.assertEqual((e.code, e.message), (cls.code, cls.message))
        return e

    def test_everyMethodRouted(self):
        """All of etcd's rpcs (and Health's) are served, by their gRPC paths."""
        served = set()
        for service in etcdServices(self.api):
            for path, (_method, handler) in service.handlers.items():
                self.assertIsNotNone(handler, path)
                served.add(path.decode())
        self.assertEqual(served, set(METHODS))
        self.assertEqual(self.server.serviceNames, sorted(
            [HEALTH.full_name] + list(SERVICES)))

    def test_defaultMessageLimit(self):
        """etcd's: --max-request-bytes plus 512 KiB."""
        self.assertEqual(self.server.maxReceiveMessageSize,
                         self.api.proposer.maxRequestBytes + 512 * 1024)

    def test_putRange(self):
        put = self.ok(self.kv.Put(pb.PutRequest(key=b"k", value=b"v")))
        self.assertEqual(put.header.member_id, self.node.memberID)
        rng = self.ok(self.kv.Range(pb.RangeRequest(key=b"k")))
        self.assertEqual([(kv.key, kv.value) for kv in rng.kvs], [(b"k", b"v")])
        self.assertEqual(rng.header.revision, put.header.revision)

    def test_etcdErrors(self):
        self.error(self.kv.Put(pb.PutRequest(value=b"v")), errors.ErrEmptyKey)
        self.node.proposalError = errors.ErrTimeout()
        self.error(self.kv.Put(pb.PutRequest(key=b"k")), errors.ErrTimeout)

    def test_requireLeader(self):
        """``hasleader: true`` and no leader: etcd's "no leader", before the rpc runs."""
        self.node.stepDown(0)
        meta = [("hasleader", "true")]
        self.error(self.kv.Range(pb.RangeRequest(key=b"k", serializable=True), metadata=meta),
                   errors.ErrNoLeader)
        self.ok(self.kv.Range(pb.RangeRequest(key=b"k", serializable=True)))
        call = self.watch.Watch(metadata=meta)
        self.memory.flush()
        self.assertEqual(self.failureResultOf(call.whenDone(), GRPCError).value.message,
                         errors.ErrNoLeader.message)

    def test_heldReadDeadline(self):
        """A linearizable read the node holds passes its deadline."""
        self.node.holdReads = True
        d = self.kv.Range(pb.RangeRequest(key=b"k"), timeout=1)
        self.memory.flush()
        self.assertNoResult(d)
        self.memory.advance(1)
        self.assertEqual(self.failureResultOf(d, GRPCError).value.code, Code.DEADLINE_EXCEEDED)
        self.node.releaseReads()

    def test_watch(self):
        call = self.watch.Watch()
        call.sendMessage(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"w")))
        created = self.ok(call.receive())
        self.assertTrue(created.created)
        self.ok(self.kv.Put(pb.PutRequest(key=b"w", value=b"1")))
        event = self.ok(call.receive())
        self.assertEqual([(e.kv.key, e.kv.value) for e in event.events], [(b"w", b"1")])
        call.sendMessage(pb.WatchRequest(cancel_request=pb.WatchCancelRequest(
            watch_id=created.watch_id)))
        self.assertTrue(self.ok(call.receive()).canceled)
        call.cancel()
        self.memory.flush()

    def test_watchSlowClient(self):
        """A watch client that does not read holds the hub back, not the node; nothing is lost."""
        call = self.watch.Watch()
        call.sendMessage(pb.WatchRequest(create_request=pb.WatchCreateRequest(
            key=b"a", range_end=b"b")))
        self.assertTrue(self.ok(call.receive()).created)
        value = b"x" * 4096
        for i in range(600):
            self.ok(self.kv.Put(pb.PutRequest(key=b"a%04d" % (i,), value=value)))
        seen = []
        for _ in range(10000):
            d = call.receive()
            self.memory.flush()
            response = self.successResultOf(d)
            seen.extend(e.kv.key for e in response.events)
            if len(seen) >= 600:
                break
        self.assertEqual(seen, [b"a%04d" % (i,) for i in range(600)])

    def test_leaseKeepAlive(self):
        grant = self.ok(self.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=30)))
        call = self.lease.LeaseKeepAlive()
        for _ in range(3):
            call.sendMessage(pb.LeaseKeepAliveRequest(ID=grant.ID))
        call.closeSend()
        replies = []
        for _ in range(4):
            replies.append(self.ok(call.receive()))
        self.assertEqual([r.TTL for r in replies[:3]], [30, 30, 30])
        self.assertIsNone(replies[3])

    def test_snapshot(self):
        for i in range(50):
            self.ok(self.kv.Put(pb.PutRequest(key=b"s%d" % (i,), value=b"v" * 1000)))
        call = self.maintenance.Snapshot(pb.SnapshotRequest())
        blobs = []
        while True:
            message = self.ok(call.receive())
            if message is None:
                break
            blobs.append(message.blob)
        data, digest = b"".join(blobs[:-1]), blobs[-1]
        self.assertEqual(hashlib.sha256(data).digest(), digest)
        self.assertEqual(readSnapshotFile(data + digest), self.node.keySpace.snapshot())

    def test_learnerStreamsRefused(self):
        self.node.setLearner(True)
        call = self.watch.Watch()
        self.memory.flush()
        e = self.failureResultOf(call.whenDone(), GRPCError).value
        self.assertEqual(e.message, errors.ErrNotSupportedForLearner.message)

    def test_memberList(self):
        members = self.ok(self.cluster.MemberList(pb.MemberListRequest())).members
        self.assertEqual([m.ID for m in members], [self.node.memberID])

    def test_health(self):
        health = self.memory.client.stub(HEALTH)
        response = self.ok(health.Check(health_pb2.HealthCheckRequest(service="etcdserverpb.KV")))
        self.assertEqual(response.status, health_pb2.HealthCheckResponse.SERVING)

    def test_healthFollowsTheLeader(self):
        """The server as a whole is SERVING while the member knows a leader."""
        health = self.memory.client.stub(HEALTH)
        request = health_pb2.HealthCheckRequest()
        response = health_pb2.HealthCheckResponse
        self.assertEqual(self.ok(health.Check(request)).status, response.SERVING)
        watch = health.Watch(request)
        self.assertEqual(self.ok(watch.receive()).status, response.SERVING)
        self.node.stepDown(0)
        self.assertEqual(self.ok(health.Check(request)).status, response.NOT_SERVING)
        self.assertEqual(self.ok(watch.receive()).status, response.NOT_SERVING)
        self.node.stepDown(0x1234)      # a leader, not us: serving
        changed = watch.receive()
        self.memory.advance(1)
        self.assertEqual(self.successResultOf(changed).status, response.SERVING)
        watch.cancel()
        self.memory.flush()

    def test_grpcError(self):
        self.assertEqual(grpcError(errors.ErrNoLeader).message, "etcdserver: no leader")
        self.assertEqual(grpcError(errors.ErrCompacted()).code, Code.OUT_OF_RANGE)
