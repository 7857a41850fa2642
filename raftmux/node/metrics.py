# -*- test-case-name: raftmux.test.test_node_etcdnode -*-
"""
The node's Prometheus metrics, on the node's own registry: etcd 3.4's
names for what etcd's dashboards and alerts read (``etcdserver/metrics.go``,
``wal/metrics.go``, ``mvcc/metrics.go``), raftmux's own beside them, and
the process collector (``process_*``, as etcd's Go client exports).

Gauges and etcd's counters are read from the node when scraped, so the
write path pays only for the request histogram and the fsync histogram.
"""

from prometheus_client import Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from raftmux.etcd.interfaces import SERVER_VERSION
from raftmux.etcdpb import rpc_pb2
from raftmux.rafthttp import formatID

__all__ = ["NodeMetrics", "EtcdCollector", "WAL_FSYNC_BUCKETS"]

#: etcd's ``prometheus.ExponentialBuckets(0.001, 2, 14)``: 1 ms .. 8.192 s.
WAL_FSYNC_BUCKETS = tuple(0.001 * 2 ** i for i in range(14))

# (name, type, help): what EtcdCollector exports, by etcd's names and types.
# etcd's proposals_committed_total and proposals_applied_total are gauges
# (the indexes) despite their names; so are these.
_ETCD = [
    ("etcd_server_has_leader", "gauge",
     "Whether or not a leader exists. 1 is existence, 0 is not."),
    ("etcd_server_is_leader", "gauge",
     "Whether or not this member is a leader. 1 if is, 0 otherwise."),
    ("etcd_server_is_learner", "gauge",
     "Whether or not this member is a learner. 1 if is, 0 otherwise."),
    ("etcd_server_leader_changes_seen", "counter", "The number of leader changes seen."),
    ("etcd_server_proposals_committed_total", "gauge",
     "The total number of consensus proposals committed."),
    ("etcd_server_proposals_applied_total", "gauge",
     "The total number of consensus proposals applied."),
    ("etcd_server_proposals_pending", "gauge",
     "The current number of pending proposals to commit."),
    ("etcd_server_proposals_failed", "counter", "The total number of failed proposals seen."),
    ("etcd_server_read_indexes_failed", "counter",
     "The total number of failed read indexes seen."),
    ("etcd_server_id", "gauge",
     "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID."),
    ("etcd_server_version", "gauge",
     "Which version is running. 1 for 'server_version' label with current version."),
    ("etcd_mvcc_db_total_size_in_bytes", "gauge",
     "Total size of the underlying database physically allocated in bytes "
     "(raftmux: the size of the key space's snapshot encoding)."),
    ("etcd_mvcc_db_total_size_in_use_in_bytes", "gauge",
     "Total size of the underlying database logically in use in bytes "
     "(raftmux: the size of the key space's snapshot encoding)."),
    ("etcd_debugging_mvcc_keys_total", "gauge", "Total number of keys."),
    ("etcd_debugging_mvcc_watcher_total", "gauge", "Total number of watchers."),
    ("etcd_debugging_mvcc_slow_watcher_total", "gauge",
     "Total number of unsynced slow watchers."),
]

_ALL_KEYS = rpc_pb2.RangeRequest(key=b"\x00", range_end=b"\x00", count_only=True)


def _family(name, kind, doc, value=None, labels=None):
    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    if labels:
        family = cls(name, doc, labels=list(labels))
        family.add_metric(list(labels.values()), value)
        return family
    return cls(name, doc, value=value)


class EtcdCollector:
    """etcd's metrics for ``node`` (a ``RaftNode``), read at scrape time."""

    def __init__(self, node):
        self.node = node

    def describe(self):
        return [_family(name, kind, doc) for name, kind, doc in _ETCD]

    def collect(self):
        node = self.node
        etcd = node.etcd
        values = dict.fromkeys((name for name, _, _ in _ETCD), 0)
        labels = {"etcd_server_id": {"server_id": formatID(node.id)},
                  "etcd_server_version": {"server_version": SERVER_VERSION}}
        values["etcd_server_id"] = values["etcd_server_version"] = 1
        if etcd is not None:
            s = etcd.driver.status()
            size = etcd.dbSize()
            values.update({
                "etcd_server_has_leader": 1 if s.lead else 0,
                "etcd_server_is_leader": 1 if s.isLeader else 0,
                "etcd_server_is_learner": 1 if etcd.isLearner() else 0,
                "etcd_server_leader_changes_seen": etcd.leaderChanges,
                "etcd_server_proposals_committed_total": s.committed,
                "etcd_server_proposals_applied_total": etcd.appliedIndex(),
                "etcd_server_proposals_pending": etcd.pendingProposals(),
                "etcd_server_proposals_failed": etcd.proposalsFailed,
                "etcd_server_read_indexes_failed": etcd.readIndexesFailed,
                "etcd_mvcc_db_total_size_in_bytes": size,
                "etcd_mvcc_db_total_size_in_use_in_bytes": size,
                "etcd_debugging_mvcc_keys_total": etcd.keySpace.range(_ALL_KEYS).count,
            })
        api = node.etcdAPI
        if api is not None:
            synced, unsynced = api.watchHub.counts()
            values["etcd_debugging_mvcc_watcher_total"] = synced + unsynced
            values["etcd_debugging_mvcc_slow_watcher_total"] = unsynced
        for name, kind, doc in _ETCD:
            yield _family(name, kind, doc, values[name], labels.get(name))


class NodeMetrics:
    def __init__(self, node, registry):
        def gauge(name, doc, read):
            g = Gauge(name, doc, registry=registry)
            g.set_function(read)
            return g

        def status(f):
            return lambda: f(node.etcd.driver.status()) if node.etcd is not None else 0

        gauge("raftmux_node_is_leader", "1 if this member is the leader.",
              lambda: 1 if node.isLeader else 0)
        gauge("raftmux_node_has_leader", "1 if this member knows a leader.",
              lambda: 1 if node.leader else 0)
        gauge("raftmux_node_term", "Current raft term.", status(lambda s: s.term))
        gauge("raftmux_node_commit_index", "Highest committed log index.",
              status(lambda s: s.committed))
        gauge("raftmux_node_applied_index", "Highest applied log index.",
              lambda: node.etcd.appliedIndex() if node.etcd is not None else 0)
        gauge("raftmux_node_snapshot_index", "Index of the latest snapshot.",
              lambda: node.snapshotIndex)
        gauge("raftmux_node_members", "Members in the member table.",
              lambda: len(node.members.members) if node.members is not None else 0)
        gauge("raftmux_node_keys", "Live keys in the key space.",
              lambda: node.keySpace.range(_ALL_KEYS).count if node.keySpace is not None else 0)
        gauge("raftmux_node_revision", "The key space's revision.",
              lambda: node.keySpace.revision if node.keySpace is not None else 0)
        gauge("raftmux_node_muxado_sessions", "Live muxado sessions to peers.",
              lambda: len(node.dialer.sessions) if node.dialer is not None else 0)
        self.requests = Histogram(
            "raftmux_node_request_seconds", "Client API requests, by method and status.",
            ["method", "code"], registry=registry,
            buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
        self.forwarded = Counter("raftmux_node_forwarded_requests_total",
                                 "Writes to /kv made on a follower (raft takes them to the "
                                 "leader).", registry=registry)
        self.proposalsFailed = Counter("raftmux_node_proposals_failed_total",
                                       "/kv writes that failed or timed out.",
                                       registry=registry)
        self.walFsync = Histogram(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.", registry=registry,
            buckets=WAL_FSYNC_BUCKETS)
        registry.register(EtcdCollector(node))
        ProcessCollector(registry=registry)
