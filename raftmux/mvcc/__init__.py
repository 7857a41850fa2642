# -*- test-case-name: raftmux.test.test_mvcc_keyspace -*-
"""
etcd v3.4's MVCC key space, sans-IO: the state machine behind the node's
etcd v3 API.

``KeySpace`` applies etcd's request messages (``raftmux.etcdpb.rpc_pb2``)
and answers with etcd's response messages, watch events, hashes and
snapshots; ``validate`` holds the checks etcd's gRPC layer makes before a
request is proposed; ``errors`` etcd's errors with their gRPC codes.
"""

from raftmux.mvcc import errors, validate
from raftmux.mvcc.keyspace import Applied, KeySpace, rangeEnd
from raftmux.mvcc.leases import DEFAULT_MIN_LEASE_TTL, MAX_LEASE_TTL, LeaseInfo
from raftmux.mvcc.record import DELETE, PUT, Event, Record
from raftmux.mvcc.snapshot import SnapshotError

__all__ = [
    "KeySpace", "Applied", "Event", "Record", "LeaseInfo", "PUT", "DELETE",
    "SnapshotError", "MAX_LEASE_TTL", "DEFAULT_MIN_LEASE_TTL", "rangeEnd",
    "errors", "validate",
]
