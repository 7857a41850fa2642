# -*- test-case-name: raftmux.test.test_gossip -*-
"""
ckit's transport metric names, on a registry the caller passes in (never
the global ``REGISTRY``, never ``prometheus_client.twisted``).

Divergences from ckit, on purpose: received packets are counted once (ckit
counts them twice), every ``*_total`` is a Prometheus counter (ckit uses
inc-only gauges), ``stream_rx_packets_total`` counts frames received (ckit
counts ``Read`` calls), and ``stream_rx_packets_failed_total`` is exported.
Added: ``tx_requests_total`` counts ``/message`` POSTs (a POST may carry a
batch of packets; ``tx_packets_total`` counts packets).
"""

from prometheus_client import CollectorRegistry, Counter, Gauge


class GossipMetrics:
    """The ``cluster_transport_*`` family for one ``GossipTransport``."""

    def __init__(self, registry=None):
        if registry is None:
            registry = CollectorRegistry(auto_describe=True)
        self.registry = registry

        def counter(name, doc):
            return Counter("cluster_transport_" + name, doc, registry=registry)

        self.rxPackets = counter("rx_packets_total", "Packets received through /message.")
        self.rxBytes = counter("rx_bytes_total", "Payload bytes received through /message.")
        self.txPackets = counter("tx_packets_total", "Packets taken off the send queue.")
        self.txBytes = counter("tx_bytes_total", "Payload bytes taken off the send queue.")
        self.txRequests = counter("tx_requests_total",
                                  "POSTs to /message (each carries one or more packets).")
        self.txFailed = counter("tx_packets_failed_total",
                                "Packets whose POST failed, timed out or was not 200.")
        self.streams = Gauge("cluster_transport_streams", "Currently open streams.",
                             registry=registry)
        self.streamRxPackets = counter("stream_rx_packets_total", "Frames received on streams.")
        self.streamRxBytes = counter("stream_rx_bytes_total", "Payload bytes received on streams.")
        self.streamRxFailed = counter("stream_rx_packets_failed_total",
                                      "Streams that ended with a framing or transport error.")
        self.streamTxPackets = counter("stream_tx_packets_total", "Frames written to streams.")
        self.streamTxBytes = counter("stream_tx_bytes_total", "Payload bytes written to streams.")
        self.streamTxFailed = counter("stream_tx_packets_failed_total",
                                      "Writes to streams that were already closed.")
        self.rxQueue = Gauge("cluster_transport_rx_packet_queue_length",
                             "Received packets not yet delivered (always 0: delivery is "
                             "synchronous).", registry=registry)
        self.txQueue = Gauge("cluster_transport_tx_packet_queue_length",
                             "Packets waiting to be sent.", registry=registry)

    def trackTxQueue(self, queue):
        """Report ``len(queue)`` at scrape time, as ckit does."""
        self.txQueue.set_function(lambda: len(queue))
