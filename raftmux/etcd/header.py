# -*- test-case-name: raftmux.test.test_etcd_kv -*-
"""
The ``ResponseHeader`` etcd's server puts on every answer: cluster ID,
member ID, raft term, and the key space's revision (kept when the applier
already set one, as etcd's ``header.fill`` does).
"""

from raftmux.etcdpb import rpc_pb2

__all__ = ["Headers"]


class Headers:
    """Fills response headers from an L{IEtcdNode}."""

    def __init__(self, node):
        self._node = node

    def fill(self, header):
        """etcd's ``header.fill``: IDs and term; revision only if unset."""
        node = self._node
        header.cluster_id = node.clusterID
        header.member_id = node.memberID
        header.raft_term = node.term()
        if header.revision == 0:
            header.revision = node.keySpace.revision
        return header

    def make(self, revision=None):
        """
        A new header: ``revision`` None means the current one (etcd's
        ``newHeader``); 0 leaves it out (the watch server's header for a
        compaction answer has none).
        """
        node = self._node
        if revision is None:
            revision = node.keySpace.revision
        return rpc_pb2.ResponseHeader(
            cluster_id=node.clusterID, member_id=node.memberID,
            revision=revision, raft_term=node.term())

    def cluster(self):
        """The Cluster service's header: no revision (etcd leaves it out)."""
        node = self._node
        return rpc_pb2.ResponseHeader(
            cluster_id=node.clusterID, member_id=node.memberID, raft_term=node.term())
