# -*- test-case-name: raftmux.test.test_grpc_server -*-
"""
A Twisted-native gRPC client on the ``raftmux.h2`` connection pool: one
HTTP/2 connection per target carries every call (another is dialled only
when the server's stream limit is reached).

::

    client = GRPCClient(reactor, "http://127.0.0.1:2379")
    kv = client.stub(etcdpb.SERVICES["etcdserverpb.KV"])
    response = await kv.Range(RangeRequest(key=b"k"), timeout=5)

    watch = kv_watch = client.stub(etcdpb.SERVICES["etcdserverpb.Watch"]).Watch()
    watch.sendMessage(WatchRequest(...))
    async for response in watch: ...

A failed call fails with ``GRPCError`` (``code``, ``message``,
``details``, ``metadata``); a deadline (``timeout``) is sent as
``grpc-timeout`` and enforced here too (DEADLINE_EXCEEDED, and the stream
is reset); cancelling a call's Deferred, or ``call.cancel()``, resets the
stream (RST_STREAM CANCEL).
"""

from collections.abc import Callable
from typing import Any

from h2.errors import ErrorCodes
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from twisted.web.client import URI
from zope.interface import implementer

from raftmux import grpcpb
from raftmux.grpc._call import CallBase
from raftmux.grpc.status import Code, GRPCError, codeForHTTPStatus, codeForReset
from raftmux.grpc.wire import (
    DEFAULT_MAX_MESSAGE_SIZE,
    decodeMetadata,
    encodeMessage,
    encodeMetadata,
    encodeTimeout,
    isGRPCContentType,
    readStatus,
)
from raftmux.h2.errors import StreamReset
from raftmux.h2.interfaces import IH2StreamHandler
from raftmux.h2.pool import H2ConnectionPool, Origin
from raftmux.h2.stream import statusOf

__all__ = ["GRPCClient", "ClientCall", "Stub"]

USER_AGENT = b"grpc-python-raftmux/0.1"
_OK = [(b"grpc-status", b"0")]


@implementer(IH2StreamHandler, IPushProducer)
class ClientCall(CallBase):
    """
    One call in progress.  Sending: ``sendMessage(m)``, ``send(m)`` (a
    Deferred firing when the stream has room), ``closeSend()`` (no more
    requests), ``registerProducer``.  Receiving: ``receive()`` (None after
    the last message; fails with the ``GRPCError``), ``async for``, or, for
    an rpc with a single response, ``response()``.  ``whenDone()`` fires
    (None) on OK or fails with the ``GRPCError``; ``initialMetadata`` and
    ``trailingMetadata`` are set as they arrive; ``cancel()``.
    """

    def __init__(self, client, method, timeout=None, metadata=()):
        CallBase.__init__(self, method.responseClass, client.maxReceiveMessageSize)
        self.method = method
        self.client = client
        self.timeout = timeout
        self.initialMetadata = None
        self.trailingMetadata = None
        self.code = None
        self.error = None
        self.finished = False
        self._metadata = encodeMetadata(metadata) if metadata else ()
        self._unary = not method.serverStreaming
        self._responseDeferred = None
        self._responseMessage = None
        self._doneWaiters = []
        self._outbox = []
        self._sendClosed = False
        self._status = None
        self._opening = None
        self._timer = None
        self._clock = client.reactor

    def __repr__(self):
        return "<ClientCall %s>" % (self.method.path,)

    # -- starting ------------------------------------------------------------------

    def start(self):
        headers = self.client.requestHeaders(self.method.path)
        if self.timeout is not None:
            headers.append((b"grpc-timeout", encodeTimeout(self.timeout)))
            self._timer = self._clock.callLater(self.timeout, self._deadlineExpired)
        if self._metadata:
            headers.extend(self._metadata)
        pool, origin = self.client.pool, self.client.origin
        if pool.startStream(origin, headers, self) is None:
            # No free slot (or no connection yet): wait in the pool's queue.
            self._opening = d = pool.openStream(origin, headers, self)
            d.addCallbacks(self._opened, self._notOpened)
        return self

    def _opened(self, stream):
        self._opening = None

    def _notOpened(self, failure):
        self._opening = None
        if self.finished:
            return
        if failure.check(CancelledError):
            return
        self._finish(GRPCError(Code.UNAVAILABLE, failure.getErrorMessage()))

    # -- sending ---------------------------------------------------------------------

    def sendMessage(self, message):
        """Send one request message (dropped once the call is over)."""
        if self.finished or self._sendClosed:
            return
        if self.transport is None:
            self._outbox.append(message)
        else:
            self.writeMessage(message)

    def send(self, message):
        """``sendMessage``, then a Deferred firing once the stream takes more."""
        self.sendMessage(message)
        if self.transport is None:
            return succeed(None)
        return self.waitWritable()

    def closeSend(self):
        """No more request messages (END_STREAM)."""
        if self._sendClosed:
            return
        self._sendClosed = True
        if self.transport is not None and not self.finished:
            self.transport.loseWriteConnection()

    # -- receiving -----------------------------------------------------------------------

    def response(self):
        """The single response of a unary or client-streaming rpc (a Deferred)."""
        if not self._unary:
            raise RuntimeError("%s streams its responses: use receive()" % (self.method.path,))
        if self._responseDeferred is None:
            self._responseDeferred = Deferred(self._cancelResponse)
            if self.finished:
                self._settleResponse()
        return self._responseDeferred

    def _cancelResponse(self, d):
        # Twisted's convention: the Deferred fails with CancelledError.
        self._responseDeferred = None
        self.cancel()

    def whenDone(self):
        """A Deferred firing (None) when the call ends OK, failing with its ``GRPCError``."""
        if self.finished:
            return fail(self.error) if self.error is not None else succeed(None)
        d: Deferred[None] = Deferred()
        self._doneWaiters.append(d)
        return d

    def receiveFailure(self):
        if self.error is not None:
            return Failure(self.error)
        return None

    def cancel(self):
        """Cancel the call: RST_STREAM CANCEL; it fails with CANCELLED."""
        if self.finished:
            return
        self._finish(GRPCError(Code.CANCELLED, "the call was cancelled"))
        self._abandon(ErrorCodes.CANCEL)

    # -- the stream's calls ----------------------------------------------------------------

    def connectionMade(self):
        pass

    def makeConnection(self, transport):
        self.transport = transport
        if self.finished:
            transport.reset(ErrorCodes.CANCEL)
            return
        outbox, self._outbox = self._outbox, []
        if self._sendClosed and outbox:
            # The last request and END_STREAM in one DATA frame (a unary call).
            for message in outbox[:-1]:
                self.writeMessage(message)
            transport.writeFinal(encodeMessage(outbox[-1].SerializeToString()))
            return
        for message in outbox:
            self.writeMessage(message)
        if self._sendClosed:
            transport.loseWriteConnection()

    def headersReceived(self, headers):
        status = statusOf(headers)
        if status != 200:
            self._fail(GRPCError(codeForHTTPStatus(status),
                                 "unexpected HTTP status code from the server: %d" % (status,)))
            return
        contentType = None
        trailersOnly = False
        for name, value in headers:
            if name == b"content-type":
                contentType = value
            elif name == b"grpc-status":
                trailersOnly = True
        if not isGRPCContentType(contentType):
            self._fail(GRPCError(Code.UNKNOWN, "unexpected content-type from the server: %r"
                                 % (contentType,)))
            return
        if trailersOnly:
            self.initialMetadata = []
            self._status = headers
        else:
            try:
                self.initialMetadata = decodeMetadata(headers)
            except ValueError as e:
                self._fail(GRPCError(Code.INTERNAL, str(e)))

    def dataReceived(self, data):
        messages = self.receivedMessages(data)
        if not messages:
            return
        if self._unary:
            if self._responseMessage is not None or len(messages) > 1:
                self._fail(GRPCError(Code.UNIMPLEMENTED,
                                     "more than one response message for a unary response"))
                return
            self._responseMessage = messages[0]
            return
        self.enqueue(messages)

    def trailersReceived(self, headers):
        self._status = headers

    def readConnectionLost(self):
        if self.finished:
            return
        if self.partialMessage:
            self._fail(GRPCError(Code.INTERNAL, "the response ended inside a message"))
            return
        if self._status is None:
            self._fail(GRPCError(Code.INTERNAL,
                                 "the server closed the stream without sending trailers"))
            return
        status = self._status
        if status == _OK:
            self.trailingMetadata = []
            self._finish(None)
            self._endOurHalf()
            return
        code, message, details, metadata = readStatus(status)
        self.trailingMetadata = metadata
        if code is None:
            self._fail(GRPCError(Code.UNKNOWN, "missing or malformed grpc-status"))
            return
        if code != 0:
            self._finish(GRPCError(code, message, details, metadata))
        else:
            self._finish(None)
        self._endOurHalf()

    def _endOurHalf(self):
        transport = self.transport
        if transport is not None and not transport.disconnected:
            # The server is done; end our half too (a client stream cut short).
            transport.loseConnection()

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason):
        self.releaseHeld()
        if self.finished:
            return
        if reason.check(StreamReset):
            code = reason.value.code
            self._finish(GRPCError(codeForReset(code),
                                   "stream reset by the server (HTTP/2 error code %d)"
                                   % (int(code),)))
        else:
            self._finish(GRPCError(Code.UNAVAILABLE, reason.getErrorMessage()))

    # -- the end --------------------------------------------------------------------------

    def _deadlineExpired(self):
        self._timer = None
        if self.finished:
            return
        self._finish(GRPCError(Code.DEADLINE_EXCEEDED, "Deadline Exceeded"))
        self._abandon(ErrorCodes.CANCEL)

    def _fail(self, error):
        """A local verdict (bad response): end with ``error`` and cancel the stream."""
        if self.finished:
            return
        self._finish(error)
        self._abandon(ErrorCodes.CANCEL)

    def _abandon(self, code):
        opening = self._opening
        if opening is not None:
            self._opening = None
            opening.cancel()
        transport = self.transport
        if transport is not None and not transport.disconnected:
            transport.reset(code)

    def _finish(self, error):
        self.finished = True
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
        self.error = error
        self.code = Code.OK if error is None else error.code
        self._outbox = []
        self._producer = None
        if self._gate is not None:
            self._dropGate()
        if self._sendWaiters:
            self._wakeSenders()
        if self._held:
            self.releaseHeld()
        if self._unary:
            self._settleResponse()
        elif error is None:
            self.endOfMessages()
        else:
            self.failReaders(Failure(error))
        waiters, self._doneWaiters = self._doneWaiters, []
        for d in waiters:
            if error is None:
                d.callback(None)
            else:
                d.errback(error)

    def _settleResponse(self):
        d = self._responseDeferred
        if d is None or d.called:
            return
        if self.error is not None:
            d.errback(self.error)
        elif self._responseMessage is None:
            d.errback(GRPCError(Code.UNIMPLEMENTED, "no response message for a unary response"))
        else:
            d.callback(self._responseMessage)


class GRPCClient:
    """
    Calls to one target (``http://host:port`` for h2c, ``https://...`` for
    TLS with ALPN ``h2``).  ``pool`` is an ``H2ConnectionPool`` to share
    (e.g. an ``H2Agent``'s ``pool``); without one the client has its own
    (``config``: its ``H2Config``; ``tlsPolicy``: an ``IPolicyForHTTPS``).
    ``maxReceiveMessageSize`` bounds one response message.
    """

    def __init__(self, reactor, target, pool=None, config=None, tlsPolicy=None,
                 connectTimeout=30.0, maxReceiveMessageSize=DEFAULT_MAX_MESSAGE_SIZE,
                 userAgent=USER_AGENT):
        if isinstance(target, str):
            target = target.encode("ascii")
        uri = URI.fromBytes(target)
        if uri.scheme not in (b"http", b"https"):
            raise ValueError("gRPC targets are http:// or https:// URLs, not %r" % (target,))
        self.reactor = reactor
        self.origin = Origin(uri.scheme, uri.host, uri.port)
        self._ownPool = pool is None
        if pool is None:
            pool = H2ConnectionPool(reactor, config, tlsPolicy=tlsPolicy,
                                    connectTimeout=connectTimeout)
        self.pool = pool
        self.maxReceiveMessageSize = maxReceiveMessageSize
        self._base = (
            (b":method", b"POST"), (b":scheme", uri.scheme), None,
            (b":authority", self.origin.authority), (b"content-type", b"application/grpc"),
            (b"user-agent", userAgent), (b"te", b"trailers"))

    def requestHeaders(self, path):
        """The header block of a call to ``path`` (pseudo-headers first)."""
        headers = list(self._base)
        headers[2] = (b":path", path.encode("ascii") if isinstance(path, str) else path)
        return headers

    def call(self, method, timeout=None, metadata=()):
        """Start a call of ``method`` (a ``raftmux.grpcpb.Method``); a ``ClientCall``."""
        return ClientCall(self, method, timeout, metadata).start()

    def unaryUnary(self, method, request, timeout=None, metadata=()):
        """A unary call: a Deferred of the response (cancel it to cancel the call)."""
        call = ClientCall(self, method, timeout, metadata)
        call.sendMessage(request)
        call.closeSend()
        d = call.response()
        call.start()
        return d

    def unaryStream(self, method, request, timeout=None, metadata=()):
        """A server-streaming call with ``request`` sent: a ``ClientCall`` to read."""
        call = ClientCall(self, method, timeout, metadata)
        call.sendMessage(request)
        call.closeSend()
        return call.start()

    def stub(self, service, modules=()):
        """A ``Stub`` for ``service`` (a ``ServiceDescriptor``, or a list of ``Method``s)."""
        if hasattr(service, "methods_by_name"):
            methods = grpcpb.methods(service, modules)
        else:
            methods = list(service)
        return Stub(self, methods)

    def close(self):
        """Close the client's own connections (a shared pool is left alone)."""
        if self._ownPool:
            return self.pool.closeCachedConnections()
        return succeed(None)


class Stub:
    """
    One attribute per rpc: unary ``stub.Range(request, timeout=None,
    metadata=())`` is a Deferred of the response; server streaming
    ``stub.Watch(request, ...)`` and client streaming / bidirectional
    ``stub.Watch(...)`` (no request) return a ``ClientCall``.
    """

    def __init__(self, client, methods):
        self.methods = {m.name: m for m in methods}
        for m in methods:
            setattr(self, m.name, _bind(client, m))


def _bind(client, method):
    rpc: Callable[..., Any]
    if method.clientStreaming:
        def streaming(timeout=None, metadata=()):
            return client.call(method, timeout, metadata)
        rpc = streaming
    elif method.serverStreaming:
        def serverStreaming(request, timeout=None, metadata=()):
            return client.unaryStream(method, request, timeout, metadata)
        rpc = serverStreaming
    else:
        def unary(request, timeout=None, metadata=()):
            return client.unaryUnary(method, request, timeout, metadata)
        rpc = unary
    rpc.__name__ = method.name
    rpc.__doc__ = method.path
    return rpc
