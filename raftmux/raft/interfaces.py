"""
The contracts around the raft core: its storage (etcd's ``raft.Storage``)
and the state machine a ``RaftDriver`` applies committed entries to.
"""

from zope.interface import Interface

__all__ = ["IStorage", "IStateMachine"]


class IStorage(Interface):
    """
    What the core reads: etcd raft's ``Storage`` in camelCase.  Entries,
    snapshots and states are ``raftmux.raftpb`` messages.  Writers (the
    driver) use the extra methods below; the core never writes.
    """

    def initialState():
        """``(HardState, ConfState)`` as last saved."""

    def entries(lo, hi, maxSize=None):
        """
        Entries with indexes in ``[lo, hi)``; at least one if any, then as
        many as fit ``maxSize`` bytes (``None``: no limit).  Raises
        ``CompactedError`` / ``UnavailableError``.
        """

    def term(index):
        """Term of entry ``index`` (also of the snapshot's last index)."""

    def lastIndex():
        """Index of the last entry stored."""

    def firstIndex():
        """Index of the first entry that may still be read (snapshot index + 1)."""

    def snapshot():
        """The latest ``Snapshot`` (may raise ``SnapshotTemporarilyUnavailable``)."""

    # -- writing side (the driver, not the core) --------------------------------

    def append(entries):
        """Store ``entries``, replacing any stored entries they conflict with."""

    def setHardState(hardState):
        """Store the ``HardState``."""

    def save(hardState=None, entries=()):
        """
        ``append(entries)`` then ``setHardState(hardState)`` (either may be
        empty/None) as one write: what the driver does with each Ready.
        """

    def sync():
        """
        Make every write so far durable.  The driver calls it before it
        sends anything a Ready's writes cover (``Ready.mustSync``); a
        storage whose writes are durable when they return (or that is not
        durable at all, like ``MemoryStorage``) does nothing.
        """

    def applySnapshot(snapshot):
        """Replace everything with ``snapshot`` (raises ``SnapshotOutOfDateError``)."""

    def createSnapshot(index, confState, data):
        """Make and keep a snapshot at ``index``; returns it."""

    def compact(compactIndex):
        """Drop entries before ``compactIndex`` (raises ``CompactedError``, ``UnavailableError``)."""


class IStateMachine(Interface):
    """
    What a ``RaftDriver`` applies the committed log to, in log order, on
    the reactor thread.
    """

    def applyEntry(entry):
        """
        A committed normal entry with data.  What it returns is what
        ``RaftDriver.proposeForResult`` fires with.
        """

    def restoreSnapshot(snapshot):
        """Replace the state with a ``raftpb.Snapshot``'s (sent by the leader)."""

    def confChangeApplied(confChange, entry, confState):
        """
        A committed ``ConfChange`` (or ``ConfChangeV2``) from ``entry`` was
        applied to raft, which now has ``confState``.
        """

    def appliedTo(index):
        """Everything up to ``index`` is applied (once per Ready that applied any)."""
