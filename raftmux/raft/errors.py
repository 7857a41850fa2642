"""Storage errors, with etcd raft's meanings (``raft/storage.go``)."""


class StorageError(Exception):
    """Base class of the errors a raft ``IStorage`` raises."""


class CompactedError(StorageError):
    """The index asked for is older than the first one kept (compacted away)."""


class UnavailableError(StorageError):
    """The index asked for is newer than the last one stored."""


class SnapshotOutOfDateError(StorageError):
    """A snapshot older than the one already held was offered."""


class SnapshotTemporarilyUnavailable(StorageError):
    """The snapshot is being made; ask again later."""


class CorruptLogError(StorageError):
    """A durable log failed its checks (CRC, order) before its torn tail."""
