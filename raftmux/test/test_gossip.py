# -*- test-case-name: raftmux.test.test_gossip -*-
"""
raftmux.gossip in memory: our HTTP/2 client against our server over iosim,
with a MemoryReactorClock for every timer, so each test is deterministic.
Real sockets, curl, nghttp, h2load, TLS and the sniffer are in
test_gossip_loopback; the frame codec in test_gossip_framing.
"""

from h2.errors import ErrorCodes
from h2.stream import StreamState
from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.defer import TimeoutError
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.test.iosim import FakeTransport, connect
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from raftmux.gossip import (
    CONTENT_TYPE,
    MESSAGE_PATH,
    STREAM_PATH,
    ConnectionGoneAway,
    GossipClient,
    GossipTransport,
    StreamRejected,
    StreamReset,
    decodeAll,
    encodeFrame,
)
from raftmux.h2 import H2ServerFactory, HandlerFactory, IH2Router, IH2StreamHandler, statusOf
from raftmux.streamtransport import HIGH_WATER

PEER = IPv4Address("TCP", "10.0.0.2", 45678)


class Collect(Protocol):
    """A stream protocol that keeps what it gets and how it ended."""

    def __init__(self):
        self.data = b""
        self.reason = None
        self.made = False

    def connectionMade(self):
        self.made = True

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        self.reason = reason


class Echo(Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


@implementer(IHalfCloseableProtocol)
class EchoThenClose(Echo):
    """memberlist's listener: read the request to its end, answer, close."""

    def readConnectionLost(self):
        self.transport.write(b"bye")
        self.transport.loseConnection()

    def writeConnectionLost(self):
        pass


@implementer(IH2StreamHandler, IHalfCloseableProtocol)
class Answer(Protocol):
    """Records the status of a hand-written request; ``deferred`` fires with it."""

    def __init__(self):
        self.deferred = defer.Deferred()
        self.status = None

    def headersReceived(self, headers):
        self.status = statusOf(headers)

    def trailersReceived(self, headers):
        pass

    def readConnectionLost(self):
        if not self.deferred.called:
            self.deferred.callback(self.status)

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason):
        if not self.deferred.called:
            if self.status is not None:
                self.deferred.callback(self.status)
            else:
                self.deferred.errback(reason)


@implementer(IHalfCloseableProtocol)
class Silent(Protocol):
    def readConnectionLost(self):
        pass

    def writeConnectionLost(self):
        pass


@implementer(IH2Router)
class Swallow:
    """A router whose handlers never answer."""

    def route(self, request):
        return HandlerFactory(lambda stream: Silent())


class Harness:
    """
    A gossip transport serving on a MemoryReactorClock, and its own client
    connected to it over iosim: ``h.client`` is the client's HTTP/2
    connection, ``h.server`` the server's.
    """

    address = "10.0.0.1:7946"

    def __init__(self, case, onStream=None, serverOptions=None, router=None):
        self.clock = MemoryReactorClock()
        self.packets = []
        self.streams = []
        self.registry = CollectorRegistry()
        self.pumps = []
        self.servers = []

        def accepted(stream):
            self.streams.append(stream)
            if onStream is not None:
                onStream(stream)
        self.gossip = GossipTransport(
            self.clock, "10.0.0.1:7946", lambda *a: self.packets.append(a), accepted,
            registry=self.registry, serverOptions=serverOptions)
        # the client side: a client of its own (its metrics are not the server's)
        self.gossipClient = GossipClient(self.clock, endpointFactory=lambda address: _IOSimEndpoint(
            self, router))
        self.client = self.connectClient(self.gossipClient)
        self.server = self.servers[0]
        self.pump = self.pumps[0]

    def connectClient(self, gossipClient=None):
        """A client connection (a new one unless ``gossipClient`` has one)."""
        if gossipClient is None:
            gossipClient = GossipClient(self.clock, endpointFactory=lambda address: _IOSimEndpoint(
                self, None))
        client = self.successResult(gossipClient.connectionFor(self.address))
        client.pump = self.pumps[-1]
        return client

    @staticmethod
    def successResult(d):
        results = []
        d.addBoth(results.append)
        return results[0]

    def flush(self):
        for pump in self.pumps:
            pump.flush()

    def post(self, body, path=MESSAGE_PATH, timeout=None):
        return self.gossipClient.request(self.address, path, body, timeout=timeout)

    def dial(self, timeout=None):
        return self.gossipClient.openStream(self.address, STREAM_PATH, timeout=timeout)

    def raw(self, path, chunks=(), end=True, contentType=CONTENT_TYPE, client=None):
        """A request written by hand, so bodies can be anything, in pieces."""
        headers = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"x"),
                   (b":path", path)]
        if contentType is not None:
            headers.append((b"content-type", contentType))
        answer = Answer()
        stream = self.successResult((client or self.client).openStream(
            headers, answer, endStream=not chunks and end))
        for chunk in chunks:
            stream.write(chunk)
        if chunks and end:
            stream.loseWriteConnection()
        self.flush()
        return stream, answer.deferred


class _IOSimEndpoint:
    """Connects a client factory to a new server connection of the harness over iosim."""

    def __init__(self, harness, router):
        self.harness = harness
        self.router = router

    def connect(self, factory):
        h = self.harness
        if self.router is not None:
            server = H2ServerFactory(self.router, clock=h.clock).buildProtocol(PEER)
        else:
            server = h.gossip.h2Factory().buildProtocol(PEER)
        client = factory.buildProtocol(None)
        h.servers.append(server)
        h.pumps.append(connect(server, FakeTransport(server, True, peerAddress=PEER),
                               client, FakeTransport(client, False), clock=h.clock))
        return defer.succeed(client)


def openStreams(proto):
    """h2's exact count of the streams ``proto``'s side opened (the shell's is a bound)."""
    from h2.connection import H2Connection

    prop = H2Connection.open_outbound_streams if proto.clientSide else \
        H2Connection.open_inbound_streams
    return prop.fget(proto.conn)


def peerOpen(proto, streamID):
    """Is the peer's half of ``streamID`` open in ``proto``'s h2 state?"""
    stream = proto.conn.streams.get(streamID)
    return stream is not None and stream.state_machine.state in (
        StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL)


class MessageTests(SynchronousTestCase):
    def test_packetDelivered(self):
        """One frame -> one packet with the connection's ip:port and the arrival time."""
        h = Harness(self)
        h.clock.advance(12.5)
        d = h.post(encodeFrame(b"hello"))
        h.flush()
        self.assertEqual(self.successResultOf(d), 200)
        self.assertEqual(h.packets, [(b"hello", "10.0.0.2:45678", 12.5)])

    def test_manyFramesOneBody(self):
        """Go sends one frame per request, but a body may hold many (and zero)."""
        h = Harness(self)
        d1 = h.post(b"".join(encodeFrame(b"%d" % i) for i in range(5)))
        d2 = h.post(b"")
        h.flush()
        self.assertEqual((self.successResultOf(d1), self.successResultOf(d2)), (200, 200))
        self.assertEqual([p[0] for p in h.packets], [b"0", b"1", b"2", b"3", b"4"])

    def test_statusOrder(self):
        """ckit's order: unknown path 404, shut down 503, content type 400."""
        h = Harness(self)
        answers = [h.raw(b"/api/v1/ckit/transport/nope", contentType=None)[1],
                   h.raw(MESSAGE_PATH, [encodeFrame(b"x")], contentType=b"text/plain")[1],
                   h.raw(MESSAGE_PATH, [encodeFrame(b"x")],
                         contentType=b"application/x.ckit; charset=utf-8")[1],
                   h.raw(MESSAGE_PATH, [encodeFrame(b"x")], contentType=None)[1],
                   h.raw(STREAM_PATH, contentType=b"text/plain", end=False)[1]]
        self.assertEqual([self.successResultOf(d) for d in answers], [404, 400, 400, 400, 400])
        self.assertEqual(h.packets, [])
        h.gossip.shutdown()
        answers = [h.raw(b"/other", contentType=None)[1],
                   h.raw(MESSAGE_PATH, [encodeFrame(b"x")], contentType=b"text/plain")[1],
                   h.raw(STREAM_PATH, end=False)[1]]
        self.assertEqual([self.successResultOf(d) for d in answers], [404, 503, 503])

    def test_badMagic(self):
        """400; frames before the error were already delivered (ckit queues them)."""
        h = Harness(self)
        _, d = h.raw(MESSAGE_PATH, [encodeFrame(b"ok") + b"\xab\x00\x01x"])
        self.assertEqual(self.successResultOf(d), 400)
        self.assertEqual([p[0] for p in h.packets], [b"ok"])

    def test_truncated(self):
        h = Harness(self)
        _, d = h.raw(MESSAGE_PATH, [b"\xcc\x00\x05hel"])
        self.assertEqual(self.successResultOf(d), 400)
        self.assertEqual(h.packets, [])

    def test_oversizeDeclaredLength(self):
        """
        A CD header claiming 4 GiB is refused at once with 400, before any
        payload arrives; the body that follows is dropped, and past
        ``maxDiscard`` the stream is reset (NO_ERROR).  The connection lives on.
        """
        h = Harness(self)
        stream, d = h.raw(MESSAGE_PATH, [b"\xcd\xff\xff\xff\xff"], end=False)
        self.assertEqual(self.successResultOf(d), 400)
        self.assertEqual(h.server.held, 0)
        self.assertTrue(peerOpen(h.server, stream.streamId))
        for _ in range(10):
            stream.write(b"x" * 65536)
            h.flush()
        self.assertFalse(peerOpen(h.server, stream.streamId))
        self.assertEqual(h.server.held, 0)
        d = h.post(encodeFrame(b"after"))
        h.flush()
        self.assertEqual(self.successResultOf(d), 200)

    def test_largeFrame(self):
        """A 3 MB 0xCD frame crosses many windows and HTTP/2 DATA frames."""
        h = Harness(self)
        payload = bytes(range(256)) * (3 * 4096)
        d = h.post(encodeFrame(payload))
        h.flush()
        self.assertEqual(self.successResultOf(d), 200)
        self.assertEqual(h.packets[0][0], payload)
        self.assertEqual(h.server.held, 0)

    def test_partialFramesBoundedPerConnection(self):
        """Streams that each park a partial big frame cannot hold more than maxHeld."""
        h = Harness(self, serverOptions={"maxHeldBytes": 200000})
        results = [h.raw(MESSAGE_PATH, [b"\xcd\x00\x10\x00\x00" + b"x" * 60000], end=False)[1]
                   for _ in range(5)]
        self.assertLessEqual(h.server.held, 200000)
        failures = [d for d in results if d.called]
        self.assertEqual(len(failures), 2)
        for d in failures:
            self.assertEqual(self.failureResultOf(d, StreamReset).value.code,
                             ErrorCodes.ENHANCE_YOUR_CALM)

    def test_concurrencyLimitQueuesRequests(self):
        """Beyond the server's MAX_CONCURRENT_STREAMS the client queues, then sends."""
        h = Harness(self, serverOptions={"maxConcurrentStreams": 3})
        ds = [h.post(encodeFrame(b"%d" % i)) for i in range(20)]
        h.flush()
        self.assertEqual([self.successResultOf(d) for d in ds], [200] * 20)
        self.assertEqual([p[0] for p in h.packets], [b"%d" % i for i in range(20)])

    def test_requestTimeout(self):
        """A request the server never answers fails after its timeout and is reset."""
        h = Harness(self, router=Swallow())  # the server swallows requests
        d = h.post(encodeFrame(b"y"), timeout=2)
        dial = h.dial(timeout=3)
        h.flush()
        self.assertNoResult(d)
        h.clock.advance(2)
        self.failureResultOf(d, TimeoutError)
        h.clock.advance(1)
        self.failureResultOf(dial, TimeoutError)
        h.flush()
        self.assertEqual((openStreams(h.client), h.client.streams), (0, {}))
        self.assertEqual(openStreams(h.server), 0)


class HTTP1Tests(SynchronousTestCase):
    def answer(self, request, shutDown=False, chunked=False):
        clock = MemoryReactorClock()
        gossip = GossipTransport(clock, "10.0.0.1:7946", None, None)
        gossip.shutDown = shutDown
        proto = gossip.serverFactory().buildProtocol(PEER)
        transport = StringTransport(peerAddress=PEER)
        proto.makeConnection(transport)
        pieces = [request[i:i + 1] for i in range(len(request))] if chunked else [request]
        for piece in pieces:
            proto.dataReceived(piece)
        return transport.value().split(b"\r\n", 1)[0], transport.disconnecting

    def test_505(self):
        """
        HTTP/1.1 to a ckit route gets a real 505 (ckit's check 2): the
        standalone server factory's sniffer sends HTTP/1.x to a Site that
        answers as ckit does, bytes arriving whole or one at a time.
        """
        req = (b"POST /api/v1/ckit/transport/message HTTP/1.1\r\nHost: x\r\n"
               b"Content-Type: application/x.ckit\r\nContent-Length: 8\r\n\r\n\xcc\x00\x05hello")
        self.assertEqual(self.answer(req)[0][:12], b"HTTP/1.1 505")
        self.assertEqual(self.answer(req, chunked=True)[0][:12], b"HTTP/1.1 505")

    def test_orderForHTTP1(self):
        self.assertEqual(self.answer(b"GET /x HTTP/1.1\r\n\r\n")[0][:12], b"HTTP/1.1 404")
        self.assertEqual(self.answer(
            b"POST /api/v1/ckit/transport/stream HTTP/1.0\r\n\r\n", shutDown=True)[0][9:12],
            b"503")

    def test_headTooLong(self):
        """A head that never ends is cut off at the sniffer's limit, not buffered forever."""
        value, closed = self.answer(b"GET /" + b"a" * 20000)
        self.assertEqual((value, closed), (b"", True))

    def test_resourceOnTheNodeSite(self):
        """``http1Resource`` on a Site: 505 over HTTP/1.1, 404 off the routes, 503 shut down."""
        from twisted.web.server import Site
        from twisted.web.test.requesthelper import DummyRequest

        gossip = GossipTransport(MemoryReactorClock(), "10.0.0.1:7946", None, None)
        resource = gossip.http1Resource()
        for path, shutDown, status in ((MESSAGE_PATH, False, 505), (STREAM_PATH, False, 505),
                                       (b"/api/v1/ckit/transport/x", False, 404),
                                       (MESSAGE_PATH, True, 503)):
            gossip.shutDown = shutDown
            request = DummyRequest(path.split(b"/")[1:])
            request.path = path
            resource.render(request)
            self.assertEqual(request.responseCode, status, path)
        self.assertIsInstance(Site(resource), Site)


class StreamTests(SynchronousTestCase):
    def dial(self, h, protocol=None):
        d = h.dial()
        h.flush()
        stream = self.successResultOf(d)
        proto = protocol or Collect()
        stream.attach(proto)
        return stream, proto

    def test_echo(self):
        """Each write is one frame; the peer sees the joined byte stream."""
        h = Harness(self, onStream=lambda s: s.attach(Echo()))
        stream, proto = self.dial(h)
        stream.write(b"abc")
        stream.writeSequence([b"de", b"f"])
        stream.write(b"")
        h.flush()
        self.assertEqual(proto.data, b"abcdef")
        self.assertEqual(h.gossip.metrics.streamRxPackets._value.get(), 2)

    def test_halfCloseExchange(self):
        """memberlist's pattern: dialer writes, half-closes, reads the answer to EOF."""
        h = Harness(self, onStream=lambda s: s.attach(EchoThenClose()))
        stream, proto = self.dial(h)
        stream.write(b"push-pull")
        stream.loseWriteConnection()
        h.flush()
        self.assertEqual(proto.data, b"push-pullbye")
        self.assertIsNotNone(proto.reason)
        self.assertEqual(openStreams(h.client), 0)

    def test_largeFramesBothWays(self):
        h = Harness(self, onStream=lambda s: s.attach(Echo()))
        stream, proto = self.dial(h)
        payload = b"z" * (5 * 1024 * 1024)
        stream.write(payload)
        h.flush()
        self.assertEqual(len(proto.data), len(payload))

    def test_manyConcurrentStreams(self):
        h = Harness(self, onStream=lambda s: s.attach(Echo()))
        pairs = [self.dial(h) for _ in range(60)]
        for i, (stream, _) in enumerate(pairs):
            stream.write(b"%d" % i * 1000)
        h.flush()
        self.assertEqual([p.data for _, p in pairs], [b"%d" % i * 1000 for i in range(60)])
        self.assertEqual(h.gossip.metrics.streams._value.get(), 60)  # the server's
        for stream, _ in pairs:
            stream.loseConnection()
        h.flush()
        self.assertEqual(h.gossip.metrics.streams._value.get(), 0)

    def test_rejectedDial(self):
        """Unlike ckit's client, a non-200 answer fails the dial."""
        h = Harness(self)
        h.gossip.shutDown = True
        d = h.dial()
        h.flush()
        self.assertEqual(self.failureResultOf(d, StreamRejected).value.status, 503)

    def test_unattachedStreamBoundedByWindow(self):
        """
        Nobody attaches the accepted stream: the dialer can send only its window;
        the rest waits on its side, and nothing here grows past the window.
        """
        h = Harness(self)
        stream, _ = self.dial(h)
        for _ in range(40):
            stream.write(b"q" * 65536)
        h.flush()
        accepted = h.streams[0]
        window = h.server.conn.local_settings.initial_window_size
        self.assertLessEqual(accepted.bufferedBytes, window)
        self.assertGreater(stream.pendingBytes, 0)
        # attaching a reader drains it all, flow control re-opening the window
        reader = Collect()
        accepted.attach(reader)
        h.flush()
        self.assertEqual(len(reader.data), 40 * 65536)

    def test_peerNeverReadsPausesWriter(self):
        """A writer on a stream whose peer never reads is paused, and its queue stays bounded."""
        h = Harness(self)
        stream, _ = self.dial(h)

        @implementer(IPushProducer)
        class Producer:
            paused = False

            def pauseProducing(self):
                self.paused = True

            def resumeProducing(self):
                self.paused = False

            def stopProducing(self):
                pass
        producer = Producer()
        accepted = h.streams[0]
        accepted.attach(Collect())
        accepted.pauseProducing()  # the server-side reader stops reading
        stream.registerProducer(producer, True)
        for _ in range(100):
            if producer.paused:
                break
            stream.write(b"w" * 32768)
            h.flush()
        self.assertTrue(producer.paused)
        self.assertLessEqual(stream.pendingBytes, HIGH_WATER + 32768 + 5)
        accepted.resumeProducing()
        h.flush()
        self.assertFalse(producer.paused)

    def test_producerWritingOnResumeLosesNothing(self):
        """
        Regression: a producer that writes from resumeProducing re-enters the
        send queue; 8 MiB through many pause/resume cycles must arrive whole.
        """
        h = Harness(self)
        stream, _ = self.dial(h)
        reader = Collect()
        h.streams[0].attach(reader)
        total = 8 * 1024 * 1024

        @implementer(IPushProducer)
        class Writer:
            sent = 0
            paused = False
            cycles = 0

            def resumeProducing(self):
                self.paused = False
                self.cycles += 1
                while not self.paused and self.sent < total:
                    stream.write(b"x" * 65536)
                    self.sent += 65536

            def pauseProducing(self):
                self.paused = True

            def stopProducing(self):
                pass
        writer = Writer()
        stream.registerProducer(writer, True)
        writer.resumeProducing()
        for _ in range(1000):
            if not h.pump.pump():
                break
        self.assertEqual(len(reader.data), total)
        self.assertGreater(writer.cycles, 2)

    def test_pullProducerDrivenToTheEnd(self):
        """
        Regression: a pull producer on a gossip stream was resumed once and then
        stalled; on the shared stream-transport base it is driven until it
        unregisters, through window waits.
        """
        h = Harness(self)
        stream, _ = self.dial(h)
        reader = Collect()
        h.streams[0].attach(reader)
        chunks = 64

        class Pull:
            sent = 0

            def resumeProducing(self):
                self.sent += 1
                stream.write(b"p" * 65536)
                if self.sent == chunks:
                    stream.unregisterProducer()

            def stopProducing(self):
                pass
        producer = Pull()
        stream.registerProducer(producer, False)
        for _ in range(1000):
            if not h.pump.pump() and not h.clock.getDelayedCalls():
                break
            h.clock.advance(0)
        self.assertEqual(producer.sent, chunks)
        self.assertEqual(len(reader.data), chunks * 65536)

    def test_resetStreamEndsOnlyThatStream(self):
        h = Harness(self, onStream=lambda s: s.attach(Echo()))
        (s1, p1), (s2, p2) = self.dial(h), self.dial(h)
        self.assertFalse(p1.data)
        s1.abortConnection()
        h.flush()
        self.assertIsNotNone(p1.reason)
        s2.write(b"still here")
        h.flush()
        self.assertEqual(p2.data, b"still here")
        self.assertIsNone(p2.reason)

    def test_badFrameOnStreamResets(self):
        """Garbage in a stream body resets that stream (PROTOCOL_ERROR); others go on."""
        h = Harness(self, onStream=lambda s: s.attach(Echo()))
        stream, proto = self.dial(h)
        other, otherProto = self.dial(h)
        h.client.sendStreamData(stream, b"\xee\x00\x00")  # not framed by the stream
        h.client.flush()
        h.flush()
        proto.reason.trap(StreamReset)
        self.assertEqual(proto.reason.value.code, ErrorCodes.PROTOCOL_ERROR)
        other.write(b"ok")
        h.flush()
        self.assertEqual(otherProto.data, b"ok")


class ResetFloodTests(SynchronousTestCase):
    def test_rapidReset(self):
        """
        A peer opening and resetting streams as fast as it can gets GOAWAY
        ENHANCE_YOUR_CALM once past the burst; a second connection is unaffected.
        """
        h = Harness(self)
        other = h.connectClient()
        client = h.client
        for _ in range(400):
            if client.closed:
                break
            streamID = client.conn.get_next_available_stream_id()
            client.conn.send_headers(streamID, [(b":method", b"POST"), (b":scheme", b"http"),
                                                (b":authority", b"x"), (b":path", MESSAGE_PATH),
                                                (b"content-type", CONTENT_TYPE)])
            client.conn.reset_stream(streamID, ErrorCodes.CANCEL)
            client.flush()
            h.flush()
        self.assertTrue(h.server.closed)
        self.assertTrue(client.closed)
        self.assertLess(len(h.server.conn.streams), 400)
        # the other connection still works
        _, d = h.raw(MESSAGE_PATH, [encodeFrame(b"fine")], client=other)
        other.pump.flush()
        self.assertEqual(self.successResultOf(d), 200)
        self.assertEqual([p[0] for p in h.packets], [b"fine"])


class TransportTests(SynchronousTestCase):
    def test_finalAdvertiseAddr(self):
        g = GossipTransport(MemoryReactorClock(), "", None, None)
        self.assertEqual(g.finalAdvertiseAddr("::ffff:10.1.2.3", 7946), ("10.1.2.3", 7946))
        self.assertEqual(g.localAddress, "10.1.2.3:7946")
        self.assertEqual(g.finalAdvertiseAddr("::1", 80), ("::1", 80))
        self.assertEqual(g.localAddress, "[::1]:80")
        for ip, port, why in (("", 1, "no configured advertise address"),
                              ("1.2.3.4", 0, "missing real listen port"),
                              ("host.example", 1, "failed to parse advertise ip")):
            e = self.assertRaises(ValueError, g.finalAdvertiseAddr, ip, port)
            self.assertIn(why, str(e))

    def stalled(self, **kw):
        """A transport whose peer connection never completes."""
        clock = MemoryReactorClock()

        class Never:
            def connect(self, factory):
                return defer.Deferred()
        registry = CollectorRegistry()
        g = GossipTransport(clock, "10.0.0.1:1", None, None, registry=registry,
                            endpointFactory=lambda address: Never(), **kw)
        return clock, g, registry

    def test_writeToNeverFailsAndDropsOldest(self):
        """1,000 queued at most; the 1,001st push drops the oldest (ckit's queue)."""
        clock, g, registry = self.stalled(maxInFlight=1)
        for i in range(1500):
            g.writeTo(b"%d" % i, "10.9.9.9:1")
        self.assertEqual(len(g._queue), 1000)
        self.assertEqual(g._queue[0][0], b"500")
        self.assertEqual(g._queue[-1][0], b"1499")
        self.assertIn(b"cluster_transport_tx_packet_queue_length 1000.0",
                      generate_latest(registry))
        g.writeTo(b"x", "not an address")  # still never raises

    def test_packetTimeoutThenNext(self):
        """One sender: a stalled packet fails after packetTimeout, then the next goes."""
        clock, g, registry = self.stalled(maxInFlight=1, packetTimeout=5)
        g.writeTo(b"a", "10.9.9.9:1")
        g.writeTo(b"b", "10.9.9.9:1")
        self.assertEqual(g.metrics.txPackets._value.get(), 1)
        clock.advance(5)
        self.assertEqual(g.metrics.txFailed._value.get(), 1)
        self.assertEqual(g.metrics.txPackets._value.get(), 2)

    def test_shutdownDropsAndWaits(self):
        clock, g, registry = self.stalled(maxInFlight=1, packetTimeout=5)
        for _ in range(3):
            g.writeTo(b"a", "10.9.9.9:1")
        d = g.shutdown()
        self.assertNoResult(d)  # waits for the POST in flight
        self.assertEqual(len(g._queue), 0)
        g.writeTo(b"late", "10.9.9.9:1")
        self.assertEqual(len(g._queue), 0)
        clock.advance(5)
        self.successResultOf(d)

    def test_metricNames(self):
        """ckit's names; received packets counted once (ckit counts twice)."""
        h = Harness(self)
        d = h.post(encodeFrame(b"hello"))
        h.flush()
        self.successResultOf(d)
        text = generate_latest(h.registry).decode()
        for name in ("rx_packets_total 1.0", "rx_bytes_total 5.0", "tx_packets_total",
                     "tx_packets_failed_total", "streams", "stream_rx_packets_total",
                     "stream_tx_bytes_total", "rx_packet_queue_length"):
            self.assertIn("cluster_transport_" + name, text)
        self.assertIn("# TYPE cluster_transport_tx_packets_failed_total counter", text)

    def test_onPacketErrorLoggedNotRaised(self):
        h = Harness(self)

        def boom(*a):
            raise RuntimeError("bug in the membership layer")
        h.gossip.onPacket = boom
        d = h.post(encodeFrame(b"x"))
        h.flush()
        self.assertEqual(self.successResultOf(d), 200)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class GoAwayTests(SynchronousTestCase):
    def test_goAwayFailsUnprocessedRetryably(self):
        """GOAWAY: streams above last_stream_id fail retryably; the connection is dropped."""
        h = Harness(self, router=Swallow())  # let requests hang
        d1 = h.post(encodeFrame(b"1"))
        h.flush()
        h.server.conn.close_connection(last_stream_id=0)
        h.server.flush()
        h.flush()
        f = self.failureResultOf(d1, ConnectionGoneAway)
        self.assertTrue(f.value.retryable)
        self.assertFalse(h.client.available)
        d2 = h.client.openStream([(b":method", b"POST")], Answer())
        self.assertTrue(self.failureResultOf(d2, ConnectionGoneAway).value.retryable)
        # the next POST dials a new connection
        self.assertEqual(len(h.pumps), 1)
        h.post(encodeFrame(b"3"))
        self.assertEqual(len(h.pumps), 2)


class BatchingTests(SynchronousTestCase):
    """
    The sender puts queued packets for one peer into one ``/message`` POST
    (a body of several frames), within ``maxBatchBytes``/``maxBatchPackets``.
    """

    def recording(self, **kw):
        """A transport whose POSTs are recorded; each answer is fired by the test."""
        clock = MemoryReactorClock()
        g = GossipTransport(clock, "10.0.0.1:1", None, None, registry=CollectorRegistry(), **kw)
        posts = []

        def request(address, path, body, timeout=None):
            d = defer.Deferred()
            if timeout:
                d.addTimeout(timeout, clock)
            posts.append((address, path, decodeAll(body), d))
            return d
        g.pool.request = request
        return clock, g, posts

    def test_queuedPacketsShareOnePost(self):
        clock, g, posts = self.recording(maxInFlight=1)
        g.writeTo(b"a", "p:1")  # a POST slot is free: goes alone, at once
        for p in (b"b", b"c", b"d"):
            g.writeTo(p, "p:1")
        self.assertEqual([p[2] for p in posts], [[b"a"]])
        self.assertEqual(g.queuedPackets, 3)
        posts[0][3].callback(200)
        self.assertEqual([p[2] for p in posts], [[b"a"], [b"b", b"c", b"d"]])
        self.assertEqual(posts[1][:2], ("p:1", MESSAGE_PATH))
        self.assertEqual(g.queuedPackets, 0)
        m = g.metrics
        self.assertEqual((m.txPackets._value.get(), m.txBytes._value.get(),
                          m.txRequests._value.get()), (4, 4, 2))

    def test_otherPeersKeepTheirPlaces(self):
        """A batch takes the oldest packets of the head's peer, in order; others stay."""
        clock, g, posts = self.recording(maxInFlight=1)
        g.writeTo(b"first", "a:1")
        for p, to in ((b"a1", "a:1"), (b"b1", "b:1"), (b"a2", "a:1"), (b"b2", "b:1"),
                      (b"a3", "a:1")):
            g.writeTo(p, to)
        posts[0][3].callback(200)
        posts[1][3].callback(200)
        self.assertEqual([(p[0], p[2]) for p in posts],
                         [("a:1", [b"first"]), ("a:1", [b"a1", b"a2", b"a3"]),
                          ("b:1", [b"b1", b"b2"])])

    def test_byteCap(self):
        """A body stays within maxBatchBytes (headers included); a bigger packet goes alone."""
        clock, g, posts = self.recording(maxInFlight=1, maxBatchBytes=20)
        g.writeTo(b"x", "p:1")
        for p in (b"11111", b"22222", b"33333", b"L" * 30, b"44444"):
            g.writeTo(p, "p:1")  # each 5-byte packet is an 8-byte frame
        for i in range(4):
            posts[i][3].callback(200)
        self.assertEqual([p[2] for p in posts],
                         [[b"x"], [b"11111", b"22222"], [b"33333"], [b"L" * 30], [b"44444"]])

    def test_byteCapWithOtherPeersBetween(self):
        """A packet over the remaining budget ends the batch: later ones would overtake it."""
        clock, g, posts = self.recording(maxInFlight=1, maxBatchBytes=20)
        g.writeTo(b"x", "p:1")
        for p, to in ((b"11111", "p:1"), (b"other", "q:1"), (b"L" * 30, "p:1"),
                      (b"22222", "p:1")):
            g.writeTo(p, to)
        for i in range(4):
            posts[i][3].callback(200)
        self.assertEqual([(p[0], p[2]) for p in posts],
                         [("p:1", [b"x"]), ("p:1", [b"11111"]), ("q:1", [b"other"]),
                          ("p:1", [b"L" * 30]), ("p:1", [b"22222"])])

    def test_packetCap(self):
        clock, g, posts = self.recording(maxInFlight=1, maxBatchPackets=2)
        for i in range(6):
            g.writeTo(b"%d" % i, "p:1")
        for i in range(3):
            posts[i][3].callback(200)
        self.assertEqual([p[2] for p in posts], [[b"0"], [b"1", b"2"], [b"3", b"4"], [b"5"]])

    def test_oneFramePerPostLikeCkit(self):
        clock, g, posts = self.recording(maxInFlight=1, maxBatchPackets=1)
        for i in range(3):
            g.writeTo(b"%d" % i, "p:1")
        posts[0][3].callback(200)
        posts[1][3].callback(200)
        self.assertEqual([p[2] for p in posts], [[b"0"], [b"1"], [b"2"]])

    def test_dropOldestThenBatchFromOldestKept(self):
        clock, g, posts = self.recording(maxInFlight=1, maxBatchPackets=1000,
                                         maxBatchBytes=1 << 20)
        for i in range(1501):
            g.writeTo(b"%d" % i, "p:1")
        self.assertEqual(g.queuedPackets, 1000)  # 0 is in flight; 1..500 dropped
        posts[0][3].callback(200)
        self.assertEqual(posts[1][2], [b"%d" % i for i in range(501, 1501)])

    def test_timeoutAppliesToTheWholePost(self):
        """
        packetTimeout bounds each POST from when it is sent; when a batch's
        POST times out or is refused, every packet in it counts as failed.
        """
        clock, g, posts = self.recording(maxInFlight=1, packetTimeout=5)
        g.writeTo(b"a", "p:1")
        clock.advance(4)
        g.writeTo(b"b", "p:1")
        g.writeTo(b"c", "p:1")
        clock.advance(1)  # a's POST times out; b and c go together, their clock starts now
        self.assertEqual(g.metrics.txFailed._value.get(), 1)
        self.assertEqual([p[2] for p in posts], [[b"a"], [b"b", b"c"]])
        clock.advance(4.9)
        self.assertEqual(g.metrics.txFailed._value.get(), 1)
        clock.advance(0.1)
        self.assertEqual(g.metrics.txFailed._value.get(), 3)
        g.writeTo(b"d", "p:1")
        g.writeTo(b"e", "p:1")
        posts[2][3].callback(503)  # refused: d was alone in its POST
        self.assertEqual(g.metrics.txFailed._value.get(), 4)
        posts[3][3].callback(200)
        self.assertEqual(g.metrics.txFailed._value.get(), 4)
        self.assertEqual(g.metrics.txRequests._value.get(), 4)
        self.assertEqual(g.metrics.txPackets._value.get(), 5)

    def test_batchesArriveInOrderThroughOnPacket(self):
        """Two transports in memory: queued packets ride in few POSTs, all arrive in order."""
        h = Harness(self)
        pumps = []

        class Endpoint:
            def connect(self, factory):
                client = factory.buildProtocol(None)
                server = h.gossip.h2Factory().buildProtocol(PEER)
                pumps.append(connect(server, FakeTransport(server, True, peerAddress=PEER),
                                     client, FakeTransport(client, False), clock=h.clock))
                return defer.succeed(client)
        sender = GossipTransport(h.clock, "10.0.0.3:1", None, None, registry=CollectorRegistry(),
                                 maxInFlight=2, endpointFactory=lambda address: Endpoint())
        for i in range(100):
            sender.writeTo(b"packet %d" % i, "10.0.0.1:7946")
        # at most maxInFlight POSTs out (the in-memory dial even answers the
        # first one at once); the rest waits for a slot, to ride together
        self.assertGreaterEqual(sender.queuedPackets, 97)
        for _ in range(10):
            pumps[0].flush()
        self.assertEqual([p[0] for p in h.packets], [b"packet %d" % i for i in range(100)])
        posts = sender.metrics.txRequests._value.get()
        self.assertLess(posts, 10)
        self.assertEqual(sender.metrics.txPackets._value.get(), 100)
        self.assertEqual(sender.metrics.txFailed._value.get(), 0)
        self.assertIn(b"cluster_transport_rx_packets_total 100.0", generate_latest(h.registry))
        self.assertIn(b"cluster_transport_tx_requests_total %d.0" % (posts,),
                      generate_latest(sender.metrics.registry))
