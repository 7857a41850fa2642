# -*- test-case-name: raftmux.test.test_rafthttp_metrics -*-
"""
rafthttp's metrics with etcd's names (``etcd_network_*``), on a registry the
caller owns (never the global one).  Counters are bumped per batch or per
HTTP body, not per message, to stay off the hot path.
"""

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["Metrics"]


class Metrics:
    """All of a Transport's metrics.  ``registry=None`` makes a private one."""

    def __init__(self, registry=None):
        if registry is None:
            registry = CollectorRegistry()
        self.registry = registry
        self.sentBytes = Counter(
            "etcd_network_peer_sent_bytes", "The total number of bytes sent to peers.",
            ["To"], registry=registry)
        self.receivedBytes = Counter(
            "etcd_network_peer_received_bytes", "The total number of bytes received from peers.",
            ["From"], registry=registry)
        self.sentFailures = Counter(
            "etcd_network_peer_sent_failures", "The total number of send failures from peers.",
            ["To"], registry=registry)
        self.receivedFailures = Counter(
            "etcd_network_peer_received_failures",
            "The total number of receive failures from peers.", ["From"], registry=registry)
        self.roundTripTime = Histogram(
            "etcd_network_peer_round_trip_time_seconds", "Round-Trip-Time histogram between peers",
            ["To"], registry=registry,
            buckets=[0.0001 * 2 ** i for i in range(16)])
        self.snapshotSendSuccess = Counter(
            "etcd_network_snapshot_send_success", "Total number of successful snapshot sends",
            ["To"], registry=registry)
        self.snapshotSendFailures = Counter(
            "etcd_network_snapshot_send_failures", "Total number of snapshot send failures",
            ["To"], registry=registry)
        self.snapshotReceiveSuccess = Counter(
            "etcd_network_snapshot_receive_success",
            "Total number of successful snapshot receives", ["From"], registry=registry)
        self.snapshotReceiveFailures = Counter(
            "etcd_network_snapshot_receive_failures", "Total number of snapshot receive failures",
            ["From"], registry=registry)
        self.droppedMessages = Counter(
            "raftmux_rafthttp_dropped_messages",
            "Messages dropped because a queue was full or the peer paused.",
            ["Peer", "Direction"], registry=registry)

    def forPeer(self, peerID):
        """The labelled children of one peer, looked up once."""
        return PeerMetrics(self, "%x" % (peerID,))


class PeerMetrics:
    """One peer's counters, resolved so hot paths just call ``inc``."""

    def __init__(self, metrics, label):
        self.sentBytes = metrics.sentBytes.labels(label)
        self.receivedBytes = metrics.receivedBytes.labels(label)
        self.sentFailures = metrics.sentFailures.labels(label)
        self.receivedFailures = metrics.receivedFailures.labels(label)
        self.roundTripTime = metrics.roundTripTime.labels(label)
        self.snapshotSendSuccess = metrics.snapshotSendSuccess.labels(label)
        self.snapshotSendFailures = metrics.snapshotSendFailures.labels(label)
        self.droppedOut = metrics.droppedMessages.labels(label, "out")
        self.droppedIn = metrics.droppedMessages.labels(label, "in")
