# -*- test-case-name: raftmux.test.test_ratelimitedlog -*-
"""
``raftmux._log.RateLimitedLog`` and where it is used: a flood of refused
connections (the sniffer) or refused streams (a muxado session) costs a
few log lines and one summary line per interval, not a line each.
"""

from prometheus_client import CollectorRegistry
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import Logger, LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from raftmux._log import RateLimitedLog
from raftmux.muxado import frames
from raftmux.muxado.config import MuxadoConfig
from raftmux.muxado.session import MuxadoSession
from raftmux.sniff import SniffingFactory, http1


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class RateLimitedLogTests(SynchronousTestCase):
    def setUp(self):
        self.time = FakeTime()
        self.limited = RateLimitedLog(Logger(namespace="test"), burst=3, interval=60,
                                      now=self.time)

    def emit(self, cause="refused", n=1):
        return [self.limited.emit(LogLevel.info, cause, "line {n}", n=i) for i in range(n)]

    def test_burstThenQuiet(self):
        with capturedLogs() as events:
            self.assertEqual(self.emit(n=10), [True] * 3 + [False] * 7)
        self.assertEqual([e["n"] for e in events], [0, 1, 2])

    def test_summaryAfterTheInterval(self):
        """The first line after the interval says how many were left out, then a new burst."""
        with capturedLogs() as events:
            self.emit(n=10)
            self.time.now = 61
            self.assertEqual(self.emit(n=1), [True])
        self.assertEqual(events[3]["count"], 7)
        self.assertEqual(events[3]["cause"], "refused")
        self.assertEqual(events[3]["log_level"], LogLevel.info)
        self.assertEqual(events[4]["n"], 0)

    def test_causesAreCountedApart(self):
        with capturedLogs() as events:
            self.emit("a", 5)
            self.emit("b", 5)
        self.assertEqual(len(events), 6)

    def test_flush(self):
        with capturedLogs() as events:
            self.emit(n=5)
            self.limited.flush()
            self.limited.flush()
        self.assertEqual([e.get("count") for e in events], [None, None, None, 2])

    def test_nothingLeftOutNoSummary(self):
        with capturedLogs() as events:
            self.emit(n=2)
            self.time.now = 100
            self.emit(n=1)
            self.limited.flush()
        self.assertEqual(len(events), 3)


class FloodLogTests(SynchronousTestCase):
    def test_sniffedConnectionsFlood(self):
        """500 connections closed by the sniffer: ten lines, and the rest counted once."""
        clock = MemoryReactorClock()
        factory = SniffingFactory([(http1(), Factory.forProtocol(Protocol))], clock=clock,
                                  registry=CollectorRegistry(), name="flood")
        factory.doStart()
        with capturedLogs() as events:
            for i in range(500):
                proto = factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", i))
                proto.makeConnection(StringTransport())
                proto.dataReceived(b"\x00garbage")
            factory.doStop()
        lines = [e for e in events if e.get("log_namespace", "").startswith("raftmux.sniff")]
        self.assertEqual(len(lines), 11)
        self.assertEqual(lines[-1]["count"], 490)

    def test_refusedStreamsFlood(self):
        """2,000 streams over the limit of one session: ten lines, and the rest counted once."""
        session = MuxadoSession(False, Factory.forProtocol(Protocol),
                                MuxadoConfig(version=2, maxIncomingStreams=4),
                                MemoryReactorClock(), CollectorRegistry())
        transport = StringTransport()
        session.makeConnection(transport)
        with capturedLogs() as events:
            session.dataReceived(b"".join(frames.encodeData(2 * i + 3, b"x", syn=True)
                                          for i in range(2004)))
            session.connectionLost(None)
        refused = [e for e in events if "refused stream" in e.get("log_format", "")]
        summaries = [e for e in events if e.get("cause") == "muxado: refused streams"]
        self.assertEqual(len(refused), 10)
        self.assertEqual([e["count"] for e in summaries], [1990])
