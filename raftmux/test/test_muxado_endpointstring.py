# -*- test-case-name: raftmux.test.test_muxado_endpointstring -*-
"""``muxado:`` endpoint strings: a server on every stream, a client sharing one session."""

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import clientFromString, serverFromString
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody
from twisted.web.resource import Resource
from twisted.web.server import Site

from raftmux.muxado.endpointstring import MuxadoClientEndpoint, MuxadoServerEndpoint


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"hello over muxado v%d" % (request.channel.transport.session.version,)


class EndpointStringTests(TestCase):

    def test_parsersAreFoundAsPlugins(self):
        self.assertIsInstance(serverFromString(reactor, r"muxado:tcp\:0"), MuxadoServerEndpoint)
        self.assertIsInstance(clientFromString(reactor, r"muxado:tcp\:127.0.0.1\:1:version=1"),
                              MuxadoClientEndpoint)

    @inlineCallbacks
    def test_siteOverStreamsOfOneSession(self):
        port = yield serverFromString(reactor, r"muxado:tcp\:0\:interface\=127.0.0.1").listen(
            Site(Hello()))
        self.addCleanup(port.stopListening)
        for version in (1, 2):
            endpoint = clientFromString(
                reactor, r"muxado:tcp\:127.0.0.1\:%d:version=%d" % (port.getHost().port, version))
            agent = Agent.usingEndpointFactory(reactor, _Fixed(endpoint))
            bodies = []
            for _ in range(3):
                response = yield agent.request(b"GET", b"http://peer/")
                bodies.append((yield readBody(response)))
            self.assertEqual(bodies, [b"hello over muxado v%d" % version] * 3)
            session = endpoint.session
            self.assertEqual(session.version, version)
            closed = session.whenClosed()
            session.close()
            yield closed


class _Fixed:
    def __init__(self, endpoint):
        self.endpoint = endpoint

    def endpointForURI(self, uri):
        return self.endpoint


class TwistdWebTests(TestCase):
    """``twistd web --listen muxado:...`` serves files over muxado streams."""

    timeout = 60

    @inlineCallbacks
    def test_twistdWeb(self):
        import os
        import sys

        from twisted.internet import defer, protocol
        from twisted.python.filepath import FilePath

        from raftmux.cluster import childEnvironment
        from raftmux.rafthttp.testing import waitFor

        root = FilePath(self.mktemp())
        root.makedirs()
        root.child("hello.txt").setContent(b"static file\n")
        # A unix socket path must fit 107 bytes: not under trial's deep temp dirs.
        import shutil
        import tempfile
        short = tempfile.mkdtemp(prefix="rmx")
        self.addCleanup(shutil.rmtree, short, True)
        sock = os.path.join(short, "web.sock")
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        ended = defer.Deferred()

        class Watch(protocol.ProcessProtocol):
            def processEnded(self, reason):
                ended.callback(None)
        process = reactor.spawnProcess(
            Watch(), twistd, [twistd, "-n", "--pidfile=", "web", "--listen",
                              r"muxado:unix\:%s" % (sock,), "--path", root.path],
            env=childEnvironment())  # this tree's raftmux, whatever is installed
        self.addCleanup(lambda: ended.called or (process.signalProcess("TERM"), ended)[1])
        yield defer.ensureDeferred(waitFor(reactor, lambda: os.path.exists(sock) or ended.called,
                                           timeout=45, what="twistd's socket"))
        self.assertFalse(ended.called, "twistd web exited before listening")
        endpoint = clientFromString(reactor, r"muxado:unix\:%s:version=1" % (sock,))
        response = yield Agent.usingEndpointFactory(reactor, _Fixed(endpoint)).request(
            b"GET", b"http://peer/hello.txt")
        self.assertEqual((yield readBody(response)), b"static file\n")
        closed = endpoint.session.whenClosed()
        endpoint.session.close()
        yield closed
