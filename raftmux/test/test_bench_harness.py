# -*- test-case-name: raftmux.test.test_bench_harness -*-
"""The benchmark harness's interleaved results (``raftmux.bench._harness``)."""

from twisted.trial.unittest import SynchronousTestCase

from raftmux.bench._harness import formatTable, interleavedResult


class InterleavedResultTests(SynchronousTestCase):

    def test_mediansAndRoundRatios(self):
        """
        The value and baseline are each side's median; the ratios are taken
        round by round, so a slow round shows as spread.
        """
        r = interleavedResult("open", "echoes/s", [300, 100, 200], [100, 100, 50],
                              "sequential", target=3.0)
        self.assertEqual((r.value, r.baseline, r.ratio), (200, 100, 2.0))
        self.assertEqual(r.extra, {"roundRatios": [3.0, 1.0, 4.0], "rounds": 3})
        self.assertEqual(r.notes, "sequential; per-round ratios 3.00 1.00 4.00")
        self.assertIn(">= 3x", formatTable("muxado", [r]))

    def test_roundsMustPair(self):
        """Rounds without a baseline beside them are a bug in the benchmark."""
        self.assertRaises(ValueError, interleavedResult, "x", "u", [1, 2], [1], "")
