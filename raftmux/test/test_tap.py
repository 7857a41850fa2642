# -*- test-case-name: raftmux.test.test_tap -*-
"""The twistd plugin and its options; the one-port demo node end to end."""

import subprocess
import sys

from twisted.application.service import IServiceCollection
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.plugin import IPlugin, getPlugins
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, readBody

from raftmux import tap
from raftmux.muxado import SessionEndpoint, connectSession


class OptionsTests(SynchronousTestCase):

    def test_defaultsListenOnLoopback2380(self):
        options = tap.Options()
        options.parseOptions([])
        self.assertEqual(options["endpoints"], ["tcp:2380:interface=127.0.0.1"])

    def test_severalURLs(self):
        options = tap.Options()
        options.parseOptions(["--listen-peer-urls", "http://127.0.0.1:1,http://[::1]:2"])
        self.assertEqual(options["endpoints"],
                         ["tcp:1:interface=127.0.0.1", "tcp:2:interface=\\:\\:1"])

    def test_badFlagsAreUsageErrors(self):
        for argv in (["--listen-peer-urls", "ftp://x:1"], ["--listen-peer-urls", "http://x"],
                     ["--log-level", "loud"], ["--listen-peer-urls", ""]):
            self.assertRaises(UsageError, tap.Options().parseOptions, argv)

    def test_makeServiceIsAMultiService(self):
        options = tap.Options()
        options.parseOptions(["--listen-peer-urls", "http://127.0.0.1:0"])
        self.assertTrue(IServiceCollection.providedBy(tap.makeService(options)))


class PluginTests(SynchronousTestCase):

    def test_pluginIsFoundAndImportsNoReactor(self):
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


class DemoNodeTests(TestCase):

    @inlineCallbacks
    def test_httpAndMuxadoOnOnePort(self):
        from twisted.internet.endpoints import TCP4ServerEndpoint
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            tap.portFactory(tap.demoSite()))
        self.addCleanup(port.stopListening)
        address = port.getHost()
        response = yield Agent(reactor).request(
            b"GET", b"http://127.0.0.1:%d/health" % (address.port,))
        self.assertEqual((yield readBody(response)), b'{"health":"true"}')
        session = yield connectSession(TCP4ClientEndpoint(reactor, "127.0.0.1", address.port))
        agent = Agent.usingEndpointFactory(reactor, SessionEndpoint(session))
        response = yield agent.request(b"GET", b"http://node/version")
        self.assertIn(b"raftmux", (yield readBody(response)))
        response = yield agent.request(b"GET", b"http://node/metrics")
        metrics = yield readBody(response)
        self.assertIn(b'raftmux_muxado_sessions{role="server"}', metrics)
        self.assertIn(b"raftmux_sniff_matched_total", metrics)
        closed = session.whenClosed()
        session.close()
        yield closed
