# -*- test-case-name: raftmux.test.test_bench_h2time -*-
"""
Tests for ``raftmux.bench.h2time``, the instrumentation behind the
benchmarks' ``*-h2-cpu`` rows.
"""

from h2.connection import H2Connection
from twisted.trial.unittest import SynchronousTestCase

from raftmux.bench import h2time
from raftmux.h2.connection import h2Configuration


class H2TimeTests(SynchronousTestCase):
    def setUp(self):
        self.addCleanup(h2time.uninstall)

    def exchange(self):
        client = H2Connection(h2Configuration(True))
        server = H2Connection(h2Configuration(False))
        client.initiate_connection()
        server.initiate_connection()
        server.receive_data(client.data_to_send())
        client.receive_data(server.data_to_send())
        client.send_headers(1, [(b":method", b"GET"), (b":scheme", b"http"),
                                (b":authority", b"a"), (b":path", b"/")], end_stream=True)
        return server.receive_data(client.data_to_send())

    def test_countsTimeInsideH2(self):
        """Once installed, calls into H2Connection add to ``spent``."""
        h2time.install()
        before = h2time.spent()
        events = self.exchange()
        self.assertTrue(events)
        self.assertGreater(h2time.spent(), before)

    def test_installTwiceWrapsOnce(self):
        h2time.install()
        wrapped = H2Connection.__dict__["receive_data"]
        h2time.install()
        self.assertIs(H2Connection.__dict__["receive_data"], wrapped)

    def test_uninstallRestores(self):
        original = H2Connection.__dict__["send_headers"]
        h2time.install()
        self.assertIsNot(H2Connection.__dict__["send_headers"], original)
        h2time.uninstall()
        self.assertIs(H2Connection.__dict__["send_headers"], original)
        before = h2time.spent()
        self.exchange()
        self.assertEqual(h2time.spent(), before)

    def test_snapshot(self):
        figures = h2time.snapshot()
        self.assertEqual(set(figures), {"cpu", "h2"})
