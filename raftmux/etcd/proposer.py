# -*- test-case-name: raftmux.test.test_etcd_kv -*-
"""
How a request becomes a proposal, as etcd's
``processInternalRaftRequestOnce`` does it: refuse when the member is far
behind applying (``ErrTooManyRequests``), wrap the request in an
``InternalRaftRequest`` with a fresh request ID, refuse it when its
encoding is over ``--max-request-bytes`` (``ErrRequestTooLarge``), and
hand it to the node.
"""

from twisted.internet import defer

from raftmux.etcdpb import raft_internal_pb2
from raftmux.mvcc.errors import ErrRequestTooLarge, ErrTooManyRequests

__all__ = ["Proposer", "DEFAULT_MAX_REQUEST_BYTES", "MAX_APPLY_GAP"]

#: etcd's --max-request-bytes default (1.5 MiB).
DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024

#: etcd's maxGapBetweenApplyAndCommitIndex.
MAX_APPLY_GAP = 5000


class Proposer:
    """
    ``propose(put=PutRequest(...))`` (one ``InternalRaftRequest`` field by
    keyword) gives the node's Deferred of the L{raftmux.mvcc.Applied}.
    """

    def __init__(self, node, ids, maxRequestBytes=DEFAULT_MAX_REQUEST_BYTES):
        self._node = node
        self._ids = ids
        self.maxRequestBytes = maxRequestBytes

    def propose(self, **field):
        status = self._node.status()
        if status.raftIndex > status.raftAppliedIndex + MAX_APPLY_GAP:
            return defer.fail(ErrTooManyRequests())
        request = raft_internal_pb2.InternalRaftRequest(**field)
        request.header.ID = self._ids.next()
        if request.ByteSize() > self.maxRequestBytes:
            return defer.fail(ErrRequestTooLarge())
        return self._node.propose(request)
