# -*- test-case-name: raftmux.test.test_procstat -*-
"""The /proc readers the tests and benchmarks measure their children with."""

import os
import sys

from twisted.trial.unittest import SynchronousTestCase

from raftmux.testing.procstat import cpuSeconds, statusKiB


class ProcStatTests(SynchronousTestCase):

    def setUp(self):
        if not sys.platform.startswith("linux"):
            raise self.skipTest("needs Linux /proc")

    def test_cpuSeconds(self):
        """This process's CPU time, read as a child's would be."""
        self.assertGreater(cpuSeconds(os.getpid()), 0)

    def test_statusKiB(self):
        """A status line's kB figure; None for a line the status does not have."""
        rss, peak = statusKiB(os.getpid(), "VmRSS"), statusKiB(os.getpid(), "VmHWM")
        self.assertGreater(rss, 0)
        self.assertGreaterEqual(peak, rss)
        self.assertIsNone(statusKiB(os.getpid(), "NoSuchField"))

    def test_noSuchProcess(self):
        """A process that is gone is an OSError (callers decide what that means)."""
        self.assertRaises(OSError, cpuSeconds, 2 ** 22 + 1)
        self.assertRaises(OSError, statusKiB, 2 ** 22 + 1, "VmRSS")
