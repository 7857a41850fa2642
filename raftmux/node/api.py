# -*- test-case-name: raftmux.test.test_node -*-
"""
The node's own HTTP client API, a thin view over the etcd key space
through the node's ``EtcdNode`` (the only thing it talks to):
``/kv/<key>``, ``/cluster/members``, ``/health``; and ``NodeSite``, the
Site every protocol of a port reaches.

* ``PUT /kv/<key>`` is etcd's Put, ``DELETE`` its DeleteRange of the key,
  ``PUT ...?prevValue=v`` a Txn comparing the value with ``v``, ``GET``
  a Range of the key, linearizable (ReadIndex) unless ``?serializable=true``.
  Any member takes writes: a follower's proposal goes to the leader through
  raft, as in etcd, and the answer comes once this member applied it.
* ``/cluster/members`` lists and changes members with etcd's conf changes;
  ``/cluster/gossip`` shows each member's gossip state beside its raft state.

Errors are ``{"error": "..."}`` with a 4xx/5xx status: 503 for "no
leader" and "not running raft" (nothing was proposed; retry), 504 when the
outcome of a write is unknown (it timed out), 503 "server stopped" when
the member stopped while a write was pending (its outcome unknown too).
"""

import json
import time
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from raftmux._log import RateLimitedLog
from raftmux.etcd.cluster import parsePeerURLs
from raftmux.etcd.gateway import httpStatusFromCode
from raftmux.etcdpb import raft_internal_pb2, rpc_pb2
from raftmux.mvcc.errors import (
    Code,
    ErrMemberExist,
    ErrMemberNotLearner,
    ErrNoLeader,
    ErrPeerURLExist,
    ErrTimeout,
    ErrTimeoutDueToLeaderFail,
    EtcdError,
)
from raftmux.rafthttp import formatID, parseID

__all__ = ["NodeSite", "KVResource", "ClusterResource", "HealthResource"]

_log = Logger()
#: Go's net/http servers leave ReadHeaderTimeout to the program; etcd sets
#: none.  A generous bound, far above any real client's head.
HEAD_DEADLINE = 30.0


# A flood of slow heads costs a few lines a minute, not one a connection.
_slowHeads = RateLimitedLog(_log)


def requestGone(request):
    """Was ``request`` answered already, or did its client leave?"""
    return bool(request.finished) or request.channel is None


def sendJSON(request, code, value):
    """Finish ``request`` with ``value`` as JSON (no-op if the client left)."""
    if requestGone(request):
        return
    body = json.dumps(value, separators=(",", ":")).encode() + b"\n"
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"content-length", b"%d" % (len(body),))
    request.write(body)
    request.finish()


def sendError(request, code, message):
    sendJSON(request, code, {"error": message})


class _Starting(Resource):
    isLeaf = True

    def render(self, request):
        sendError(request, 503, "the node is starting")
        return NOT_DONE_YET


class NodeSite(Site):
    """
    The node's Site.  It notes which member sent a request over a muxado
    session (``X-Server-From``) so the node answers on that same session,
    and keeps no access log (a busy node would spend its time on it).
    """

    noisy = False

    def __init__(self, node, maxBodyBytes=None, reactor=None, headDeadline=HEAD_DEADLINE):
        Site.__init__(self, _Starting(), reactor=reactor)
        self.node = node
        #: bodies larger than this are refused (413) before they are read:
        #: a number of bytes, or a function of the request's path giving one
        #: (``None``: no limit)
        self.maxBodyBytes = maxBodyBytes
        #: seconds a client has from its request line to the end of its
        #: headers (twisted.web's idle timeout restarts with every byte, so a
        #: head sent a byte at a time would otherwise hold a connection)
        self.headDeadline = headDeadline
        if maxBodyBytes is not None or headDeadline is not None:
            if maxBodyBytes is None or callable(maxBodyBytes):
                limitFor = maxBodyBytes or (lambda path: None)
            else:
                limitFor = lambda path: maxBodyBytes  # noqa: E731
            self.requestFactory = _boundedRequest(limitFor, self.reactor, headDeadline)

    def mount(self, root, children):
        for name, resource in children.items():
            root.putChild(name, resource)
        self.resource = root

    def getResourceFor(self, request):
        sender = request.requestHeaders.getRawHeaders(b"x-server-from")
        if sender:
            session = getattr(request.channel.transport, "session", None)
            dialer = self.node.dialer
            if session is not None and dialer is not None:
                dialer.adopt(parseID(sender[0]), session)
        return Site.getResourceFor(self, request)

    def log(self, request):
        pass


def _boundedRequest(limitFor, clock, headDeadline):
    """
    A Request class refusing bodies over ``limitFor(path)`` bytes: by the
    declared Content-Length before any byte is read, or as a chunked body
    passes it.  Over HTTP/1.x the answer is a bare 413 and a closed
    connection (the rest of the body is never read, as a Go server does
    past its limit); over HTTP/2 the rest of the body is dropped as it
    comes and the 413 is the stream's answer.  twisted.web would otherwise
    spool any body to a temporary file before a resource sees it.  Its head
    (request line to the end of the headers) must arrive within
    ``headDeadline`` seconds or the connection is closed.
    """

    class BoundedRequest(Request):
        _received = 0
        _refused = False
        _limit = None
        _headTimer = None

        def __init__(self, *args, **kwargs):
            Request.__init__(self, *args, **kwargs)
            if headDeadline is not None and isinstance(self.channel, HTTPChannel):
                self._headTimer = clock.callLater(headDeadline, self._headTooSlow)

        def _headTooSlow(self):
            self._headTimer = None
            _slowHeads.emit(LogLevel.info, "HTTP: slow request heads",
                            "HTTP: {peer}: request head not complete after {seconds} s; "
                            "closing", peer=self.getClientAddress(), seconds=headDeadline)
            transport: Any = self.channel.transport
            if transport is not None:
                transport.abortConnection()

        def connectionLost(self, reason):
            self._cancelHeadTimer()
            Request.connectionLost(self, reason)

        def _cancelHeadTimer(self):
            if self._headTimer is not None:
                if self._headTimer.active():
                    self._headTimer.cancel()
                self._headTimer = None

        def gotLength(self, length):
            self._cancelHeadTimer()
            # The request line is parsed by now, but twisted.web keeps the
            # path on the channel until the body is in: HTTP/1.x's
            # ``_path``, HTTP/2's ``path``.
            path = getattr(self.channel, "path", None) or getattr(self.channel, "_path", None)
            self._limit = limitFor(path)
            if length is not None and self._limit is not None and length > self._limit:
                self._refuse()
                length = 0
            Request.gotLength(self, length)

        def handleContentChunk(self, data):
            if self._refused:
                return
            self._received += len(data)
            if self._limit is not None and self._received > self._limit:
                self._refuse()
                return
            Request.handleContentChunk(self, data)

        def _refuse(self):
            self._refused = True
            if isinstance(self.channel, HTTPChannel):
                transport: Any = self.channel.transport
                if transport is None:
                    return
                transport.write(b"HTTP/1.1 413 Request Entity Too Large\r\n"
                                b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                transport.loseConnection()

        def requestReceived(self, command, path, version):
            if not self._refused:
                Request.requestReceived(self, command, path, version)
            elif not isinstance(self.channel, HTTPChannel):
                self.method, self.uri, self.clientproto = command, path, version
                self.setResponseCode(413)
                self.setHeader(b"content-length", b"0")
                self.finish()

    return BoundedRequest


class _Refused(Exception):
    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code
        self.message = message


def _errorStatus(error):
    """The HTTP status for an etcd error on this API."""
    if isinstance(error, (ErrTimeout, ErrTimeoutDueToLeaderFail)):
        return 504
    if isinstance(error, (ErrPeerURLExist, ErrMemberExist)):
        return 409
    if error.code == Code.UNAVAILABLE:
        return 503
    return httpStatusFromCode(error.code)


class _NodeResource(Resource):
    """``etcd``: the node's ``EtcdNode``; ``metrics``: its ``NodeMetrics``."""

    isLeaf = True
    #: the methods a subclass handles (``handle_<METHOD>``), for 405's ``Allow``
    allowed = b""

    def __init__(self, etcd, metrics):
        Resource.__init__(self)
        self.etcd = etcd
        self.metrics = metrics
        self._observers = {}

    def render(self, request):
        began = time.perf_counter()
        handler = getattr(self, "handle_" + request.method.decode("ascii", "replace"), None)
        if handler is None:
            request.setHeader(b"Allow", self.allowed)
            sendError(request, 405, "method not allowed")
            return NOT_DONE_YET
        try:
            result = handler(request)
        except Exception:
            self._failed(Failure(), request)
            self._count(None, request, began)
            return NOT_DONE_YET
        if isinstance(result, defer.Deferred):
            result.addErrback(self._failed, request)
            result.addBoth(self._count, request, began)
        else:
            self._count(None, request, began)
        return NOT_DONE_YET

    def _count(self, _, request, began):
        key = (request.method, request.code)
        child = self._observers.get(key)
        if child is None:
            child = self._observers[key] = self.metrics.requests.labels(
                request.method.decode("ascii", "replace"), str(request.code))
        child.observe(time.perf_counter() - began)

    def _failed(self, failure, request):
        error = failure.value
        if isinstance(error, _Refused):
            sendError(request, error.code, error.message)
        elif isinstance(error, EtcdError):
            if isinstance(error, ErrNoLeader):
                sendError(request, 503, "no leader")
            else:
                sendError(request, _errorStatus(error), error.message)
        else:
            _log.failure("client request {method} {uri} failed", failure,
                         method=request.method, uri=request.uri)
            sendError(request, 500, "internal error: %s" % (failure.getErrorMessage(),))

    def running(self):
        if not self.etcd.running:
            raise _Refused(503, "this member is not running raft")


class KVResource(_NodeResource):
    """
    ``/kv/<key>``: GET, PUT (body = value), DELETE.  ``PUT
    /kv/<key>?prevValue=<v>`` is compare-and-set (etcd v2's name): a Txn
    that puts only if the key's value is ``v`` (an absent key never
    compares equal), answered 412 when it did not.
    """

    allowed = b"GET, PUT, DELETE"

    def __init__(self, etcd, metrics, maxValueBytes):
        _NodeResource.__init__(self, etcd, metrics)
        self.maxValueBytes = maxValueBytes

    def _key(self, request):
        key = b"/".join(request.postpath)
        if not key:
            raise _Refused(400, "missing key: use /kv/<key>")
        if len(key) > 4096:
            raise _Refused(400, "key longer than 4096 bytes")
        return key

    def handle_GET(self, request):
        key = self._key(request)
        if request.args.get(b"serializable", [b""])[0] in (b"true", b"1"):
            return self._answerRead(request, key)
        self.running()
        return self.etcd.readIndex().addCallback(lambda _: self._answerRead(request, key))

    def _answerRead(self, request, key):
        etcd = self.etcd
        record = etcd.keySpace.get(key)
        if record is None:
            raise _Refused(404, "key not found")
        if requestGone(request):
            return
        value = record.value
        request.setHeader(b"content-type", b"application/octet-stream")
        request.setHeader(b"x-raftmux-index", b"%d" % (etcd.appliedIndex(),))
        request.setHeader(b"content-length", b"%d" % (len(value),))
        request.write(value)
        request.finish()

    def handle_PUT(self, request):
        key = self._key(request)
        content = request.content
        content.seek(0, 2)
        size = content.tell()
        if size > self.maxValueBytes:
            raise _Refused(413, "value of %d bytes is over the limit of %d" % (
                size, self.maxValueBytes))
        self.running()
        content.seek(0)
        value = content.read()
        prev = request.args.get(b"prevValue")
        r = raft_internal_pb2.InternalRaftRequest()
        if prev is not None:
            txn = r.txn
            txn.compare.add(key=key, target=rpc_pb2.Compare.VALUE,
                            result=rpc_pb2.Compare.EQUAL, value=prev[0])
            txn.success.add().request_put.CopyFrom(rpc_pb2.PutRequest(key=key, value=value))
            return self._propose(request, r, "cas")
        r.put.key, r.put.value = key, value
        return self._propose(request, r, "put")

    def handle_DELETE(self, request):
        key = self._key(request)
        self.running()
        r = raft_internal_pb2.InternalRaftRequest()
        r.delete_range.key = key
        return self._propose(request, r, "delete")

    def _propose(self, request, raftRequest, what):
        if not self.etcd.isLeader():
            self.metrics.forwarded.inc()

        def applied(result):
            index, outcome = result
            request.setHeader(b"x-raftmux-index", b"%d" % (index,))
            answer = {"index": index}
            if what == "delete":
                answer["deleted"] = outcome.response.deleted > 0
            if what == "cas" and not outcome.response.succeeded:
                answer["error"] = "compare failed: the key is absent or holds another value"
                sendJSON(request, 412, answer)
                return
            sendJSON(request, 200, answer)

        def failed(failure):
            self.metrics.proposalsFailed.inc()
            return failure
        return self.etcd.proposeWithIndex(raftRequest).addCallbacks(applied, failed)


class ClusterResource(_NodeResource):
    """
    ``/cluster/members``: GET lists, POST adds (``{"peerURLs": [...],
    "name": ..., "isLearner": false}``); ``/cluster/members/<id>``: DELETE
    removes; ``/cluster/members/<id>/promote``: POST makes a learner a voter.
    ``/cluster/gossip``: GET shows each member's raft state beside its
    gossip state (``gossip``: the node's ``NodeGossip``, or anything with
    ``view()``; None answers 404 until it exists).
    """

    allowed = b"GET, POST, DELETE"

    def __init__(self, etcd, metrics, gossip=None):
        _NodeResource.__init__(self, etcd, metrics)
        self.gossip = gossip

    def _path(self, request):
        path = request.postpath
        if not path or path[0] != b"members" or len(path) > 3:
            raise _Refused(404, "not found: use /cluster/members or /cluster/gossip")
        return path[1:]

    def listing(self, members=None):
        etcd = self.etcd
        return {
            "clusterID": formatID(etcd.clusterID), "memberID": formatID(etcd.memberID),
            "leader": formatID(etcd.leader()),
            "members": [{"id": formatID(m.ID), "name": m.name, "peerURLs": list(m.peerURLs),
                         "clientURLs": list(m.clientURLs), "isLearner": m.isLearner}
                        for m in (members if members is not None else etcd.members())],
        }

    def handle_GET(self, request):
        if request.postpath in ([b"gossip"], [b"gossip", b""]):
            if self.gossip is None:
                raise _Refused(404, "this member runs no gossip")
            sendJSON(request, 200, self.gossip.view())
            return
        if self._path(request):
            raise _Refused(404, "not found")
        sendJSON(request, 200, self.listing())

    def handle_POST(self, request):
        rest = self._path(request)
        if len(rest) == 2 and rest[1] == b"promote":
            id = self._memberID(rest[0])
            self.running()
            d = self.etcd.promoteMember(id)
            d.addErrback(self._notLearner, id)
            return d.addCallback(self._changed, request, id, 201)
        if rest:
            raise _Refused(404, "not found")
        request.content.seek(0)
        try:
            body = json.loads(request.content.read(65536) or b"{}")
            urls = parsePeerURLs([str(u) for u in body["peerURLs"]])
            name = str(body.get("name", ""))
            learner = bool(body.get("isLearner", False))
        except (ValueError, KeyError, TypeError, AttributeError, EtcdError) as e:
            raise _Refused(400, "expected {\"peerURLs\": [...], \"name\": ...}: %s" % (e,)) \
                from None
        self.running()

        def added(result):
            member, members = result
            return self._changed(members, request, member.ID, 201)
        return self.etcd.addMember(urls, learner, name).addCallback(added)

    def _notLearner(self, failure, id):
        failure.trap(ErrMemberNotLearner)
        raise _Refused(400, "member %s is not a learner" % (formatID(id),))

    def handle_DELETE(self, request):
        rest = self._path(request)
        if len(rest) != 1:
            raise _Refused(404, "use DELETE /cluster/members/<id>")
        id = self._memberID(rest[0])
        self.running()
        return self.etcd.removeMember(id).addCallback(self._changed, request, id, 200)

    def _memberID(self, text):
        id = parseID(text)
        if not id or id not in {m.ID for m in self.etcd.members()}:
            raise _Refused(404, "no member %s" % (text.decode("ascii", "replace"),))
        return id

    def _changed(self, members, request, id, code):
        answer = self.listing(members)
        answer["changed"] = formatID(id)
        answer["initialCluster"] = ",".join(
            "%s=%s" % (m.name or formatID(m.ID), u) for m in members for u in m.peerURLs)
        sendJSON(request, code, answer)


class HealthResource(_NodeResource):
    """``/health``: 200 ``{"health":"true"}`` with a leader, else 503 and the reason."""

    allowed = b"GET"

    def handle_GET(self, request):
        reason = self.etcd.healthProblem()
        sendJSON(request, 503 if reason else 200,
                 {"health": "false" if reason else "true", "reason": reason})
