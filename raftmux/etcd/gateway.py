# -*- test-case-name: raftmux.test.test_etcd_gateway -*-
"""
etcd 3.4's JSON gateway (grpc-gateway v1 in front of its gRPC services,
``embed/serve.go``) as a twisted.web resource over the service objects
of an L{raftmux.etcd.api.EtcdAPI}.

What it does, as etcd's does:

* ``POST /v3/<route>`` for every route in ``raftmux.etcdpb.ROUTES``
  (``/v3beta/`` is rewritten to ``/v3/``); the body is the request as
  JSON (L{raftmux.etcd.jsonpb}); an empty body is an empty request.
* A unary answer is the response as one JSON object.  An error is
  ``{"error": m, "message": m, "code": c}`` with the HTTP status
  grpc-gateway maps the gRPC code to (``HTTPStatusFromCode``); a body that
  does not parse is code 3 (400).
* ``/v3/watch``, ``/v3/lease/keepalive`` and ``/v3/maintenance/snapshot``
  stream: every response is ``{"result": ...}`` and a newline, written as
  it comes (chunked).  The body may hold several requests, one JSON value
  after another.  An error ends the stream with ``{"error": {"grpc_code",
  "http_code", "message", "http_status"}}``; a first request that does not
  parse is answered like a unary error, code 2 (500), as etcd's gateway
  answers it.
* An unknown path is 404 ``Not Found``, another method than POST 405
  ``Method Not Allowed`` (plain text); OPTIONS is 200; CORS headers allow
  any origin (etcd's default ``--cors``).
* A request larger than ``--max-request-bytes`` + 512 KiB is refused as
  gRPC refuses it (RESOURCE_EXHAUSTED, 429); a body too long to hold such
  a request is refused the same way before it is parsed.

What differs: twisted.web reads a request body whole before the resource
sees it, so a watch or keep-alive body is acted on once the client has
sent all of it (etcd's gateway reads requests as they arrive); no
websocket upgrade (etcd wraps the gateway in grpc-websocket-proxy);
no ``Grpc-Trailer-*`` HTTP trailers on errors.
"""

from http import HTTPStatus

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from raftmux.etcd import jsonpb
from raftmux.etcd.interfaces import IResponder
from raftmux.etcd.proposer import DEFAULT_MAX_REQUEST_BYTES
from raftmux.etcd.watch import GRPC_OVERHEAD_BYTES
from raftmux.etcdpb import METHODS, ROUTES
from raftmux.mvcc.errors import Code, EtcdError
from raftmux.rafthttp.server import httpError

__all__ = ["GatewayResource", "httpStatusFromCode"]

_HTTP = {
    Code.OK: 200, Code.CANCELLED: 408, Code.UNKNOWN: 500, Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504, Code.NOT_FOUND: 404, Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403, Code.UNAUTHENTICATED: 401, Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 412, Code.ABORTED: 409, Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501, Code.INTERNAL: 500, Code.UNAVAILABLE: 503, Code.DATA_LOSS: 500,
}


def httpStatusFromCode(code):
    """grpc-gateway's ``HTTPStatusFromCode``."""
    return _HTTP.get(code, 500)


def _routes():
    table = {}
    for method, path, service, rpc in ROUTES:
        table.setdefault(path.encode("ascii"), (method.encode("ascii"), service, rpc))
    return table


_ROUTES = _routes()


class _GatewayError(EtcdError):
    """An error the gateway itself makes (bad JSON, too large)."""

    def __init__(self, code, message):
        EtcdError.__init__(self, message)
        self.code = code


def _errorBody(code, message):
    return jsonpb.goJSON({"error": message, "message": message, "code": int(code)}).encode("utf-8")


def _asEtcdError(failure, log):
    if failure.check(EtcdError):
        return failure.value
    log.failure("etcd gateway call failed", failure)
    return _GatewayError(Code.UNKNOWN, str(failure.value))


class GatewayResource(Resource):
    """
    The JSON gateway over ``services`` (service full name -> service
    object, e.g. ``EtcdAPI.services``).  Mount it at the root of the
    client Site, or under it as ``v3`` (paths are read whole).
    """

    isLeaf = True
    log = Logger()

    def __init__(self, services, maxRequestBytes=DEFAULT_MAX_REQUEST_BYTES):
        Resource.__init__(self)
        self._services = services
        self._maxMessage = maxRequestBytes + GRPC_OVERHEAD_BYTES
        # JSON carries bytes as base64 (4/3) plus its own syntax.
        self._maxBody = self._maxMessage * 4 // 3 + 64 * 1024

    def render(self, request):
        path = request.path.split(b"?", 1)[0]
        if path.startswith(b"/v3beta/"):
            path = b"/v3/" + path[len(b"/v3beta/"):]
        request.setHeader(b"Access-Control-Allow-Methods", b"POST, GET, OPTIONS, PUT, DELETE")
        request.setHeader(b"Access-Control-Allow-Origin", b"*")
        request.setHeader(b"Access-Control-Allow-Headers", b"accept, content-type, authorization")
        if request.method == b"OPTIONS":
            return b""
        route = _ROUTES.get(path)
        if route is None:
            return self._plain(request, 404)
        if request.method != route[0]:
            return self._plain(request, 405)
        method = METHODS["/%s/%s" % (route[1], route[2])]
        service = self._services.get(method.service)
        if service is None:
            return self._plain(request, 404)
        body = self._body(request)
        if body is None:
            return self._error(request, _GatewayError(
                Code.RESOURCE_EXHAUSTED, "grpc: received message larger than max"))
        handler = getattr(service, method.name)
        if method.clientStreaming or method.serverStreaming:
            return self._stream(request, method, handler, body)
        return self._unary(request, method, handler, body)

    def _body(self, request):
        """The request body, or None when it is too long to hold a message we take."""
        content = request.content
        if content is None:
            return b""
        content.seek(0, 2)
        length = content.tell()
        content.seek(0)
        if length > self._maxBody:
            return None
        return content.read()

    def _plain(self, request, status):
        return httpError(request, status, HTTPStatus(status).phrase)

    def _error(self, request, error):
        request.setResponseCode(httpStatusFromCode(error.code))
        request.setHeader(b"Content-Type", b"application/json")
        return _errorBody(error.code, error.message)

    def _decode(self, body, method, code):
        try:
            message = jsonpb.loads(body, method.requestClass)
        except jsonpb.JSONError as e:
            raise _GatewayError(code, str(e))
        self._checkSize(message)
        return message

    def _checkSize(self, message):
        size = message.ByteSize()
        if size > self._maxMessage:
            raise _GatewayError(
                Code.RESOURCE_EXHAUSTED,
                "grpc: received message larger than max (%d vs. %d)" % (size, self._maxMessage))

    # -- unary ----------------------------------------------------------------

    def _unary(self, request, method, handler, body):
        try:
            message = self._decode(body, method, Code.INVALID_ARGUMENT)
        except EtcdError as e:
            return self._error(request, e)
        d = handler(message)
        finished = []
        request.notifyFinish().addBoth(finished.append)

        def answered(response):
            if finished:
                return
            request.setHeader(b"Content-Type", b"application/json")
            request.setHeader(b"Grpc-Metadata-Content-Type", b"application/grpc")
            request.write(jsonpb.dumps(response))
            request.finish()

        def failed(failure):
            if finished:
                return
            request.write(self._error(request, _asEtcdError(failure, self.log)))
            request.finish()

        d.addCallbacks(answered, failed)
        d.addErrback(lambda f: self.log.failure("etcd gateway answer", f))
        return NOT_DONE_YET

    # -- streams --------------------------------------------------------------

    def _stream(self, request, method, handler, body):
        messages = []
        trailing = None
        try:
            for message in jsonpb.iterLoads(body, method.requestClass):
                self._checkSize(message)
                messages.append(message)
        except (jsonpb.JSONError, EtcdError) as e:
            if not messages:
                error = e if isinstance(e, EtcdError) else _GatewayError(Code.UNKNOWN, str(e))
                return self._error(request, error)
            trailing = e
        if trailing is not None:
            self.log.debug("etcd gateway: stream body ends with {e}", e=trailing)
        responder = _HTTPResponder(request, self.log)
        if method.clientStreaming:
            stream = handler(responder)
            responder.feed(stream, messages)
        else:
            first = messages[0] if messages else method.requestClass()
            stream = handler(first, responder)
        responder.attach(stream)
        return NOT_DONE_YET


@implementer(IResponder, IPushProducer)
class _HTTPResponder:
    """
    An L{IResponder} over a twisted.web request: newline-delimited
    ``{"result": ...}`` objects, back-pressure from the connection, and
    the body's requests fed to the handler while it is not paused.
    """

    def __init__(self, request, log):
        self._request = request
        self._log = log
        self._stream = None
        self._pending = []
        self._paused = False
        self._done = False
        self._wrote = False
        self._producer = None
        self._requestsEnded = False
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Grpc-Metadata-Content-Type", b"application/grpc")
        request.notifyFinish().addErrback(self._lost)

    def feed(self, stream, messages):
        self._stream = stream
        self._pending = list(messages)
        self._deliver()

    def attach(self, stream):
        self._stream = stream

    def _deliver(self):
        while self._pending and not self._paused and not self._done:
            self._stream.receive(self._pending.pop(0))
        if not self._pending and not self._done and not self._requestsEnded:
            self._requestsEnded = True
            self._stream.requestsDone()

    def _lost(self, failure):
        if not self._done:
            self._done = True
            if self._stream is not None:
                self._stream.cancel()

    # -- IResponder -----------------------------------------------------------

    def sendMessage(self, message):
        if self._done:
            return
        self._wrote = True
        self._request.write(
            (jsonpb.goJSON({"result": jsonpb.toDict(message)}) + "\n").encode("utf-8"))

    def finish(self, error=None):
        if self._done:
            return
        self._done = True
        if self._producer is not None:
            self.unregisterProducer()
        request = self._request
        if error is not None:
            code = error.code
            status = httpStatusFromCode(code)
            if not self._wrote:
                request.setResponseCode(status)
            request.write(jsonpb.goJSON({"error": {
                "grpc_code": int(code), "http_code": status, "message": error.message,
                "http_status": HTTPStatus(status).phrase}}).encode("utf-8"))
        request.finish()

    def registerProducer(self, producer, streaming):
        if self._done:
            return
        self._producer = producer
        self._request.registerProducer(producer, True)

    def unregisterProducer(self):
        if self._producer is not None:
            self._producer = None
            if not self._request.finished:
                self._request.unregisterProducer()

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        if self._stream is not None:
            self._deliver()

    def stopProducing(self):
        self._lost(Failure(Exception("stopped")))
