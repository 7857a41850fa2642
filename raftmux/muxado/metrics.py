"""muxado's Prometheus metrics: per session and per stream events, never per frame."""

from prometheus_client import Counter, Gauge

from raftmux.metrics import metricsFor
from raftmux.muxado.errors import codeName


class MuxadoMetrics:
    def __init__(self, registry):
        self.sessions = Gauge(
            "raftmux_muxado_sessions", "muxado sessions open now.", ("role",),
            registry=registry)
        self.streamsOpened = Counter(
            "raftmux_muxado_streams_opened", "Streams opened, by who opened them.",
            ("role", "opener"), registry=registry)
        self.streamsRefused = Counter(
            "raftmux_muxado_streams_refused", "Peer streams refused with RST (limit, GOAWAY).",
            ("role", "code"), registry=registry)
        self.protocolErrors = Counter(
            "raftmux_muxado_protocol_errors",
            "Sessions this side ended because the peer broke the protocol.",
            ("role", "code"), registry=registry)
        self.goAwaysReceived = Counter(
            "raftmux_muxado_goaways_received", "GOAWAY frames received.", ("role",),
            registry=registry)
        self.heartbeatTimeouts = Counter(
            "raftmux_muxado_heartbeat_timeouts", "Heartbeat outages (no echo in time).",
            ("role",), registry=registry)


class SessionMetrics:
    """The children of ``MuxadoMetrics`` for one role, bound once (labels() is not free)."""

    def __init__(self, registry, role):
        m = metricsFor(MuxadoMetrics, registry)
        self._m = m
        self.role = role
        self.sessions = m.sessions.labels(role)
        self.localStreams = m.streamsOpened.labels(role, "local")
        self.remoteStreams = m.streamsOpened.labels(role, "remote")
        self.goAwaysReceived = m.goAwaysReceived.labels(role)
        self.heartbeatTimeouts = m.heartbeatTimeouts.labels(role)

    def refused(self, code):
        self._m.streamsRefused.labels(self.role, codeName(code)).inc()

    def protocolError(self, code):
        self._m.protocolErrors.labels(self.role, codeName(code)).inc()
