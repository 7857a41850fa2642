# -*- test-case-name: raftmux.test.test_etcd_services -*-
"""
etcd's Maintenance service (``etcdserver/api/v3rpc/maintenance.go``).

* Status: the node's raft status, ``version`` the etcd release raftmux
  presents as, "etcdserver: no leader" in ``errors`` when none is known.
* Hash: etcd hashes its whole bolt file, which raftmux does not have; the
  answer is the CRC-32C of the key space's snapshot, so it changes when
  the state changes and two members with the same state agree, but it
  never equals etcd's.  HashKV is etcd's exact number (the key space
  computes etcd's ``HashByRev``).
* Snapshot: a stream of 32 KiB chunks with ``remaining_bytes``, then one
  more message whose blob is the SHA-256 of everything sent, as etcd does.
  The bytes are L{snapshotFile}: the key space's own snapshot, padded so
  that ``etcdctl snapshot save`` (which checks that the file length is a
  multiple of 512 plus the 32-byte digest) accepts the file.  It is not a
  bolt database: ``etcdctl snapshot status`` and ``snapshot restore``
  cannot read it; L{readSnapshotFile} can.
* Alarm: no alarms are ever raised; GET and DEACTIVATE answer an empty
  list (etcd's alarm answers carry no header), ACTIVATE is refused.
* Defragment: answered (nothing to do), with no header as etcd's.
* MoveLeader: on the leader only (``ErrNotLeader`` elsewhere), by the node.
"""

import hashlib
import struct

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from raftmux.etcd.deferred import deferredMethod
from raftmux.etcd.guard import refuse
from raftmux.etcd.interfaces import SERVER_VERSION, IStreamHandler
from raftmux.etcdpb import rpc_pb2
from raftmux.mvcc import hashing
from raftmux.mvcc.errors import Code, ErrNoLeader, ErrNotLeader, EtcdError

__all__ = [
    "MaintenanceService", "SnapshotStream", "snapshotFile", "readSnapshotFile",
    "SnapshotFileError", "CHUNK_SIZE", "ErrAlarmNotSupported",
]

#: etcd's snapshotSendBufferSize.
CHUNK_SIZE = 32 * 1024
_ALIGN = 512
_TRAILER = struct.Struct(">Q")
_SHA = 32


class ErrAlarmNotSupported(EtcdError):
    """UNIMPLEMENTED: raftmux raises no alarms and records none."""

    code = Code.UNIMPLEMENTED
    message = "raftmux: alarms are not supported"


class SnapshotFileError(ValueError):
    """Bytes that are not a snapshot file this module wrote."""


def snapshotFile(snapshot):
    """
    What the Snapshot stream sends before the digest: ``snapshot`` (the key
    space's bytes), zeros, and the snapshot's length (u64, big-endian),
    the whole a multiple of 512 bytes.
    """
    pad = -(len(snapshot) + _TRAILER.size) % _ALIGN
    return snapshot + b"\x00" * pad + _TRAILER.pack(len(snapshot))


def readSnapshotFile(data):
    """
    The key space snapshot inside a file ``etcdctl snapshot save`` wrote
    from raftmux (digest checked), for ``KeySpace.restore``.
    """
    data = bytes(data)
    if len(data) < _SHA + _TRAILER.size or (len(data) - _SHA) % _ALIGN:
        raise SnapshotFileError("not a raftmux snapshot file (bad length %d)" % (len(data),))
    body, digest = data[:-_SHA], data[-_SHA:]
    if hashlib.sha256(body).digest() != digest:
        raise SnapshotFileError("snapshot file digest mismatch")
    (length,) = _TRAILER.unpack(body[-_TRAILER.size:])
    if length > len(body) - _TRAILER.size or any(body[length:-_TRAILER.size]):
        raise SnapshotFileError("snapshot file trailer is damaged")
    return body[:length]


class MaintenanceService:
    """``etcdserverpb.Maintenance``."""

    def __init__(self, node, headers, guard):
        self._node = node
        self._headers = headers
        self._guard = guard

    @deferredMethod
    def Alarm(self, request):
        self._guard.check(request)
        if request.action == rpc_pb2.AlarmRequest.ACTIVATE:
            raise ErrAlarmNotSupported()
        return rpc_pb2.AlarmResponse()

    @deferredMethod
    def Status(self, request):
        self._guard.check(request)
        s = self._node.status()
        response = rpc_pb2.StatusResponse(
            header=self._headers.make(), version=SERVER_VERSION, dbSize=s.dbSize,
            leader=s.leader, raftIndex=s.raftIndex, raftTerm=s.raftTerm,
            raftAppliedIndex=s.raftAppliedIndex, dbSizeInUse=s.dbSizeInUse,
            isLearner=s.isLearner)
        if not s.leader:
            response.errors.append(ErrNoLeader.message)
        return response

    @deferredMethod
    def Defragment(self, request):
        self._guard.check(request)
        return rpc_pb2.DefragmentResponse()

    @deferredMethod
    def Hash(self, request):
        self._guard.check(request)
        ks = self._node.keySpace
        revision = ks.revision
        response = rpc_pb2.HashResponse(hash=hashing.crc32c(ks.snapshot()))
        response.header.revision = revision
        self._headers.fill(response.header)
        return response

    @deferredMethod
    def HashKV(self, request):
        self._guard.check(request)
        response = self._node.keySpace.hashKV(request.revision)
        self._headers.fill(response.header)
        return response

    @deferredMethod
    async def MoveLeader(self, request):
        self._guard.check(request)
        node = self._node
        if node.leader() != node.memberID:
            raise ErrNotLeader()
        await node.moveLeader(request.targetID)
        return rpc_pb2.MoveLeaderResponse()

    def Snapshot(self, request, responder):
        """The Snapshot stream: a L{SnapshotStream} already sending."""
        error = self._guard.streamError()
        if error is not None:
            return refuse(responder, error)
        data = snapshotFile(self._node.keySpace.snapshot())
        return SnapshotStream(data, responder)


@implementer(IStreamHandler, IPushProducer)
class SnapshotStream:
    """Sends ``data`` in etcd's chunks, paced by the responder."""

    log = Logger()

    def __init__(self, data, responder):
        self._data = data
        self._responder = responder
        self._sent = 0
        self._sha = hashlib.sha256()
        self._paused = False
        self._done = False
        responder.registerProducer(self, True)
        self._pump()

    def receive(self, request):
        pass

    def requestsDone(self):
        pass

    def cancel(self):
        self._stop()

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        self._pump()

    def stopProducing(self):
        self._stop()

    def _stop(self):
        if not self._done:
            self._done = True
            self._responder.unregisterProducer()

    def _pump(self):
        data, total = self._data, len(self._data)
        while not (self._paused or self._done):
            if self._sent < total:
                chunk = data[self._sent:self._sent + CHUNK_SIZE]
                self._sent += len(chunk)
                self._sha.update(chunk)
                self._responder.sendMessage(rpc_pb2.SnapshotResponse(
                    remaining_bytes=total - self._sent, blob=chunk))
                continue
            self._responder.sendMessage(rpc_pb2.SnapshotResponse(blob=self._sha.digest()))
            self._stop()
            self._responder.finish()
