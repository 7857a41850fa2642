# -*- test-case-name: raftmux.test.test_tap -*-
"""
The twistd plugin and its etcd-style options; one node's port carrying
HTTP/1.1, h2c, ckit gossip and muxado sessions at once.
"""

import os
import re
import subprocess
import sys

from twisted.application.service import IServiceCollection
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.plugin import IPlugin, getPlugins
from twisted.python.usage import UsageError
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from twisted.web.client import Agent, readBody

from raftmux import tap
from raftmux.gossip import GossipTransport
from raftmux.muxado import SessionEndpoint, connectSession
from raftmux.node import RaftNode, exitOnStartFailure
from raftmux.node.testing import makeCluster, startNode, stopNode
from raftmux.rafthttp.testing import waitFor
from raftmux.testing.tree import repositoryFile


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

        path = repositoryFile("docs", "examples", "raftmux.tac")
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
        self.assertEqual(self.node.keySpace.get(b"m").value, b"over muxado")
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

    async def test_gossipOverHTTP1Gets505(self):
        """
        The shell takes HTTP/2 only; ckit's routes over HTTP/1.1 reach the
        node's Site through the sniffer, which answers as ckit does: 505
        (404 for an unknown ckit path).  Over h2c without ckit's content
        type, the Site's HTTP/2 answers ckit's 400.
        """
        agent = Agent(reactor)
        for path, status in ((b"/api/v1/ckit/transport/message", 505),
                             (b"/api/v1/ckit/transport/stream", 505),
                             (b"/api/v1/ckit/transport/other", 404)):
            response = await agent.request(b"POST", self.base + path)
            await readBody(response)
            self.assertEqual(response.code, status, path)
        from raftmux.h2.agent import H2Agent
        h2agent = H2Agent(reactor)
        self.addCleanup(h2agent.closeCachedConnections)
        response = await h2agent.request(b"POST", self.base + b"/api/v1/ckit/transport/message")
        await readBody(response)
        self.assertEqual((response.version, response.code), ((b"HTTP", 2, 0), 400))

    async def test_metrics(self):
        response = await Agent(reactor).request(b"GET", self.base + b"/metrics")
        body = await readBody(response)
        for name in (b"raftmux_node_is_leader 1.0", b"raftmux_node_term",
                     b"raftmux_sniff_matched_total", b"raftmux_node_applied_index"):
            self.assertIn(name, body)


class VersionTests(SynchronousTestCase):
    """``twistd raftmux --version`` prints raftmux's version, from its one source."""

    def test_optionPrintsRaftmuxVersion(self):
        import io

        import raftmux
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        error = self.assertRaises(SystemExit, tap.Options().parseOptions, ["--version"])
        self.assertEqual(error.code, 0)
        self.assertIn("raftmux Version: %s\n" % (raftmux.__version__,), out.getvalue())

    def test_twistdPrintsIt(self):
        import raftmux
        from raftmux.cluster import childEnvironment, twistdCommand
        out = subprocess.run(twistdCommand() + ["raftmux", "--version"], capture_output=True,
                             text=True, timeout=60, env=childEnvironment())
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("raftmux Version: %s" % (raftmux.__version__,), out.stdout)

    def test_setupReadsIt(self):
        """setup.py takes the version from raftmux/__init__.py (when the tree is here)."""
        import raftmux
        setup = repositoryFile("setup.py")
        out = subprocess.run([sys.executable, setup, "--version"], capture_output=True,
                             text=True, timeout=60, cwd=os.path.dirname(setup))
        self.assertEqual(out.stdout.strip().splitlines()[-1], raftmux.__version__, out.stderr)


class EnvironmentTests(SynchronousTestCase):
    """etcd's ``ETCD_<FLAG>`` variables: used for flags not given; the command line wins."""

    def parse(self, environ, *argv):
        options = tap.Options(environ=environ)
        options.parseOptions(list(argv))
        return options

    def test_variablesSetFlags(self):
        options = self.parse({"ETCD_NAME": "n1",
                              "ETCD_INITIAL_CLUSTER": "n1=http://127.0.0.1:2380",
                              "ETCD_SNAPSHOT_COUNT": "5",
                              "ETCD_LISTEN_METRICS_URLS": "http://127.0.0.1:2381",
                              "ETCD_MAX_REQUEST_BYTES": "1000"})
        config = options["config"]
        self.assertEqual((config.name, config.snapshotCount, config.maxRequestBytes),
                         ("n1", 5, 1000))
        self.assertEqual(config.listenMetricsURLs, ["http://127.0.0.1:2381"])
        self.assertEqual(config.dataDir, "n1.etcd")
        self.assertEqual(sorted(options.fromEnvironment),
                         ["initial-cluster", "listen-metrics-urls", "max-request-bytes", "name",
                          "snapshot-count"])
        self.assertEqual(options.environmentWarnings, [])

    def test_flagWins(self):
        options = self.parse({"ETCD_SNAPSHOT_COUNT": "5"}, "--snapshot-count", "7")
        self.assertEqual(options["config"].snapshotCount, 7)
        self.assertEqual(options.fromEnvironment, {})
        self.assertEqual(options.environmentWarnings,
                         ["environment variable ETCD_SNAPSHOT_COUNT is shadowed by "
                          "--snapshot-count: the flag wins"])

    def test_flagGivenWithItsDefaultStillWins(self):
        """Given on the command line, even with the default value: the variable is unused."""
        options = self.parse({"ETCD_NAME": "n1"}, "--name", "default")
        self.assertEqual(options["config"].name, "default")

    def test_emptyAndUnknownVariables(self):
        options = self.parse({"ETCD_NAME": "", "ETCD_NO_SUCH_FLAG": "1", "ETCDCTL_API": "3",
                              "HOME": "/root"})
        self.assertEqual(options["config"].name, "default")
        self.assertEqual(options.environmentWarnings,
                         ["unrecognized environment variable ETCD_NO_SUCH_FLAG"])

    def test_badValuesAreUsageErrors(self):
        for environ, words in [({"ETCD_SNAPSHOT_COUNT": "many"}, "--snapshot-count"),
                               ({"ETCD_CLIENT_CERT_AUTH": "maybe"}, "ETCD_CLIENT_CERT_AUTH"),
                               ({"ETCD_LOGGER": "syslog"}, "--logger")]:
            error = self.assertRaises(UsageError, self.parse, environ)
            self.assertIn(words, str(error))

    def test_booleanFlags(self):
        """Go's boolean spellings; ``--client-cert-auth`` without a CA is refused as etcd does."""
        self.assertFalse(self.parse({"ETCD_CLIENT_CERT_AUTH": "false"})["client-cert-auth"])
        error = self.assertRaises(UsageError, self.parse, {"ETCD_CLIENT_CERT_AUTH": "T"})
        self.assertIn("--client-cert-auth needs --trusted-ca-file", str(error))

    def test_twistdReadsTheEnvironment(self):
        """``tap.Options()`` (what twistd builds) reads ``os.environ``."""
        self.patch(os, "environ", dict(os.environ, ETCD_NAME="from-env",
                                       ETCD_INITIAL_CLUSTER="from-env=http://127.0.0.1:2380"))
        self.assertEqual(parse().name, "from-env")

    def test_makeServiceLogsWhatItUsed(self):
        from twisted.logger import formatEvent, globalLogPublisher
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        options = self.parse({"ETCD_SNAPSHOT_COUNT": "5", "ETCD_BOGUS": "1"},
                             "--data-dir", self.mktemp())
        tap.makeService(options)
        lines = [formatEvent(e) for e in events if "environment variable" in formatEvent(e)]
        self.assertEqual(lines, [
            "raftmux: recognized and used environment variable ETCD_SNAPSHOT_COUNT=5",
            "raftmux: unrecognized environment variable ETCD_BOGUS"])


class EtcdFlagsTests(SynchronousTestCase):
    """
    The flags we say are etcd's have etcd 3.4's names and defaults (read
    from ``etcd --help`` of the Debian package), and docs/cli.md says what
    the code does.  Differences by design: loopback is ``127.0.0.1`` where
    etcd says ``localhost``.
    """

    ETCD = "/usr/bin/etcd"

    def etcdDefaults(self):
        if not os.access(self.ETCD, os.X_OK):
            raise SkipTest("%s is absent (apt-get install etcd-server)" % (self.ETCD,))
        out = subprocess.run([self.ETCD, "--help"], capture_output=True, text=True, timeout=60)
        defaults = {}
        for line in (out.stdout + out.stderr).splitlines():
            found = re.match(r"^  --([a-z0-9-]+) ?(.*)$", line)
            if found:
                value = found.group(2).strip()
                defaults[found.group(1)] = value[1:-1] if value.startswith("'") else value
        self.assertIn("snapshot-count", defaults, "cannot read etcd --help")
        return defaults

    def ours(self, flag):
        """Our default, written as etcd writes defaults."""
        from raftmux.node.config import NodeConfig
        if flag == "data-dir":
            return "${name}.etcd"
        if flag == "initial-cluster":
            config = NodeConfig()
            return ",".join("%s=%s" % (name, url) for name, urls in config.initialCluster.items()
                            for url in urls)
        if flag in ("client-cert-auth", "peer-client-cert-auth"):
            return "false"
        shown = tap.shownDefault(flag)
        return "" if shown is None else shown

    def test_etcdFlagsAreEtcds(self):
        from raftmux.node.config import ETCD_FLAGS
        etcd = self.etcdDefaults()
        wrong = []
        for flag in sorted(ETCD_FLAGS):
            if flag not in etcd:
                wrong.append("--%s: etcd has no such flag" % (flag,))
                continue
            theirs = etcd[flag].replace("localhost", "127.0.0.1")
            if self.ours(flag) != theirs:
                wrong.append("--%s: ours %r, etcd's %r" % (flag, self.ours(flag), theirs))
        self.assertEqual(wrong, [])

    def test_ourOwnFlagsAreNotEtcds(self):
        """A flag we do not claim is etcd's is not one etcd 3.4 has (else we should match it)."""
        from raftmux.node.config import ETCD_FLAGS
        etcd = self.etcdDefaults()
        self.assertEqual([f for f in tap.flagNames() if f not in ETCD_FLAGS and f in etcd], [])
        self.assertLessEqual(ETCD_FLAGS, set(tap.flagNames()))

    def test_etcdLogLevelsAccepted(self):
        """etcd 3.4's --log-level values (debug, info, warn, error, panic, fatal) all parse."""
        for level in ("debug", "info", "warn", "error", "panic", "fatal"):
            self.assertEqual(parse("--log-level", level).logLevel,
                             {"panic": "critical", "fatal": "critical"}.get(level, level))
        for logger in ("capnslog", "zap"):
            self.assertEqual(parse("--logger", logger).logger, logger)

    def cliTable(self):
        path = repositoryFile("docs", "cli.md")
        rows = {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if len(cells) == 4 and cells[0].startswith("`--"):
                    for flag in re.findall(r"`--([a-z0-9-]+)`", cells[0]):
                        rows[flag] = (cells[1], cells[2])
        return rows

    def test_cliDocumentsEveryFlag(self):
        """docs/cli.md: every flag, its default, and whether it is etcd's."""
        from raftmux.node.config import ETCD_FLAGS
        rows = self.cliTable()
        self.assertEqual(sorted(rows), sorted(tap.flagNames()))
        wrong = []
        for flag, (default, origin) in sorted(rows.items()):
            shown = tap.shownDefault(flag)
            if default.strip("`") != ("none" if shown is None else shown):
                wrong.append("--%s: documented default %s, code %r" % (flag, default, shown))
            if origin != ("etcd" if flag in ETCD_FLAGS else "raftmux"):
                wrong.append("--%s: documented as %s's" % (flag, origin))
        self.assertEqual(wrong, [])


class MetricsURLTests(TestCase):
    """``--listen-metrics-urls``: ``/metrics`` and ``/health`` there, and nothing else."""

    timeout = 30

    async def test_metricsAndHealthOnly(self):
        from twisted.internet.endpoints import TCP4ServerEndpoint

        from raftmux.node.config import NodeConfig
        config = NodeConfig({"data-dir": self.mktemp(),
                             "listen-metrics-urls": "http://127.0.0.1:2381"})
        node = RaftNode(config, reactor=reactor, fsync=False,
                        serverEndpoint=lambda url: TCP4ServerEndpoint(reactor, 0,
                                                                      interface="127.0.0.1"))
        node.startService()
        self.addCleanup(node.stopService)
        await node.whenStarted()
        await waitFor(reactor, lambda: node.isLeader, what="leader")
        self.assertEqual(len(node.ports), 3)
        base = b"http://127.0.0.1:%d" % (node.ports[-1].getHost().port,)
        agent = Agent(reactor)
        response = await agent.request(b"GET", base + b"/metrics")
        self.assertIn(b"raftmux_node_is_leader 1.0", await readBody(response))
        response = await agent.request(b"GET", base + b"/health")
        self.assertEqual((response.code, (await readBody(response)).strip()),
                         (200, b'{"health":"true","reason":""}'))
        for path in (b"/kv/a", b"/version", b"/members", b"/raft"):
            response = await agent.request(b"GET", base + path)
            await readBody(response)
            self.assertEqual(response.code, 404, path)

    def test_metricsURLMustBeItsOwn(self):
        error = self.assertRaises(UsageError, tap.Options().parseOptions,
                                  ["--listen-metrics-urls", "http://127.0.0.1:2379"])
        self.assertIn("also a peer or client URL", str(error))
        error = self.assertRaises(UsageError, tap.Options().parseOptions,
                                  ["--listen-metrics-urls", "https://127.0.0.1:2381"])
        self.assertIn("--cert-file", str(error))
