"""
The node's Prometheus metrics.  Gauges read the node when scraped, so the
write path pays only for its counters.
"""

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["NodeMetrics"]


class NodeMetrics:
    def __init__(self, node, registry):
        def gauge(name, doc, read):
            g = Gauge(name, doc, registry=registry)
            g.set_function(read)
            return g

        def raftValue(f):
            return lambda: f(node.rawNode.raft) if node.rawNode is not None else 0

        gauge("raftmux_node_is_leader", "1 if this member is the leader.",
              lambda: 1 if node.isLeader else 0)
        gauge("raftmux_node_has_leader", "1 if this member knows a leader.",
              lambda: 1 if node.leader else 0)
        gauge("raftmux_node_term", "Current raft term.", raftValue(lambda r: r.term))
        gauge("raftmux_node_commit_index", "Highest committed log index.",
              raftValue(lambda r: r.raftLog.committed))
        gauge("raftmux_node_applied_index", "Highest applied log index.",
              lambda: node.driver.applied if node.driver is not None else 0)
        gauge("raftmux_node_snapshot_index", "Index of the latest snapshot.",
              lambda: node.snapshotIndex)
        gauge("raftmux_node_members", "Members in the member table.",
              lambda: len(node.members.members))
        gauge("raftmux_node_keys", "Keys in the key/value store.", lambda: len(node.kv.data))
        gauge("raftmux_node_muxado_sessions", "Live muxado sessions to peers.",
              lambda: len(node.dialer.sessions) if node.dialer is not None else 0)
        self.requests = Histogram(
            "raftmux_node_request_seconds", "Client API requests, by method and status.",
            ["method", "code"], registry=registry,
            buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
        self.forwarded = Counter("raftmux_node_forwarded_requests_total",
                                 "Client requests forwarded to the leader.", registry=registry)
        self.proposalsFailed = Counter("raftmux_node_proposals_failed_total",
                                       "Client writes that failed or timed out.",
                                       registry=registry)
