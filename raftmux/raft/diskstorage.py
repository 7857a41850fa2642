# -*- test-case-name: raftmux.test.test_raft_storage -*-
"""
``DiskStorage``: an ``IStorage`` that survives a crash, in one directory.

It keeps the same state as ``MemoryStorage`` (etcd's semantics: a dummy
entry at the compaction point, ``firstIndex() == dummy index + 1``) and logs
every change to a ``SegmentedLog`` (``raftmux.raft.wal``) before making it,
so reopening the directory rebuilds exactly that state.  The snapshot
itself (with its data) lives in ``<term>-<index>.snap`` files; the log
records which one is current.

Durability: with ``fsync=True`` (the default) ``append``, ``setHardState``
and ``save`` return only after their record is on disk, so the driver may
send or acknowledge as soon as they return.  With ``fsync=False`` they only
write, and the driver must call ``sync()`` before it sends or acknowledges
anything they cover (one fsync for a whole Ready).  ``applySnapshot``,
``createSnapshot`` and ``compact`` always sync, because they delete files
the older state needs.

Not thread-safe; the driver calls it from one thread at a time.
"""

from __future__ import annotations

import os
import statistics
import struct
import time
import zlib
from collections.abc import Sequence
from typing import Any

from zope.interface import implementer

from raftmux.raft import wal
from raftmux.raft.errors import (
    CompactedError,
    CorruptLogError,
    SnapshotOutOfDateError,
    UnavailableError,
)
from raftmux.raft.interfaces import IStagedStorage
from raftmux.raftpb import ConfState, Entry, HardState, Snapshot, SnapshotMetadata, encode

_SNAP_MAGIC = b"rmsnap1\n"
_SNAP_HEADER = struct.Struct("<8sI")
_SNAP_SUFFIX = ".snap"
_TMP_SUFFIX = ".tmp"


def snapshotName(term, index):
    """etcd's snapshot file name: ``<term:016x>-<index:016x>.snap``."""
    return "%016x-%016x%s" % (term, index, _SNAP_SUFFIX)


def writeSnapshotFile(directory, snapshot):
    """
    Write ``snapshot`` durably: a temporary file, fsync, rename, fsync of
    the directory.  A crash leaves either no file or the whole file.
    """
    body = encode(snapshot)
    data = _SNAP_HEADER.pack(_SNAP_MAGIC, zlib.crc32(body)) + body
    meta = snapshot.metadata
    path = os.path.join(directory, snapshotName(meta.term, meta.index))
    temporary = path + _TMP_SUFFIX
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        wal.writeAll(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temporary, path)
    wal.fsyncDirectory(directory)
    return path


def readSnapshotFile(path):
    """The ``Snapshot`` in ``path``; ``CorruptLogError`` if missing or damaged."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise CorruptLogError("snapshot file %s is missing" % (path,))
    if len(data) < _SNAP_HEADER.size:
        raise CorruptLogError("snapshot file %s is short" % (path,))
    magic, crc = _SNAP_HEADER.unpack_from(data)
    body = data[_SNAP_HEADER.size:]
    if magic != _SNAP_MAGIC or zlib.crc32(body) != crc:
        raise CorruptLogError("snapshot file %s fails its check" % (path,))
    return wal.parseMessage(Snapshot, body)


def limitSize(entries, sizes, maxSize):
    """
    etcd's ``limitSize``: the longest prefix whose encoded sizes fit
    ``maxSize``, but at least one entry.  ``None``: no limit.
    """
    if maxSize is None or len(entries) <= 1:
        return entries
    total = sizes[0]
    for limit in range(1, len(entries)):
        total += sizes[limit]
        if total > maxSize:
            return entries[:limit]
    return entries


def _copy(cls, message):
    copy = cls()
    copy.CopyFrom(message)
    return copy


class _PendingSave:
    __slots__ = ("prepared", "records", "hardState", "sync", "seq")

    def __init__(self, prepared, records, hardState, sync):
        self.prepared = prepared
        self.records = records
        self.hardState = hardState
        self.sync = sync
        self.seq = None


@implementer(IStagedStorage)
class DiskStorage:
    """
    Raft's log, HardState and latest snapshot in ``directory`` (created if
    missing).  Opening replays the log; a damaged record before its torn
    tail raises ``CorruptLogError`` so the node refuses to start.

    ``segmentSize``: a new log segment is started once the current one
    holds this many bytes; whole segments are deleted once compaction or a
    snapshot leaves nothing in them that a restart needs.  ``onSync(seconds)``
    hears the duration of every fdatasync of the log.
    """

    def __init__(self, directory, segmentSize=64 << 20, fsync=True, onSync=None):
        self.directory = directory
        self.fsync = fsync
        if not os.path.isdir(directory):
            os.makedirs(directory)
            wal.fsyncDirectory(os.path.dirname(os.path.abspath(directory)))
        self._log = wal.SegmentedLog(directory, self._checkpoint, segmentSize, onSync=onSync)
        try:
            self._load(self._log.open())
            self._removeSegments()
        except BaseException:
            self._log.close()
            raise

    # -- restart ---------------------------------------------------------------

    def _load(self, segments):
        hardState, meta, offset = HardState(), SnapshotMetadata(), (0, 0)
        # index -> (entry, size, seq); all above offset, below high + 1, and
        # with a gap at the start until compaction passes the deleted segments.
        byIndex: dict[Any, Any] = {}
        high = 0
        for n, segment in enumerate(segments):
            checkpoint = wal.decodeCheckpoint(segment.checkpoint)
            if n == 0:
                hardState, meta, offset = checkpoint[0], checkpoint[1], checkpoint[2:]
                high = offset[0]
            elif (encode(checkpoint[0]), encode(checkpoint[1]), checkpoint[2:]) != \
                    (encode(hardState), encode(meta), offset):
                raise CorruptLogError("segment %d's checkpoint disagrees with the log"
                                      % (segment.seq,))
            for kind, payload in segment.records:
                if kind == wal.ENTRIES:
                    decoded = wal.decodeEntries(payload)
                    first = decoded[0][0].Index if decoded else 0
                    if first <= offset[0] or any(
                            e.Index != first + k for k, (e, _) in enumerate(decoded)):
                        raise CorruptLogError("bad entry indexes in segment %d"
                                              % (segment.seq,))
                    _dropIndexes(byIndex, first, high)
                    for entry, data in decoded:
                        byIndex[entry.Index] = (entry, len(data), segment.seq)
                    high = decoded[-1][0].Index if decoded else high
                elif kind == wal.HARDSTATE:
                    hardState = wal.decodeHardState(payload)
                elif kind == wal.SNAPSHOT_CREATED:
                    meta = wal.decodeSnapshotMetadata(payload)
                elif kind == wal.SNAPSHOT_APPLIED:
                    meta = wal.decodeSnapshotMetadata(payload)
                    offset = (meta.index, meta.term)
                    byIndex.clear()
                    high = meta.index
                elif kind == wal.COMPACTED:
                    low = offset[0] + 1
                    offset = wal.decodeIndexTerm(payload)
                    _dropIndexes(byIndex, low, min(offset[0], high))
                else:
                    raise CorruptLogError("unknown record kind %d in segment %d"
                                          % (kind, segment.seq))
        indexes = sorted(byIndex)
        if indexes != list(range(offset[0] + 1, offset[0] + 1 + len(indexes))):
            raise CorruptLogError("the log has a gap after index %d" % (offset[0],))
        live = [byIndex[i] for i in indexes]
        self._ents = [Entry(Index=offset[0], Term=offset[1])] + [e for e, _, _ in live]
        self._sizes = [0] + [size for _, size, _ in live]
        self._segs = [None] + [seq for _, _, seq in live]
        self._hardState = hardState
        if meta.index == 0:
            self._snapshot = Snapshot()
            self._snapshot.metadata.CopyFrom(meta)
        else:
            self._snapshot = readSnapshotFile(
                os.path.join(self.directory, snapshotName(meta.term, meta.index)))
            if encode(self._snapshot.metadata) != encode(meta):
                raise CorruptLogError("snapshot file does not match the log")
        self._removeSnapshotFiles()

    def _checkpoint(self):
        dummy = self._ents[0]
        return wal.encodeCheckpoint(self._hardState, self._snapshot.metadata,
                                    dummy.Index, dummy.Term)

    def _removeSnapshotFiles(self):
        """Delete snapshot files other than the current one, and leftovers."""
        meta = self._snapshot.metadata
        keep = snapshotName(meta.term, meta.index) if meta.index else None
        removed = False
        for name in os.listdir(self.directory):
            if name != keep and (name.endswith(_SNAP_SUFFIX) or name.endswith(_TMP_SUFFIX)):
                os.unlink(os.path.join(self.directory, name))
                removed = True
        if removed:
            wal.fsyncDirectory(self.directory)

    def _removeSegments(self):
        """Delete the segments older than the one holding the first live entry."""
        segments = self._log.segments()
        if segments:
            oldest = self._segs[1] if len(self._segs) > 1 else segments[-1]
            self._log.removeBefore(oldest)

    def close(self):
        """Close the log file.  Nothing is lost by not calling it."""
        self._log.close()

    def segments(self):
        """The numbers of the log segments on disk, oldest first."""
        return self._log.segments()

    # -- reading (IStorage) ----------------------------------------------------

    def initialState(self) -> tuple[HardState, ConfState]:
        return (_copy(HardState, self._hardState),
                _copy(ConfState, self._snapshot.metadata.conf_state))

    def entries(self, lo: int, hi: int, maxSize: int | None = None) -> list[Entry]:
        offset = self._ents[0].Index
        if lo <= offset:
            raise CompactedError(lo)
        if hi > self.lastIndex() + 1 or lo > hi:
            raise UnavailableError((lo, hi))
        if len(self._ents) == 1:
            raise UnavailableError((lo, hi))
        return limitSize(self._ents[lo - offset:hi - offset],
                         self._sizes[lo - offset:hi - offset], maxSize)

    def term(self, index: int) -> int:
        offset = self._ents[0].Index
        if index < offset:
            raise CompactedError(index)
        if index - offset >= len(self._ents):
            raise UnavailableError(index)
        return self._ents[index - offset].Term

    def lastIndex(self) -> int:
        return self._ents[0].Index + len(self._ents) - 1

    def firstIndex(self) -> int:
        return self._ents[0].Index + 1

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- writing ---------------------------------------------------------------

    def _prepareAppend(self, entries):
        """
        etcd's ``Append`` rules, checked before anything is written:
        ``(position, entries, encoded)`` or ``None`` if nothing is new.
        """
        entries = list(entries)
        if not entries:
            return None
        first = self.firstIndex()
        start = entries[0].Index
        for k, entry in enumerate(entries):
            if entry.Index != start + k:
                raise ValueError("entries are not consecutive at index %d" % (entry.Index,))
        if start + len(entries) - 1 < first:
            return None
        if first > start:
            entries = entries[first - start:]
        position = entries[0].Index - self._ents[0].Index
        if position > len(self._ents):
            raise UnavailableError(entries[0].Index)
        return position, entries, [encode(e) for e in entries]

    def _applyAppend(self, prepared, seq):
        position, entries, encoded = prepared
        del self._ents[position:], self._sizes[position:], self._segs[position:]
        self._ents.extend(entries)
        self._sizes.extend(len(data) for data in encoded)
        self._segs.extend([seq] * len(entries))

    def append(self, entries: Sequence[Entry]) -> None:
        """
        Store ``entries`` (consecutive indexes): compacted ones are
        skipped, a conflict replaces the stored tail, a gap after the last
        stored entry raises ``UnavailableError``.
        """
        self.save(entries=entries)

    def setHardState(self, hardState: HardState) -> None:
        self.save(hardState=hardState)

    def save(self, hardState: HardState | None = None, entries: Sequence[Entry] = ()) -> None:
        """
        ``append(entries)`` then ``setHardState(hardState)`` with one write
        and (with ``fsync``) one fsync: what a driver does with a Ready.
        """
        pending = self.prepareSave(hardState, entries, sync=self.fsync)
        if pending is not None:
            self.writeSave(pending)
            self.finishSave(pending)

    def prepareSave(self, hardState=None, entries=(), sync=True):
        """
        ``save`` in three steps (``IStagedStorage``): this one checks and
        encodes, ``writeSave`` (any thread) writes and syncs the log file
        only, ``finishSave`` updates what the storage answers.  Until then
        readers see the storage as it was.
        """
        prepared = self._prepareAppend(entries)
        records = []
        if prepared is not None:
            records.append((wal.ENTRIES, wal.encodeEntries(prepared[2])))
        if hardState is not None:
            hardState = _copy(HardState, hardState)
            records.append((wal.HARDSTATE, wal.encodeHardState(hardState)))
        if not records:
            return None
        return _PendingSave(prepared, records, hardState, sync)

    def writeSave(self, pending):
        pending.seq = self._log.write(pending.records, sync=pending.sync)

    def finishSave(self, pending):
        if pending.prepared is not None:
            self._applyAppend(pending.prepared, pending.seq)
        if pending.hardState is not None:
            self._hardState = pending.hardState

    def sync(self) -> None:
        """Make every write so far durable (needed only with ``fsync=False``)."""
        self._log.sync()

    def applySnapshot(self, snapshot: Snapshot) -> None:
        """Replace the log with ``snapshot``; the HardState is kept."""
        if self._snapshot.metadata.index >= snapshot.metadata.index:
            raise SnapshotOutOfDateError(snapshot.metadata.index)
        snapshot = _copy(Snapshot, snapshot)
        meta = snapshot.metadata
        writeSnapshotFile(self.directory, snapshot)
        self._log.write([(wal.SNAPSHOT_APPLIED, wal.encodeSnapshotMetadata(meta))])
        self._snapshot = snapshot
        self._ents = [Entry(Index=meta.index, Term=meta.term)]
        self._sizes = [0]
        self._segs = [None]
        self._removeSnapshotFiles()
        self._removeSegments()

    def createSnapshot(self, index: int, confState: ConfState | None, data: bytes) -> Snapshot:
        """
        Keep a snapshot of the state machine at ``index`` (stored, and newer
        than the current snapshot).  Entries are kept; ``compact`` drops them.
        """
        if index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDateError(index)
        if index > self.lastIndex():
            raise UnavailableError(index)
        snapshot = Snapshot()
        if data:
            snapshot.data = data
        snapshot.metadata.index = index
        snapshot.metadata.term = self.term(index)
        if confState is not None:
            snapshot.metadata.conf_state.CopyFrom(confState)
        writeSnapshotFile(self.directory, snapshot)
        self._log.write([(wal.SNAPSHOT_CREATED,
                          wal.encodeSnapshotMetadata(snapshot.metadata))])
        self._snapshot = snapshot
        self._removeSnapshotFiles()
        return snapshot

    def compact(self, compactIndex: int) -> None:
        """Drop the entries before ``compactIndex``; it becomes the dummy."""
        offset = self._ents[0].Index
        if compactIndex <= offset:
            raise CompactedError(compactIndex)
        if compactIndex > self.lastIndex():
            raise UnavailableError(compactIndex)
        i = compactIndex - offset
        term = self._ents[i].Term
        self._log.write([(wal.COMPACTED, wal.encodeIndexTerm(compactIndex, term))])
        self._ents = [Entry(Index=compactIndex, Term=term)] + self._ents[i + 1:]
        self._sizes = [0] + self._sizes[i + 1:]
        self._segs = [None] + self._segs[i + 1:]
        self._removeSegments()


def measureFsyncAppend(directory, n=200, size=100, fsync=True):
    """
    Median seconds of one ``append`` of one ``size``-byte entry with fsync
    (without, for ``fsync=False``: the baseline), over ``n`` appends in a
    fresh ``DiskStorage`` in ``directory``.
    """
    storage = DiskStorage(directory, fsync=fsync)
    try:
        start = storage.lastIndex() + 1
        payload = b"x" * size
        times = []
        for k in range(n):
            entry = Entry(Term=1, Index=start + k, Data=payload)
            began = time.perf_counter()
            storage.append([entry])
            times.append(time.perf_counter() - began)
    finally:
        storage.close()
    return statistics.median(times)


def _dropIndexes(byIndex, low, high):
    """
    Remove the entries ``low`` to ``high`` from ``byIndex``, in time bounded
    by what it holds: a damaged record may claim an index near 2**64, and
    walking such a range would never end (found by fuzzing raft-wal-open).
    """
    if high < low:
        return
    if high - low < len(byIndex):
        for index in range(low, high + 1):
            byIndex.pop(index, None)
    else:
        for index in [i for i in byIndex if low <= i <= high]:
            del byIndex[index]
