# -*- test-case-name: raftmux.test.test_sniff -*-
"""
The sniffing shell, deterministically: ``StringTransport`` and ``iosim``
transports, a ``task.Clock`` for the deadline, no sockets.  Covers the
hand-off (exactly-once replay, rebinding, no wrapper left), the limits, the
logs and metrics, shutdown, h2c into a twisted.web Site, the SETTINGS
greeting, and TLS terminated and sniffed again.
"""

import h2.config
import h2.connection
import h2.events
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer

import raftmux.sniff
from raftmux.sniff import (
    SniffingFactory,
    SniffingProtocol,
    _h2,
    anyBytes,
    http1,
    http1HeaderField,
    http2,
    http2HeaderField,
    muxado,
    prefix,
    tls,
)
from raftmux.test.test_sniff_matchers import (
    CLIENT_SETTINGS,
    HELLO,
    HTTP1_REQUEST,
    MUXADO_SYN,
    SETTINGS_ACK,
    allMatchers,
    frame,
    h2ClientBytes,
    nearValid,
)
from raftmux.testing.tlsca import CertificateAuthority

PEER = IPv4Address("TCP", "192.0.2.7", 40123)


class Recorder(Protocol):
    """Remembers everything that happens to it."""

    def __init__(self):
        self.received = []
        self.made = 0
        self.lost = None
        self.handshakes = 0

    def connectionMade(self):
        self.made += 1

    def dataReceived(self, data):
        self.received.append(data)

    def connectionLost(self, reason):
        self.lost = reason

    @property
    def data(self):
        return b"".join(self.received)


@implementer(IHandshakeListener)
class HandshakeRecorder(Recorder):
    def handshakeCompleted(self):
        self.handshakes += 1


class RecordingFactory(Factory):
    """Builds Recorders and counts starts and stops."""

    protocol = Recorder

    def __init__(self, protocol=None):
        if protocol is not None:
            self.protocol = protocol
        self.built = []
        self.starts = self.stops = 0

    def buildProtocol(self, addr):
        p = Factory.buildProtocol(self, addr)
        self.built.append(p)
        return p

    def startFactory(self):
        self.starts += 1

    def stopFactory(self):
        self.stops += 1


def sniffer(routes, **kw):
    kw.setdefault("clock", task.Clock())
    kw.setdefault("registry", CollectorRegistry())
    return SniffingFactory(routes, **kw)


def accept(factory):
    """A connection to ``factory`` over a StringTransport that can be rebound."""
    proto = factory.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    transport.protocol = proto
    proto.makeConnection(transport)
    return proto, transport


def metric(factory, name, **labels):
    labels.setdefault("sniffer", factory.name)
    return _registryOf(factory).get_sample_value(name, labels) or 0


def _registryOf(factory):
    return factory._testRegistry


def assertDeadlineGone(case, factory, transport, wasClosed=False):
    """
    The connection's deadline no longer applies: past it, nothing happens to
    the connection, no timeout is counted, and no timer is left behind.
    """
    factory.clock.advance(factory.timeout)
    case.assertEqual(transport.disconnecting, wasClosed)
    case.assertEqual(metric(factory, "raftmux_sniff_timeouts_total"), 0)
    case.assertEqual(factory.clock.getDelayedCalls(), [])


def build(routes, **kw):
    registry = kw.setdefault("registry", CollectorRegistry())
    factory = sniffer(routes, **kw)
    factory._testRegistry = registry
    return factory


class HandOffTests(SynchronousTestCase):
    def test_byteAtATime(self):
        """A request fed one byte at a time reaches its route once, whole, in order."""
        target = RecordingFactory()
        factory = build([(http2(), RecordingFactory()), (http1(), target)])
        proto, transport = accept(factory)
        for i in range(len(HTTP1_REQUEST)):
            self.assertEqual(target.built, [])
            transport.protocol.dataReceived(HTTP1_REQUEST[i:i + 1])
            if target.built:
                break
        [handed] = target.built
        rest = HTTP1_REQUEST[i + 1:]
        transport.protocol.dataReceived(rest)
        self.assertEqual(handed.made, 1)
        self.assertEqual(handed.data, HTTP1_REQUEST)
        self.assertIs(handed.transport, transport, "the real transport, not a wrapper")
        self.assertIs(transport.protocol, handed, "rebound: the sniffer left the data path")
        self.assertEqual(metric(factory, "raftmux_sniff_matched_total", route="1-http1"), 1)
        self.assertEqual(factory.sniffing, 0)
        assertDeadlineGone(self, factory, transport)

    @settings(max_examples=100, deadline=None)
    @given(st.sampled_from([HTTP1_REQUEST, h2ClientBytes(), HELLO, MUXADO_SYN]),
           st.lists(st.integers(0, 600), max_size=6))
    def test_replayedExactlyOnceAnySplit(self, data, cuts):
        """However the bytes are split, the route sees them exactly once."""
        targets = [RecordingFactory() for _ in range(4)]
        factory = build(list(zip([http2(), tls(), http1(), muxado()], targets, strict=True)))
        proto, transport = accept(factory)
        edges = [0] + sorted(min(c, len(data)) for c in cuts) + [len(data)]
        for a, b in zip(edges, edges[1:], strict=False):
            # Deliver through the sniffer even after a hand-off, as a
            # transport that cannot be rebound would.
            if b > a:
                proto.dataReceived(data[a:b])
        built = [p for t in targets for p in t.built]
        self.assertEqual(len(built), 1)
        self.assertEqual(built[0].data, data)

    def test_forwardsWhenTheTransportCannotBeRebound(self):
        target = RecordingFactory()
        factory = build([(prefix(b"RAFT"), target)])
        proto = factory.buildProtocol(PEER)
        transport = StringTransport(peerAddress=PEER)  # no .protocol attribute
        proto.makeConnection(transport)
        proto.dataReceived(b"RAFT1")
        proto.dataReceived(b"2")
        [handed] = target.built
        self.assertEqual(handed.data, b"RAFT12")
        proto.connectionLost(None)
        self.assertIsNone(handed.lost)
        self.assertEqual(len(target.built), 1)

    def test_firstMatchWinsAndWaitingHoldsLaterRoutes(self):
        first, second = RecordingFactory(), RecordingFactory()
        factory = build([(prefix(b"ABCD"), first), (anyBytes(), second)])
        proto, transport = accept(factory)
        proto.dataReceived(b"AB")
        self.assertEqual((first.built, second.built), ([], []),
                         "a waiting matcher holds back the ones after it")
        proto.dataReceived(b"X")
        self.assertEqual(second.built[0].data, b"ABX")
        self.assertEqual(first.built, [])

    def test_anyBytesFirstDecidesAtAccept(self):
        """Server-speaks-first protocols work: anyBytes() needs no byte."""
        target = RecordingFactory()
        factory = build([(anyBytes(), target), (http1(), RecordingFactory())])
        proto, transport = accept(factory)
        self.assertEqual(target.built[0].made, 1)
        self.assertEqual(target.built[0].data, b"")

    def test_routeFactoryRefuses(self):
        class Refusing(Factory):
            def buildProtocol(self, addr):
                return None

        factory = build([(anyBytes(), Refusing())])
        proto, transport = accept(factory)
        self.assertTrue(transport.disconnecting)

    def test_routeFactoriesStartAndStopWithTheSniffer(self):
        shared, other = RecordingFactory(), RecordingFactory()
        factory = build([(http1(), shared), (http2(), shared), (muxado(), other)],
                        alpn={b"h2": shared})
        factory.doStart()
        self.assertEqual((shared.starts, other.starts), (1, 1))
        factory.doStop()
        self.assertEqual((shared.stops, other.stops), (1, 1))

    def test_routeLabels(self):
        target = RecordingFactory()
        factory = build([(muxado(), target, "peers")])
        proto, transport = accept(factory)
        proto.dataReceived(MUXADO_SYN)
        self.assertEqual(metric(factory, "raftmux_sniff_matched_total", route="peers"), 1)


class LimitTests(SynchronousTestCase):
    def test_silentClientClosedAtTheDeadline(self):
        factory = build([(http1(), RecordingFactory())], timeout=5)
        proto, transport = accept(factory)
        factory.clock.advance(4.9)
        self.assertFalse(transport.disconnecting)
        with capturedLogs() as events:
            factory.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(metric(factory, "raftmux_sniff_timeouts_total"), 1)
        [event] = events
        self.assertEqual(event["peer"], "192.0.2.7:40123")
        self.assertEqual(event["outcome"], "timedOut")
        self.assertEqual(factory.sniffing, 0)

    def test_eachConnectionItsOwnDeadlineOneTimer(self):
        """
        Each connection is closed ``timeout`` after its own accept, by one
        factory timer that follows the earliest deadline.
        """
        factory = build([(http1(), RecordingFactory())], timeout=10)
        clock = factory.clock
        first = accept(factory)[1]
        clock.advance(4)
        second = accept(factory)[1]
        third = accept(factory)[1]
        clock.advance(3)
        handed, handedTransport = accept(factory)
        handed.dataReceived(HTTP1_REQUEST)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(2.9)
        self.assertEqual([t.disconnecting for t in (first, second, third)], [False] * 3)
        clock.advance(0.1)
        self.assertEqual([t.disconnecting for t in (first, second, third)], [True, False, False])
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(3.9)
        self.assertFalse(second.disconnecting)
        clock.advance(0.1)
        self.assertEqual([second.disconnecting, third.disconnecting], [True, True])
        self.assertEqual(metric(factory, "raftmux_sniff_timeouts_total"), 3)
        self.assertEqual(factory.sniffing, 0)
        self.assertEqual(clock.getDelayedCalls(), [])
        clock.advance(10)
        self.assertFalse(handedTransport.disconnecting)

    def test_connectionsAfterTheTimerWentIdle(self):
        """A connection accepted after every earlier one ended still gets a deadline."""
        factory = build([(http1(), RecordingFactory())], timeout=5)
        accept(factory)[0].dataReceived(HTTP1_REQUEST)
        factory.clock.advance(5)
        self.assertEqual(factory.clock.getDelayedCalls(), [])
        proto, transport = accept(factory)
        factory.clock.advance(5)
        self.assertTrue(transport.disconnecting)

    def test_noDeadline(self):
        """``timeout=None``: no timer at all, the connection waits."""
        factory = build([(http1(), RecordingFactory())], timeout=None)
        proto, transport = accept(factory)
        self.assertEqual(factory.clock.getDelayedCalls(), [])
        factory.clock.advance(3600)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(factory.sniffing, 1)

    def test_oneDeadlineForTheWholeSniff(self):
        """Trickling bytes does not extend the deadline (cmux's semantics)."""
        factory = build([(http1HeaderField("x-route", "a"), RecordingFactory())], timeout=5)
        proto, transport = accept(factory)
        proto.dataReceived(b"GET / HTTP/1.1\r\n")
        for _ in range(4):
            factory.clock.advance(1)
            proto.dataReceived(b"H")
        factory.clock.advance(1)
        self.assertTrue(transport.disconnecting)

    def test_deadlineLetsAnyBytesTakeOver(self):
        """At the deadline waiting matchers give up and a later anyBytes() still wins."""
        fallback = RecordingFactory()
        factory = build([(http1(), RecordingFactory()), (anyBytes(), fallback)], timeout=1)
        proto, transport = accept(factory)
        proto.dataReceived(b"GE")
        factory.clock.advance(1)
        self.assertEqual(fallback.built[0].data, b"GE")
        self.assertFalse(transport.disconnecting)
        self.assertEqual(metric(factory, "raftmux_sniff_timeouts_total"), 0)

    def test_unmatchedClosedLoggedOnceCounted(self):
        factory = build([(http2(), RecordingFactory()), (tls(), RecordingFactory()),
                         (http1(), RecordingFactory())])
        proto, transport = accept(factory)
        junk = bytes(range(0x80, 0xE4))
        with capturedLogs() as events:
            proto.dataReceived(junk)
            proto.dataReceived(b"more")
        self.assertTrue(transport.disconnecting)
        [event] = events
        self.assertEqual(event["head"], junk[:32].hex())
        self.assertEqual(event["peer"], "192.0.2.7:40123")
        self.assertEqual(metric(factory, "raftmux_sniff_unmatched_total"), 1)
        assertDeadlineGone(self, factory, transport, wasClosed=True)

    def test_byteCap(self):
        """Reaching maxBytes without a decision closes, whatever the matchers want."""
        factory = build([(http1HeaderField("x-route", "a", maxBytes=1 << 20),
                          RecordingFactory())], maxBytes=64)
        proto, transport = accept(factory)
        proto.dataReceived(b"GET / HTTP/1.1\r\n")
        proto.dataReceived(b"X-Long: " + b"a" * 40)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(metric(factory, "raftmux_sniff_over_limit_total"), 1)

    def test_oversizedHeaderFieldInOneRead(self):
        factory = build([(http1HeaderField("x-route", "a"), RecordingFactory())])
        proto, transport = accept(factory)
        proto.dataReceived(b"GET / HTTP/1.1\r\nCookie: " + b"c" * 65536)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(proto._buffer, b"", "the buffer is dropped at once")

    def test_partialMatchThatNeverFinishes(self):
        factory = build([(http2HeaderField("content-type", "application/grpc"),
                          RecordingFactory())], timeout=3)
        proto, transport = accept(factory)
        proto.dataReceived(_h2.PREFACE + CLIENT_SETTINGS)
        factory.clock.advance(3)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(metric(factory, "raftmux_sniff_timeouts_total"), 1)

    def test_matcherOwnCap(self):
        """A matcher still waiting past its own maxBytes counts as no match."""
        fallback = RecordingFactory()
        factory = build([(http1(maxBytes=16), RecordingFactory()), (anyBytes(), fallback)])
        proto, transport = accept(factory)
        proto.dataReceived(b"GET /" + b"a" * 20)
        self.assertEqual(len(fallback.built), 1)

    def test_clientLeavesWhileSniffing(self):
        factory = build([(http1(), RecordingFactory())])
        proto, transport = accept(factory)
        proto.dataReceived(b"GE")
        proto.connectionLost(None)
        self.assertEqual(metric(factory, "raftmux_sniff_lost_total"), 1)
        self.assertEqual(factory.sniffing, 0)
        assertDeadlineGone(self, factory, transport)

    def test_maxSniffing(self):
        factory = build([(http1(), RecordingFactory())], maxSniffing=2)
        accept(factory)
        accept(factory)
        self.assertIsNone(factory.buildProtocol(PEER))
        self.assertEqual(metric(factory, "raftmux_sniff_refused_total"), 1)

    def test_stopClosesEverySniffingConnection(self):
        """Stopping the port's factory leaves no connection stuck in sniffing."""
        handedOff = RecordingFactory()
        factory = build([(prefix(b"RAFT"), handedOff)])
        factory.doStart()
        stuck = [accept(factory) for _ in range(3)]
        stuck[0][0].dataReceived(b"RA")
        proto, served = accept(factory)
        proto.dataReceived(b"RAFT")
        self.assertEqual(factory.sniffing, 3)
        factory.doStop()
        self.assertEqual([t.disconnecting for p, t in stuck], [True] * 3)
        self.assertFalse(served.disconnecting, "handed-off connections are left alone")
        self.assertEqual(factory.sniffing, 0)
        self.assertEqual(factory.clock.getDelayedCalls(), [])
        self.assertEqual(_registryOf(factory).get_sample_value(
            "raftmux_sniff_in_progress", {"sniffer": "sniff"}), 0)

    def test_listensOnAnyEndpoint(self):
        """Plain ServerFactory: any IStreamServerEndpoint takes it."""
        from twisted.internet.endpoints import serverFromString

        reactor = MemoryReactorClock()
        factory = build([(http1(), RecordingFactory())])
        serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory)
        serverFromString(reactor, "unix:/tmp/raftmux-sniff-test.sock").listen(factory)
        self.assertIs(reactor.tcpServers[0][1], factory)
        self.assertIs(reactor.unixServers[0][1], factory)

    def test_validation(self):
        self.assertRaises(ValueError, SniffingFactory, [])
        self.assertRaises(ValueError, SniffingFactory, [(http1(), Factory())], timeout=0)
        self.assertRaises(ValueError, SniffingFactory, [(http1(), Factory())], maxBytes=0)

    def test_defaultRegistryIsShared(self):
        """Two factories on the package registry share one set of metrics."""
        a = SniffingFactory([(http1(), Factory())], name="a")
        b = SniffingFactory([(http1(), Factory())], name="b")
        self.assertIs(a.metrics, b.metrics)
        self.assertIs(a.metrics, raftmux.sniff.metricsFor(raftmux.sniff.REGISTRY))


# -- HTTP/2 ---------------------------------------------------------------------


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"hello via " + request.clientproto + (
            b" secure" if request.isSecure() else b"")


class H2Client(Protocol):
    """A minimal h2 client; with ``waitForSettings`` it behaves like gRPC."""

    def __init__(self, headers=None, waitForSettings=False):
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.headers = headers or [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                                   (":authority", "127.0.0.1")]
        self.waitForSettings = waitForSettings
        self.sent = False
        self.body = b""
        self.status = None
        self.ended = False
        self.events = []

    def connectionMade(self):
        self.conn.initiate_connection()
        if not self.waitForSettings:
            self._request()
        self.transport.write(self.conn.data_to_send())

    def _request(self):
        self.sent = True
        self.conn.send_headers(1, self.headers, end_stream=True)

    def dataReceived(self, data):
        for event in self.conn.receive_data(data):
            self.events.append(event)
            if isinstance(event, h2.events.RemoteSettingsChanged) and not self.sent:
                self._request()
            elif isinstance(event, h2.events.ResponseReceived):
                self.status = dict(event.headers)[b":status"]
            elif isinstance(event, h2.events.DataReceived):
                self.body += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, 1)
            elif isinstance(event, h2.events.StreamEnded):
                self.ended = True
        self.transport.write(self.conn.data_to_send())


def pumpPair(serverFactory, client, clock):
    server = serverFactory.buildProtocol(PEER)
    serverTransport = iosim.FakeTransport(server, isServer=True, peerAddress=PEER)
    clientTransport = iosim.FakeTransport(client, isServer=False)
    pump = iosim.connect(server, serverTransport, client, clientTransport, clock=clock)
    return pump, serverTransport


def flush(pump, clock, rounds=5):
    for _ in range(rounds):
        clock.advance(0)
        pump.flush()


class HTTP2Tests(SynchronousTestCase):
    def setUp(self):
        self.clock = MemoryReactorClock()
        self.site = Site(Hello(), reactor=self.clock)

    def test_h2cAndHTTP1IntoOneSite(self):
        """A Site given for http2() serves h2c with Twisted's own HTTP/2."""
        from twisted.web._http2 import H2Connection

        factory = build([(http2(), self.site), (http1(), self.site)], clock=self.clock)
        client = H2Client()
        pump, serverTransport = pumpPair(factory, client, self.clock)
        flush(pump, self.clock)
        self.assertEqual((client.status, client.body, client.ended),
                         (b"200", b"hello via HTTP/2", True))
        self.assertIsInstance(serverTransport.protocol, H2Connection,
                              "the transport talks to H2Connection directly")

        class HTTP1Client(Recorder):
            def connectionMade(self):
                self.transport.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

        h1 = HTTP1Client()
        pump, _ = pumpPair(factory, h1, self.clock)
        flush(pump, self.clock)
        self.assertIn(b"hello via HTTP/1.1", h1.data)

    def test_sendSettingsForClientsThatWait(self):
        """
        A client that waits for the server's SETTINGS gets one empty SETTINGS
        from the sniffer, and the route never sees the client's ACK of it.
        """
        recorder = RecordingFactory()
        factory = build([(http2HeaderField("x-route", "gossip", sendSettings=True), recorder),
                         (http2(), RecordingFactory())])
        proto, transport = accept(factory)
        proto.dataReceived(_h2.PREFACE + CLIENT_SETTINGS)
        self.assertEqual(transport.value(), _h2.EMPTY_SETTINGS)
        proto.dataReceived(CLIENT_SETTINGS)  # another SETTINGS: no second greeting
        self.assertEqual(transport.value(), _h2.EMPTY_SETTINGS)
        from hpack import Encoder

        headers = frame(_h2.TYPE_HEADERS, 5, 1, Encoder().encode([("x-route", "gossip")]))
        proto.dataReceived(headers)
        [handed] = recorder.built
        self.assertIs(transport.protocol, proto, "still filtering: the ACK has not come")
        proto.dataReceived(SETTINGS_ACK[:4])
        proto.dataReceived(SETTINGS_ACK[4:] + SETTINGS_ACK + b"tail")
        self.assertIs(transport.protocol, handed, "rebound once the ACK was removed")
        self.assertEqual(handed.data, _h2.PREFACE + CLIENT_SETTINGS * 2 + headers
                         + SETTINGS_ACK + b"tail")

    def test_sendSettingsEndToEndWithSite(self):
        """A gRPC-like client through the greeting into Twisted's HTTP/2."""
        factory = build([(http2HeaderField(":path", "/", sendSettings=True), self.site)],
                        clock=self.clock)
        client = H2Client(waitForSettings=True)
        pump, serverTransport = pumpPair(factory, client, self.clock)
        flush(pump, self.clock)
        self.assertEqual((client.status, client.body), (b"200", b"hello via HTTP/2"))
        terminated = [e for e in client.events if isinstance(e, h2.events.ConnectionTerminated)]
        self.assertEqual(terminated, [])

    def test_h2cWithoutSiteGetsRawBytes(self):
        recorder = RecordingFactory()
        factory = build([(http2(), recorder)])
        proto, transport = accept(factory)
        data = h2ClientBytes()
        proto.dataReceived(data)
        self.assertEqual(recorder.built[0].data, data)


# -- TLS ------------------------------------------------------------------------


class TLSTests(SynchronousTestCase):
    def setUp(self):
        self.clock = MemoryReactorClock()
        self.ca = CertificateAuthority()
        self.serverOptions = self.ca.serverOptions()

    def tlsSniffer(self, inner):
        tlsFactory = TLSMemoryBIOFactory(self.serverOptions, False, inner, clock=self.clock)
        return build([(tls(), tlsFactory),
                      (http1(), RecordingFactory())], clock=self.clock)

    def tlsClient(self, protocol, alpn=None):
        clientFactory = Factory.forProtocol(lambda: protocol)
        tlsFactory = TLSMemoryBIOFactory(
            self.ca.clientOptions("127.0.0.1", acceptableProtocols=alpn), True, clientFactory,
            clock=self.clock)
        return tlsFactory.buildProtocol(PEER)

    def test_alpnRoutesBeforeAnyByte(self):
        muxadoSide, http = RecordingFactory(HandshakeRecorder), RecordingFactory()
        inner = build([(http1(), http)], alpn={b"h2": http, b"muxado": muxadoSide},
                      clock=self.clock, name="inner")
        client = Recorder()
        pump, serverTransport = pumpPair(self.tlsSniffer(inner),
                                         self.tlsClient(client, [b"muxado"]), self.clock)
        flush(pump, self.clock)
        [handed] = muxadoSide.built
        self.assertEqual(handed.data, b"")
        self.assertEqual(handed.handshakes, 1, "handshakeCompleted reaches the new protocol")
        self.assertEqual(handed.transport.negotiatedProtocol, b"muxado")
        tlsProtocol = serverTransport.protocol
        self.assertIsInstance(tlsProtocol, TLSMemoryBIOFactory.protocol,
                              "the outer sniffer left the TCP data path")
        self.assertIs(tlsProtocol.wrappedProtocol, handed,
                      "the inner sniffer left the TLS data path")
        client.transport.write(MUXADO_SYN)
        flush(pump, self.clock)
        self.assertEqual(handed.data, MUXADO_SYN)

    def test_sniffedAgainInsideTLS(self):
        http, other = RecordingFactory(), RecordingFactory()
        inner = build([(muxado(), other), (http1(), http)], clock=self.clock, name="inner")

        class Client(Recorder):
            def connectionMade(self):
                self.transport.write(HTTP1_REQUEST)

        pump, serverTransport = pumpPair(self.tlsSniffer(inner), self.tlsClient(Client()),
                                         self.clock)
        flush(pump, self.clock)
        [handed] = http.built
        self.assertEqual(handed.data, HTTP1_REQUEST)
        self.assertEqual(other.built, [])

    def test_siteBehindTLSKeepsALPN(self):
        """Site inside the sniffer's TLS: ALPN h2 and http/1.1 both work."""
        site = Site(Hello(), reactor=self.clock)
        inner = build([(http2(), site), (http1(), site)],
                      alpn={b"h2": site, b"http/1.1": site}, clock=self.clock, name="inner")
        client = H2Client(headers=[(":method", "GET"), (":path", "/"), (":scheme", "https"),
                                   (":authority", "127.0.0.1")])
        pump, _ = pumpPair(self.tlsSniffer(inner), self.tlsClient(client, [b"h2"]), self.clock)
        flush(pump, self.clock, rounds=8)
        self.assertEqual(client.body, b"hello via HTTP/2 secure")

    def test_garbageAfterARecordHeader(self):
        """A TLS record start with garbage behind it is refused by the sniffer."""
        inner = build([(http1(), RecordingFactory())], clock=self.clock)
        factory = self.tlsSniffer(inner)
        proto, transport = accept(factory)
        proto.dataReceived(b"\x16\x03\x01\x00\x40\x01" + b"\xee" * 64)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(metric(factory, "raftmux_sniff_unmatched_total"), 1)

    def test_handshakeUnderTheInnerDeadline(self):
        """
        Unvalidated TLS garbage reaches the TLS layer; the inner sniffer's
        deadline, which covers the handshake, still closes it.
        """
        inner = build([(http1(), RecordingFactory())], clock=self.clock, timeout=3)
        tlsFactory = TLSMemoryBIOFactory(self.serverOptions, False, inner, clock=self.clock)
        factory = build([(tls(validate=False), tlsFactory)], clock=self.clock)
        proto, transport = accept(factory)
        proto.dataReceived(HELLO[:40])  # a hello that never finishes
        self.assertFalse(transport.disconnecting)
        self.clock.advance(3)
        self.assertTrue(transport.disconnecting)

    def test_garbageWithSNIMatcherIsUnmatched(self):
        factory = build([(tls(serverNames=["node1.raft"]), RecordingFactory())])
        proto, transport = accept(factory)
        proto.dataReceived(b"\x16\x03\x01\x00\x40\x01" + b"\xee" * 64)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(metric(factory, "raftmux_sniff_unmatched_total"), 1)


class FirstByteTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(nearValid, st.booleans(), st.permutations(range(len(allMatchers()))))
    def test_skippingByFirstByteDecidesAsAskingEveryMatcher(self, data, final, order):
        """
        The routes skipped for a connection's first byte change no decision:
        the same route (or wait, or no route) as asking every matcher in order.
        """
        matchers = allMatchers()
        routes = [(matchers[i], RecordingFactory()) for i in order]
        factory = build(routes)
        everyone = build(routes)
        everyone._routesByFirstByte = (everyone._routes,) * 256
        mine, theirs = factory._decide(data, final), everyone._decide(data, final)
        if mine is None or theirs is None or mine is theirs:
            self.assertIs(mine, theirs)
        else:
            self.assertEqual(mine.label, theirs.label)

    def test_aByteNoRouteCanStartWithIsRefusedAtOnce(self):
        factory = build([(http2(), RecordingFactory()), (tls(), RecordingFactory()),
                         (http1(), RecordingFactory())])
        self.assertEqual(factory._routesByFirstByte[0x00], ())
        proto, transport = accept(factory)
        proto.dataReceived(b"\x00")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(metric(factory, "raftmux_sniff_unmatched_total"), 1)


class SubclassTests(SynchronousTestCase):
    def test_protocolAttribute(self):
        """Tests and subclasses may swap the protocol class."""

        class Counting(SniffingProtocol):
            made = []

            def connectionMade(self):
                self.made.append(self)
                SniffingProtocol.connectionMade(self)

        factory = build([(http1(), RecordingFactory())])
        factory.protocol = Counting
        accept(factory)
        self.assertEqual(len(Counting.made), 1)
