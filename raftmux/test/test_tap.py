# -*- test-case-name: raftmux.test.test_tap -*-
"""
The twistd plugin and its etcd-style options; one node's port carrying
HTTP/1.1, h2c, ckit gossip and muxado sessions at once.
"""

import os
import subprocess
import sys

from twisted.application.service import IServiceCollection
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.plugin import IPlugin, getPlugins
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, readBody

from raftmux import tap
from raftmux.gossip import GossipTransport
from raftmux.muxado import SessionEndpoint, connectSession
from raftmux.node import RaftNode, exitOnStartFailure
from raftmux.node.testing import makeCluster, startNode, stopNode
from raftmux.rafthttp.testing import waitFor


def parse(*argv):
    options = tap.Options()
    options.parseOptions(list(argv))
    return options["config"]


class OptionsTests(SynchronousTestCase):

    def test_defaultsAreEtcds(self):
        """No flags: one member named default on 2379/2380, data in default.etcd."""
        config = parse()
        self.assertEqual(config.name, "default")
        self.assertEqual(config.dataDir, "default.etcd")
        self.assertEqual(config.listenClientURLs, ["http://127.0.0.1:2379"])
        self.assertEqual(config.listenPeerURLs, ["http://127.0.0.1:2380"])
        self.assertEqual(config.initialCluster, {"default": ["http://127.0.0.1:2380"]})
        self.assertEqual(config.clusterState, "new")
        self.assertEqual(config.token, "etcd-cluster")
        self.assertEqual(config.listenURLs, ["http://127.0.0.1:2380", "http://127.0.0.1:2379"])

    def test_idsAsEtcdComputesThem(self):
        """etcd's familiar default member 8e9e05c52164694d of cluster cdf818194e3a8c32."""
        config = parse("--initial-advertise-peer-urls", "http://localhost:2380",
                       "--listen-peer-urls", "http://localhost:2380")
        self.assertEqual("%x" % (config.id,), "8e9e05c52164694d")
        self.assertEqual("%x" % (config.clusterID,), "cdf818194e3a8c32")
        config = parse("--name", "p2", "--initial-advertise-peer-urls", "http://127.0.0.1:23802",
                       "--initial-cluster",
                       "e1=http://127.0.0.1:23801,p2=http://127.0.0.1:23802",
                       "--initial-cluster-token", "tok")
        self.assertEqual("%x" % (config.id,), "2737ecedbf2a9065")
        self.assertEqual("%x" % (config.memberIDs["e1"],), "4036b1db24775ea0")
        self.assertEqual("%x" % (config.clusterID,), "a70b7b723c713c11")

    def test_sharedPortListensOnce(self):
        config = parse("--listen-client-urls", "http://127.0.0.1:2380")
        self.assertEqual(config.listenURLs, ["http://127.0.0.1:2380"])

    def test_badFlagsAreUsageErrors(self):
        """Each bad flag gets a UsageError naming the problem, never a traceback."""
        cases = [
            (["--listen-peer-urls", "ftp://x:1"], "scheme"),
            (["--listen-peer-urls", "http://x"], "port"),
            (["--listen-client-urls", "http://x:1/path"], "path"),
            (["--log-level", "loud"], "--log-level"),
            (["--listen-peer-urls", ""], "at least one URL"),
            (["--initial-cluster-state", "bogus"], "'new' or 'existing'"),
            (["--initial-cluster", "other=http://127.0.0.1:1"], "no member named 'default'"),
            (["--initial-cluster", "default=http://127.0.0.1:9"], "--initial-advertise-peer"),
            (["--initial-cluster", "nonsense"], "name=URL"),
            (["--initial-cluster", "default=http://127.0.0.1:2380,b=http://127.0.0.1:2380"],
             "both"),
            (["--heartbeat-interval", "abc"], "number"),
            (["--election-timeout", "200"], "5 times"),
            (["--snapshot-count", "0"], "positive"),
            (["--name", ""], "--name"),
        ]
        for argv, words in cases:
            error = self.assertRaises(UsageError, tap.Options().parseOptions, argv)
            self.assertIn(words, str(error), argv)

    def test_makeServiceIsAMultiService(self):
        options = tap.Options()
        options.parseOptions(["--data-dir", self.mktemp()])
        top = tap.makeService(options)
        self.assertTrue(IServiceCollection.providedBy(top))
        self.assertIsInstance(list(top)[0], RaftNode)


class _Failure:
    def getErrorMessage(self):
        return "the raft log cannot be used"


class ExitOnStartFailureTests(SynchronousTestCase):
    """A node that cannot start stops twistd, even before the reactor runs."""

    def test_failureBeforeTheReactorRunsStopsItOnceRunning(self):
        from twisted.internet.testing import MemoryReactor
        memory = MemoryReactor()
        exitOnStartFailure(memory, exit=False)(_Failure())
        self.assertFalse(memory.hasStopped)
        memory.run()
        self.assertTrue(memory.hasStopped)

    def test_failureWhileRunningStops(self):
        from twisted.internet.testing import MemoryReactor
        memory = MemoryReactor()
        memory.run()
        exitOnStartFailure(memory, exit=False)(_Failure())
        self.assertTrue(memory.hasStopped)

    def test_makeServiceUsesIt(self):
        """``twistd raftmux``'s node has the hook."""
        options = tap.Options()
        options.parseOptions(["--data-dir", self.mktemp()])
        (node,) = list(tap.makeService(options))
        self.assertIsNotNone(node.onStartFailure)


class PluginTests(SynchronousTestCase):

    def test_pluginIsFound(self):
        import twisted.plugins
        names = [p.tapname for p in getPlugins(IPlugin, twisted.plugins)
                 if getattr(p, "tapname", None) == "raftmux"]
        self.assertEqual(names, ["raftmux"])

    def test_pluginModuleImportsNeitherReactorNorTap(self):
        """twistd imports plugins before installing the reactor the user chose."""
        code = ("import sys, twisted.plugins.raftmux_plugin; "
                "print('twisted.internet.reactor' in sys.modules, 'raftmux.tap' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60)
        self.assertEqual(out.stdout.split(), ["False", "False"], out.stderr)

    def test_exampleTacComposes(self):
        """docs/examples/raftmux.tac builds an application holding a RaftNode."""
        from twisted.application.service import IServiceCollection as Collection

        path = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "examples",
                            "raftmux.tac")
        namespace = {"__file__": path}
        with open(path) as f:
            exec(compile(f.read(), path, "exec"), namespace)
        (top,) = list(Collection(namespace["application"]))
        self.assertEqual([type(s) for s in top][0], RaftNode)


class OnePortTests(TestCase):
    """A running one-member node: every protocol on its single port."""

    timeout = 30

    async def setUp(self):
        directory = self.mktemp()
        os.makedirs(directory)
        (self.node,), (self.port,) = await makeCluster(reactor, directory, 1)
        self.addCleanup(self.port.stopListening)
        await startNode(self.node, self.port)
        self.addCleanup(stopNode, self.node)
        self.base = b"http://127.0.0.1:%d" % (self.port.getHost().port,)
        await waitFor(reactor, lambda: self.node.isLeader, what="leader")

    async def test_http1(self):
        response = await Agent(reactor).request(b"GET", self.base + b"/health")
        self.assertEqual(response.code, 200)
        self.assertIn(b'"health":"true"', await readBody(response))

    async def test_muxadoStreamsCarryHTTP(self):
        """A muxado session's streams reach the same Site: /version, /kv."""
        session = await connectSession(TCP4ClientEndpoint(reactor, "127.0.0.1",
                                                          self.port.getHost().port))
        agent = Agent.usingEndpointFactory(reactor, SessionEndpoint(session))
        response = await agent.request(b"GET", b"http://node/version")
        self.assertIn(b'"raftmux"', await readBody(response))
        import io

        from twisted.web.client import FileBodyProducer

        response = await agent.request(b"PUT", b"http://node/kv/m", None,
                                       FileBodyProducer(io.BytesIO(b"over muxado")))
        await readBody(response)
        self.assertEqual(response.code, 200)
        self.assertEqual(self.node.kv.get(b"m"), b"over muxado")
        closed = session.whenClosed()
        session.close()
        await closed

    async def test_gossipByContentType(self):
        """ckit gossip (h2c, application/x.ckit) reaches the node's GossipTransport."""
        sender = GossipTransport(reactor, ("127.0.0.1", 1), onPacket=lambda *a: None,
                                 onStream=lambda s: None)
        self.addCleanup(sender.shutdown)
        sender.writeTo(b"hello", "127.0.0.1:%d" % (self.port.getHost().port,))
        await waitFor(reactor, lambda: self.node.gossipPackets == 1, what="gossip packet")

    async def test_metrics(self):
        response = await Agent(reactor).request(b"GET", self.base + b"/metrics")
        body = await readBody(response)
        for name in (b"raftmux_node_is_leader 1.0", b"raftmux_node_term",
                     b"raftmux_sniff_matched_total", b"raftmux_node_applied_index"):
            self.assertIn(name, body)
