# -*- test-case-name: raftmux.test.test_grpc_server -*-
"""
The gRPC server on the ``raftmux.h2`` shell.

``GRPCServer`` is an ``IH2HandlerFactory``: for each request the shell's
router sends it (``GRPCRouter``: ``content-type: application/grpc*``) it
finds the rpc by ``:path`` and puts a ``ServerCall`` on the stream.  Errors
found before the handler runs (unknown service or method, a malformed
``grpc-timeout``) are answered trailers-only.

``ServerCall`` is both the stream's protocol and the handler's view of the
rpc (metadata, deadline, sending, receiving, cancellation).  The rpc ends
with exactly one status: the handler's result, ``finish()``, the deadline
(DEADLINE_EXCEEDED), or a bad message from the client (RESOURCE_EXHAUSTED,
UNIMPLEMENTED for compression, INTERNAL).  A client's RST_STREAM, or the
connection's loss, cancels the handler: its Deferred is cancelled (an
``async def`` sees ``CancelledError`` where it awaits), a receiver's
``cancel()`` is called, ``notifyCancel()`` fires.
"""

import inspect
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from raftmux.grpc._call import CallBase
from raftmux.grpc.health import HealthServicer
from raftmux.grpc.service import Service
from raftmux.grpc.status import Code, GRPCError
from raftmux.grpc.wire import (
    DEFAULT_MAX_MESSAGE_SIZE,
    decodeMetadata,
    encodeMetadata,
    isGRPCContentType,
    parseTimeout,
    statusHeaders,
)
from raftmux.grpcpb import HEALTH
from raftmux.h2 import H2Config, H2ServerFactory, H2Stream, StatusResponse
from raftmux.h2.interfaces import IH2HandlerFactory, IH2Router, IH2StreamHandler

__all__ = ["DEFAULT_CONFIG", "GRPCServer", "GRPCRouter", "ServerCall"]

_RESPONSE_HEADERS = ((b":status", b"200"), (b"content-type", b"application/grpc"))

#: the HTTP/2 settings of a gRPC server unless told otherwise: the shell's,
#: with 1000 concurrent streams (grpc-go servers announce no limit; each
#: streaming rpc, a Watch, holds one for its whole life)
DEFAULT_CONFIG = H2Config(maxConcurrentStreams=1000)
_OK_TRAILERS = [(b"grpc-status", b"0")]


def _isReceiver(result):
    return callable(getattr(result, "receive", None)) and callable(getattr(result, "cancel", None))


@implementer(IH2StreamHandler, IPushProducer)
class ServerCall(CallBase):
    """
    One rpc on the server.  For the handler:

    * ``method`` (a ``raftmux.grpcpb.Method``), ``metadata`` (the client's
      custom metadata: ``(key, value)``, ``-bin`` values bytes),
      ``deadline`` (clock seconds, or None), ``timeRemaining()``, ``peer``;
    * ``sendMessage(m)``, ``send(m)`` (a Deferred firing when the stream
      has room), ``registerProducer``/``unregisterProducer`` (a push
      producer paused while the stream is full);
      ``sendInitialMetadata(md)``, ``setTrailingMetadata(md)``;
    * ``receive()`` / ``async for`` (streaming requests),
      ``pauseProducing``/``resumeProducing`` (hold requests back);
    * ``finish(error=None)``, ``abort(code, message)``;
    * ``cancelled``, ``notifyCancel()``.

    (``makeConnection``, ``dataReceived``, ``readConnectionLost`` and
    ``connectionLost`` are the stream's calls.)
    """

    log = Logger()

    deadline = None
    finished = False
    cancelled = False
    _timer = None
    _headersSent = False
    _initialMetadata: Sequence[Any] = ()
    _trailingMetadata: Sequence[Any] = ()
    _result = None
    _request = None
    _metadata = None
    _clock: Any = None

    def __init__(self, method, handler, timeout=None, maxReceiveMessageSize=DEFAULT_MAX_MESSAGE_SIZE):
        CallBase.__init__(self, method.requestClass, maxReceiveMessageSize)
        self.method = method
        self._handler = handler
        self._timeout = timeout
        self._cancelWaiters = []

    def __repr__(self):
        return "<ServerCall %s>" % (self.method.path,)

    # -- handler's view ------------------------------------------------------------

    @property
    def metadata(self):
        """The client's custom metadata (a malformed ``-bin`` entry is left out)."""
        if self._metadata is None:
            out = []
            for name, value in self.transport.request.headers:
                try:
                    out.extend(decodeMetadata([(name, value)]))
                except ValueError:
                    self.log.info("gRPC {path}: malformed binary metadata {name}",
                                  path=self.method.path, name=name)
            self._metadata = out
        return self._metadata

    def metadataValue(self, key, default=None):
        """The first value of metadata ``key`` (str), or ``default``."""
        for k, v in self.metadata:
            if k == key:
                return v
        return default

    @property
    def peer(self):
        return self.transport.getPeer()

    def timeRemaining(self):
        """Seconds to the deadline (None: no deadline)."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - self._clock.seconds())

    def notifyCancel(self):
        """A Deferred firing (None) if the rpc is cancelled (reset, deadline, lost)."""
        if self.cancelled:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._cancelWaiters.append(d)
        return d

    def sendInitialMetadata(self, metadata):
        """Send the response headers now, with ``metadata``."""
        if self._headersSent or self.finished:
            raise RuntimeError("initial metadata was sent already")
        self._initialMetadata = encodeMetadata(metadata)
        self._sendHeaders()

    def setTrailingMetadata(self, metadata):
        """Metadata to send with the status."""
        self._trailingMetadata = list(metadata)

    def sendMessage(self, message):
        """Send one response message (dropped if the rpc is over)."""
        if self.finished:
            return
        if not self._headersSent:
            self._sendHeaders()
        self.writeMessage(message)

    def send(self, message):
        """``sendMessage``, then a Deferred firing once the stream takes more."""
        self.sendMessage(message)
        return self.waitWritable()

    def abort(self, code, message=""):
        """End the rpc with status ``code`` and ``message``."""
        self.finish(GRPCError(code, message))

    def finish(self, error=None):
        """
        End the rpc: OK, or ``error`` (a ``GRPCError``; any other exception
        answers UNKNOWN).  Later calls do nothing.
        """
        if self.finished:
            return
        self.finished = True
        self._stopTimer()
        self.closeChannel()
        stream = self.transport
        if stream is None or stream.disconnected:
            return
        if error is None:
            status = statusHeaders(metadata=self._trailingMetadata) \
                if self._trailingMetadata else _OK_TRAILERS
        else:
            if not isinstance(error, GRPCError):
                error = GRPCError(Code.UNKNOWN, str(error))
            status = statusHeaders(error.code, error.message, error.details,
                                   list(error.metadata) + list(self._trailingMetadata))
        if self._headersSent:
            stream.sendTrailers(status)
        else:
            self._headersSent = True
            block = list(_RESPONSE_HEADERS)
            block.extend(self._initialMetadata)
            block.extend(status)
            stream.sendHeaders(block, endStream=True)
        stream.loseConnection()

    # -- the stream's calls (IH2StreamHandler) ---------------------------------------

    def makeConnection(self, transport):
        self.transport = transport
        self._clock = clock = transport.host.clock
        if self._timeout is not None:
            self.deadline = clock.seconds() + self._timeout
            self._timer = clock.callLater(self._timeout, self._deadlineExpired)
        if self.method.clientStreaming:
            self._invoke(self)

    def connectionMade(self):
        pass

    def headersReceived(self, headers):
        pass

    def trailersReceived(self, headers):
        pass

    def dataReceived(self, data):
        messages = self.receivedMessages(data)
        if not messages:
            return
        if self.method.clientStreaming:
            self.enqueue(messages)
            return
        if self._request is not None or len(messages) > 1:
            self._fail(GRPCError(Code.UNIMPLEMENTED,
                                 "grpc: more than one request message for a unary rpc"))
            return
        self._request = messages[0]
        self._invoke(self._request, self)

    def readConnectionLost(self):
        if self.finished:
            return
        if self.partialMessage:
            self._fail(GRPCError(Code.INTERNAL, "grpc: the request ended inside a message"))
            return
        if self.method.clientStreaming:
            self.endOfMessages()
        elif self._request is None:
            self._fail(GRPCError(Code.UNIMPLEMENTED, "grpc: no request message for a unary rpc"))

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason):
        self.releaseHeld()
        if self.finished:
            return
        # Reset by the client, or the connection went: cancel the handler.
        self.finished = True
        self._stopTimer()
        self._cancelHandler()

    # -- IPushProducer, as the stream's protocol --------------------------------------
    # (CallBase's pauseProducing/resumeProducing hold requests back)

    def stopProducing(self):
        self.cancel()

    def cancel(self):
        """Abandon the rpc: CANCELLED to the client, the handler cancelled."""
        self._fail(GRPCError(Code.CANCELLED, "the server cancelled the rpc"))

    def receiveFailure(self):
        if self.finished:
            return Failure(CancelledError())
        return None

    # -- internals -------------------------------------------------------------------

    def _sendHeaders(self):
        self._headersSent = True
        if self._initialMetadata:
            self.transport.sendHeaders(_RESPONSE_HEADERS + tuple(self._initialMetadata))
        else:
            self.transport.sendHeaders(_RESPONSE_HEADERS)

    def _invoke(self, *args):
        try:
            result = self._handler(*args)
        except GRPCError as e:
            self.finish(e)
            return
        except Exception:
            self._handlerFailed(Failure())
            return
        if isinstance(result, Deferred):
            pass
        elif inspect.iscoroutine(result):
            result = Deferred.fromCoroutine(result)
        elif (self.method.clientStreaming or self.method.serverStreaming) and \
                _isReceiver(result):
            self._result = result
            if self.finished:
                return
            if self.method.clientStreaming:
                self.setReceiver(result)
            return
        else:
            self._completed(result)
            return
        if self.finished and not result.called:
            result.cancel()
        self._result = result
        result.addCallbacks(self._completed, self._handlerFailed)

    def _completed(self, value):
        if self.finished:
            return
        if not self.method.serverStreaming:
            if value is None:
                self.finish(GRPCError(Code.INTERNAL, "the handler returned no response"))
                return
            if not self._headersSent:
                self._sendHeaders()
            self.writeMessage(value)
        self.finish()

    def _handlerFailed(self, failure):
        if failure.check(GRPCError):
            self.finish(failure.value)
            return
        if self.finished:
            if not failure.check(CancelledError):
                self.log.failure("gRPC {path}: the handler failed after the rpc ended", failure,
                                 path=self.method.path)
            return
        if failure.check(CancelledError):
            self.finish(GRPCError(Code.CANCELLED, "the handler was cancelled"))
            return
        self.log.failure("gRPC {path}: the handler failed", failure, path=self.method.path)
        self.finish(GRPCError(Code.UNKNOWN, "Exception calling application: %s"
                              % (failure.getErrorMessage(),)))

    def _fail(self, error):
        """End with ``error`` (ours, not the handler's) and cancel the handler."""
        if self.finished:
            return
        self.finish(error)
        self._cancelHandler()

    def _deadlineExpired(self):
        self._timer = None
        self._fail(GRPCError(Code.DEADLINE_EXCEEDED, "Deadline Exceeded"))

    def _stopTimer(self):
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _cancelHandler(self):
        self.cancelled = True
        self.closeChannel()
        self.failReaders(Failure(CancelledError()))
        result, self._result = self._result, None
        if result is not None:
            if isinstance(result, Deferred):
                if not result.called:
                    result.cancel()
            else:
                result.cancel()
        waiters, self._cancelWaiters = self._cancelWaiters, []
        for d in waiters:
            d.callback(None)


@implementer(IH2HandlerFactory)
class GRPCServer:
    """
    gRPC services on the ``raftmux.h2`` shell.  ``services`` are
    ``Service``s; every server also serves ``grpc.health.v1.Health``
    (``health``, a ``HealthServicer``: the server as a whole, ``""``, and
    each service added report SERVING until told otherwise).
    ``maxReceiveMessageSize`` bounds one request message
    (RESOURCE_EXHAUSTED beyond).

    ``serverFactory(config)`` is an ``H2ServerFactory`` serving only gRPC;
    ``router(fallback)`` is the ``IH2Router`` to share one HTTP/2 server
    with other routes.
    """

    log = Logger()

    def __init__(self, services=(), maxReceiveMessageSize=DEFAULT_MAX_MESSAGE_SIZE,
                 health=None):
        self.maxReceiveMessageSize = maxReceiveMessageSize
        self.health = health if health is not None else HealthServicer()
        self._handlers = {}
        self._services = {}
        self.addService(Service(HEALTH, self.health))
        for service in services:
            self.addService(service)

    def addService(self, service):
        """Serve ``service`` (a ``Service``) too."""
        self._services[service.name] = service
        self._handlers.update(service.handlers)
        if service.name != HEALTH.full_name:
            self.health.setStatus(service.name, self.health.SERVING)

    @property
    def serviceNames(self):
        return sorted(self._services)

    def router(self, fallback=None):
        """An ``IH2Router`` sending gRPC here and everything else to ``fallback``."""
        return GRPCRouter(self, fallback)

    def serverFactory(self, config=None, clock=None, fallback=None):
        """
        An ``H2ServerFactory`` (h2c prior knowledge, or ``h2`` by ALPN) for
        this server; ``config`` defaults to ``DEFAULT_CONFIG``.
        """
        if config is None:
            config = DEFAULT_CONFIG
        return H2ServerFactory(self.router(fallback), config, clock)

    # -- IH2HandlerFactory ----------------------------------------------------------

    def buildStream(self, connection, streamId, request):
        return H2Stream(connection, streamId, request)

    def buildHandler(self, stream):
        request = stream.request
        if request.method != b"POST":
            stream.respond(405, [(b"allow", b"POST"),
                                 (b"content-type", b"text/plain; charset=utf-8")],
                           b"gRPC requires POST\n")
            return None
        entry = self._handlers.get(request.path)
        if entry is None or entry[1] is None:
            _trailersOnly(stream, Code.UNIMPLEMENTED, self._unknown(request.path))
            return None
        timeout = None
        value = request.header(b"grpc-timeout")
        if value is not None:
            try:
                timeout = parseTimeout(value)
            except ValueError:
                _trailersOnly(stream, Code.INTERNAL,
                              "transport: malformed grpc-timeout %s" % (value[:32].decode(
                                  "ascii", "replace"),))
                return None
        method, handler = entry
        return ServerCall(method, handler, timeout, self.maxReceiveMessageSize)

    def _unknown(self, path):
        path = (path or b"").decode("utf-8", "replace")
        service, _, name = path.lstrip("/").rpartition("/")
        if service in self._services:
            return "unknown method %s for service %s" % (name, service)
        return "unknown service %s" % (service or path,)


def _trailersOnly(stream, code, message):
    """An immediate error: one HEADERS frame with END_STREAM; the request body is dropped."""
    block = [(b"content-type", b"application/grpc")]
    block.extend(statusHeaders(code, message))
    stream.respond(200, block, drain=False)


@implementer(IH2Router)
class GRPCRouter:
    """
    Routes ``content-type: application/grpc`` (``+proto`` etc.) to
    ``server`` and everything else to ``fallback`` (an ``IH2Router``), or,
    without one, answers 415 as grpc-go does.
    """

    def __init__(self, server, fallback=None):
        self.server = server
        self.fallback = fallback
        self._notGRPC = StatusResponse(
            415, [(b"content-type", b"text/plain; charset=utf-8")],
            b"invalid gRPC request content-type\n")

    def route(self, request):
        if isGRPCContentType(request.header(b"content-type")):
            return self.server
        if self.fallback is not None:
            return self.fallback.route(request)
        return self._notGRPC
