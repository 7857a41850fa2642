# -*- test-case-name: raftmux.test.test_rafthttp_client -*-
"""
Snapshots over ``POST /raft/snapshot`` (spec 1.8, 3.3, 4): the sender, a
streaming request body (the MsgSnap head, then the database file), and the
receiving side's saving of the database to ``<dir>/<index %016x>.snap.db``.
"""

import os
import tempfile

from twisted.logger import Logger
from twisted.web.client import FileBodyProducer
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from raftmux.httpbody import readBody
from raftmux.rafthttp.headers import ERROR_BODY_LIMIT, requestHeaders
from raftmux.rafthttp.interfaces import SNAPSHOT_FAILURE, SNAPSHOT_FINISH
from raftmux.rafthttp.snapshot_codec import (
    SnapshotBodyDecoder,
    SnapshotData,
    SnapshotMessage,
    encodeSnapshotHead,
)

__all__ = ["SnapshotSender", "SnapshotBodyProducer", "receiveSnapshot", "snapshotPath"]

# snapResponseReadTimeout
RESPONSE_READ_TIMEOUT = 5.0
_READ_SIZE = 65536


@implementer(IBodyProducer)
class SnapshotBodyProducer:
    """
    The body of ``POST /raft/snapshot``: the length-prefixed MsgSnap, then
    ``databaseFile`` read in 64 KiB pieces through a ``FileBodyProducer``
    (so back-pressure holds and the database is never in memory whole).
    """

    def __init__(self, message, databaseFile, cooperator):
        self.head = encodeSnapshotHead(message)
        self._file = FileBodyProducer(databaseFile, cooperator, _READ_SIZE)
        if self._file.length is UNKNOWN_LENGTH:
            self.length = UNKNOWN_LENGTH
        else:
            self.length = len(self.head) + self._file.length

    def startProducing(self, consumer):
        consumer.write(self.head)
        return self._file.startProducing(consumer)

    def pauseProducing(self):
        self._file.pauseProducing()

    def resumeProducing(self):
        self._file.resumeProducing()

    def stopProducing(self):
        self._file.stopProducing()


class SnapshotSender:
    """
    etcd's ``snapshotSender`` for one peer: each ``send`` is its own POST.
    The Deferred fires True (204) or False; raft hears ``reportSnapshot``
    either way, and ``reportUnreachable`` on failure.
    """

    log = Logger()

    def __init__(self, peer):
        self.peer = peer
        self._inFlight = set()

    def send(self, message, databaseFile):
        peer = self.peer
        transport = peer.transport
        url = peer.picker.pick()
        headers = requestHeaders(transport.id, transport.clusterID, transport.urls)
        headers[b"Content-Type"] = [b"application/octet-stream"]
        body = SnapshotBodyProducer(message, databaseFile, transport.cooperator)
        d = transport.agent.request(b"POST", (url + "/raft/snapshot").encode(),
                                    Headers(headers), body)

        def gotResponse(response):
            read = readBody(response, ERROR_BODY_LIMIT)
            read.addTimeout(RESPONSE_READ_TIMEOUT, transport.reactor)
            return read.addCallback(lambda text: (response.code, text))

        d.addCallback(gotResponse)
        d.addCallbacks(self._done, self._failed, callbackArgs=(message, url),
                       errbackArgs=(message, url))
        self._inFlight.add(d)
        d.addBoth(self._forget, d)
        return d

    def _forget(self, result, d):
        self._inFlight.discard(d)
        return result

    def _done(self, result, message, url):
        code, text = result
        if code == 204:
            self.peer.status.activate()
            self.peer.metrics.snapshotSendSuccess.inc()
            self.peer.transport.raft.reportSnapshot(message.to, SNAPSHOT_FINISH)
            self.log.info("sent database snapshot to {peer:x} (index {index})",
                          peer=message.to, index=message.snapshot.metadata.index)
            return True
        if code == 403:
            self.peer.transport.noticeRemoved(self.peer.id)
        return self._fail(message, url, "status %d %s" % (code, text[:200]))

    def _failed(self, failure, message, url):
        return self._fail(message, url, failure.getErrorMessage())

    def _fail(self, message, url, reason):
        peer = self.peer
        self.log.warn("failed to send database snapshot to {peer:x}: {reason}",
                      peer=peer.id, reason=reason)
        peer.picker.unreachable(url)
        peer.status.deactivate("failed to send snapshot (%s)" % (reason,))
        peer.metrics.snapshotSendFailures.inc()
        peer.transport.raft.reportUnreachable(message.to)
        peer.transport.raft.reportSnapshot(message.to, SNAPSHOT_FAILURE)
        return False

    def stop(self):
        for d in list(self._inFlight):
            d.cancel()


def snapshotPath(directory, index):
    """Where etcd keeps the database of the snapshot at ``index``."""
    return os.path.join(directory, "%016x.snap.db" % (index,))


def receiveSnapshot(content, directory, maxMessageSize):
    """
    Decode a snapshot body from the file object ``content`` (twisted.web's
    buffered request body), a piece at a time.  The database goes to a
    temporary file in ``directory``, is fsynced and renamed to
    ``snapshotPath`` (an existing file of that name is kept, as etcd does);
    with ``directory=None`` it is counted and dropped.  Returns
    ``(message, path or None, databaseSize)``; raises the decoder's
    ``CodecError`` or an ``OSError``, leaving no file behind.
    """
    decoder = SnapshotBodyDecoder(maxMessageSize)
    out = None
    try:
        message = None
        while True:
            data = content.read(_READ_SIZE)
            if not data:
                break
            for event in decoder.receiveData(data):
                if isinstance(event, SnapshotMessage):
                    message = event.message
                    if directory is not None:
                        out = tempfile.NamedTemporaryFile(
                            dir=directory, prefix="snapshot", suffix=".tmp", delete=False)
                elif isinstance(event, SnapshotData) and out is not None:
                    out.write(event.data)
        size = decoder.endOfBody()
        if out is None:
            return message, None, size
        out.flush()
        os.fsync(out.fileno())
        out.close()
        path = snapshotPath(directory, message.snapshot.metadata.index)  # type: ignore[union-attr]
        if os.path.exists(path):
            os.unlink(out.name)
        else:
            os.rename(out.name, path)
        out = None
        return message, path, size
    finally:
        if out is not None:
            out.close()
            try:
                os.unlink(out.name)
            except OSError:
                pass
