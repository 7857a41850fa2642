"""
The contracts around the raft core: its storage (etcd's ``raft.Storage``)
and the state machine a ``RaftDriver`` applies committed entries to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zope.interface import Interface

from raftmux.raftpb import ConfState, Entry, HardState, Snapshot

__all__ = ["IStorage", "IStagedStorage", "IStateMachine", "IRaftObserver"]


class IStorage(Interface):
    """
    What the core reads: etcd raft's ``Storage`` in camelCase.  Entries,
    snapshots and states are ``raftmux.raftpb`` messages.  Writers (the
    driver) use the extra methods below; the core never writes.
    """

    def initialState() -> tuple[HardState, ConfState]:
        """``(HardState, ConfState)`` as last saved."""

    def entries(lo: int, hi: int, maxSize: int | None = None) -> list[Entry]:
        """
        Entries with indexes in ``[lo, hi)``; at least one if any, then as
        many as fit ``maxSize`` bytes (``None``: no limit).  Raises
        ``CompactedError`` / ``UnavailableError``.
        """

    def term(index: int) -> int:
        """Term of entry ``index`` (also of the snapshot's last index)."""

    def lastIndex() -> int:
        """Index of the last entry stored."""

    def firstIndex() -> int:
        """Index of the first entry that may still be read (snapshot index + 1)."""

    def snapshot() -> Snapshot:
        """The latest ``Snapshot`` (may raise ``SnapshotTemporarilyUnavailable``)."""

    # -- writing side (the driver, not the core) --------------------------------

    def append(entries: Sequence[Entry]) -> None:
        """Store ``entries``, replacing any stored entries they conflict with."""

    def setHardState(hardState: HardState) -> None:
        """Store the ``HardState``."""

    def save(hardState: HardState | None = None, entries: Sequence[Entry] = ()) -> None:
        """
        ``append(entries)`` then ``setHardState(hardState)`` (either may be
        empty/None) as one write: what the driver does with each Ready.
        """

    def sync() -> None:
        """
        Make every write so far durable.  The driver calls it before it
        sends anything a Ready's writes cover (``Ready.mustSync``); a
        storage whose writes are durable when they return (or that is not
        durable at all, like ``MemoryStorage``) does nothing.
        """

    def applySnapshot(snapshot: Snapshot) -> None:
        """Replace everything with ``snapshot`` (raises ``SnapshotOutOfDateError``)."""

    def createSnapshot(index: int, confState: ConfState | None, data: bytes) -> Snapshot:
        """Make and keep a snapshot at ``index``; returns it."""

    def compact(compactIndex: int) -> None:
        """Drop entries before ``compactIndex`` (raises ``CompactedError``, ``UnavailableError``)."""


class IStagedStorage(IStorage):
    """
    A storage whose ``save`` can be split so the slow part (the write and
    its fsync) runs on another thread while the caller's thread goes on
    reading the storage as it was: ``finishSave`` then makes the saved
    state visible.  Only one staged save is in flight at a time, and no
    other writing method is called meanwhile.
    """

    def prepareSave(hardState=None, entries=(), sync=True):
        """
        The caller's thread: check and encode; an opaque pending save, or
        None when there is nothing to write.
        """

    def writeSave(pending):
        """Any thread: write (and with ``sync``, fdatasync) the pending save."""

    def finishSave(pending):
        """The caller's thread, after ``writeSave`` returned: the save takes effect."""


class IStateMachine(Interface):
    """
    What a ``RaftDriver`` applies the committed log to, in log order, on
    the reactor thread.
    """

    def applyEntry(entry: Entry) -> Any:
        """
        A committed normal entry with data.  What it returns is what
        ``RaftDriver.proposeForResult`` fires with.
        """

    def restoreSnapshot(snapshot: Snapshot) -> None:
        """Replace the state with a ``raftpb.Snapshot``'s (sent by the leader)."""

    def validateConfChange(confChange: Any, entry: Entry) -> bool:
        """
        A committed conf change is about to be applied to raft: True to
        apply it, False to apply it as a no-op (etcd's
        ``ValidateConfigurationChange`` failing: the member table refuses
        it, so raft must not change either; the state machine answers
        whoever proposed it).  ``confChangeApplied`` follows only a True.
        """

    def confChangeApplied(confChange: Any, entry: Entry, confState: ConfState) -> None:
        """
        A committed ``ConfChange`` (or ``ConfChangeV2``) from ``entry`` was
        applied to raft, which now has ``confState``.
        """

    def appliedTo(index: int) -> None:
        """Everything up to ``index`` is applied (once per Ready that applied any)."""


class IRaftObserver(Interface):
    """
    Told by a ``RaftDriver`` about leadership, on the reactor thread, as
    each Ready is handled.
    """

    def leaderChanged(leaderID, term):
        """The leader this member knows changed (``leaderID`` 0: none known)."""

    def leadershipChanged(isLeader):
        """
        True: this member leads and has applied the first entry of its term
        (the empty entry a new leader appends), so everything committed
        before its term is applied here too.  False: it stopped leading.
        Called only on a change.
        """
