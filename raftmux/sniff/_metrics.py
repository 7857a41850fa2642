# -*- test-case-name: raftmux.test.test_sniff -*-
"""
Prometheus counters for the sniffer, kept in a ``CollectorRegistry`` the
caller passes (the node's own) or in ``raftmux.metrics.REGISTRY``;
never prometheus_client's global one, so tests and nodes stay isolated.
One set of metrics per registry, shared by every ``SniffingFactory`` using
it and told apart by the ``sniffer`` label.
"""

from prometheus_client import Counter, Gauge

from raftmux import metrics as _metrics

REGISTRY = _metrics.REGISTRY


class SniffMetrics:
    """The sniffer's metrics in one registry."""

    def __init__(self, registry):
        def counter(name, doc, labels=("sniffer",)):
            return Counter(name, doc, labels, registry=registry)

        self.matched = counter(
            "raftmux_sniff_matched", "Connections handed to a route's factory.",
            ("sniffer", "route"))
        self.unmatched = counter(
            "raftmux_sniff_unmatched", "Connections closed because no matcher matched.")
        self.timedOut = counter(
            "raftmux_sniff_timeouts", "Connections closed at the sniff deadline.")
        self.overLimit = counter(
            "raftmux_sniff_over_limit", "Connections closed for sending maxBytes without a match.")
        self.refused = counter(
            "raftmux_sniff_refused", "Connections refused because maxSniffing were sniffing.")
        self.lost = counter(
            "raftmux_sniff_lost", "Connections closed by the peer or by shutdown while sniffing.")
        self.sniffing = Gauge(
            "raftmux_sniff_in_progress", "Connections being sniffed now.", ("sniffer",),
            registry=registry)


def metricsFor(registry=None):
    """The ``SniffMetrics`` of ``registry`` (default ``REGISTRY``), made once."""
    return _metrics.metricsFor(SniffMetrics, registry)
