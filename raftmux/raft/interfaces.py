"""The contract between the raft core and its storage (etcd's ``raft.Storage``)."""

from zope.interface import Interface


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

    def applySnapshot(snapshot):
        """Replace everything with ``snapshot`` (raises ``SnapshotOutOfDateError``)."""

    def createSnapshot(index, confState, data):
        """Make and keep a snapshot at ``index``; returns it."""

    def compact(compactIndex):
        """Drop entries before ``compactIndex`` (raises ``CompactedError``, ``UnavailableError``)."""
