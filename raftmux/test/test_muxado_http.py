# -*- test-case-name: raftmux.test.test_muxado_http -*-
"""
HTTP over muxado streams on real loopback TCP: a twisted.web Site serves
every stream a peer opens, and an Agent sends requests over streams through
``SessionEndpoint``, in both directions.
"""

from io import BytesIO

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody
from twisted.web.resource import Resource
from twisted.web.server import Site

from raftmux.muxado import (
    MuxadoClientFactory,
    MuxadoConfig,
    MuxadoServerFactory,
    SessionEndpoint,
    connectSession,
)
from raftmux.muxado.frames import FrameDecoder
from raftmux.muxado.v1frames import FrameDecoder as V1FrameDecoder


class Hello(Resource):
    isLeaf = True

    def __init__(self, name):
        super().__init__()
        self.name = name

    def render_GET(self, request):
        return b"%s: %s from %s" % (self.name, request.path,
                                    request.getClientAddress().host.encode())

    def render_POST(self, request):
        return b"%s got %d bytes" % (self.name, len(request.content.read()))


class HTTPOverStreamsTests(TestCase):

    @inlineCallbacks
    def setUp(self):
        self.serverFactory = MuxadoServerFactory(Site(Hello(b"server")))
        self.port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            self.serverFactory)
        self.addCleanup(self.port.stopListening)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port)
        self.session = yield connectSession(endpoint, Site(Hello(b"client")))
        self.addCleanup(self.closeSession)
        self.pool = HTTPConnectionPool(reactor)
        self.addCleanup(self.pool.closeCachedConnections)

    def closeSession(self):
        d = self.session.whenClosed()
        serverSides = [s.whenClosed() for s in self.serverFactory.sessions]
        self.session.close()
        for w in serverSides:
            d.addCallback(lambda _, w=w: w)
        return d

    @inlineCallbacks
    def test_agentOverStreams(self):
        agent = Agent.usingEndpointFactory(reactor, SessionEndpoint(self.session), self.pool)
        response = yield agent.request(b"GET", b"http://peer/a/b")
        body = yield readBody(response)
        self.assertEqual(response.code, 200)
        self.assertEqual(body, b"server: /a/b from 127.0.0.1")
        # A second request reuses the pooled HTTP connection, i.e. the same stream.
        response = yield agent.request(b"GET", b"http://peer/c")
        self.assertEqual((yield readBody(response)), b"server: /c from 127.0.0.1")
        [sessionOnServer] = self.serverFactory.sessions
        self.assertEqual(len(sessionOnServer.streams), 1)

    @inlineCallbacks
    def test_concurrentRequestsUseManyStreams(self):
        agent = Agent.usingEndpointFactory(reactor, SessionEndpoint(self.session))
        responses = yield gatherResults([
            agent.request(b"POST", b"http://peer/", bodyProducer=FileBodyProducer(
                BytesIO(b"z" * (100000 * i))))
            for i in range(1, 9)])
        bodies = yield gatherResults([readBody(r) for r in responses])
        self.assertEqual(bodies, [b"server got %d bytes" % (100000 * i,) for i in range(1, 9)])

    @inlineCallbacks
    def test_acceptingSideOpensStreams(self):
        """The server's session sends requests to the client's Site."""
        [sessionOnServer] = self.serverFactory.sessions
        agent = Agent.usingEndpointFactory(reactor, SessionEndpoint(sessionOnServer))
        response = yield agent.request(b"GET", b"http://dialer/back")
        self.assertEqual((yield readBody(response)), b"client: /back from 127.0.0.1")


class FactoryTests(TestCase):

    def test_clientFactoryIsClientRole(self):
        session = MuxadoClientFactory().buildProtocol(None)
        self.assertTrue(session.isClient)
        session = MuxadoServerFactory(Site(Hello(b"x"))).buildProtocol(None)
        self.assertFalse(session.isClient)


class TLSTests(TestCase):
    """A session over TLS closes cleanly from either side."""

    @inlineCallbacks
    def closeFrom(self, side):
        from twisted.internet.endpoints import wrapClientTLS
        from twisted.protocols.tls import TLSMemoryBIOFactory

        from raftmux.testing.tlsca import CertificateAuthority
        ca = CertificateAuthority()
        serverFactory = MuxadoServerFactory(Site(Hello(b"tls")))
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            TLSMemoryBIOFactory(ca.serverOptions(ca.issue("node1", ipAddresses=["127.0.0.1"])),
                                False, serverFactory))
        self.addCleanup(port.stopListening)
        endpoint = wrapClientTLS(ca.clientOptions("127.0.0.1"),
                                 TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port))
        session = yield connectSession(endpoint)
        agent = Agent.usingEndpointFactory(reactor, SessionEndpoint(session))
        response = yield agent.request(b"GET", b"https://peer/x")
        self.assertEqual((yield readBody(response)), b"tls: /x from 127.0.0.1")
        [serverSession] = serverFactory.sessions
        waits = gatherResults([session.whenClosed(), serverSession.whenClosed()])
        (session if side == "client" else serverSession).close()
        clientClosed, serverClosed = yield waits
        return clientClosed, serverClosed

    @inlineCallbacks
    def test_clientCloses(self):
        clientClosed, serverClosed = yield self.closeFrom("client")
        self.assertEqual(serverClosed.remoteCode, 0)
        self.assertEqual(serverClosed.remoteDebug, b"no error")

    @inlineCallbacks
    def test_serverCloses(self):
        clientClosed, serverClosed = yield self.closeFrom("server")
        self.assertEqual(clientClosed.remoteDebug, b"no error")


class BadPeerTests(TestCase):
    """A peer that breaks the protocol loses its session; other sessions go on."""

    @inlineCallbacks
    def test_badSessionDoesNotDisturbOthers(self):
        """Each generation: a peer breaking the rules gets its GOAWAY; others go on."""
        serverFactory = MuxadoServerFactory(Site(Hello(b"server")))
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(serverFactory)
        self.addCleanup(port.stopListening)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        goods = []
        for version in (1, 2):
            goods.append((yield connectSession(endpoint, config=MuxadoConfig(version=version))))
        badInputs = [
            # v2: DATA on stream 0.
            (bytes.fromhex("0000011000000000") + b"x", FrameDecoder, 1),
            # v1: a proper SYN, then a PRI frame (type 5), which Go v1 dies on.
            (bytes.fromhex("00000001 00000003 00000005 00000003"), V1FrameDecoder, 1),
        ]
        for garbage, decoder, code in badInputs:

            class Raw(Protocol):
                sends = garbage

                def connectionMade(self):
                    self.received = b""
                    self.lost = Deferred()
                    self.transport.write(self.sends)

                def dataReceived(self, data):
                    self.received += data

                def connectionLost(self, reason):
                    self.lost.callback(self.received)

            bad = yield endpoint.connect(ClientFactory.forProtocol(Raw))
            received = yield bad.lost
            goAway = [f for f in decoder().receiveData(received) if f.__class__.__name__ == "GoAway"]
            self.assertEqual([g.code for g in goAway], [code])
        for good in goods:
            agent = Agent.usingEndpointFactory(reactor, SessionEndpoint(good))
            response = yield agent.request(b"GET", b"http://peer/still")
            self.assertEqual((yield readBody(response)), b"server: /still from 127.0.0.1")
            closed = good.whenClosed()
            good.close()
            yield closed


class SessionLimitTests(TestCase):
    """Past maxSessions, new connections are closed at once; the others go on."""

    @inlineCallbacks
    def test_maxSessions(self):
        serverFactory = MuxadoServerFactory(Site(Hello(b"server")), maxSessions=2)
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(serverFactory)
        self.addCleanup(port.stopListening)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        sessions = []
        for _ in range(3):
            sessions.append((yield connectSession(endpoint)))
        refused = yield sessions[2].whenClosed()
        self.assertEqual(refused.localCode, 15)   # PEER_EOF: the server just closed
        self.assertEqual(serverFactory.sessionsRefused, 1)
        for session in sessions[:2]:
            agent = Agent.usingEndpointFactory(reactor, SessionEndpoint(session))
            response = yield agent.request(b"GET", b"http://peer/ok")
            self.assertEqual((yield readBody(response)), b"server: /ok from 127.0.0.1")
            closed = session.whenClosed()
            session.close()
            yield closed
