"""
Fuzz targets for the HTTP/2 shell (``raftmux.h2``): the server connection
with a few handlers, and the client side (``H2Agent`` over its pool) fed a
server's bytes after it sent its requests.  Both run over StringTransports
with a fake clock; what the shell writes is parsed back (``hyperframe`` for
the frames, ``hpack`` for the header blocks), so a frame it should not
send, or a header block its encoder got wrong, is found too.
"""

import struct
from typing import Any

from raftmux.fuzz import target
from raftmux.fuzz._support import LogFailures, check, pieces, runClock, split

__all__ = ["FrameReader", "checkServerBounds", "clientFrames", "frame", "h2Request", "serverFrames"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEADERS, _CONTINUATION, _DATA, _RST, _PUSH = 0x1, 0x9, 0x0, 0x3, 0x5


class FrameReader:
    """
    Reads what one end of the shell wrote, checking it as it goes: a
    preface first when ``preface`` (a client), then well-formed frames of
    known types, header blocks in one piece (HEADERS, then CONTINUATIONs
    on that stream only) that ``hpack`` decodes, nothing but RST_STREAM or
    WINDOW_UPDATE on a stream after our END_STREAM or RST_STREAM, and
    stream IDs of the right parity.  ``blocks`` maps stream IDs to the
    decoded header blocks, ``data`` to the DATA received, ``ended`` is the
    streams we ended, ``resets`` maps stream IDs to the codes we reset them
    with, ``goAways`` lists ``(last stream, code)``.
    """

    def __init__(self, preface, clientSide):
        import hpack

        self._buffer = b""
        self._preface = preface
        self._ours = 1 if clientSide else 0     # parity of the streams we may open
        self._clientSide = clientSide
        self._decoder = hpack.Decoder(max_header_list_size=1 << 24)
        self._decoder.max_allowed_table_size = 1 << 32
        self._block: Any = None                 # (streamId, fragments, endStream)
        self.blocks: dict[int, list[Any]] = {}
        self.data: dict[int, bytes] = {}
        self.ended: set[int] = set()
        self.resets: dict[int, int] = {}
        self.goAways: list[tuple[int, int]] = []
        self.frames = 0

    def feed(self, data):
        from hyperframe.exceptions import HyperframeError
        from hyperframe.frame import Frame

        buf = self._buffer + data
        if self._preface:
            if len(buf) < len(PREFACE):
                check(PREFACE.startswith(buf), "the client preface is wrong: %r", buf)
                self._buffer = buf
                return
            check(buf.startswith(PREFACE), "the client preface is wrong: %r", buf[:24])
            buf = buf[len(PREFACE):]
            self._preface = False
        pos = 0
        while len(buf) - pos >= 9:
            header = memoryview(buf)[pos:pos + 9]
            try:
                frame, length = Frame.parse_frame_header(header, strict=True)
            except HyperframeError as e:
                raise _broken("we sent a frame hyperframe refuses: %s (%r)", e, bytes(header))
            if len(buf) - pos - 9 < length:
                break
            body = memoryview(buf)[pos + 9:pos + 9 + length]
            try:
                frame.parse_body(body)
            except HyperframeError as e:
                raise _broken("we sent a frame hyperframe refuses: %s (%r)", e,
                              bytes(buf[pos:pos + 9 + length][:64]))
            pos += 9 + length
            self._frame(frame, bytes(body))
        self._buffer = buf[pos:]

    def _frame(self, frame, body):
        self.frames += 1
        kind = frame.type
        sid = frame.stream_id
        if self._block is not None:
            check(kind == _CONTINUATION and sid == self._block[0],
                  "a header block on stream %d was cut by a frame of type %d on stream %d",
                  self._block[0], kind, sid)
        if kind in (_HEADERS, _DATA):
            check(sid != 0, "a frame of type %d on stream 0", kind)
            check(sid not in self.ended and sid not in self.resets,
                  "a frame of type %d on stream %d after we ended or reset it", kind, sid)
            if not self._clientSide:
                check(sid % 2 == 1, "a server answered on stream %d", sid)
        if kind == _PUSH:
            raise _broken("we sent PUSH_PROMISE")
        if kind == _HEADERS:
            check(self._clientSide or sid % 2 == 1, "HEADERS on stream %d", sid)
            self._block = (sid, [frame.data], "END_STREAM" in frame.flags)
            if "END_HEADERS" in frame.flags:
                self._endBlock()
        elif kind == _CONTINUATION:
            check(self._block is not None, "a CONTINUATION with no header block open")
            self._block[1].append(frame.data)
            if "END_HEADERS" in frame.flags:
                self._endBlock()
        elif kind == _DATA:
            self.data[sid] = self.data.get(sid, b"") + frame.data
            if "END_STREAM" in frame.flags:
                self.ended.add(sid)
        elif kind == _RST:
            self.resets.setdefault(sid, frame.error_code)
        elif kind == 0x7:
            self.goAways.append((frame.last_stream_id, frame.error_code))

    def _endBlock(self):
        import hpack

        sid, fragments, endStream = self._block
        self._block = None
        try:
            headers = self._decoder.decode(b"".join(fragments), raw=True)
        except hpack.HPACKError as e:
            raise _broken("our header block on stream %d does not decode: %s", sid, e)
        self.blocks.setdefault(sid, []).append(headers)
        if endStream:
            self.ended.add(sid)

    def finish(self):
        check(self._block is None, "a header block was left unfinished")


def _broken(message, *args):
    from raftmux.fuzz import InvariantBroken
    return InvariantBroken(message % args if args else message)


def _h2(clientSide):
    import h2.config
    import h2.connection

    return h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=clientSide, header_encoding=None, validate_outbound_headers=False,
        normalize_outbound_headers=False, validate_inbound_headers=False))


def frame(kind, flags, streamId, payload=b""):
    """One raw frame (for what ``h2`` will not send: bad frames, odd orders)."""
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + \
        struct.pack(">I", streamId) + payload


def clientFrames(requests, preface=True, settings=None):
    """
    What an h2 client sends: the preface and SETTINGS (unless ``preface``
    is False: the frames only), then for each ``(headers, body, end)`` a
    request on the next stream (``body`` None: no DATA; ``end``: END_STREAM
    on the last frame).  Bytes are made by ``h2`` with its checks off.
    """
    conn = _h2(True)
    conn.initiate_connection()
    if settings:
        conn.update_settings(settings)
    start = conn.data_to_send()
    out = [start if preface else b""]
    for headers, body, end in requests:
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, headers, end_stream=end and body is None)
        if body is not None:
            conn.send_data(sid, body, end_stream=end)
        out.append(conn.data_to_send())
    return b"".join(out)


def serverFrames(clientBytes, respond):
    """
    What an h2 server answers to ``clientBytes``: its SETTINGS, then what
    ``respond(conn, events)`` frames (the ``h2`` server connection and the
    events the client's bytes made).
    """
    conn = _h2(False)
    conn.initiate_connection()
    events = conn.receive_data(clientBytes)
    respond(conn, events)
    return conn.data_to_send()


# -- the server ------------------------------------------------------------------------

SERVER_WINDOW = 16384
SERVER_MAX_HELD = 32768


def _serverConfig(control):
    from raftmux.h2 import H2Config

    return H2Config(maxConcurrentStreams=8, initialWindowSize=SERVER_WINDOW,
                    connectionWindowSize=65535, maxHeaderListSize=8192, maxBodySize=32768,
                    maxDiscard=4096, resetBurst=20, resetRate=10.0, maxPausedWrite=16384,
                    pingInterval=5.0, pingTimeout=2.0, idleTimeout=30.0, shutdownTimeout=5.0,
                    maxHeldBytes=SERVER_MAX_HELD,
                    eventsPerTurn=3 if control & 0x40 else None)


def _handlers():
    from twisted.internet.protocol import Protocol
    from zope.interface import implementer

    from raftmux.h2 import IH2StreamHandler

    @implementer(IH2StreamHandler)
    class Base(Protocol):
        body = b""
        transport: Any = None

        def headersReceived(self, headers):
            self.started()

        def started(self):
            pass

        def trailersReceived(self, headers):
            self.trailers = headers

        def dataReceived(self, data):
            self.body += data

        def readConnectionLost(self):
            self.finished()

        def finished(self):
            pass

        def writeConnectionLost(self):
            pass

    class Hello(Base):
        def finished(self):
            self.transport.respond(200, [(b"content-type", b"text/plain")], b"hello " * 10)

    class Echo(Base):
        def started(self):
            self.transport.sendHeaders([(b":status", b"200")])

        def dataReceived(self, data):
            self.transport.write(data)

        def finished(self):
            self.transport.loseWriteConnection()

    class Trailers(Base):
        def finished(self):
            self.transport.sendHeaders([(b":status", b"200")])
            self.transport.write(b"x" * 40000)   # past the window: queued
            self.transport.sendTrailers([(b"x-count", b"%d" % (len(self.body),))])

    class Paused(Base):
        """Reads nothing: what arrives waits in the stream, uncredited."""

        def started(self):
            self.transport.pauseProducing()

    class Hold(Base):
        """Keeps what arrives, counted against the connection (as a gRPC call's partial message)."""

        held = 0

        def dataReceived(self, data):
            self.held += len(data)
            if not self.transport.host.holdBytes(len(data)):
                self.transport.reset(0xB)

        def finished(self):
            self.transport.respond(200, body=b"%d" % (self.held,))

        def connectionLost(self, reason=None):
            self.transport.host.holdBytes(-self.held)
            self.held = 0

    return {b"/hello": Hello, b"/echo": Echo, b"/trailers": Trailers, b"/paused": Paused,
            b"/hold": Hold}


def _router():
    from zope.interface import implementer

    from raftmux.h2 import HandlerFactory, IH2Router, StatusResponse

    routes = _handlers()

    @implementer(IH2Router)
    class Router:
        def route(self, request):
            path = (request.path or b"").partition(b"?")[0]
            if path == b"/status":
                return StatusResponse(503, [(b"retry-after", b"1")], b"busy")
            cls = routes.get(path)
            if cls is None:
                return None
            return HandlerFactory(lambda stream: cls(), maxBodySize=4096 if path == b"/hello"
                                  else None)

    return Router()


def h2Request(path, method=b"POST", extra=()):
    return [(b":method", method), (b":scheme", b"http"), (b":authority", b"fuzz.test"),
            (b":path", path)] + list(extra)


def _serverSeeds():
    from h2.settings import SettingCodes

    body = b"0123456789" * 30
    reset = frame(_RST, 0, 1, struct.pack(">I", 0x8))
    return [
        b"\x00" + clientFrames([(h2Request(b"/hello", b"GET"), None, True)]),
        b"\x00" + clientFrames([(h2Request(b"/echo"), body, True),
                                (h2Request(b"/trailers"), b"abc", True),
                                (h2Request(b"/nowhere", b"GET"), None, True),
                                (h2Request(b"/status", b"GET"), None, True)]),
        b"\x03" + clientFrames([(h2Request(b"/paused"), b"p" * 16000, False),
                                (h2Request(b"/hold"), b"h" * 12000, True)]),
        b"\x00" + clientFrames([(h2Request(b"/hello"), b"z" * 5000, True)]),
        b"\x00" + clientFrames([(h2Request(b"/echo"), b"x", False)]) + reset
        + frame(0x6, 0, 0, b"pingpong") + frame(0x8, 0, 1, struct.pack(">I", 100)),
        b"\x40" + clientFrames([(h2Request(b"/hello", b"GET"), None, True)] * 5),
        b"\x00" + clientFrames([(h2Request(b"/trailers"), b"q", True)],
                               settings={SettingCodes.INITIAL_WINDOW_SIZE: 0}),
        b"\x00" + clientFrames([(h2Request(b"/Upper", b"GET", [(b"X-Bad", b"1")]), None, True)]),
        b"\x01" + clientFrames([([(b":path", b"/hello"), (b":method", b"GET")], None, True)])
        + frame(0x7, 0, 0, struct.pack(">II", 1, 0)),
        b"\x00" + PREFACE + frame(0x4, 0, 0) + frame(_HEADERS, 0x4, 1, b"\x82\x86")
        + frame(_CONTINUATION, 0x4, 1, b"\x84"),
        b"\x80" + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ]


@target("h2-server", """
    H2ServerProtocol (echo, answer, trailers, paused and holding handlers,
    404, 503) over a StringTransport fed any bytes: nothing raised out of
    dataReceived, no error logged; bytes held by handlers within
    maxHeldBytes, a stream's undelivered bytes within its window; the clock
    is never kept busy; what it writes parses as HTTP/2 frames whose header
    blocks hpack decodes, with nothing after a stream's END_STREAM or
    RST_STREAM.""", seeds=_serverSeeds)
def h2Server(data):
    from twisted.internet.address import IPv4Address
    from twisted.internet.error import ConnectionDone
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport
    from twisted.python.failure import Failure

    from raftmux.h2 import H2ServerFactory

    control, wire = split(data)
    clock = Clock()
    config = _serverConfig(control)
    factory = H2ServerFactory(_router(), config, clock=clock)
    proto = factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 4444))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 4444))
    reader = FrameReader(preface=False, clientSide=False)
    with LogFailures():
        proto.makeConnection(transport)
        if control & 0x20:
            proto.pauseProducing()     # the transport's buffer is full for a while
        for i, chunk in enumerate(pieces(wire, control)):
            if proto.closed or transport.disconnecting:
                break
            proto.dataReceived(chunk)
            checkServerBounds(proto, config)
            check(runClock(clock, 0.01), "the connection keeps the clock busy")
            if i == 3 and control & 0x20:
                proto.resumeProducing()
            reader.feed(transport.value())
            transport.clear()
        if not proto.closed:
            proto.resumeProducing()
        check(runClock(clock, 60), "the connection keeps the clock busy")
        proto.connectionLost(Failure(ConnectionDone()))
        check(runClock(clock, 1), "the connection keeps the clock busy")
    reader.feed(transport.value())
    check(not proto.streams, "streams left after the connection was lost")
    check(proto.held == 0, "%d bytes still counted as held after the connection went",
          proto.held)


def checkServerBounds(proto, config):
    check(proto.held <= config.maxHeldBytes or proto.closed,
          "%d bytes held (bound %d)", proto.held, config.maxHeldBytes)
    total = 0
    for stream in proto.streams.values():
        buffered = stream.bufferedBytes
        total += buffered
        check(buffered <= config.initialWindowSize,
              "stream %d holds %d undelivered bytes (window %d)", stream.streamId, buffered,
              config.initialWindowSize)
    check(total <= config.connectionWindowSize,
          "%d undelivered bytes (connection window %d)", total, config.connectionWindowSize)


# -- the client ---------------------------------------------------------------------------

CLIENT_WINDOW = 16384
_BODY = b"request body " * 20


def _clientSetup():
    """A clock, an ``H2Agent`` whose pool dials StringTransports, and the list of them."""
    from twisted.internet.address import IPv4Address
    from twisted.internet.defer import succeed
    from twisted.internet.interfaces import IStreamClientEndpoint
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport
    from zope.interface import implementer

    from raftmux.h2 import H2Agent, H2Config, H2ConnectionPool

    clock = Clock()
    connections = []

    @implementer(IStreamClientEndpoint)
    class Endpoint:
        def connect(self, factory):
            address = IPv4Address("TCP", "192.0.2.8", 80)
            proto = factory.buildProtocol(address)
            transport = StringTransport(peerAddress=address)
            proto.makeConnection(transport)
            connections.append((proto, transport))
            return succeed(proto)

    config = H2Config(initialWindowSize=CLIENT_WINDOW, connectionWindowSize=65535,
                      maxHeaderListSize=8192, pingInterval=5.0, pingTimeout=2.0,
                      idleTimeout=30.0, shutdownTimeout=5.0, resetBurst=20, resetRate=10.0)
    pool = H2ConnectionPool(clock, config, endpointFactory=lambda origin: Endpoint(),
                            maxConnectionsPerOrigin=2)
    agent = H2Agent(clock, pool=pool, responseTimeout=10.0, maxReplayBytes=1024, retries=2)
    return clock, agent, connections


def _producer(body):
    from twisted.internet.defer import succeed
    from twisted.web.iweb import IBodyProducer
    from zope.interface import implementer

    @implementer(IBodyProducer)
    class Producer:
        length = len(body)

        def startProducing(self, consumer):
            consumer.write(body[:100])
            consumer.write(body[100:])
            return succeed(None)

        def pauseProducing(self):
            pass

        def resumeProducing(self):
            pass

        def stopProducing(self):
            pass

    return Producer()


def _sendRequests(agent):
    """The agent's three requests: GET /a, POST /b (a body), HEAD /c; their Deferreds."""
    from twisted.web.http_headers import Headers

    return [agent.request(b"GET", b"http://fuzz.test/a"),
            agent.request(b"POST", b"http://fuzz.test/b",
                          Headers({b"content-type": [b"text/plain"]}), _producer(_BODY)),
            agent.request(b"HEAD", b"http://fuzz.test/c")]


def _clientRequestBytes():
    """What the client sends for its requests (deterministic: no random PING yet)."""
    clock, agent, connections = _clientSetup()
    _sendRequests(agent)
    return connections[0][1].value()


def _respondAll(conn, events):
    import h2.events as ev

    for event in events:
        if isinstance(event, ev.RequestReceived):
            sid = event.stream_id
            if sid == 1:
                conn.send_headers(sid, [(b":status", b"200"), (b"content-length", b"5")])
                conn.send_data(sid, b"hello", end_stream=True)
            elif sid == 5:
                conn.send_headers(sid, [(b":status", b"204")], end_stream=True)
        elif isinstance(event, ev.StreamEnded) and event.stream_id == 3:
            conn.send_headers(3, [(b":status", b"201")])
            conn.send_data(3, b"created")
            conn.send_headers(3, [(b"x-trailer", b"yes")], end_stream=True)


def _clientSeeds():
    import h2.events as ev
    from h2.errors import ErrorCodes
    from h2.settings import SettingCodes

    request = _clientRequestBytes()

    def goAway(conn, events):
        conn.close_connection(last_stream_id=1)

    def refuse(conn, events):
        _respondAll(conn, [e for e in events if getattr(e, "stream_id", 0) == 1])
        conn.reset_stream(3, ErrorCodes.REFUSED_STREAM)
        conn.send_headers(5, [(b":status", b"100")])
        conn.send_headers(5, [(b":status", b"200"), (b"content-length", b"0")],
                          end_stream=True)

    def settings(conn, events):
        conn.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 1,
                              SettingCodes.INITIAL_WINDOW_SIZE: 10})
        conn.ping(b"12345678")
        conn.increment_flow_control_window(1000)
        conn.send_headers(1, [(b":status", b"200")])
        conn.send_data(1, b"no length, " * 50)

    def lengthLies(conn, events):
        for event in events:
            if isinstance(event, ev.RequestReceived) and event.stream_id == 1:
                conn.send_headers(1, [(b":status", b"200"), (b"content-length", b"100")])
                conn.send_data(1, b"short", end_stream=True)

    def badHeaders(conn, events):
        conn.send_headers(1, [(b"x-no-status", b"1")])
        conn.send_headers(3, [(b":status", b"abc"), (b"Upper", b"x")], end_stream=True)

    out = [b"\x00" + serverFrames(request, respond)
           for respond in (_respondAll, goAway, refuse, settings, lengthLies, badHeaders)]
    out.append(b"\x01" + serverFrames(request, _respondAll))
    out.append(b"\x00" + b"HTTP/1.1 200 OK\r\n\r\n")
    out.append(b"\x00" + frame(0x4, 0, 0) + frame(_HEADERS, 0x5, 1, b"\x88")
               + frame(0x7, 0, 0, struct.pack(">II", 0, 2) + b"debug"))
    return out


@target("h2-client", """
    H2Agent's connection (a GET, a POST with a body, a HEAD) fed any
    server bytes: nothing raised, no error logged; every request ends (a
    response or one of the agent's documented failures) and every body
    delivered ends, once the connection is gone; bytes kept for a body not
    yet asked for stay within the early-body limit and the window; the
    clock is never kept busy; what the client writes is the preface and
    HTTP/2 frames whose header blocks hpack decodes.""", seeds=_clientSeeds)
def h2Client(data):
    from twisted.internet.error import ConnectionDone
    from twisted.python.failure import Failure

    from raftmux.h2.agent import EARLY_BODY

    control, wire = split(data)
    clock, agent, connections = _clientSetup()
    results: list[tuple[int, Any]] = []
    bodies: list[tuple[int, _Collector]] = []

    def got(response, i):
        collector = _Collector()
        bodies.append((i, collector))
        if i == 0:
            response.deliverBody(collector)
        else:
            collector.response = response
        results.append((i, response))

    def failed(failure, i):
        results.append((i, failure))

    with LogFailures():
        for i, d in enumerate(_sendRequests(agent)):
            d.addCallbacks(got, failed, callbackArgs=(i,), errbackArgs=(i,))
        readers: dict[int, FrameReader] = {}
        for chunk in pieces(wire, control):
            live = [(p, t) for p, t in connections if not p.closed]
            if not live:
                break
            proto, transport = live[-1]
            proto.dataReceived(chunk)
            check(proto.held <= proto.config.maxHeldBytes, "%d bytes held", proto.held)
            check(runClock(clock, 0.01), "the client keeps the clock busy")
            _readAll(connections, readers)
        for _i, collector in bodies:
            response = getattr(collector, "response", None)
            if response is not None:
                collector.response = None
                response.deliverBody(collector)
                check(collector.received <= EARLY_BODY + CLIENT_WINDOW,
                      "%d bytes were kept for a body nobody asked for", collector.received)
        check(runClock(clock, 0.01), "the client keeps the clock busy")
        check(runClock(clock, 60), "the client keeps the clock busy")
        for proto, _transport in list(connections):
            if proto.transport is not None:
                proto.connectionLost(Failure(ConnectionDone()))
        check(runClock(clock, 1), "the client keeps the clock busy")
        _readAll(connections, readers)
    for reader in readers.values():
        reader.finish()
    check(sorted(i for i, _ in results) == [0, 1, 2],
          "requests without an outcome after the connection went: %r",
          sorted(i for i, _ in results))
    for _i, outcome in results:
        if isinstance(outcome, Failure):
            check(outcome.check(*_requestFailures()) is not None,
                  "a request failed with %r", outcome.value)
    for _i, collector in bodies:
        reason = collector.reason
        if reason is None:
            raise _broken("a response body never ended")
        check(reason.check(*_bodyEnds()) is not None, "a response body ended with %r",
              reason.value)


def _readAll(connections, readers):
    for _proto, transport in connections:
        reader = readers.get(id(transport))
        if reader is None:
            reader = readers[id(transport)] = FrameReader(preface=True, clientSide=True)
        reader.feed(transport.value())
        transport.clear()


def _requestFailures():
    from twisted.internet.error import TimeoutError
    from twisted.web.client import (
        RequestGenerationFailed,
        ResponseFailed,
        ResponseNeverReceived,
    )

    from raftmux.h2 import ConnectionGoneAway, NotReplayable

    return (ResponseNeverReceived, ResponseFailed, ConnectionGoneAway, NotReplayable,
            TimeoutError, RequestGenerationFailed)


def _bodyEnds():
    from twisted.web.client import ResponseDone, ResponseFailed

    return (ResponseDone, ResponseFailed)


class _Collector:
    """A response body protocol: counts what it got and keeps why it ended."""

    def __init__(self):
        self.received = 0
        self.reason: Any = None
        self.response: Any = None

    def makeConnection(self, transport):
        self.transport = transport

    def dataReceived(self, data):
        self.received += len(data)

    def connectionLost(self, reason):
        check(self.reason is None, "a response body ended twice")
        self.reason = reason
