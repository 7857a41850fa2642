# -*- test-case-name: raftmux.test.test_rafthttp_client -*-
"""
The pipeline (spec 4): one Message per ``POST /raft``, at most 4 in flight
and 64 waiting; the 69th message is refused (the caller drops it and tells
raft the peer is unreachable).
"""

from collections import deque
from typing import Any

from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.web.http_headers import Headers

from raftmux.httpbody import BytesProducer, readBody
from raftmux.rafthttp.headers import ERROR_BODY_LIMIT, requestHeaders
from raftmux.rafthttp.interfaces import SNAPSHOT_FAILURE, SNAPSHOT_FINISH
from raftmux.raftpb import MsgSnap, encode

__all__ = ["Pipeline", "CONN_PER_PIPELINE", "PIPELINE_BUF_SIZE"]

CONN_PER_PIPELINE = 4
PIPELINE_BUF_SIZE = 64


class Pipeline:
    """POSTs one peer's (or remote's) messages to ``<url>/raft``."""

    log = Logger()

    def __init__(self, peer, connections=CONN_PER_PIPELINE, bufferSize=PIPELINE_BUF_SIZE):
        self.peer = peer
        self.connections = connections
        self.bufferSize = bufferSize
        self._queue: deque[Any] = deque()
        self._inFlight = set()
        self._stopped = False
        transport = peer.transport
        headers = requestHeaders(transport.id, transport.clusterID, transport.urls)
        headers[b"Content-Type"] = [b"application/protobuf"]
        self._headers = headers

    @property
    def pending(self):
        """Messages in flight plus those waiting (at most 4 + 64)."""
        return len(self._inFlight) + len(self._queue)

    def send(self, message):
        """Queue ``message``; False when 4 are in flight and 64 waiting."""
        if self._stopped:
            return False
        if len(self._inFlight) < self.connections:
            self._post(message)
            return True
        if len(self._queue) >= self.bufferSize:
            return False
        self._queue.append(message)
        return True

    def _post(self, message):
        peer = self.peer
        url = peer.picker.pick()
        body = encode(message)
        d = peer.transport.agent.request(b"POST", (url + "/raft").encode(),
                                         Headers(self._headers), BytesProducer(body))
        self._inFlight.add(d)
        d.addCallback(self._response)
        d.addCallbacks(self._done, self._failed, callbackArgs=(message, url, len(body)),
                       errbackArgs=(message, url))
        d.addErrback(lambda f: self.log.failure("pipeline bug", f))
        d.addBoth(self._next, d)

    def _response(self, response):
        if response.code == 204:
            return 204, b""
        return readBody(response, ERROR_BODY_LIMIT).addCallback(lambda text: (response.code, text))

    def _done(self, result, message, url, size):
        code, text = result
        peer = self.peer
        if code == 204:
            peer.status.activate()
            peer.metrics.sentBytes.inc(size)
            if message.type == MsgSnap:
                peer.transport.raft.reportSnapshot(message.to, SNAPSHOT_FINISH)
            return
        if code == 403:
            peer.transport.noticeRemoved(peer.id)
        reason = "status %d" % (code,)
        if code == 412:
            reason = text.decode("latin-1").rstrip("\n")
        self._error(message, url, reason)

    def _failed(self, failure, message, url):
        if self._stopped and failure.check(CancelledError):
            return
        self._error(message, url, failure.getErrorMessage())

    def _error(self, message, url, reason):
        peer = self.peer
        self.log.warn("failed to post message type {type} to {peer:x} on pipeline: {reason}",
                      type=message.type, peer=peer.id, reason=reason)
        peer.picker.unreachable(url)
        peer.status.deactivate("failed to write message on pipeline (%s)" % (reason,))
        peer.metrics.sentFailures.inc()
        peer.transport.raft.reportUnreachable(message.to)
        if message.type == MsgSnap:
            peer.transport.raft.reportSnapshot(message.to, SNAPSHOT_FAILURE)

    def _next(self, _, d):
        self._inFlight.discard(d)
        if self._queue and not self._stopped:
            self._post(self._queue.popleft())

    def stop(self):
        """Cancel what is in flight; drop what waits."""
        self._stopped = True
        self._queue.clear()
        for d in list(self._inFlight):
            d.cancel()
