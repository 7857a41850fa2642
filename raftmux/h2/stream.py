# -*- test-case-name: raftmux.test.test_h2_connection -*-
"""
``H2Stream``: one HTTP/2 stream as a Twisted transport, on the one
stream-transport base (``raftmux.streamtransport``) with the connection as
its host.  The body both ways goes through the base (its send queue, its
producers, its inbox and credit); this class adds the header blocks:
headers, trailers, an early complete answer, and the body-size limit.
"""

from h2.errors import ErrorCodes
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from raftmux.h2.errors import BodyTooLarge
from raftmux.h2.interfaces import IH2Request, IH2StreamHandler
from raftmux.streamtransport import StreamTransport

__all__ = ["H2Request", "H2Stream", "statusOf"]


@implementer(IH2Request)
class H2Request:
    """A request's header block, parsed once for routers and handlers."""

    __slots__ = ("headers", "method", "path", "scheme", "authority")

    def __init__(self, headers):
        self.headers = headers
        method = path = scheme = authority = None
        for name, value in headers:
            if name[:1] != b":":
                break
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":scheme":
                scheme = value
            elif name == b":authority":
                authority = value
        self.method = method
        self.path = path
        self.scheme = scheme
        self.authority = authority

    def header(self, name, default=None):
        for key, value in self.headers:
            if key == name:
                return value
        return default

    @property
    def contentType(self):
        return self.header(b"content-type")

    def __repr__(self):
        return "<H2Request %s %s>" % (self.method, self.path)


def statusOf(headers):
    """The ``:status`` of a response header block as an int (0 if absent or bad)."""
    for name, value in headers:
        if name == b":status":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


class H2Stream(StreamTransport):
    """
    One HTTP/2 stream: a request and its response.  On a server ``request``
    is the ``H2Request``; on a client, ``requestHeaders`` are the headers we
    sent.  ``receivedHeaders`` is the peer's opening header block once it
    arrived (a server: the request's; a client: the final response's) and
    ``trailers`` its trailing one.

    Sending: ``sendHeaders`` (once, before any body), ``write`` (the body,
    within flow control), then ``loseWriteConnection`` (END_STREAM),
    ``sendTrailers`` (trailers with END_STREAM, after the queued body) or
    ``loseConnection`` (END_STREAM, and RST_STREAM if the peer may still
    send).  ``respond`` is a whole answer at once; ``reset`` aborts with an
    error code.
    """

    def __init__(self, host, streamId, request=None, maxBodySize=None, requestHeaders=None):
        StreamTransport.__init__(self, host, streamId)
        self.request = request
        self.requestHeaders = requestHeaders
        self.receivedHeaders = None
        self.trailers = None
        self.maxBodySize = maxBodySize
        self.bodyReceived = 0
        self.headersSent = requestHeaders is not None
        #: the error code ``abortConnection`` resets with
        self.resetCode = ErrorCodes.CANCEL
        #: our END_STREAM was framed (the host sets it)
        self.endSent = False
        self._endHeaders = None
        self._discardLeft = None
        self._eofDelivered = False
        self._handler = None      # the protocol, if it provides IH2StreamHandler

    def __repr__(self):
        return "<%s %d>" % (self.__class__.__name__, self.streamId)

    @property
    def status(self):
        """A client's response status (0 until the response arrived)."""
        if self.receivedHeaders is None:
            return 0
        return statusOf(self.receivedHeaders)

    def attach(self, protocol):
        if IH2StreamHandler.providedBy(protocol):
            self._handler = protocol
        StreamTransport.attach(self, protocol)

    # -- sending header blocks ---------------------------------------------------

    def sendHeaders(self, headers, endStream=False):
        """
        Send the opening header block (a server's response headers).
        ``endStream`` ends our half with it (an answer without a body, or
        gRPC's trailers-only answer).
        """
        if self.headersSent:
            raise RuntimeError("%r: headers were sent already" % (self,))
        if self.disconnected or not self.writeOpen:
            return
        self.headersSent = True
        if endStream:
            self._endHeaders = headers
            self.loseWriteConnection()
        else:
            self.host.sendStreamHeaders(self, headers, False)
            self.host.flush()

    def sendTrailers(self, headers):
        """Send ``headers`` as trailers, with END_STREAM, once the queued body is out."""
        if not self.headersSent:
            raise RuntimeError("%r: trailers before headers" % (self,))
        if self.disconnected or not self.writeOpen:
            return
        self._endHeaders = headers
        self.loseWriteConnection()

    def takeEndHeaders(self):
        """
        (host) The header block that ends our half, if one is waiting; once.
        A server stream that ends without having answered answers 200 (as
        Go's server does for a handler that returns without writing).
        """
        headers, self._endHeaders = self._endHeaders, None
        if headers is None and not self.headersSent and not self.host.clientSide:
            self.headersSent = True
            headers = [(b":status", b"200")]
        return headers

    def write(self, data):
        if not self.headersSent and data and not self.host.clientSide:
            # A protocol that writes without answering first: 200, as Go's server.
            self.sendHeaders([(b":status", b"200")])
        StreamTransport.write(self, data)

    def writeFinal(self, data):
        """
        ``write(data)`` then ``loseWriteConnection()``: one DATA frame
        carrying END_STREAM when nothing waits and it fits the window.
        """
        host = self.host
        if (data and self.writeOpen and not self.pendingBytes and self.headersSent
                and host.isWritable() and len(data) + 16 <= host.finalRoom(self)):
            host.sendFinalData(self, self.frameOutgoing(data))
            self.endSent = True
        else:
            self.write(data)
        self.loseWriteConnection()

    def respond(self, status, headers=(), body=b"", drain=True):
        """
        A whole answer: ``:status``, ``headers`` and ``body``, ending our
        half.  If the peer is still sending, the rest of its body is read and
        dropped (up to the connection's ``maxDiscard``, then RST_STREAM
        NO_ERROR): curl and others report an early reset as an error.  With
        ``drain=False`` the stream is reset NO_ERROR at once instead, as
        grpc-go's server does after a status the request did not wait for:
        the stream ends now rather than waiting on a body nobody reads.
        """
        block = [(b":status", b"%d" % (status,))]
        block.extend(headers)
        if body:
            self.sendHeaders(block)
            self.writeFinal(body)
        else:
            self.sendHeaders(block, endStream=True)
        if not self.disconnected and not self._eofDelivered:
            if drain:
                self.discardBody()
            else:
                self.reset(ErrorCodes.NO_ERROR)

    def discardBody(self, limit=None):
        """Drop (and credit) whatever body still arrives, up to ``limit`` bytes."""
        if limit is None:
            limit = self.host.config.maxDiscard
        self._discardLeft = limit
        if self.protocol is not None:
            self.resumeProducing()
        elif self.bufferedBytes:
            self.attach(_Discard())  # what already waits goes through it

    def reset(self, code=ErrorCodes.CANCEL):
        """Abort the stream with RST_STREAM ``code``; the protocol hears ``ConnectionAborted``."""
        self.resetCode = code
        self.abortConnection()

    # -- received header blocks (from the host) ---------------------------------------

    def headersReceived(self, headers):
        """The peer's opening header block (the host calls this)."""
        self.receivedHeaders = headers
        handler = self._handler
        if handler is not None:
            handler.headersReceived(headers)

    def readEnded(self):
        if self._discardLeft is not None and self.protocol is None:
            # Answered and the request is over: the stream is done.
            self.streamLost(connectionDone)
            return
        StreamTransport.readEnded(self)

    def informationalReceived(self, headers):
        """A 1xx response (the host calls this): ignored."""

    def trailersReceived(self, headers):
        """The peer's trailers; handed to the protocol after the body (``endIncoming``)."""
        self.trailers = headers

    # -- body ----------------------------------------------------------------------

    def dataReceived(self, data, credit=None):
        if credit is None:
            credit = len(data)
        if self._discardLeft is not None and self.protocol is None:
            # Answered, nobody reading: drop and credit at once.
            self.host.creditStream(self, credit)
            self._discardLeft -= len(data)
            if self._discardLeft < 0:
                self.host.callSoon(self._stopDiscarding)
            return
        self.bodyReceived += len(data)
        limit = self.maxBodySize
        if limit is not None and self.bodyReceived > limit and self._discardLeft is None:
            self._tooLarge(limit)
            return
        StreamTransport.dataReceived(self, data, credit)

    def deliverIncoming(self, data):
        left = self._discardLeft
        if left is not None:
            left -= len(data)
            self._discardLeft = left
            if left < 0:
                self.host.callSoon(self._stopDiscarding)
            return
        protocol = self.protocol
        if protocol is not None:
            protocol.dataReceived(data)

    def endIncoming(self):
        self._eofDelivered = True
        trailers = self.trailers
        handler = self._handler
        if trailers is not None and self._discardLeft is None and handler is not None:
            handler.trailersReceived(trailers)

    def _stopDiscarding(self):
        if not self.disconnected:
            self.resetCode = ErrorCodes.NO_ERROR
            self.host.resetStream(self)
            self.host.flush()
            self.streamLost(Failure(BodyTooLarge(self.host.config.maxDiscard)))

    def _tooLarge(self, limit):
        """Over ``maxBodySize``: a server answers 413 if it still can; reset either way."""
        host = self.host
        if not host.clientSide and not self.headersSent and self.writeOpen:
            self.headersSent = True
            host.sendStreamHeaders(self, [(b":status", b"413")], True)
            self.resetCode = ErrorCodes.NO_ERROR
        else:
            self.resetCode = ErrorCodes.CANCEL if host.clientSide else ErrorCodes.INTERNAL_ERROR
        host.resetStream(self)
        host.flush()
        self.streamLost(Failure(BodyTooLarge(limit)))


@implementer(IHalfCloseableProtocol)
class _Discard(Protocol):
    """Sits on a stream whose answer is sent, so the rest of its body is read and dropped."""

    def readConnectionLost(self):
        self.transport.loseConnection()

    def writeConnectionLost(self):
        pass
