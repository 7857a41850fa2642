"""
The contracts around the raft core: its storage (etcd's ``raft.Storage``)
and the state machine a ``RaftDriver`` applies committed entries to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zope.interface import Interface

from raftmux.raftpb import ConfState, Entry, HardState, Snapshot

__all__ = ["IStorage", "IStateMachine"]


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

    def confChangeApplied(confChange: Any, entry: Entry, confState: ConfState) -> None:
        """
        A committed ``ConfChange`` (or ``ConfChangeV2``) from ``entry`` was
        applied to raft, which now has ``confState``.
        """

    def appliedTo(index: int) -> None:
        """Everything up to ``index`` is applied (once per Ready that applied any)."""
