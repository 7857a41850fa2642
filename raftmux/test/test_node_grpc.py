# -*- test-case-name: raftmux.test.test_node_grpc -*-
"""
etcd's gRPC API on a member's ports (``RaftNode.grpcFactory``,
``raftmux.grpc.etcd.EtcdGRPCRouter``).

In memory: before the member has its ``EtcdAPI`` the etcd rpcs answer
UNAVAILABLE and Health answers NOT_SERVING; once the API exists the same
connection serves it; Health (Check and Watch) follows the leader.  Over
loopback, grpcio (C core) calls Put, Range and Health's Check on a real
``twistd raftmux`` member, on its client URL and on its peer URL (as etcd
3.4 serves gRPC on both), and on an in-process member's https URL (ALPN
h2), where etcdctl (grpc-go) reads too.
"""

import os
import shutil
import tempfile
from types import SimpleNamespace

from twisted.internet import reactor, threads
from twisted.internet.task import Clock
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from raftmux.cluster import LocalCluster
from raftmux.etcd.api import EtcdAPI
from raftmux.etcd.testing import FakeEtcdNode
from raftmux.etcdpb import SERVICES
from raftmux.etcdpb import rpc_pb2 as pb
from raftmux.grpc import Code, GRPCError, HealthServicer
from raftmux.grpc.etcd import EtcdGRPCRouter
from raftmux.grpc.testing import MemoryGRPC
from raftmux.grpcpb import HEALTH, health_pb2
from raftmux.h2 import H2ServerFactory
from raftmux.node import NodeConfig, RaftNode
from raftmux.node.testing import makeCluster, startNode, stopNode
from raftmux.rafthttp.testing import waitFor
from raftmux.testing.tlsca import CertificateAuthority, writeFiles

try:
    import grpc
except ImportError:  # pragma: no cover - the test extra installs it
    grpc = None

ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"
FAST = ["--heartbeat-interval", "50", "--election-timeout", "500"]
T0 = 1700000000.0
HealthResponse = health_pb2.HealthCheckResponse


class _Served:
    """What ``MemoryGRPC`` takes: something with ``serverFactory(config, clock)``."""

    def __init__(self, factory):
        self.factory = factory

    def serverFactory(self, config=None, clock=None):
        return self.factory


class MemoryCase(SynchronousTestCase):
    def serve(self, factory, clock):
        self.memory = MemoryGRPC(_Served(factory), clock=clock)
        client = self.memory.client
        self.health = client.stub(HEALTH)
        self.kv = client.stub(SERVICES["etcdserverpb.KV"])

    def ok(self, d):
        self.memory.flush()
        return self.successResultOf(d)

    def status(self, service=""):
        return self.ok(self.health.Check(health_pb2.HealthCheckRequest(service=service))).status

    def code(self, d):
        self.memory.flush()
        return self.failureResultOf(d, GRPCError).value.code


class NodeHookTests(MemoryCase):
    """A ``RaftNode`` that has not started: its gRPC factory already answers."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        directory = self.mktemp()
        url = "http://127.0.0.1:1"
        config = NodeConfig({
            "name": "n1", "data-dir": directory, "listen-peer-urls": url,
            "initial-advertise-peer-urls": url, "listen-client-urls": url,
            "advertise-client-urls": url})
        self.node = RaftNode(config, reactor=self.clock, listen=False, fsync=False)
        self.serve(self.node.grpcFactory(), self.clock)

    def test_factory(self):
        """The hook is an HTTP/2 server factory, the same one for every port."""
        self.assertIsInstance(self.node.grpcFactory(), H2ServerFactory)
        self.assertIs(self.node.grpcFactory(), self.node.grpcFactory())

    def test_beforeStart(self):
        """No API yet: KV is UNAVAILABLE (clients retry); Health says NOT_SERVING."""
        self.assertEqual(self.code(self.kv.Range(pb.RangeRequest(key=b"k"))),
                         Code.UNAVAILABLE)
        self.assertEqual(self.status(), HealthResponse.NOT_SERVING)
        # The etcd services are not known yet.
        self.assertEqual(self.code(self.health.Check(health_pb2.HealthCheckRequest(
            service="etcdserverpb.KV"))), Code.NOT_FOUND)
        watch = self.health.Watch(health_pb2.HealthCheckRequest())
        self.assertEqual(self.ok(watch.receive()).status, HealthResponse.NOT_SERVING)
        watch.cancel()
        self.memory.flush()

    def test_stopped(self):
        """A stopped member's Health is NOT_SERVING (watchers hear it)."""
        self.node.grpcHealth.shutdown()
        self.assertEqual(self.status(), HealthResponse.NOT_SERVING)


class RouterTests(MemoryCase):
    """
    ``EtcdGRPCRouter`` over an API that appears later, with Health tracked
    as a member tracks it (a leader known: SERVING).
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.holder = SimpleNamespace(api=None)
        self.fake = FakeEtcdNode(self.clock)
        self.healthServicer = HealthServicer()

        def serving():
            api = self.holder.api
            if api is not None and api.node.leader():
                return HealthServicer.SERVING
            return HealthServicer.NOT_SERVING
        self.healthServicer.track("", serving, self.clock, 1.0)
        router = EtcdGRPCRouter(lambda: self.holder.api, self.healthServicer)
        self.serve(H2ServerFactory(router, clock=self.clock), self.clock)

    def startAPI(self):
        api = EtcdAPI(self.fake, self.clock)
        api.startService()
        self.addCleanup(api.stopService)
        self.holder.api = api
        return api

    def test_servesTheAPIOnceItExists(self):
        """The same connection: UNAVAILABLE first, then the API's answers."""
        self.assertEqual(self.code(self.kv.Put(pb.PutRequest(key=b"k", value=b"v"))),
                         Code.UNAVAILABLE)
        self.startAPI()
        put = self.ok(self.kv.Put(pb.PutRequest(key=b"k", value=b"v")))
        self.assertEqual(put.header.member_id, self.fake.memberID)
        found = self.ok(self.kv.Range(pb.RangeRequest(key=b"k")))
        self.assertEqual([(kv.key, kv.value) for kv in found.kvs], [(b"k", b"v")])
        self.assertEqual(len(self.memory.connections), 1)
        self.assertEqual(self.status("etcdserverpb.KV"), HealthResponse.SERVING)

    def test_healthFollowsTheLeader(self):
        """Check and Watch: NOT_SERVING, SERVING with a leader, NOT_SERVING without."""
        self.assertEqual(self.status(), HealthResponse.NOT_SERVING)
        watch = self.health.Watch(health_pb2.HealthCheckRequest())
        self.assertEqual(self.ok(watch.receive()).status, HealthResponse.NOT_SERVING)
        self.startAPI()
        nextStatus = watch.receive()
        self.memory.flush()
        self.assertNoResult(nextStatus)          # polled, not pushed
        self.memory.advance(1)
        self.assertEqual(self.successResultOf(nextStatus).status, HealthResponse.SERVING)
        self.assertEqual(self.status(), HealthResponse.SERVING)

        self.fake.stepDown(0)                    # no leader known
        self.assertEqual(self.status(), HealthResponse.NOT_SERVING)
        self.assertEqual(self.ok(watch.receive()).status, HealthResponse.NOT_SERVING)
        self.fake.stepDown(0x1234)               # another member leads: serving
        self.assertEqual(self.status(), HealthResponse.SERVING)
        self.assertEqual(self.ok(watch.receive()).status, HealthResponse.SERVING)
        watch.cancel()
        self.memory.flush()


def _grpcMethods(channel):
    """grpcio callables for KV Put/Range and Health Check (no generated stubs)."""
    def unary(path, request, response):
        return channel.unary_unary(path, request_serializer=request.SerializeToString,
                                   response_deserializer=response.FromString)
    return SimpleNamespace(
        put=unary("/etcdserverpb.KV/Put", pb.PutRequest, pb.PutResponse),
        range=unary("/etcdserverpb.KV/Range", pb.RangeRequest, pb.RangeResponse),
        check=unary("/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest,
                    HealthResponse))


def _target(url):
    return url.split("://", 1)[1]


class _GRPCIOCase(TestCase):
    timeout = 60

    def setUp(self):
        if grpc is None:
            raise SkipTest("grpcio is not installed (pip install grpcio)")

    def calls(self, target, credentials=None):
        options = [("grpc.enable_retries", 0)]
        if credentials is None:
            channel = grpc.insecure_channel(target, options=options)
        else:
            channel = grpc.secure_channel(target, credentials, options=options)
        self.addCleanup(channel.close)
        return _grpcMethods(channel)

    def putRangeCheck(self, methods, key):
        """In a thread (grpcio blocks): Put, Range, Check; the answers."""
        def go():
            put = methods.put(pb.PutRequest(key=key, value=b"v-" + key), timeout=10)
            found = methods.range(pb.RangeRequest(key=key), timeout=10)
            health = methods.check(health_pb2.HealthCheckRequest(), timeout=10)
            return put, found, health
        return threads.deferToThread(go)

    def assertServed(self, answers, key):
        put, found, health = answers
        self.assertGreater(put.header.revision, 1)
        self.assertEqual([(kv.key, kv.value) for kv in found.kvs], [(key, b"v-" + key)])
        self.assertEqual(found.header.revision, put.header.revision)
        self.assertEqual(health.status, HealthResponse.SERVING)


class TwistdMemberTests(_GRPCIOCase):
    """grpcio against a ``twistd raftmux`` member (client and peer URLs apart)."""

    def setUp(self):
        _GRPCIOCase.setUp(self)
        directory = tempfile.mkdtemp(prefix="raftmux-grpc-",
                                     dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        if not os.environ.get("RAFTMUX_KEEP_TEST_DIRS"):
            self.addCleanup(shutil.rmtree, directory, True)
        self.cluster = LocalCluster.create(directory, size=1, onePort=False, flags=FAST)
        self.addCleanup(self.cluster.stopAll)

    async def test_putRangeHealth(self):
        """Put, Range and Health Check over h2c, on the client URL and on the peer URL."""
        self.cluster.start()
        await self.cluster.waitHealthy(timeout=30)
        member = self.cluster.member("n1")
        self.assertNotEqual(member.clientURL, member.peerURL)
        answers = await self.putRangeCheck(self.calls(_target(member.clientURL)), b"client")
        self.assertServed(answers, b"client")
        answers = await self.putRangeCheck(self.calls(_target(member.peerURL)), b"peer")
        self.assertServed(answers, b"peer")
        self.assertIn("gRPC", member.output())


class TLSMemberTests(_GRPCIOCase):
    """An in-process member on one https URL: gRPC inside TLS (ALPN h2)."""

    async def test_overTLS(self):
        """grpcio and etcdctl (grpc-go) with the CA; an operator's client certificate too."""
        directory = self.mktemp()
        os.makedirs(directory)
        ca = CertificateAuthority()
        caFile = ca.writeCAFile(directory)
        certFile, keyFile = writeFiles(os.path.join(directory, "server"), "s", ca.issue(
            "n1", ipAddresses=["127.0.0.1"], usage="both"))
        flags = {"peer-cert-file": certFile, "peer-key-file": keyFile,
                 "peer-trusted-ca-file": caFile, "cert-file": certFile, "key-file": keyFile,
                 "heartbeat-interval": 50, "election-timeout": 500}
        (node,), (port,) = await makeCluster(reactor, directory, n=1, scheme="https",
                                             flags=lambda i: flags)
        self.addCleanup(port.stopListening)
        await startNode(node, port)
        self.addCleanup(stopNode, node)
        await waitFor(reactor, lambda: node.isLeader, timeout=20, what="leader")
        url = node.config.listenURLs[0]
        self.assertTrue(url.startswith("https://"))

        anonymous = grpc.ssl_channel_credentials(root_certificates=ca.pem)
        answers = await self.putRangeCheck(self.calls(_target(url), anonymous), b"tls")
        self.assertServed(answers, b"tls")
        opCert, opKey = writeFiles(os.path.join(directory, "op"), "op",
                                   ca.issue("operator", usage="client"))
        with open(opCert, "rb") as c, open(opKey, "rb") as k:
            operator = grpc.ssl_channel_credentials(
                root_certificates=ca.pem, private_key=k.read(), certificate_chain=c.read())
        answers = await self.putRangeCheck(self.calls(_target(url), operator), b"operator")
        self.assertServed(answers, b"operator")

        if not os.path.exists(ETCDCTL):
            raise SkipTest("etcdctl is not installed")
        out, err, code = await getProcessOutputAndValue(
            ETCDCTL, ["--endpoints", url, "--cacert", caFile, "--command-timeout=5s",
                      "get", "tls"], env=dict(os.environ, ETCDCTL_API="3"))
        self.assertEqual((code, out.split()), (0, [b"tls", b"v-tls"]), err)
