# -*- test-case-name: raftmux.test.test_gossip -*-
"""
The server side of ckit's gossiphttp: an HTTP/2 server ``Protocol`` on the
sans-IO ``h2`` library, serving exactly the two ckit routes.

twisted.web renders only after the whole request body, so it cannot host
the bidirectional ``/stream``; this protocol handles h2 events directly.
One factory takes h2c with prior knowledge, HTTP/2 after TLS ALPN ``h2``
and HTTP/1.x, which gets ckit's real 505 (or 404/503) and a close.

Checks, in ckit's order: unknown path 404; shut down 503; not HTTP/2 505;
content type not exactly ``application/x.ckit`` 400; ``/message`` body
not a clean frame sequence 400 (frames before the error are delivered);
else 200.  A response sent while the peer may still send is followed by
RST_STREAM NO_ERROR, as Go's server does when its handler returns early.
"""

from h2.config import H2Configuration
from h2.errors import ErrorCodes
from h2.events import RequestReceived
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IProtocolNegotiationFactory
from twisted.internet.protocol import Factory
from zope.interface import implementer

from raftmux.gossip.framing import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, FramingError
from raftmux.gossip.h2base import DEFAULT_MAX_CONCURRENT_STREAMS, H2Base
from raftmux.gossip.stream import GossipStream

PREFIX = b"/api/v1/ckit/transport/"
MESSAGE_PATH = PREFIX + b"message"
STREAM_PATH = PREFIX + b"stream"
CONTENT_TYPE = b"application/x.ckit"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_HTTP1_HEAD = 16 * 1024

_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 431:
            b"Request Header Fields Too Large", 503: b"Service Unavailable",
            505: b"HTTP Version Not Supported"}


def addressText(address):
    """ckit's ``From``: ``ip:port`` of the HTTP connection, else ``unknown``."""
    if isinstance(address, IPv4Address):
        return "%s:%d" % (address.host, address.port)
    if isinstance(address, IPv6Address):
        return "[%s]:%d" % (address.host, address.port)
    return "unknown"


def firstHeader(headers, name):
    for key, value in headers:
        if key == name:
            return value
    return None


def route(path, shutDown, isHTTP2, contentType):
    """ckit's checks in ckit's order: a status to answer now, or None to go on."""
    path = path.split(b"?", 1)[0]
    if path not in (MESSAGE_PATH, STREAM_PATH):
        return 404
    if shutDown:
        return 503
    if not isHTTP2:
        return 505
    if contentType != CONTENT_TYPE:
        return 400
    return None


class _MessageHandler:
    """One ``/message`` request: frames in, packets out, 200 or 400 at the end."""

    def __init__(self, server, streamID, fromAddress, timestamp):
        self.server = server
        self.streamID = streamID
        self.fromAddress = fromAddress
        self.timestamp = timestamp
        self.decoder = FrameDecoder(server.maxFrameSize)
        self.held = 0

    def dataReceived(self, data, flowLength):
        server = self.server
        before = self.decoder.buffered
        try:
            packets = self.decoder.feed(data)
        except FramingError as e:
            server.log.debug("bad /message body: {error}", error=e)
            server.gossip.packetsReceived(e.decoded, self.fromAddress, self.timestamp)
            self._release()
            server.respond(self.streamID, 400)
            server.acknowledge(self.streamID, flowLength)
            return
        server.acknowledge(self.streamID, flowLength)
        delta = self.decoder.buffered - before
        self.held += delta
        if not server.holdBytes(delta):
            self._release()
            server.resetStream(self.streamID, ErrorCodes.ENHANCE_YOUR_CALM)
            return
        server.gossip.packetsReceived(packets, self.fromAddress, self.timestamp)

    def ended(self):
        self._release()
        try:
            self.decoder.end()
        except FramingError:
            self.server.respond(self.streamID, 400)
        else:
            self.server.respond(self.streamID, 200)

    def _release(self):
        self.server.holdBytes(-self.held)
        self.held = 0

    def reset(self, code):
        self._release()

    def lost(self, reason):
        self._release()

    def writable(self, flag):
        pass


class _Discard:
    """The rest of a body whose answer is already sent: acknowledged and dropped."""

    def __init__(self, server, streamID):
        self.server = server
        self.streamID = streamID
        self.left = server.maxDiscard

    def dataReceived(self, data, flowLength):
        self.server.acknowledge(self.streamID, flowLength)
        self.left -= flowLength
        if self.left < 0:
            self.server.resetStream(self.streamID, ErrorCodes.NO_ERROR)

    def ended(self):
        self.server.forget(self.streamID)

    def reset(self, code):
        pass

    def lost(self, reason):
        pass

    def writable(self, flag):
        pass


class GossipServerProtocol(H2Base):
    """One connection to the gossip server: HTTP/2 (either way in) or HTTP/1.x (505)."""

    def __init__(self, gossip, clock, maxFrameSize=DEFAULT_MAX_FRAME_SIZE,
                 maxConcurrentStreams=DEFAULT_MAX_CONCURRENT_STREAMS, **kwargs):
        H2Base.__init__(self, clock, H2Configuration(client_side=False, header_encoding=None,
                                              validate_outbound_headers=False,
                                              normalize_outbound_headers=False),
                        maxConcurrentStreams=maxConcurrentStreams, **kwargs)
        self.gossip = gossip
        self.maxFrameSize = maxFrameSize
        self.maxDiscard = 256 * 1024
        self._mode = None
        self._head = b""

    def connectionMade(self):
        pass  # SETTINGS only once the bytes say HTTP/2

    def dataReceived(self, data):
        if self._mode == "h2":
            return H2Base.dataReceived(self, data)
        if self._mode == "http1":
            return self._http1(data)
        data = self._head + data
        self._head = b""
        if data.startswith(PREFACE[:len(data)]) and len(data) < len(PREFACE):
            self._head = data
            return
        if data.startswith(PREFACE):
            self._mode = "h2"
            self._peerText = addressText(self.transport.getPeer())
            H2Base.connectionMade(self)
            return H2Base.dataReceived(self, data)
        self._mode = "http1"
        self._http1(data)

    def _http1(self, data):
        """ckit behind Go's HTTP/1 server: 404, 503 or 505 (never served), then close."""
        if self.closed:
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            end = self._head.find(b"\n\n")
        if end < 0:
            if len(self._head) > MAX_HTTP1_HEAD:
                self._http1Answer(431)
            return
        parts = self._head.split(b"\n", 1)[0].split()
        path = parts[1] if len(parts) == 3 else b""
        self._http1Answer(route(path, self.gossip.shutDown, False, None) or 505)

    def _http1Answer(self, status):
        self.closed = True
        self._head = b""
        self.transport.write(b"HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                             % (status, _REASONS[status]))
        self.transport.loseConnection()

    def connectionLost(self, reason=None):
        self._head = b""
        H2Base.connectionLost(self, reason)

    def otherEvent(self, event):
        if isinstance(event, RequestReceived):
            self._request(event)

    def _request(self, event):
        streamID = event.stream_id
        headers = event.headers
        path = firstHeader(headers, b":path") or b""
        status = route(path, self.gossip.shutDown, True, firstHeader(headers, b"content-type"))
        if status is not None:
            self.respond(streamID, status)
            return
        if path.split(b"?", 1)[0] == MESSAGE_PATH:
            self.handlers[streamID] = _MessageHandler(
                self, streamID, self._peerText, self.gossip.reactor.seconds())
            return
        self.conn.send_headers(streamID, [(b":status", b"200")])
        stream = GossipStream(self, streamID, self.maxFrameSize, self.gossip.metrics)
        self.handlers[streamID] = stream
        self.flush()
        self.gossip.streamAccepted(stream)

    def respond(self, streamID, status):
        """
        A complete response with no body.  If the peer is still sending, the
        rest of its body is read and dropped (curl reports an early RST_STREAM
        as an error), up to ``maxDiscard`` bytes; beyond, RST_STREAM NO_ERROR.
        """
        self.forget(streamID)
        try:
            self.conn.send_headers(streamID, [(b":status", b"%d" % (status,))], end_stream=True)
        except Exception:
            self.log.failure("answering stream {stream}", stream=streamID)
        else:
            if self.streamOpen(streamID):
                self.handlers[streamID] = _Discard(self, streamID)
        self.flush()


@implementer(IProtocolNegotiationFactory)
class GossipServerFactory(Factory):
    """Builds ``GossipServerProtocol``s; offers ``h2`` (and ``http/1.1``, for 505) by ALPN."""

    noisy = False

    def __init__(self, gossip, **options):
        self.gossip = gossip
        self.options = options

    def acceptableProtocols(self):
        return [b"h2", b"http/1.1"]

    def buildProtocol(self, addr):
        proto = GossipServerProtocol(self.gossip, self.gossip.reactor, **self.options)
        proto.factory = self
        return proto
