# -*- test-case-name: raftmux.test.test_raft_log -*-
"""
An in-memory ``IStorage`` with etcd's ``MemoryStorage`` semantics.

The entry list always starts with a dummy entry at the index and term of the
last snapshot (index 0 and term 0 before any), so ``term()`` of the
snapshot's index works after compaction and ``firstIndex()`` is simply the
dummy's index + 1.  Nothing is copied on read: the core never mutates an
entry it was given, and neither may callers.
"""

from __future__ import annotations

from collections.abc import Sequence

from zope.interface import implementer

from raftmux.raft.errors import (
    CompactedError,
    SnapshotOutOfDateError,
    UnavailableError,
)
from raftmux.raft.interfaces import IStorage
from raftmux.raftpb import ConfState, Entry, HardState, Snapshot


def limitSize(entries, maxSize):
    """
    The longest prefix of ``entries`` whose encoded size fits ``maxSize``,
    but always at least one entry (so progress is possible with huge
    entries).  ``None`` means no limit.
    """
    if maxSize is None or len(entries) <= 1:
        return entries
    size = entries[0].ByteSize()
    for limit in range(1, len(entries)):
        size += entries[limit].ByteSize()
        if size > maxSize:
            return entries[:limit]
    return entries


@implementer(IStorage)
class MemoryStorage:
    """Entries, hard state and the latest snapshot, all in memory."""

    def __init__(self):
        self.hardState = HardState()
        self._snapshot = Snapshot()
        self._entries = [Entry()]

    def initialState(self) -> tuple[HardState, ConfState]:
        hs = HardState()
        hs.CopyFrom(self.hardState)
        cs = ConfState()
        cs.CopyFrom(self._snapshot.metadata.conf_state)
        return hs, cs

    def setHardState(self, hardState: HardState) -> None:
        self.hardState = HardState()
        self.hardState.CopyFrom(hardState)

    def _offset(self):
        return self._entries[0].Index

    def entries(self, lo: int, hi: int, maxSize: int | None = None) -> list[Entry]:
        offset = self._offset()
        if lo <= offset:
            raise CompactedError(lo)
        if hi > self.lastIndex() + 1 or lo > hi:
            raise UnavailableError((lo, hi))
        if len(self._entries) == 1:
            raise UnavailableError((lo, hi))
        return limitSize(self._entries[lo - offset:hi - offset], maxSize)

    def term(self, index: int) -> int:
        offset = self._offset()
        if index < offset:
            raise CompactedError(index)
        if index - offset >= len(self._entries):
            raise UnavailableError(index)
        return self._entries[index - offset].Term

    def lastIndex(self) -> int:
        return self._entries[0].Index + len(self._entries) - 1

    def firstIndex(self) -> int:
        return self._entries[0].Index + 1

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def applySnapshot(self, snapshot: Snapshot) -> None:
        if self._snapshot.metadata.index >= snapshot.metadata.index:
            raise SnapshotOutOfDateError(snapshot.metadata.index)
        self._snapshot = Snapshot()
        self._snapshot.CopyFrom(snapshot)
        self._entries = [Entry(Term=snapshot.metadata.term,
                               Index=snapshot.metadata.index)]

    def createSnapshot(self, index: int, confState: ConfState | None, data: bytes) -> Snapshot:
        """
        Keep a snapshot of the state machine at ``index`` (which must be
        stored and newer than the current snapshot).  Entries are not
        dropped; call ``compact`` for that.
        """
        if index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDateError(index)
        if index > self.lastIndex():
            raise UnavailableError(index)
        snap = Snapshot()
        if data:
            snap.data = data
        snap.metadata.index = index
        snap.metadata.term = self._entries[index - self._offset()].Term
        if confState is not None:
            snap.metadata.conf_state.CopyFrom(confState)
        self._snapshot = snap
        return snap

    def compact(self, compactIndex: int) -> None:
        """Drop entries before ``compactIndex``; it becomes the dummy."""
        offset = self._offset()
        if compactIndex <= offset:
            raise CompactedError(compactIndex)
        if compactIndex > self.lastIndex():
            raise UnavailableError(compactIndex)
        i = compactIndex - offset
        dummy = Entry(Index=self._entries[i].Index, Term=self._entries[i].Term)
        self._entries = [dummy] + self._entries[i + 1:]

    def save(self, hardState: HardState | None = None, entries: Sequence[Entry] = ()) -> None:
        """``append(entries)``, then ``setHardState(hardState)``."""
        if entries:
            self.append(entries)
        if hardState is not None:
            self.setHardState(hardState)

    def sync(self) -> None:
        """Nothing to do: memory is as durable as it gets."""

    def append(self, entries: Sequence[Entry]) -> None:
        """
        Store ``entries``: those already compacted are skipped, those past
        a conflict replace the stored tail.  A gap after the last stored
        entry raises ``UnavailableError``.
        """
        if not entries:
            return
        first = self.firstIndex()
        last = entries[0].Index + len(entries) - 1
        if last < first:
            return
        if first > entries[0].Index:
            entries = entries[first - entries[0].Index:]
        offset = entries[0].Index - self._offset()
        if offset > len(self._entries):
            raise UnavailableError(entries[0].Index)
        if offset == len(self._entries):
            self._entries.extend(entries)
        else:
            self._entries = self._entries[:offset] + list(entries)
