# -*- test-case-name: raftmux.test.test_h2_connection -*-
"""
The server role of the HTTP/2 shell.

``H2ServerProtocol`` takes HTTP/2 only: it expects the client preface (the
sniffer, or ALPN, decided the connection is HTTP/2; protocol detection
lives there, not here).  Each request is routed by the application's
``IH2Router``: the router returns an ``IH2HandlerFactory``, which builds
the stream (``H2Stream`` or a framing subclass) and its handler.

A connection handed over by ``raftmux.sniff`` after a ``sendSettings``
greeting works unchanged: the sniffer's empty SETTINGS changed nothing, the
client's ACK of it never reaches us, and our own SETTINGS follows.
"""

from h2.errors import ErrorCodes
from twisted.internet.defer import DeferredList, succeed
from twisted.internet.interfaces import IProtocolNegotiationFactory
from twisted.internet.protocol import Factory
from zope.interface import implementer

from raftmux.h2._validate import checkRequest
from raftmux.h2.connection import H2Protocol
from raftmux.h2.interfaces import IH2HandlerFactory
from raftmux.h2.stream import H2Request, H2Stream

__all__ = ["H2ServerFactory", "H2ServerProtocol", "HandlerFactory", "StatusResponse"]


class H2ServerProtocol(H2Protocol):
    """
    One server connection.  ``router`` provides ``IH2Router``;
    ``connections`` (optional) is a set the connection adds itself to while
    it lives (its factory's, for a graceful shutdown of them all).
    """

    clientSide = False

    def __init__(self, clock, router, config=None, connections=None):
        H2Protocol.__init__(self, clock, config)
        self.router = router
        self._connections = connections

    def connectionMade(self):
        if self._connections is not None:
            self._connections.add(self)
        H2Protocol.connectionMade(self)

    def connectionClosed(self, reason):
        if self._connections is not None:
            self._connections.discard(self)

    def requestReceived(self, event):
        streamId = event.stream_id
        if self.goAwaySent is not None and streamId > self.goAwaySent:
            # After our GOAWAY: not processed, the client may retry elsewhere.
            self.resetStreamId(streamId, ErrorCodes.REFUSED_STREAM)
            return
        if len(self.streams) >= self.config.maxConcurrentStreams:
            # A peer that opened streams before our SETTINGS reached it.
            self.resetStreamId(streamId, ErrorCodes.REFUSED_STREAM)
            return
        headers = event.headers
        if self.validate:
            error = checkRequest(headers)
            if error is not None:
                self.log.info("HTTP/2 {peer}: malformed request on stream {stream}: {error}",
                              peer=self._peer(), stream=streamId, error=error)
                self.resetStreamId(streamId, ErrorCodes.PROTOCOL_ERROR)
                return
        request = H2Request(headers)
        factory = self.router.route(request)
        if factory is None:
            stream = H2Stream(self, streamId, request)
            self.streams[streamId] = stream
            self._idleSince = None
            stream.respond(404)
            return
        stream = factory.buildStream(self, streamId, request)
        self.streams[streamId] = stream
        self._idleSince = None
        handler = factory.buildHandler(stream)
        if handler is not None and not stream.disconnected:
            stream.attach(handler)
            if not stream.disconnected:
                stream.headersReceived(headers)


@implementer(IH2HandlerFactory)
class HandlerFactory:
    """
    A handler factory from a callable: ``HandlerFactory(buildHandler)``
    serves each request with ``buildHandler(stream)`` on a plain
    ``H2Stream`` (``maxBodySize`` its body limit, default the connection's).
    """

    def __init__(self, buildHandler, maxBodySize=None):
        self._buildHandler = buildHandler
        self.maxBodySize = maxBodySize

    def buildStream(self, connection, streamId, request):
        limit = self.maxBodySize if self.maxBodySize is not None else \
            connection.config.maxBodySize
        return H2Stream(connection, streamId, request, maxBodySize=limit)

    def buildHandler(self, stream):
        return self._buildHandler(stream)


@implementer(IH2HandlerFactory)
class StatusResponse:
    """Answer every request with ``status`` (and ``headers``, ``body``)."""

    def __init__(self, status, headers=(), body=b""):
        self.status = status
        self.headers = tuple(headers)
        self.body = body

    def buildStream(self, connection, streamId, request):
        return H2Stream(connection, streamId, request)

    def buildHandler(self, stream):
        stream.respond(self.status, self.headers, self.body)
        return None


@implementer(IProtocolNegotiationFactory)
class H2ServerFactory(Factory):
    """
    Builds ``H2ServerProtocol``s serving ``router`` (an ``IH2Router``) with
    ``config`` (an ``H2Config``).  Offers ``h2`` by ALPN when wrapped in
    TLS.  ``shutdown()`` sends a graceful GOAWAY on every connection and
    fires once they are all closed.
    """

    noisy = False

    def __init__(self, router, config=None, clock=None):
        self.router = router
        self.config = config
        self._clock = clock
        self.connections = set()

    @property
    def clock(self):
        if self._clock is None:
            from twisted.internet import reactor
            self._clock = reactor
        return self._clock

    def acceptableProtocols(self):
        return [b"h2"]

    def buildProtocol(self, addr):
        proto = H2ServerProtocol(self.clock, self.router, self.config, self.connections)
        proto.factory = self
        return proto

    def shutdown(self):
        """GOAWAY (graceful) on every connection; fires when all are closed."""
        if not self.connections:
            return succeed(None)
        waits = [proto.goAway() for proto in list(self.connections)]
        return DeferredList(waits, consumeErrors=True).addCallback(lambda _: None)
