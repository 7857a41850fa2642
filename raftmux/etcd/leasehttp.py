# -*- test-case-name: raftmux.test.test_etcd_leasehttp -*-
"""
etcd's lease endpoints between members (``lease/leasehttp``): a follower
asks the leader to renew a lease or to say how long it has left, over
HTTP on the peer port.

* ``POST /leases``: body a ``LeaseKeepAliveRequest`` (protobuf); answer a
  ``LeaseKeepAliveResponse`` with the renewed TTL.
* ``POST /leases/internal``: body a ``leasepb.LeaseInternalRequest``
  (field 1: a ``LeaseTimeToLiveRequest``); answer a
  ``LeaseInternalResponse`` (field 1: a ``LeaseTimeToLiveResponse``).
* Errors are Go's ``http.Error`` texts: 404 "lease not found", 408 when
  the member did not catch up its applied index within a second, 400 for
  anything else ("not a primary lessor", a body that does not decode), 405
  for another method than POST.

L{LeaseResource} serves them from a member's L{Lessor} (the node mounts it
on its peer Site as ``leases``); L{LeaseHTTPForwarder} is the follower's
side, an L{ILeaseForwarder} for the lessor.  Both speak etcd's bytes, so
a raftmux follower can ask an etcd leader and the other way round.
"""

from google.protobuf.message import DecodeError
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from raftmux.etcd.lessor import ILeaseForwarder, NotPrimary
from raftmux.etcdpb import rpc_pb2
from raftmux.httpbody import BytesProducer, readBody
from raftmux.mvcc.errors import ErrLeaseNotFound, ErrTimeoutWaitAppliedIndex, EtcdError
from raftmux.rafthttp.server import httpError

__all__ = [
    "LeaseResource", "LeaseHTTPForwarder", "LeaseHTTPError", "encodeInternalRequest",
    "decodeInternalRequest", "encodeInternalResponse", "decodeInternalResponse",
    "LEASE_PREFIX", "LEASE_INTERNAL_PREFIX",
]

LEASE_PREFIX = "/leases"
LEASE_INTERNAL_PREFIX = "/leases/internal"
#: etcd's ErrLeaseHTTPTimeout.
TIMEOUT_MESSAGE = "waiting for node to catch up its applied index has timed out"
#: Bodies are one small message each.
MAX_BODY = 64 * 1024

_CONTENT_TYPE = b"application/protobuf"


class LeaseHTTPError(Exception):
    """A peer's lease endpoint answered with an error (``status``, ``body``)."""

    def __init__(self, status, body):
        Exception.__init__(self, "lease: unknown error(%s)" % (body.decode("utf-8", "replace"),))
        self.status = status
        self.body = body


# -- leasepb.LeaseInternalRequest/Response: one embedded message as field 1 --

def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _wrap(message):
    body = message.SerializeToString()
    return b"\x0a" + _varint(len(body)) + body


def _unwrap(data, cls):
    """The field-1 message of a one-field wrapper; other fields are skipped."""
    inner = cls()
    pos = 0
    n = len(data)
    found = False
    while pos < n:
        key, pos = _readVarint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 2:
            length, pos = _readVarint(data, pos)
            if pos + length > n:
                raise DecodeError("truncated")
            if field == 1:
                inner.MergeFromString(data[pos:pos + length])
                found = True
            pos += length
        elif wire == 0:
            _, pos = _readVarint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise DecodeError("bad wire type %d" % (wire,))
        if pos > n:
            raise DecodeError("truncated")
    return inner, found


def _readVarint(data, pos):
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise DecodeError("bad varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def encodeInternalRequest(request):
    """``LeaseInternalRequest{LeaseTimeToLiveRequest: request}`` bytes."""
    return _wrap(request)


def decodeInternalRequest(data):
    return _unwrap(data, rpc_pb2.LeaseTimeToLiveRequest)[0]


def encodeInternalResponse(response):
    return _wrap(response)


def decodeInternalResponse(data):
    response, found = _unwrap(data, rpc_pb2.LeaseTimeToLiveResponse)
    if not found:
        raise DecodeError("no LeaseTimeToLiveResponse")
    return response


class LeaseResource(Resource):
    """``/leases`` and ``/leases/internal`` from ``lessor``."""

    isLeaf = True
    log = Logger()

    def __init__(self, lessor):
        Resource.__init__(self)
        self._lessor = lessor

    def render(self, request):
        if request.method != b"POST":
            return httpError(request, 405, "Method Not Allowed")
        path = request.path.split(b"?", 1)[0].decode("latin-1")
        if path not in (LEASE_PREFIX, LEASE_INTERNAL_PREFIX):
            return httpError(request, 400, "unknown request path %s" % (_goQuote(path),))
        body = request.content.read(MAX_BODY + 1) if request.content is not None else b""
        if len(body) > MAX_BODY:
            return httpError(request, 400, "error reading body")
        try:
            if path == LEASE_PREFIX:
                message = rpc_pb2.LeaseKeepAliveRequest.FromString(body)
                d = defer.ensureDeferred(self._renew(message))
            else:
                message = decodeInternalRequest(body)
                d = defer.ensureDeferred(self._timeToLive(message))
        except DecodeError:
            return httpError(request, 400, "error unmarshalling request")
        finished = []
        request.notifyFinish().addBoth(finished.append)

        def answer(result):
            if finished:
                return
            status, payload = result
            if status == 200:
                request.setHeader(b"Content-Type", _CONTENT_TYPE)
                request.write(payload)
            else:
                request.write(httpError(request, status, payload))
            request.finish()

        d.addCallback(answer)
        d.addErrback(lambda f: self.log.failure("lease peer request", f))
        return NOT_DONE_YET

    async def _renew(self, message):
        try:
            ttl = await self._lessor.renewHere(message.ID)
        except Exception as e:
            return _errorStatus(e)
        return 200, rpc_pb2.LeaseKeepAliveResponse(ID=message.ID, TTL=ttl).SerializeToString()

    async def _timeToLive(self, message):
        try:
            response = await self._lessor.timeToLiveHere(message, primaryOnly=False)
        except Exception as e:
            return _errorStatus(e)
        response.header.Clear()
        response.header.SetInParent()
        return 200, encodeInternalResponse(response)


def _errorStatus(e):
    if isinstance(e, ErrLeaseNotFound):
        return 404, "lease not found"
    if isinstance(e, ErrTimeoutWaitAppliedIndex):
        return 408, TIMEOUT_MESSAGE
    if isinstance(e, NotPrimary):
        return 400, "not a primary lessor"
    if isinstance(e, EtcdError):
        return 400, e.message
    raise e


def _goQuote(text):
    return '"%s"' % (text.replace("\\", "\\\\").replace('"', '\\"'),)


@implementer(ILeaseForwarder)
class LeaseHTTPForwarder:
    """
    Asks the leader over its peer URLs (``node.members()``) with ``agent``
    (an ``IAgent`` that reaches peers, TLS included), trying each URL in
    turn as etcd does.
    """

    def __init__(self, agent, node):
        self._agent = agent
        self._node = node

    def _urls(self, leaderID):
        for m in self._node.members():
            if m.ID == leaderID:
                return list(m.peerURLs)
        return []

    async def _post(self, leaderID, path, body):
        urls = self._urls(leaderID)
        if not urls:
            raise LeaseHTTPError(0, b"leader has no peer URLs")
        last = None
        for url in urls:
            try:
                response = await self._agent.request(
                    b"POST", (url.rstrip("/") + path).encode("utf-8"),
                    Headers({b"Content-Type": [_CONTENT_TYPE]}), BytesProducer(body))
                payload = await readBody(response, MAX_BODY)
            except defer.CancelledError:
                raise
            except Exception as e:
                last = e
                continue
            if response.code == 404:
                raise ErrLeaseNotFound()
            if response.code == 200:
                return payload
            last = LeaseHTTPError(response.code, payload)
        raise last

    async def _renew(self, leaderID, leaseID):
        body = rpc_pb2.LeaseKeepAliveRequest(ID=leaseID).SerializeToString()
        payload = await self._post(leaderID, LEASE_PREFIX, body)
        response = rpc_pb2.LeaseKeepAliveResponse.FromString(payload)
        if response.ID != leaseID:
            raise LeaseHTTPError(200, b"renew id mismatch")
        return response.TTL

    async def _timeToLive(self, leaderID, request):
        payload = await self._post(leaderID, LEASE_INTERNAL_PREFIX, encodeInternalRequest(
            rpc_pb2.LeaseTimeToLiveRequest(ID=request.ID, keys=request.keys)))
        response = decodeInternalResponse(payload)
        if response.ID != request.ID:
            raise LeaseHTTPError(200, b"renew id mismatch")
        return response

    def renew(self, leaderID, leaseID):
        return defer.ensureDeferred(self._renew(leaderID, leaseID))

    def timeToLive(self, leaderID, request):
        return defer.ensureDeferred(self._timeToLive(leaderID, request))
