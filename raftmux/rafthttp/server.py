# -*- test-case-name: raftmux.test.test_rafthttp_server -*-
"""
The server side of rafthttp as twisted.web Resources (spec 1.2-1.9):

* ``POST /raft``: one Message per request (the pipeline);
* ``GET /raft/stream/{message,msgapp}/<fromID>``: a long-lived chunked
  response handed to that peer's stream writer;
* ``POST /raft/snapshot``: a MsgSnap and a database;
* ``/raft/probing``: the prober's clock and liveness answer.

Checks run in etcd's order with etcd's status codes and bodies, and error
replies look like Go's ``http.Error``.  The Resources call back into their
``Transport`` (IDs, the raft, peers, the snapshot directory).
"""

import json
import time
from typing import Any

from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from raftmux.rafthttp.codec import CodecError
from raftmux.rafthttp.headers import (
    SERVER_VERSION,
    MalformedVersion,
    checkVersionCompatibility,
)
from raftmux.rafthttp.ids import parseID
from raftmux.rafthttp.snapshot import receiveSnapshot
from raftmux.rafthttp.snapshot_codec import WrongMessageType
from raftmux.raftpb import DecodeError, Message, MsgSnap

__all__ = ["RootResource", "RaftResource", "StreamResource", "SnapshotResource",
           "ProbingResource", "NotFound", "httpError", "formatRFC3339"]

log = Logger()

_SERVER_VERSION = SERVER_VERSION.encode()


def httpError(request, code, message):
    """Go's ``http.Error``: a text/plain body, the message and a newline."""
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    return message.encode() + b"\n"


def _methodNotAllowed(request, allow):
    request.setHeader(b"Allow", allow)
    return httpError(request, 405, "Method Not Allowed")


def _finishError(request, code, message):
    """``httpError`` for a response that is already NOT_DONE_YET."""
    body = httpError(request, code, message)
    request.setHeader(b"Content-Length", b"%d" % (len(body),))
    request.write(body)
    request.finish()


class NotFound(Resource):
    """Go's ``404 page not found``, for any path below it too."""

    isLeaf = True

    def render(self, request):
        return httpError(request, 404, "404 page not found")


_NOT_FOUND = NotFound()


def _checkCompatibility(transport, request):
    """
    etcd's ``checkClusterCompatibilityFromHeader`` (spec 1.5): None when
    the request may go on, else what ``render`` must return.  A version
    that does not parse made etcd panic and drop the connection; we drop it
    too, with a log line.
    """
    try:
        compatible = checkVersionCompatibility(
            request.getHeader(b"X-Server-Version"), request.getHeader(b"X-Min-Cluster-Version"))
    except MalformedVersion as e:
        log.warn("dropping a rafthttp request from {peer}: {error}",
                 peer=request.getClientAddress(), error=e)
        request.loseConnection()
        return NOT_DONE_YET
    if not compatible:
        log.warn("request version incompatibility from {peer}: {version}",
                 peer=request.getHeader(b"X-Server-From"),
                 version=request.getHeader(b"X-Server-Version"))
        return httpError(request, 412, "incompatible version")
    if request.getHeader(b"X-Etcd-Cluster-ID") != transport.clusterIDText:
        log.warn("request cluster ID mismatch from {peer}: {cid}",
                 peer=request.getHeader(b"X-Server-From"),
                 cid=request.getHeader(b"X-Etcd-Cluster-ID"))
        return httpError(request, 412, "cluster ID mismatch")
    return None


def _addRemoteFromHeaders(transport, request):
    """
    The sender's ``X-Server-From`` and ``X-PeerURLs`` make it a remote, if
    it proved a peer identity (``Transport.authenticate``): an anonymous
    request never makes this member dial an address it names.
    """
    sender = parseID(request.getHeader(b"X-Server-From") or b"")
    urls = request.getHeader(b"X-PeerURLs")
    if sender is not None and urls and transport.peer(sender) is None \
            and transport.remote(sender) is None:
        if not transport.authenticate(request):
            log.debug("not adding {peer:x} as a remote: the request proved no peer identity",
                      peer=sender)
            return
        try:
            transport.addRemote(sender, urls.decode("latin-1").split(","))
        except ValueError as e:
            log.warn("ignoring bad X-PeerURLs from {peer:x}: {error}", peer=sender, error=e)


class RootResource(Resource):
    """``/``: only ``raft`` (and what the node puts beside it) exists."""

    def __init__(self, transport):
        Resource.__init__(self)
        self.putChild(b"raft", RaftResource(transport))

    def getChild(self, name, request):
        return _NOT_FOUND

    def render(self, request):
        return _NOT_FOUND.render(request)


class RaftResource(Resource):
    """``/raft``: the pipeline handler, with the other handlers below it."""

    def __init__(self, transport):
        Resource.__init__(self)
        self.transport = transport
        self.putChild(b"stream", StreamResource(transport))
        self.putChild(b"snapshot", SnapshotResource(transport))
        self.putChild(b"probing", ProbingResource(transport))

    def getChild(self, name, request):
        return _NOT_FOUND

    def render(self, request):
        transport = self.transport
        if request.method != b"POST":
            return _methodNotAllowed(request, b"POST")
        request.setHeader(b"X-Etcd-Cluster-ID", transport.clusterIDText)
        refused = _checkCompatibility(transport, request)
        if refused is not None:
            return refused
        _addRemoteFromHeaders(transport, request)
        body = request.content.read()
        try:
            message = Message.FromString(body)
        except DecodeError as e:
            log.warn("failed to unmarshal raft message: {error}", error=e)
            transport.reportReceiveFailure(request.getHeader(b"X-Server-From"))
            return httpError(request, 400, "error unmarshalling raft message")
        transport.reportReceived(getattr(message, "from"), len(body))
        d = maybeDeferred(transport.raft.process, message)
        if d.called:
            # The usual case: raft took the step at once.
            result: list[Any] = []
            d.addBoth(result.append)
            if isinstance(result[0], Failure):
                return self._failed(result[0], request, message, finish=False)
            request.setResponseCode(204)
            return b""
        gone: list[Any] = []
        request.notifyFinish().addErrback(gone.append)
        d.addCallbacks(self._processed, self._failed, callbackArgs=(request, gone),
                       errbackArgs=(request, message, True, gone))
        return NOT_DONE_YET

    def _processed(self, _, request, gone):
        if not gone:
            request.setResponseCode(204)
            request.finish()

    def _failed(self, failure, request, message, finish=True, gone=()):
        log.warn("failed to process raft message (type {type} from {peer:x}): {error}",
                 type=message.type, peer=getattr(message, "from"),
                 error=failure.getErrorMessage())
        if gone:
            return None
        # etcd writes the 500, flushes and panics, which cuts the
        # connection: the client must not count on reusing it.
        request.setHeader(b"Connection", b"close")
        body = httpError(request, 500, "error processing raft message")
        if not finish:
            return body
        request.setHeader(b"Content-Length", b"%d" % (len(body),))
        request.write(body)
        request.finish()
        return None


class StreamResource(Resource):
    """``/raft/stream/<type>/<fromID>`` (spec 1.7), everything below it."""

    isLeaf = True
    _KINDS = {b"message": "message", b"msgapp": "msgapp"}

    def __init__(self, transport):
        Resource.__init__(self)
        self.transport = transport

    def render(self, request):
        transport = self.transport
        if request.method != b"GET":
            return _methodNotAllowed(request, b"GET")
        request.setHeader(b"X-Server-Version", _SERVER_VERSION)
        request.setHeader(b"X-Etcd-Cluster-ID", transport.clusterIDText)
        refused = _checkCompatibility(transport, request)
        if refused is not None:
            return refused
        postpath = request.postpath
        if len(postpath) != 2 or postpath[0] not in self._KINDS:
            return httpError(request, 404, "invalid path")
        kind = self._KINDS[postpath[0]]
        sender = parseID(postpath[1])
        if sender is None:
            return httpError(request, 404, "invalid from")
        if transport.raft.isIDRemoved(sender):
            log.warn("rejected stream from removed member {peer:x}", peer=sender)
            return httpError(request, 410, "removed member")
        peer = transport.peer(sender)
        if peer is None:
            _addRemoteFromHeaders(transport, request)
            log.warn("failed to find member {peer:x} in cluster {cid}",
                     peer=sender, cid=transport.clusterIDText)
            return httpError(request, 404, "error sender not found")
        if request.getHeader(b"X-Raft-To") != transport.idText:
            log.warn("ignored streaming request; ID mismatch: {to}",
                     to=request.getHeader(b"X-Raft-To"))
            return httpError(request, 412, "to field mismatch")
        peer.writers[kind].attach(request)
        return NOT_DONE_YET


class SnapshotResource(Resource):
    """``POST /raft/snapshot`` (spec 1.8)."""

    isLeaf = True

    def __init__(self, transport):
        Resource.__init__(self)
        self.transport = transport

    def render(self, request):
        transport = self.transport
        if request.postpath:
            return _NOT_FOUND.render(request)
        if request.method != b"POST":
            return _methodNotAllowed(request, b"POST")
        request.setHeader(b"X-Etcd-Cluster-ID", transport.clusterIDText)
        refused = _checkCompatibility(transport, request)
        if refused is not None:
            return refused
        _addRemoteFromHeaders(transport, request)
        sender = request.getHeader(b"X-Server-From")
        try:
            message, path, size = receiveSnapshot(
                request.content, transport.snapshotDir, transport.maxMessageSize)
        except WrongMessageType as e:
            log.warn("unexpected raft message type on snapshot path: {error}", error=e)
            transport.reportReceiveFailure(sender)
            return httpError(request, 400, "wrong raft message type")
        except CodecError as e:
            log.warn("failed to decode raft message: {error}", error=e)
            transport.reportReceiveFailure(sender)
            return httpError(request, 400, "failed to decode raft message (%s)" % (e,))
        except OSError as e:
            log.error("failed to save KV snapshot: {error}", error=e)
            transport.reportReceiveFailure(sender)
            return httpError(request, 500, "failed to save KV snapshot (%s)" % (e,))
        assert message.type == MsgSnap
        peerID = getattr(message, "from")
        transport.reportReceived(peerID, size)
        log.info("received and saved database snapshot from {peer:x} (index {index}, "
                 "{size} bytes) at {path}", peer=peerID,
                 index=message.snapshot.metadata.index, size=size, path=path)
        gone: list[Any] = []
        request.notifyFinish().addErrback(gone.append)
        d = maybeDeferred(transport.raft.process, message)

        def done(_):
            transport.metrics.snapshotReceiveSuccess.labels("%x" % (peerID,)).inc()
            if not gone:
                request.setResponseCode(204)
                request.finish()

        def failed(failure):
            transport.metrics.snapshotReceiveFailures.labels("%x" % (peerID,)).inc()
            log.warn("failed to process raft message (snapshot): {error}",
                     error=failure.getErrorMessage())
            if not gone:
                _finishError(request, 500, "failed to process raft message (%s)"
                             % (failure.getErrorMessage(),))

        d.addCallbacks(done, failed)
        return NOT_DONE_YET


def formatRFC3339(seconds):
    """Go's ``time.Time`` JSON form in UTC, with nanoseconds."""
    whole = int(seconds)
    nanos = int(round((seconds - whole) * 1e9))
    if nanos >= 1000000000:
        whole, nanos = whole + 1, nanos - 1000000000
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    if nanos:
        text += ("." + "%09d" % (nanos,)).rstrip("0")
    return text + "Z"


class ProbingResource(Resource):
    """``/raft/probing``: any method, 200 and ``{"OK":true,"Now":...}``."""

    isLeaf = True

    def __init__(self, transport):
        Resource.__init__(self)
        self.transport = transport

    def render(self, request):
        if request.postpath:
            return _NOT_FOUND.render(request)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        now = formatRFC3339(self.transport.reactor.seconds())
        return json.dumps({"OK": True, "Now": now}, separators=(",", ":")).encode() + b"\n"
