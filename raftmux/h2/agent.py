# -*- test-case-name: raftmux.test.test_h2_agent -*-
"""
``H2Agent``: a ``twisted.web.iweb.IAgent`` that speaks HTTP/2.

* ``http://`` URLs: h2c with prior knowledge (no Upgrade round trip).
* ``https://`` URLs: TLS offering ALPN ``h2`` and ``http/1.1``, with the
  certificate checks of an ``IPolicyForHTTPS`` (default
  ``BrowserLikePolicyForHTTPS``: the platform's roots, service_identity
  hostname checks).  A server that does not choose ``h2`` is remembered
  per origin and spoken to through Twisted's own HTTP/1.1 ``Agent``.
* One pooled connection per origin carries many concurrent streams; the
  pool dials another when the server's MAX_CONCURRENT_STREAMS is reached
  (``H2ConnectionPool``).
* Request bodies are ``IBodyProducer``s, paused and resumed by HTTP/2 flow
  control.  Response bodies are delivered with back-pressure: nothing is
  read from the stream before ``deliverBody``, and pausing the body
  protocol's transport stops crediting the server, whose window then stops
  it.
* A request the server says it never processed (a GOAWAY whose last stream
  ID is below it, or RST_STREAM REFUSED_STREAM) is sent again on a new
  stream, when its body can be replayed: no body, or one small enough that
  the agent kept what it sent (``maxReplayBytes``).  Otherwise it fails
  with ``NotReplayable`` (retryable: the caller may send it again).
* ``connectTimeout`` bounds dialling (TCP and TLS); ``responseTimeout`` the
  wait for the response headers.

``treq.HTTPClient(H2Agent(reactor))`` works unchanged.
"""

from twisted.internet import defer
from twisted.internet.error import ConnectionAborted, TimeoutError
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    URI,
    Agent,
    HTTPConnectionPool,
    RequestGenerationFailed,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.http import RESPONSES
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IClientRequest, IResponse
from zope.interface import implementer

from raftmux.h2.errors import ConnectionGoneAway, NotHTTP2, NotReplayable, StreamReset
from raftmux.h2.interfaces import IH2StreamHandler
from raftmux.h2.pool import H2ConnectionPool, Origin
from raftmux.h2.stream import statusOf

__all__ = ["H2Agent", "H2Response", "ResponseTimeout"]

HTTP11 = b"http/1.1"
H2 = b"h2"

#: request headers HTTP/2 forbids (RFC 9113 8.2.2); ``host`` becomes ``:authority``
_CONNECTION_HEADERS = frozenset({b"connection", b"keep-alive", b"proxy-connection",
                                 b"transfer-encoding", b"upgrade", b"host"})
_REFUSED = 0x7  # REFUSED_STREAM
# What a body protocol hears at the end of a whole body: one shared Failure,
# as Twisted shares ``connectionDone`` (building one per response was a
# measurable part of a GET).
_RESPONSE_DONE = Failure(ResponseDone("Response body fully received"))
#: a response body of known length up to this size is read at once (so its
#: stream closes even if nobody reads the body); larger ones wait for
#: ``deliverBody``, held back by flow control
EARLY_BODY = 64 * 1024
#: parsed request URIs kept (parsing one cost as much as a stream)
URI_CACHE_SIZE = 1024


class ResponseTimeout(TimeoutError):
    """No response headers arrived within the agent's ``responseTimeout``."""


@implementer(IClientRequest)
class _ClientRequest:
    def __init__(self, method, absoluteURI, headers):
        self.method = method
        self.absoluteURI = absoluteURI
        self._headers = headers

    @property
    def headers(self):
        # Built when asked for: most requests carry none and nobody looks.
        if self._headers is None:
            self._headers = Headers()
        return self._headers


def _requestHeaders(method, path, origin, authority, headers, length):
    """The HTTP/2 header list of a request: pseudo-header fields first, lower-case names."""
    fields = []
    if headers is not None:
        for name, values in headers.getAllRawHeaders():
            name = name.lower()
            if name in _CONNECTION_HEADERS:
                if name == b"host" and values:
                    authority = values[0]
                continue
            if name == b"te":
                values = [v for v in values if v.strip().lower() == b"trailers"]
            if name == b"content-length" and length is not None:
                continue
            for value in values:
                fields.append((name, value))
    block = [(b":method", method), (b":scheme", origin.scheme), (b":authority", authority),
             (b":path", path)]
    block.extend(fields)
    if length is not None:
        block.append((b"content-length", b"%d" % (length,)))
    return block


@implementer(IResponse)
class H2Response:
    """An ``IResponse`` read from an HTTP/2 stream (``trailers``: the trailers, if any)."""

    version = (b"HTTP", 2, 0)

    def __init__(self, code, fields, length, request, handler):
        self.code = code
        self.phrase = RESPONSES.get(code, b"")
        self._fields = fields
        self._headers = None
        self.length = length
        self.request = request
        self.previousResponse = None
        self.trailers = None
        self._handler = handler

    @property
    def headers(self):
        """The response's ``Headers`` (pseudo-header fields left out), built when first asked for."""
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers()
            for name, value in self._fields:
                if name[:1] != b":":
                    headers.addRawHeader(name, value)
            self._fields = None
        return headers

    def setPreviousResponse(self, response):
        self.previousResponse = response

    def deliverBody(self, protocol):
        self._handler.deliverBody(protocol)

    def __repr__(self):
        return "<H2Response %d %s>" % (self.code, self.request.absoluteURI)


@implementer(IPushProducer)
class _BodyTransport:
    """
    What a response body protocol gets as its transport: pausing it pauses
    delivery (and so crediting the server); ``stopProducing`` resets the
    stream.  (``disconnecting`` for ``LineReceiver``, as Twisted's own.)
    """

    disconnecting = False

    def __init__(self, handler):
        self._handler = handler

    def pauseProducing(self):
        self._handler.pauseBody()

    def resumeProducing(self):
        self._handler.resumeBody()

    def stopProducing(self):
        self._handler.stopBody()

    def loseConnection(self):
        self._handler.stopBody()

    def abortConnection(self):
        """(``readBody`` aborts a body it cannot finish reading.)"""
        self._handler.stopBody()


@implementer(IConsumer, IPushProducer)
class _Body:
    """
    A request's ``IBodyProducer``, written to the current stream and, up to
    ``maxReplay`` bytes, kept so that a request the server never processed
    can be sent again on another stream.  The stream registers this object
    (not the user's producer) as its producer, so losing one stream does not
    stop the user's producer.
    """

    def __init__(self, producer, maxReplay):
        self.producer = producer
        self.length = None if producer.length is UNKNOWN_LENGTH else producer.length
        self._maxReplay = maxReplay
        self._chunks = []
        self._kept = 0
        self.replayable = True
        self.finished = False
        self.failure = None
        self._started = False
        self._stream = None
        self._paused = False
        self._done = None

    # -- driving it ---------------------------------------------------------------------

    def sendOn(self, stream, whenSent):
        """Write the body on ``stream`` (again, after a retry) and end our half when done."""
        self._stream = stream
        self._done = whenSent
        for chunk in self._chunks:
            stream.write(chunk)
        if self.finished:
            stream.loseWriteConnection()
            return
        stream.registerProducer(self, True)
        if not self._started:
            self._started = True
            d = defer.maybeDeferred(self.producer.startProducing, self)
            d.addCallbacks(self._produced, self._failed)
        elif self._paused:
            self._paused = False
            self.producer.resumeProducing()

    def stop(self):
        """The request is over (failed or cancelled): stop the user's producer."""
        self._stream = None
        if self._started and not self.finished and self.failure is None:
            self.finished = True
            try:
                self.producer.stopProducing()
            except Exception:
                pass

    def _produced(self, _):
        self.finished = True
        stream = self._stream
        if stream is not None and not stream.disconnected:
            stream.unregisterProducer()
            stream.loseWriteConnection()

    def _failed(self, failure):
        if self.finished:
            return  # stopped by us
        self.failure = failure
        stream, self._stream = self._stream, None
        if stream is not None and not stream.disconnected:
            stream.unregisterProducer()
            stream.reset()
        if self._done is not None:
            self._done(failure)

    # -- IConsumer, for the user's producer -------------------------------------------------

    def write(self, data):
        if self.replayable:
            self._kept += len(data)
            if self._kept > self._maxReplay:
                self.replayable = False
                self._chunks = []
            else:
                self._chunks.append(data)
        stream = self._stream
        if stream is not None:
            stream.write(data)

    def writeSequence(self, data):
        self.write(b"".join(data))

    def registerProducer(self, producer, streaming):
        pass

    def unregisterProducer(self):
        pass

    # -- IPushProducer, for the stream ----------------------------------------------------

    def pauseProducing(self):
        if not self._paused and not self.finished:
            self._paused = True
            self.producer.pauseProducing()

    def resumeProducing(self):
        if self._paused and not self.finished:
            self._paused = False
            self.producer.resumeProducing()

    def stopProducing(self):
        # The stream is gone; whether the request is retried is the exchange's call.
        self._stream = None
        self.pauseProducing()


@implementer(IH2StreamHandler)
class _Exchange:
    """One request through ``H2Agent``, over one or more streams (retries)."""

    def __init__(self, agent, method, uri, path, origin, authority, headers, bodyProducer):
        self.agent = agent
        self.method = method
        self.uri = uri
        self.path = path
        self.origin = origin
        self.authority = authority
        self.headers = headers
        self.bodyProducer = bodyProducer
        self.body = None if bodyProducer is None else _Body(bodyProducer, agent.maxReplayBytes)
        self.request = _ClientRequest(method, uri, headers)
        self.deferred = defer.Deferred(self._cancel)
        self.transport = None
        self.response = None
        self.retriesLeft = agent.retries
        self._opening = None
        self._timer = None
        self._bodyProtocol = None
        self._bodyPaused = False
        self._early = []
        self._delivered = False
        self._lostBeforeDelivery = None
        self._ended = False
        self._finished = False
        self._fellBack = False

    # -- sending ------------------------------------------------------------------------

    def start(self):
        timeout = self.agent.responseTimeout
        if timeout is not None:
            self._timer = self.agent.reactor.callLater(timeout, self._timedOut)
        self._open()
        return self.deferred

    def _open(self):
        length = self.body.length if self.body is not None else None
        block = _requestHeaders(self.method, self.path, self.origin, self.authority,
                                self.headers, length)
        pool = self.agent.pool
        stream = pool.startStream(self.origin, block, self, endStream=self.body is None)
        if stream is not None:
            self._opened(stream)
            return
        self._opening = pool.openStream(self.origin, block, self, endStream=self.body is None)
        self._opening.addCallbacks(self._opened, self._notOpened)

    def _opened(self, stream):
        self._opening = None
        if self.body is not None and not self._finished:
            self.body.sendOn(stream, self._bodyFailed)

    def _notOpened(self, failure):
        self._opening = None
        if self._finished:
            return
        if failure.check(NotHTTP2):
            self._fallBack()
            return
        self._failed(failure)

    def _fallBack(self):
        """The server chose HTTP/1.1 by ALPN: use Twisted's Agent for this origin."""
        self._fellBack = True
        self._cancelTimer()
        self.agent.useHTTP11(self.origin)
        d = self.agent.http11Agent.request(self.method, self.uri, self.headers,
                                           self.bodyProducer)
        d.addCallbacks(self._finish, self._fail)

    def _bodyFailed(self, failure):
        self._failWith(Failure(RequestGenerationFailed([failure])))

    def _retryable(self, failure):
        if failure.check(ConnectionGoneAway):
            return failure.value.retryable
        if failure.check(StreamReset):
            return failure.value.code == _REFUSED
        return False

    def _failed(self, failure):
        """The stream (or its opening) failed before the response headers."""
        if self._retryable(failure):
            if self.body is not None and not self.body.replayable:
                self._failWith(Failure(NotReplayable(
                    "%s; the request body (over %d bytes) was not kept, so it is not sent "
                    "again: retry with a new body" % (failure.getErrorMessage(),
                                                     self.agent.maxReplayBytes))))
                return
            if self.retriesLeft > 0:
                self.retriesLeft -= 1
                self.agent.log.debug("retrying {method} {uri}: {why}", method=self.method,
                                     uri=self.request.absoluteURI,
                                     why=failure.getErrorMessage())
                self.transport = None
                self._open()
                return
        if failure.check(ConnectionGoneAway, NotReplayable, TimeoutError):
            self._failWith(failure)
        else:
            self._failWith(Failure(ResponseNeverReceived([failure])))

    def _failWith(self, failure):
        if self._finished:
            return
        if self.body is not None:
            self.body.stop()
        transport = self.transport
        if transport is not None and not transport.disconnected:
            transport.reset()
        self._fail(failure)

    def _fail(self, failure):
        if self._finished:
            return
        self._finished = True
        self._cancelTimer()
        d, self.deferred = self.deferred, None  # (its canceller refers back to us)
        d.errback(failure)

    def _finish(self, response):
        if self._finished:
            return
        self._finished = True
        self._cancelTimer()
        d, self.deferred = self.deferred, None
        d.callback(response)

    def _cancel(self, d):
        if self._finished:
            return
        self._finished = True
        self._cancelTimer()
        if self._opening is not None:
            self._opening.cancel()
        if self.body is not None:
            self.body.stop()
        if self.transport is not None and not self.transport.disconnected:
            self.transport.reset()

    def _timedOut(self):
        self._timer = None
        self._failWith(Failure(ResponseTimeout(
            "no response from %s within %gs" % (self.request.absoluteURI.decode("ascii",
                                                                                "replace"),
                                               self.agent.responseTimeout))))

    def _cancelTimer(self):
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    # -- IH2StreamHandler (the stream's protocol) ----------------------------------------------

    def makeConnection(self, transport):
        self.transport = transport

    def headersReceived(self, headers):
        if self._finished:
            self.transport.reset()
            return
        code = statusOf(headers)
        length = UNKNOWN_LENGTH
        for name, value in headers:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    pass
        if self.method == b"HEAD" or code in (204, 304):
            length = 0
        if length is UNKNOWN_LENGTH or length > EARLY_BODY:
            # Nothing more is read (or credited) until the body is asked for.
            self.transport.pauseProducing()
        self.response = H2Response(code, headers, length, self.request, self)
        self._finish(self.response)

    def trailersReceived(self, headers):
        if self.response is not None:
            trailers = Headers()
            for name, value in headers:
                trailers.addRawHeader(name, value)
            self.response.trailers = trailers

    def dataReceived(self, data):
        protocol = self._bodyProtocol
        if protocol is not None:
            protocol.dataReceived(data)
        else:
            self._early.append(data)

    def readConnectionLost(self):
        self._ended = True
        if self.body is not None and not self.body.finished:
            # The answer is complete while we still send: stop sending.
            self.body.stop()
            self.transport.loseConnection()
        protocol, self._bodyProtocol = self._bodyProtocol, None
        if protocol is not None:
            protocol.connectionLost(_RESPONSE_DONE)

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason):
        # The stream is gone: let go of it, and of the response (which refers
        # back to us), so that an exchange is freed when its last user lets
        # go, not by the cyclic garbage collector (a measurable part of a GET).
        self.transport = None
        response, self.response = self.response, None
        if response is None:
            if not self._finished and not self._fellBack:
                self._failed(reason)
            return
        if self._ended:
            return
        self._ended = True
        protocol, self._bodyProtocol = self._bodyProtocol, None
        if protocol is not None:
            protocol.connectionLost(Failure(ResponseFailed([reason])))
        else:
            self._lostBeforeDelivery = reason

    # -- the response body -------------------------------------------------------------------

    def deliverBody(self, protocol):
        if self._bodyProtocol is not None or self._delivered:
            raise RuntimeError("deliverBody was called already")
        self._delivered = True
        protocol.makeConnection(_BodyTransport(self))
        early, self._early = self._early, []
        for data in early:
            protocol.dataReceived(data)
        if self._ended:
            lost = self._lostBeforeDelivery
            if lost is not None:
                protocol.connectionLost(Failure(ResponseFailed([lost])))
            else:
                protocol.connectionLost(_RESPONSE_DONE)
            return
        self._bodyProtocol = protocol
        if not self._bodyPaused:
            self.transport.resumeProducing()

    def pauseBody(self):
        self._bodyPaused = True
        if self.transport is not None:
            self.transport.pauseProducing()

    def resumeBody(self):
        self._bodyPaused = False
        if self.transport is not None and self._bodyProtocol is not None:
            self.transport.resumeProducing()

    def stopBody(self):
        protocol, self._bodyProtocol = self._bodyProtocol, None
        if self._ended:
            return
        self._ended = True
        if self.transport is not None and not self.transport.disconnected:
            self.transport.reset()
        if protocol is not None:
            protocol.connectionLost(Failure(ResponseFailed([Failure(ConnectionAborted())])))


@implementer(IAgent)
class H2Agent:
    """
    @param reactor: the reactor (``IReactorTCP``, ``IReactorTime``).
    @param contextFactory: an ``IPolicyForHTTPS`` (default
        ``BrowserLikePolicyForHTTPS()``); ALPN ``h2``/``http/1.1`` is added
        to its creators.
    @param connectTimeout: seconds to connect (TCP and TLS).
    @param responseTimeout: seconds from sending a request to its response
        headers (None: no limit).
    @param config: the ``H2Config`` of the agent's connections.
    @param pool: an ``H2ConnectionPool`` to share (else one of its own).
    @param maxConnectionsPerOrigin: see ``H2ConnectionPool``.
    @param maxReplayBytes: request bodies up to this size are kept so they
        can be sent again after a GOAWAY or REFUSED_STREAM.
    @param retries: how many times a request the server did not process is
        sent again.
    @param http11Agent: the ``IAgent`` for origins whose TLS chose
        HTTP/1.1 (default: Twisted's ``Agent`` with a persistent pool).
    """

    log = Logger()

    def __init__(self, reactor, contextFactory=None, connectTimeout=30.0, responseTimeout=None,
                 config=None, pool=None, maxConnectionsPerOrigin=4,
                 maxReplayBytes=1024 * 1024, retries=2, http11Agent=None):
        self.reactor = reactor
        self._contextFactory = contextFactory
        self.connectTimeout = connectTimeout
        self.responseTimeout = responseTimeout
        self.maxReplayBytes = maxReplayBytes
        self.retries = retries
        if pool is None:
            pool = H2ConnectionPool(reactor, config, tlsPolicy=contextFactory,
                                    connectTimeout=connectTimeout,
                                    maxConnectionsPerOrigin=maxConnectionsPerOrigin)
        self.pool = pool
        self._http11Agent = http11Agent
        self._http11Pool = None
        self._protocols = {}
        self._targets = {}

    @property
    def http11Agent(self):
        """The HTTP/1.1 agent for origins whose servers do not speak h2."""
        if self._http11Agent is None:
            self._http11Pool = HTTPConnectionPool(self.reactor, persistent=True)
            kwargs = {}
            if self._contextFactory is not None:
                kwargs["contextFactory"] = self._contextFactory
            self._http11Agent = Agent(self.reactor, connectTimeout=self.connectTimeout,
                                      pool=self._http11Pool, **kwargs)
        return self._http11Agent

    def protocolFor(self, origin):
        """``b"http/1.1"`` if ``origin`` (an ``Origin``) is known not to speak h2, else ``b"h2"``."""
        return self._protocols.get(origin, H2)

    def useHTTP11(self, origin):
        """Remember that ``origin``'s server chose HTTP/1.1."""
        if self._protocols.get(origin) != HTTP11:
            self.log.info("{origin} does not offer h2 by ALPN: using HTTP/1.1",
                          origin=b"%s://%s" % (origin.scheme, origin.authority))
        self._protocols[origin] = HTTP11

    def request(self, method, uri, headers=None, bodyProducer=None):
        target = self._targets.get(uri)
        if target is None:
            try:
                parsed = URI.fromBytes(uri)
            except Exception as e:
                return defer.fail(e)
            if parsed.scheme not in (b"http", b"https"):
                return defer.fail(SchemeNotSupported("unsupported scheme: %r" % (parsed.scheme,)))
            origin = Origin.fromURI(parsed)
            target = (origin, parsed.originForm, origin.authority)
            if len(self._targets) >= URI_CACHE_SIZE:
                self._targets.clear()
            self._targets[uri] = target
        origin, path, authority = target
        if self._protocols.get(origin) == HTTP11:
            return self.http11Agent.request(method, uri, headers, bodyProducer)
        return _Exchange(self, method, uri, path, origin, authority, headers,
                         bodyProducer).start()

    def closeCachedConnections(self):
        """Close every pooled connection (GOAWAY); fires once they are closed."""
        waits = [self.pool.closeCachedConnections()]
        if self._http11Pool is not None:
            waits.append(self._http11Pool.closeCachedConnections())
        return defer.DeferredList(waits, consumeErrors=True).addCallback(lambda _: None)
