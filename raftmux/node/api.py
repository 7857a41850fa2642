# -*- test-case-name: raftmux.test.test_node -*-
"""
The node's HTTP surface: one Site for every protocol of the port, with the
rafthttp Resources, etcd's ``/version`` and ``/members``, and the client
API (``/kv/<key>``, ``/cluster/members``, ``/health``; ``/metrics``).

Writes are proposed on the leader and answered after they are applied
there; a follower forwards them to the leader over the peer Agent (so
between raftmux nodes they ride the pair's muxado session).  Reads are
linearizable through ReadIndex unless ``?serializable=true``.  Errors are
``{"error": "..."}`` with a 4xx/5xx status.
"""

import io
import json
import time

from twisted.internet import defer
from twisted.internet.error import ConnectError, ConnectionDone, ConnectionLost
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    FileBodyProducer,
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from raftmux.httpbody import BodyTooLarge, readBody
from raftmux.muxado.errors import MuxadoError
from raftmux.node.config import ConfigError, addressOf, parseURLs
from raftmux.node.dialer import PLAIN
from raftmux.node.kv import encodeCompareAndSet, encodeDelete, encodePut
from raftmux.node.members import memberContext
from raftmux.raft import ProposalDropped, RaftError
from raftmux.raft.driver import NotLeader
from raftmux.rafthttp import formatID, memberID, parseID
from raftmux.raftpb import (
    ConfChange,
    ConfChangeAddLearnerNode,
    ConfChangeAddNode,
    ConfChangeRemoveNode,
    EntryConfChange,
)

__all__ = ["NodeSite", "KVResource", "ClusterResource", "HealthResource"]

FORWARDED = b"X-Raftmux-Forwarded"
_log = Logger()


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

    def __init__(self, node):
        Site.__init__(self, _Starting())
        self.node = node

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


class _NodeResource(Resource):
    isLeaf = True

    def __init__(self, node):
        Resource.__init__(self)
        self.node = node
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
            child = self._observers[key] = self.node.metrics.requests.labels(
                request.method.decode("ascii", "replace"), str(request.code))
        child.observe(time.perf_counter() - began)

    def _failed(self, failure, request):
        error = failure.value
        if isinstance(error, NotLeader):
            sendError(request, 503, "not the leader")
        elif isinstance(error, (RaftError, ProposalDropped)):
            self.node.metrics.proposalsFailed.inc()
            sendError(request, 503, "%s: %s" % (type(error).__name__, error))
        elif isinstance(error, (defer.CancelledError, defer.TimeoutError)):
            sendError(request, 504, "the leader did not answer in time")
        elif isinstance(error, _Refused):
            sendError(request, error.code, error.message)
        else:
            _log.failure("client request {method} {uri} failed", failure,
                         method=request.method, uri=request.uri)
            sendError(request, 500, "internal error: %s" % (failure.getErrorMessage(),))

    # -- shared by the writers ----------------------------------------------------

    def writable(self, request):
        """
        None when this member may propose the write, else a Deferred that
        answers by forwarding it to the leader (or refusing).
        """
        node = self.node
        if node.driver is None or not node.driver.running:
            raise _Refused(503, "this member is not running raft")
        if node.isLeader:
            if not node.clusterIsRaftmux():
                raise _Refused(503, "this cluster has members that are not raftmux nodes; "
                                    "raftmux members never propose entries beside etcd "
                                    "members")
            return None
        return self.forward(request)

    @defer.inlineCallbacks
    def forward(self, request):
        node = self.node
        leader = node.leader
        if not leader:
            raise _Refused(503, "no leader")
        if request.requestHeaders.hasHeader(FORWARDED):
            raise _Refused(503, "not the leader (leader is %s)" % (formatID(leader),))
        urls = node.peerURLsOf(leader)
        if not urls:
            raise _Refused(503, "the leader %s has no known peer URL" % (formatID(leader),))
        if node.dialer.kinds.get(addressOf(urls[0])) == PLAIN:
            raise _Refused(503, "the leader %s is not a raftmux node" % (formatID(leader),))
        headers = Headers({FORWARDED: [b"1"], b"X-Server-From": [b"%x" % (node.id,)]})
        contentType = request.getHeader(b"content-type")
        if contentType:
            headers.setRawHeaders(b"content-type", [contentType])
        request.content.seek(0)
        body = request.content.read()
        node.metrics.forwarded.inc()
        d = node.agent.request(request.method, urls[0].encode("ascii") + request.uri, headers,
                               FileBodyProducer(io.BytesIO(body)) if body else None)
        d.addTimeout(node.config.requestTimeout, node.reactor)
        try:
            response = yield d
            # A value, or an error, plus room for the JSON around it.
            answer = yield readBody(response, node.config.maxValueBytes + 64 * 1024)
        except _UNREACHABLE as e:
            # The leader died or moved under us: a client should try again.
            raise _Refused(503, "the leader %s could not be reached: %s" % (
                formatID(leader), _describe(e))) from None
        if requestGone(request):
            return
        request.setResponseCode(response.code)
        for name in (b"content-type", b"x-raftmux-index"):
            value = response.headers.getRawHeaders(name)
            if value:
                request.setHeader(name, value[0])
        request.setHeader(b"content-length", b"%d" % (len(answer),))
        request.write(answer)
        request.finish()


# What a forward to a leader that is gone fails with (refused, reset, closed
# session, a response cut short).
_UNREACHABLE = (ConnectError, ConnectionLost, ConnectionDone, MuxadoError,
                ResponseNeverReceived, RequestTransmissionFailed, ResponseFailed, BodyTooLarge)


def _describe(error):
    """A short reason: the first wrapped failure's message for twisted.web's errors."""
    reasons = getattr(error, "reasons", None)
    if reasons:
        return reasons[0].getErrorMessage()
    return str(error) or type(error).__name__


class _Refused(Exception):
    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code
        self.message = message


class KVResource(_NodeResource):
    """
    ``/kv/<key>``: GET, PUT (body = value), DELETE.  ``PUT
    /kv/<key>?prevValue=<v>`` is compare-and-set (etcd v2's name): the
    state machine compares and writes in one applied entry, and a key that
    is absent or holds another value answers 412.
    """

    allowed = b"GET, PUT, DELETE"

    def _key(self, request):
        key = b"/".join(request.postpath)
        if not key:
            raise _Refused(400, "missing key: use /kv/<key>")
        if len(key) > 4096:
            raise _Refused(400, "key longer than 4096 bytes")
        return key

    def handle_GET(self, request):
        key = self._key(request)
        node = self.node
        if request.args.get(b"serializable", [b""])[0] in (b"true", b"1"):
            return self._answerRead(request, key)
        if node.driver is None or not node.driver.running:
            raise _Refused(503, "this member is not running raft")
        return node.driver.readIndex().addCallback(lambda _: self._answerRead(request, key))

    def _answerRead(self, request, key):
        node = self.node
        value = node.kv.get(key)
        if value is None:
            raise _Refused(404, "key not found")
        if request.channel is None:  # the client left
            return
        request.setHeader(b"content-type", b"application/octet-stream")
        applied = node.driver.applied if node.driver is not None else 0
        request.setHeader(b"x-raftmux-index", b"%d" % (applied,))
        request.setHeader(b"content-length", b"%d" % (len(value),))
        request.write(value)
        request.finish()

    def handle_PUT(self, request):
        key = self._key(request)
        content = request.content
        content.seek(0, 2)
        size = content.tell()
        if size > self.node.config.maxValueBytes:
            raise _Refused(413, "value of %d bytes is over the limit of %d" % (
                size, self.node.config.maxValueBytes))
        forwarded = self.writable(request)
        if forwarded is not None:
            return forwarded
        content.seek(0)
        prev = request.args.get(b"prevValue")
        if prev is not None:
            return self._propose(request, encodeCompareAndSet(key, prev[0], content.read()),
                                 "cas")
        return self._propose(request, encodePut(key, content.read()), "put")

    def handle_DELETE(self, request):
        key = self._key(request)
        forwarded = self.writable(request)
        if forwarded is not None:
            return forwarded
        return self._propose(request, encodeDelete(key), "delete")

    def _propose(self, request, command, what):
        def applied(result):
            entry, value = result
            request.setHeader(b"x-raftmux-index", b"%d" % (entry.Index,))
            answer = {"index": entry.Index}
            if what == "delete":
                answer["deleted"] = bool(value)
            if what == "cas" and not value:
                answer["error"] = "compare failed: the key is absent or holds another value"
                sendJSON(request, 412, answer)
                return
            sendJSON(request, 200, answer)
        return self.node.driver.proposeForResult(command).addCallback(applied)


class ClusterResource(_NodeResource):
    """
    ``/cluster/members``: GET lists, POST adds (``{"peerURLs": [...],
    "name": ..., "isLearner": false}``); ``/cluster/members/<id>``: DELETE
    removes; ``/cluster/members/<id>/promote``: POST makes a learner a voter.
    """

    allowed = b"GET, POST, DELETE"

    def _path(self, request):
        path = request.postpath
        if not path or path[0] != b"members" or len(path) > 3:
            raise _Refused(404, "not found: use /cluster/members")
        return path[1:]

    def listing(self):
        node = self.node
        return {
            "clusterID": formatID(node.clusterID), "memberID": formatID(node.id),
            "leader": formatID(node.leader),
            "members": [{"id": formatID(m.id), "name": m.name, "peerURLs": m.peerURLs,
                         "clientURLs": m.clientURLs, "isLearner": m.isLearner}
                        for m in (node.members.get(i) for i in node.members.ids())],
        }

    def handle_GET(self, request):
        if self._path(request):
            raise _Refused(404, "not found")
        sendJSON(request, 200, self.listing())

    def handle_POST(self, request):
        rest = self._path(request)
        if len(rest) == 2 and rest[1] == b"promote":
            id = self._memberID(rest[0])
            member = self.node.members.get(id)
            if not member.isLearner:
                raise _Refused(400, "member %s is not a learner" % (formatID(id),))
            cc = ConfChange(type=ConfChangeAddNode, node_id=id,
                            context=memberContext(id, member.peerURLs, member.name))
            return self._change(request, cc, lambda: not self.node.members.get(id).isLearner,
                                201)
        if rest:
            raise _Refused(404, "not found")
        request.content.seek(0)
        try:
            body = json.loads(request.content.read(65536) or b"{}")
            urls = parseURLs(",".join(body["peerURLs"]), "peerURLs")
            name = str(body.get("name", ""))
            learner = bool(body.get("isLearner", False))
        except (ValueError, KeyError, TypeError, AttributeError, ConfigError) as e:
            raise _Refused(400, "expected {\"peerURLs\": [...], \"name\": ...}: %s" % (e,)) \
                from None
        if self.node.members.findByPeerURLs(urls) is not None:
            raise _Refused(409, "a member with peer URLs %s exists" % (",".join(urls),))
        id = memberID(urls, self.node.config.token, int(time.time()))
        cc = ConfChange(type=ConfChangeAddLearnerNode if learner else ConfChangeAddNode,
                        node_id=id, context=memberContext(id, urls, name))
        return self._change(request, cc, lambda: id in self.node.members, 201)

    def handle_DELETE(self, request):
        rest = self._path(request)
        if len(rest) != 1:
            raise _Refused(404, "use DELETE /cluster/members/<id>")
        id = self._memberID(rest[0])
        cc = ConfChange(type=ConfChangeRemoveNode, node_id=id)
        return self._change(request, cc, lambda: id not in self.node.members, 200)

    def _memberID(self, text):
        id = parseID(text)
        if not id or id not in self.node.members:
            raise _Refused(404, "no member %s" % (text.decode("ascii", "replace"),))
        return id

    def _change(self, request, cc, done, code):
        forwarded = self.writable(request)
        if forwarded is not None:
            return forwarded

        def applied(entry):
            if entry.Type != EntryConfChange or not done():
                raise _Refused(409, "another membership change is in progress; retry")
            answer = self.listing()
            answer["changed"] = formatID(cc.node_id)
            answer["initialCluster"] = ",".join(
                "%s=%s" % (m.name or formatID(m.id), u)
                for m in self.node.members.members.values() for u in m.peerURLs)
            sendJSON(request, code, answer)
        return self.node.driver.proposeConfChange(cc).addCallback(applied)


class HealthResource(_NodeResource):
    """``/health``: 200 ``{"health":"true"}`` with a leader, else 503."""

    allowed = b"GET"

    def handle_GET(self, request):
        node = self.node
        reason = ""
        if node.removed:
            reason = "removed from the cluster"
        elif node.driver is None or not node.driver.running:
            reason = "raft is not running"
        elif not node.leader:
            reason = "no leader"
        sendJSON(request, 503 if reason else 200,
                 {"health": "false" if reason else "true", "reason": reason})
