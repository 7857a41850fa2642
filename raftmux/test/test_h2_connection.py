# -*- test-case-name: raftmux.test.test_h2_connection -*-
"""
The HTTP/2 shell in memory: our client against our server over iosim, a
MemoryReactorClock for every timer, raw ``h2`` peers where a test needs to
misbehave.  Bodies, trailers, back-pressure both ways, the limits (rapid
reset, header list, body, streams, a peer that does not read), GOAWAY,
keepalive, idle timeout, the first SETTINGS frame, the sniffer's greeting,
and random bytes.
"""

import h2.config
import h2.connection
import h2.events
from h2.errors import ErrorCodes
from hyperframe.frame import Frame, SettingsFrame
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.test.iosim import FakeTransport, connect
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from raftmux.h2 import (
    BodyTooLarge,
    ConnectionGoneAway,
    H2ClientProtocol,
    H2Config,
    H2ServerFactory,
    HandlerFactory,
    IH2Router,
    IH2StreamHandler,
    StatusResponse,
    StreamReset,
)
from raftmux.streamtransport import HIGH_WATER

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def request(path=b"/", method=b"POST", extra=()):
    return [(b":method", method), (b":scheme", b"http"), (b":authority", b"test"),
            (b":path", path)] + list(extra)


@implementer(IH2StreamHandler)
class Recorder(Protocol):
    """Keeps what a stream delivered: header blocks, body, the end and how it ended."""

    def __init__(self):
        self.headers = None
        self.trailers = None
        self.data = b""
        self.ended = False
        self.reason = None

    def headersReceived(self, headers):
        self.headers = headers

    def trailersReceived(self, headers):
        self.trailers = headers

    def dataReceived(self, data):
        self.data += data

    def readConnectionLost(self):
        self.ended = True

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason):
        self.reason = reason

    @property
    def status(self):
        return int(dict(self.headers)[b":status"]) if self.headers else None


class Echo(Recorder):
    """Answers 200, echoes the body as it comes, and trailers at the end."""

    def headersReceived(self, headers):
        Recorder.headersReceived(self, headers)
        self.transport.sendHeaders([(b":status", b"200"), (b"x-path", dict(headers)[b":path"])])

    def dataReceived(self, data):
        Recorder.dataReceived(self, data)
        self.transport.write(data)

    def readConnectionLost(self):
        Recorder.readConnectionLost(self)
        self.transport.sendTrailers([(b"x-length", b"%d" % (len(self.data),))])


class Holder(Recorder):
    """Reads the request and never answers (the test answers through ``transport``)."""


@implementer(IH2Router)
class Router:
    """Routes by path to handler classes; records the handlers it made."""

    def __init__(self, routes=None, maxBodySize=None):
        self.handlers = []
        self.routes = dict(routes or {b"/echo": Echo, b"/hold": Holder})
        self.maxBodySize = maxBodySize

    def route(self, request):
        cls = self.routes.get(request.path)
        if cls is None:
            return None
        if isinstance(cls, int):
            return StatusResponse(cls)
        return HandlerFactory(self._build(cls), maxBodySize=self.maxBodySize)

    def _build(self, cls):
        def build(stream):
            handler = cls()
            self.handlers.append(handler)
            return handler
        return build


class Pair:
    """A server and a client connection over iosim."""

    def __init__(self, serverConfig=None, clientConfig=None, router=None, greet=True):
        self.clock = MemoryReactorClock()
        self.router = router or Router()
        self.factory = H2ServerFactory(self.router, serverConfig, clock=self.clock)
        self.server = self.factory.buildProtocol(None)
        self.client = H2ClientProtocol(self.clock, clientConfig)
        self.pump = connect(self.server, FakeTransport(self.server, True),
                            self.client, FakeTransport(self.client, False),
                            clock=self.clock, greet=greet)

    def flush(self):
        self.pump.flush()

    def open(self, path=b"/echo", handler=None, endStream=False, extra=()):
        handler = handler if handler is not None else Recorder()
        results = []
        self.client.openStream(request(path, extra=extra), handler,
                               endStream=endStream).addBoth(results.append)
        return (results[0] if results else None), handler


class ExchangeTests(SynchronousTestCase):
    def test_bodiesBothWaysAndTrailers(self):
        p = Pair()
        stream, answer = p.open()
        stream.write(b"hello ")
        stream.write(b"world")
        stream.loseWriteConnection()
        p.flush()
        self.assertEqual(answer.status, 200)
        self.assertIn((b"x-path", b"/echo"), answer.headers)
        self.assertEqual(answer.data, b"hello world")
        self.assertEqual(answer.trailers, [(b"x-length", b"11")])
        self.assertTrue(answer.ended)
        answer.reason.trap(ConnectionDone)
        self.assertEqual((p.client.streams, p.server.streams), ({}, {}))

    def test_manyConcurrentStreams(self):
        p = Pair()
        pairs = [p.open() for _ in range(50)]
        for i, (stream, _) in enumerate(pairs):
            stream.write(b"%d" % (i,) * 100)
            stream.loseWriteConnection()
        p.flush()
        self.assertEqual([a.data for _, a in pairs], [b"%d" % (i,) * 100 for i in range(50)])

    def test_unroutedAndStatusRoutes(self):
        p = Pair(router=Router({b"/gone": 410}))
        (_, missing), (_, gone) = p.open(b"/nowhere", endStream=True), p.open(b"/gone")
        p.flush()
        self.assertEqual((missing.status, gone.status), (404, 410))
        self.assertTrue(missing.ended)

    def test_plainProtocolAnswered200(self):
        """A handler that writes without answering first gets 200, as Go's server does."""

        class Plain(Protocol):
            def dataReceived(self, data):
                self.transport.write(data.upper())

        p = Pair(router=Router({b"/plain": Plain}))
        stream, answer = p.open(b"/plain")
        stream.write(b"shout")
        stream.loseWriteConnection()
        p.flush()
        self.assertEqual((answer.status, answer.data, answer.ended), (200, b"SHOUT", True))

    def test_earlyAnswerDrainsTheRest(self):
        """
        Answered before the body ended: the rest is read and dropped up to
        maxDiscard, then RST_STREAM NO_ERROR; the client still has its answer.
        """

        class Early(Recorder):
            def headersReceived(self, headers):
                self.transport.respond(403)

        p = Pair(H2Config(maxDiscard=100000), router=Router({b"/early": Early}))
        stream, answer = p.open(b"/early")
        p.flush()
        self.assertEqual(answer.status, 403)
        for _ in range(10):
            stream.write(b"x" * 30000)
            p.flush()
        self.assertTrue(stream.disconnected)
        answer.reason.trap(StreamReset)
        self.assertEqual(answer.reason.value.code, ErrorCodes.NO_ERROR)
        self.assertEqual(p.server.streams, {})

    def test_handlerErrorResetsOnlyItsStream(self):
        class Broken(Recorder):
            def dataReceived(self, data):
                raise RuntimeError("bug in a handler")

        p = Pair(router=Router({b"/broken": Broken, b"/echo": Echo}))
        (broken, lost), (good, answer) = p.open(b"/broken"), p.open(b"/echo")
        broken.write(b"boom")
        good.write(b"fine")
        good.loseWriteConnection()
        p.flush()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        lost.reason.trap(StreamReset)
        self.assertEqual(lost.reason.value.code, ErrorCodes.INTERNAL_ERROR)
        self.assertEqual(answer.data, b"fine")


class BackPressureTests(SynchronousTestCase):
    def test_pausedHandlerStopsTheSenderByFlowControl(self):
        """
        A handler that pauses reading: nothing is credited, so the client can
        send only the window; the rest waits on the client, and arrives once
        the handler resumes.
        """
        p = Pair(H2Config(initialWindowSize=65535))
        stream, _ = p.open(b"/hold")
        p.flush()
        held = p.router.handlers[0]
        held.transport.pauseProducing()
        for _ in range(64):
            stream.write(b"q" * 16384)
        p.flush()
        self.assertLessEqual(held.transport.bufferedBytes, 65535)
        self.assertEqual(held.data, b"")
        self.assertGreater(stream.pendingBytes, 512 * 1024)
        held.transport.resumeProducing()
        p.flush()
        self.assertEqual(len(held.data), 64 * 16384)
        self.assertEqual(stream.pendingBytes, 0)

    def test_producerPausedByWindowAndByTransport(self):
        """A registered producer pauses above the high-water mark, and when the transport is full."""

        @implementer(IPushProducer)
        class Producer:
            paused = False

            def pauseProducing(self):
                self.paused = True

            def resumeProducing(self):
                self.paused = False

            def stopProducing(self):
                pass

        p = Pair(H2Config(initialWindowSize=65535))
        stream, _ = p.open(b"/hold")
        p.flush()
        held = p.router.handlers[0]
        held.transport.pauseProducing()
        producer = Producer()
        stream.registerProducer(producer, True)
        for _ in range(100):
            if producer.paused:
                break
            stream.write(b"w" * 32768)
            p.flush()
        self.assertTrue(producer.paused)
        self.assertLessEqual(stream.pendingBytes, HIGH_WATER + 32768)
        held.transport.resumeProducing()
        p.flush()
        self.assertFalse(producer.paused)
        p.client.pauseProducing()  # as the TCP transport does when its buffer fills
        self.assertTrue(producer.paused)
        p.client.resumeProducing()
        self.assertFalse(producer.paused)

    def test_oneStalledStreamDoesNotStallOthers(self):
        p = Pair(H2Config(initialWindowSize=65535))
        stalled, _ = p.open(b"/hold")
        p.flush()
        p.router.handlers[0].transport.pauseProducing()
        stalled.write(b"s" * 300000)
        stream, answer = p.open()
        stream.write(b"through")
        stream.loseWriteConnection()
        p.flush()
        self.assertEqual(answer.data, b"through")


class LimitTests(SynchronousTestCase):
    def test_rapidReset(self):
        """
        Opening and resetting streams as fast as possible gets GOAWAY
        ENHANCE_YOUR_CALM past the token bucket's burst (CVE-2023-44487).
        """
        p = Pair(H2Config(resetBurst=20, resetRate=1.0))
        conn = p.client.conn
        for _ in range(100):
            if p.server.closed:
                break
            streamId = conn.get_next_available_stream_id()
            conn.send_headers(streamId, request(b"/hold"))
            conn.reset_stream(streamId, ErrorCodes.CANCEL)
            p.client.flush()
            p.flush()
        self.assertTrue(p.server.closed)
        self.assertEqual(p.client.goAwayReceived.error_code, ErrorCodes.ENHANCE_YOUR_CALM)
        self.assertLess(len(p.router.handlers), 40)

    def test_headerListTooLarge(self):
        """A header block over MAX_HEADER_LIST_SIZE ends the connection (its HPACK state is gone)."""
        p = Pair(H2Config(maxHeaderListSize=1000))
        _, answer = p.open(b"/echo", extra=[(b"x-big", b"b" * 2000)])
        p.flush()
        self.assertTrue(p.server.closed)
        self.assertEqual(p.client.goAwayReceived.error_code, ErrorCodes.ENHANCE_YOUR_CALM)
        self.assertIsNotNone(answer.reason)

    def test_bodyTooLarge(self):
        p = Pair(router=Router(maxBodySize=1000))
        stream, answer = p.open(b"/hold")
        stream.write(b"x" * 5000)
        p.flush()
        self.assertEqual(answer.status, 413)
        p.router.handlers[0].reason.trap(BodyTooLarge)
        self.assertEqual(p.server.streams, {})

    def test_streamsOverTheLimitRefusedOneByOne(self):
        """
        Streams opened before our SETTINGS reached the peer, past the limit we
        announce: refused with REFUSED_STREAM, not a connection error.
        """
        p = Pair(H2Config(maxConcurrentStreams=2), greet=False)
        opened = [p.open(b"/hold") for _ in range(5)]
        p.flush()
        self.assertEqual(len(p.router.handlers), 2)
        refused = [a for _, a in opened if a.reason is not None]
        self.assertEqual(len(refused), 3)
        for answer in refused:
            answer.reason.trap(StreamReset)
            self.assertEqual(answer.reason.value.code, ErrorCodes.REFUSED_STREAM)
        self.assertFalse(p.server.closed)
        self.assertEqual(p.client.maxStreams, 2)

    def test_peerThatDoesNotReadIsCutOff(self):
        """
        While our transport is full we still answer PINGs, but only up to
        maxPausedWrite bytes: a peer that sends and never reads is cut off.
        """
        p = Pair(H2Config(maxPausedWrite=2000))
        p.server.pauseProducing()  # the server's transport buffer is full
        conn = p.client.conn
        for i in range(400):
            conn.ping(b"%08d" % (i,))
        p.client.flush()
        p.flush()
        self.assertTrue(p.server.closed)

    def test_malformedRequestIsAStreamError(self):
        """An uppercase field name: RST_STREAM PROTOCOL_ERROR; the connection goes on."""
        p = Pair()
        _, bad = p.open(b"/echo", extra=[(b"X-Upper", b"1")], endStream=True)
        stream, good = p.open(b"/echo")
        stream.loseWriteConnection()
        p.flush()
        bad.reason.trap(StreamReset)
        self.assertEqual(bad.reason.value.code, ErrorCodes.PROTOCOL_ERROR)
        self.assertEqual(good.status, 200)
        self.assertFalse(p.server.closed)

    def test_partialMessagesBoundedPerConnection(self):
        p = Pair(H2Config(maxHeldBytes=1000))
        self.assertTrue(p.server.holdBytes(600))
        self.assertFalse(p.server.holdBytes(600))
        p.server.holdBytes(-1200)
        self.assertEqual(p.server.held, 0)


class GoAwayTests(SynchronousTestCase):
    def test_gracefulServerGoAway(self):
        """
        Streams the server had accepted finish; a stream the client opened
        meanwhile is refused (retryable); then the connection closes.
        """
        p = Pair()
        stream, answer = p.open(b"/hold")
        p.flush()
        closed = p.server.goAway()
        late, lateAnswer = p.open(b"/echo")  # sent before the client saw GOAWAY
        p.flush()
        self.assertFalse(p.client.available)
        lateAnswer.reason.trap(ConnectionGoneAway, StreamReset)
        if lateAnswer.reason.check(ConnectionGoneAway):
            self.assertTrue(lateAnswer.reason.value.retryable)
        after = p.client.openStream(request(), Recorder())
        self.assertTrue(self.failureResultOf(after, ConnectionGoneAway).value.retryable)
        self.assertNoResult(closed)
        handler = p.router.handlers[0]
        stream.write(b"still served")
        stream.loseWriteConnection()
        p.flush()
        handler.transport.respond(200, body=handler.data)
        p.flush()
        self.assertEqual((answer.status, answer.data), (200, b"still served"))
        self.successResultOf(closed)
        self.assertTrue(p.client.closed)

    def test_goAwayShutdownTimeout(self):
        p = Pair(H2Config(shutdownTimeout=5))
        p.open(b"/hold")
        p.flush()
        closed = p.factory.shutdown()
        p.flush()
        self.assertNoResult(closed)
        p.clock.advance(5)
        p.flush()
        self.successResultOf(closed)

    def test_clientLearnsWhatWasNotProcessed(self):
        """A GOAWAY whose last stream ID is below ours fails ours as retryable."""
        p = Pair()
        _, first = p.open(b"/hold")
        _, second = p.open(b"/hold")
        p.flush()
        p.server.conn.close_connection(last_stream_id=1)
        p.server.flush()
        p.flush()
        self.assertIsNone(first.reason)
        second.reason.trap(ConnectionGoneAway)
        self.assertTrue(second.reason.value.retryable)


class TimerTests(SynchronousTestCase):
    def test_keepaliveAnswered(self):
        p = Pair(clientConfig=H2Config(pingInterval=10, pingTimeout=5))
        for _ in range(5):
            p.clock.advance(10)
            p.flush()
        self.assertFalse(p.client.closed)
        self.assertEqual(p.client.pingsSent, 5)

    def test_keepaliveUnanswered(self):
        """A peer that answers nothing: PING after pingInterval, closed pingTimeout later."""
        p = Pair(clientConfig=H2Config(pingInterval=10, pingTimeout=5))
        p.clock.advance(10)  # the PING is written, but nothing is pumped
        self.assertFalse(p.client.closed)
        p.clock.advance(5)
        self.assertTrue(p.client.closed)

    def test_trafficPostponesThePing(self):
        p = Pair(clientConfig=H2Config(pingInterval=10, pingTimeout=5))
        for _ in range(5):
            p.clock.advance(6)
            stream, _ = p.open(endStream=True)
            p.flush()
        self.assertFalse(p.client.closed)
        self.assertEqual(p.client.pingsSent, 0)

    def test_idleTimeout(self):
        """No stream for idleTimeout: GOAWAY and close; an open stream keeps it."""
        p = Pair(H2Config(idleTimeout=30))
        stream, _ = p.open(b"/hold")
        p.flush()
        p.clock.advance(60)
        p.flush()
        self.assertFalse(p.server.closed)
        p.router.handlers[0].transport.respond(200)
        stream.loseWriteConnection()
        p.flush()
        p.clock.advance(29)
        self.assertFalse(p.server.closed)
        p.clock.advance(1)
        p.flush()
        self.assertTrue(p.server.closed)
        self.assertEqual(p.client.goAwayReceived.error_code, ErrorCodes.NO_ERROR)


class TurnTests(SynchronousTestCase):
    def test_eventsPerTurn(self):
        """
        With eventsPerTurn, a read holding many events is handled a slice
        per reactor turn (reading paused meanwhile); nothing is lost or
        reordered.
        """
        p = Pair(H2Config(eventsPerTurn=4))
        pairs = [p.open() for _ in range(10)]
        for i, (stream, _) in enumerate(pairs):
            stream.write(b"%d" % (i,))
            stream.loseWriteConnection()
        p.client.flush()
        p.pump.pump()  # one delivery: ~30 events for the server, 4 handled now
        self.assertLess(len(p.router.handlers), 10)
        self.assertTrue(p.clock.getDelayedCalls())
        p.flush()
        self.assertEqual([a.data for _, a in pairs], [b"%d" % (i,) for i in range(10)])
        self.assertEqual(p.server.backlog, 0)

    def test_lostWithABacklog(self):
        """A connection lost with events still waiting leaves no call behind."""
        p = Pair(H2Config(eventsPerTurn=4))
        for _ in range(10):
            p.open(endStream=True)
        p.client.flush()
        p.pump.pump()
        self.assertGreater(p.server.backlog, 0)
        self.assertEqual(len(p.clock.getDelayedCalls()), 1)
        p.server.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(p.server.backlog, 0)
        self.assertEqual(p.clock.getDelayedCalls(), [])

    def test_onByDefault(self):
        """The default slices a read (see bench h2: the two ends then work at once)."""
        self.assertEqual(H2Config().eventsPerTurn, 32)


class PrefaceTests(SynchronousTestCase):
    def test_firstSettingsCarryTheConfig(self):
        server = H2ServerFactory(Router(), H2Config(
            maxConcurrentStreams=7, initialWindowSize=123456, maxHeaderListSize=9999),
            clock=MemoryReactorClock()).buildProtocol(None)
        transport = StringTransport()
        server.makeConnection(transport)
        frame, length = Frame.parse_frame_header(memoryview(transport.value()[:9]))
        frame.parse_body(memoryview(transport.value()[9:9 + length]))
        self.assertIsInstance(frame, SettingsFrame)
        self.assertEqual(frame.settings[SettingsFrame.MAX_CONCURRENT_STREAMS], 7)
        self.assertEqual(frame.settings[SettingsFrame.INITIAL_WINDOW_SIZE], 123456)
        self.assertEqual(frame.settings[SettingsFrame.MAX_HEADER_LIST_SIZE], 9999)

    def test_behindTheSniffersGreeting(self):
        """
        A client that waits for the server's SETTINGS before its HEADERS (as
        grpc-go does), through ``http2HeaderField(..., sendSettings=True)``:
        it gets the sniffer's SETTINGS, then ours; the sniffer hides its ACK
        from us; the request is served.
        """
        from raftmux.sniff import SniffingFactory, http2HeaderField

        clock = MemoryReactorClock()
        sniffer = SniffingFactory([(http2HeaderField(b"content-type", b"application/x.test",
                                                     sendSettings=True),
                                    H2ServerFactory(Router(), clock=clock))], clock=clock)
        server = sniffer.buildProtocol(None)
        client = _WaitingClient()
        pump = connect(server, FakeTransport(server, True), client,
                       FakeTransport(client, False), clock=clock)
        pump.flush()
        self.assertTrue(client.settings)
        self.assertEqual(client.events, [])
        client.ask()
        pump.flush()
        self.assertEqual(client.status, b"200")
        self.assertEqual(client.body, b"waited")
        self.assertEqual(client.errors, [])


class _WaitingClient(Protocol):
    """A raw h2 client that sends its HEADERS only after the server's SETTINGS arrived."""

    def __init__(self):
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
        self.settings = 0
        self.events = []
        self.errors = []
        self.status = None
        self.body = b""

    def connectionMade(self):
        self.conn.initiate_connection()
        self.transport.write(self.conn.data_to_send())

    def ask(self):
        self.conn.send_headers(1, request(b"/echo", extra=[
            (b"content-type", b"application/x.test")]))
        self.conn.send_data(1, b"waited", end_stream=True)
        self.transport.write(self.conn.data_to_send())

    def dataReceived(self, data):
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.RemoteSettingsChanged):
                self.settings += 1
            elif isinstance(event, h2.events.ResponseReceived):
                self.status = dict(event.headers)[b":status"]
            elif isinstance(event, h2.events.DataReceived):
                self.body += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, 1)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.errors.append(event)
            elif not isinstance(event, (h2.events.SettingsAcknowledged,
                                        h2.events.StreamEnded, h2.events.TrailersReceived,
                                        h2.events.WindowUpdated)):
                self.events.append(event)
        self.transport.write(self.conn.data_to_send())


@implementer(IHalfCloseableProtocol)
class _Nothing(Protocol):
    def readConnectionLost(self):
        pass

    def writeConnectionLost(self):
        pass


class BadInputTests(SynchronousTestCase):
    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.binary(max_size=64), max_size=8))
    def test_randomBytesAfterThePreface(self, chunks):
        """Whatever follows the preface: no exception escapes, and a broken peer is closed."""
        server = H2ServerFactory(Router(), clock=MemoryReactorClock()).buildProtocol(None)
        transport = StringTransport()
        server.makeConnection(transport)
        server.dataReceived(PREFACE)
        for chunk in chunks:
            server.dataReceived(chunk)
        if server.closed:
            self.assertTrue(transport.disconnecting)

    def test_requestClosedLaterInTheSameRead(self):
        """
        Found by fuzzing (gossip-h2-server): a malformed request and, in the
        same read, the client's RST_STREAM for it.  h2 closed the stream
        before the server handled the request event, and the server's own
        reset of it raised StreamClosedError into the log.  Now the reset of
        a stream h2 has closed is skipped and nothing is logged.
        """
        from twisted.logger import LogLevel, capturedLogs

        client = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, validate_outbound_headers=False,
            normalize_outbound_headers=False))
        client.initiate_connection()
        client.send_headers(1, [(b":method", b"GET"), (b":scheme", b"http"),
                                (b":authority", b"x")], end_stream=True)  # no :path
        client.reset_stream(1, ErrorCodes.CANCEL)
        server = H2ServerFactory(Router(), clock=MemoryReactorClock()).buildProtocol(None)
        transport = StringTransport()
        server.makeConnection(transport)
        with capturedLogs() as events:
            server.dataReceived(client.data_to_send())
        self.assertEqual([e for e in events if e["log_level"] >= LogLevel.error], [])
        self.assertFalse(server.closed)

    def test_notHTTP2(self):
        """The shell does not sniff: HTTP/1.1 bytes are a protocol error (GOAWAY) and a close."""
        server = H2ServerFactory(Router(), clock=MemoryReactorClock()).buildProtocol(None)
        transport = StringTransport()
        server.makeConnection(transport)
        server.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(server.closed)
        self.assertTrue(transport.disconnecting)
