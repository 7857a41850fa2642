# -*- test-case-name: raftmux.test.test_gossip -*-
"""
The server side of ckit's gossiphttp: its two routes, on the one HTTP/2
shell (``raftmux.h2``).  This module keeps only the routing and ckit's
answers; HTTP/2 is the shell's.

Checks, in ckit's order: unknown path 404; shut down 503; not HTTP/2 505
(that answer is ``CkitHTTP1Resource``'s: HTTP/1.x reaches it through the
sniffer, never the HTTP/2 shell); content type not exactly
``application/x.ckit`` 400; ``/message`` body not a clean frame sequence
400 (frames before the error are delivered); else 200.  An answer sent
while the peer is still sending is followed by reading and dropping the
rest (the shell's ``H2Stream.respond``).
"""

from h2.errors import ErrorCodes
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web.resource import Resource
from zope.interface import implementer

from raftmux.gossip.framing import FrameDecoder, FramingError
from raftmux.gossip.stream import GossipStream
from raftmux.h2 import H2Stream, IH2HandlerFactory, IH2Router, IH2StreamHandler, StatusResponse

__all__ = ["CONTENT_TYPE", "MESSAGE_PATH", "PREFIX", "STREAM_PATH", "CkitHTTP1Resource",
           "GossipRouter", "addressText", "route"]

PREFIX = b"/api/v1/ckit/transport/"
MESSAGE_PATH = PREFIX + b"message"
STREAM_PATH = PREFIX + b"stream"
CONTENT_TYPE = b"application/x.ckit"

log = Logger()


def addressText(address):
    """ckit's ``From``: ``ip:port`` of the HTTP connection, else ``unknown``."""
    if isinstance(address, IPv4Address):
        return "%s:%d" % (address.host, address.port)
    if isinstance(address, IPv6Address):
        return "[%s]:%d" % (address.host, address.port)
    return "unknown"


_addressTexts = {}


def _fromText(address):
    """``addressText``, remembered (one per connection, asked for per request)."""
    text = _addressTexts.get(address)
    if text is None:
        if len(_addressTexts) >= 4096:
            _addressTexts.clear()
        text = _addressTexts[address] = addressText(address)
    return text


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


@implementer(IH2StreamHandler, IHalfCloseableProtocol)
class _MessageHandler(Protocol):
    """One ``/message`` request: frames in, packets out, 200 or 400 at the end."""

    def __init__(self, gossip, maxFrameSize):
        self.gossip = gossip
        self.decoder = FrameDecoder(maxFrameSize)
        self.held = 0
        self.failed = False

    def connectionMade(self):
        self.fromAddress = _fromText(self.transport.getPeer())
        self.timestamp = self.gossip.reactor.seconds()

    def headersReceived(self, headers):
        pass

    def trailersReceived(self, headers):
        pass

    def dataReceived(self, data):
        if self.failed:
            return
        decoder = self.decoder
        before = decoder.buffered
        try:
            packets = decoder.feed(data)
        except FramingError as e:
            log.debug("bad /message body from {peer}: {error}", peer=self.fromAddress, error=e)
            self.gossip.packetsReceived(e.decoded, self.fromAddress, self.timestamp)
            self._release()
            self.failed = True
            self.transport.respond(400)
            return
        delta = decoder.buffered - before
        if delta:
            # Partial frames are credited (so a frame larger than the window
            # can complete) and count against the connection's budget.
            self.held += delta
            if not self.transport.host.holdBytes(delta):
                self._release()
                self.failed = True
                self.transport.reset(ErrorCodes.ENHANCE_YOUR_CALM)
                return
        if packets:
            self.gossip.packetsReceived(packets, self.fromAddress, self.timestamp)

    def readConnectionLost(self):
        if self.failed:
            return
        self._release()
        try:
            self.decoder.end()
        except FramingError:
            self.transport.respond(400)
        else:
            self.transport.respond(200)

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason):
        self._release()

    def _release(self):
        if self.held:
            self.transport.host.holdBytes(-self.held)
            self.held = 0


@implementer(IH2HandlerFactory)
class _MessageFactory:
    def __init__(self, gossip, maxFrameSize):
        self.gossip = gossip
        self.maxFrameSize = maxFrameSize

    def buildStream(self, connection, streamId, request):
        return H2Stream(connection, streamId, request)

    def buildHandler(self, stream):
        return _MessageHandler(self.gossip, self.maxFrameSize)


@implementer(IH2HandlerFactory)
class _StreamFactory:
    """``/stream``: 200 at once, then the stream goes to the gossip transport's ``onStream``."""

    def __init__(self, gossip, maxFrameSize):
        self.gossip = gossip
        self.maxFrameSize = maxFrameSize

    def buildStream(self, connection, streamId, request):
        return GossipStream(connection, streamId, self.maxFrameSize, self.gossip.metrics,
                            request=request)

    def buildHandler(self, stream):
        stream.sendHeaders([(b":status", b"200")])
        self.gossip.streamAccepted(stream)
        return None


@implementer(IH2Router)
class GossipRouter:
    """ckit's two routes and its answers, for the HTTP/2 shell."""

    def __init__(self, gossip, maxFrameSize):
        self.gossip = gossip
        self._message = _MessageFactory(gossip, maxFrameSize)
        self._stream = _StreamFactory(gossip, maxFrameSize)
        self._answers = {status: StatusResponse(status) for status in (400, 404, 503)}

    def route(self, request):
        path = request.path or b""
        status = route(path, self.gossip.shutDown, True, request.contentType)
        if status is not None:
            return self._answers[status]
        if path.split(b"?", 1)[0] == MESSAGE_PATH:
            return self._message
        return self._stream


class CkitHTTP1Resource(Resource):
    """
    ckit's answers to HTTP/1.x (Go's HTTP/1 server in front of ckit's
    handler): 404 for unknown paths, 503 once shut down, else 505 HTTP
    Version Not Supported.  Serve it at ``/api`` of an HTTP/1.1 Site (the
    node's), or as a Site's root.
    """

    isLeaf = True

    def __init__(self, gossip):
        Resource.__init__(self)
        self.gossip = gossip

    def render(self, request):
        status = route(request.path, self.gossip.shutDown, False, None) or 505
        if status == 505 and request.clientproto.startswith(b"HTTP/2"):
            # h2c or h2 that the sniffer did not send to gossip: ckit's
            # content-type check (only application/x.ckit goes to gossip).
            status = 400
        request.setResponseCode(status)
        request.setHeader(b"content-length", b"0")
        return b""
