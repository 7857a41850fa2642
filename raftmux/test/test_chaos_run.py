# -*- test-case-name: raftmux.test.test_chaos_run -*-
"""
Real chaos runs (``python -m raftmux.chaos`` in a child process, as root,
in network namespaces): raftmux under faults is linearizable; raftmux with
serializable reads while the leader is cut off is caught not being
linearizable, with the offending operations printed; etcd 3.4.23 under
the same workload is linearizable; Ctrl-C in the middle of a run still
removes everything.  After each run no namespace of ours is left.

These skip, saying why, when the machine cannot run them (not root, no
``ip``/``iptables``, no etcd for the etcd run).
"""

import fcntl
import json
import os
import signal
import subprocess
import sys

from twisted.internet import defer, protocol, reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, TestCase

from raftmux.chaos.net import PREFIX, requirements
from raftmux.cluster import ETCD, childEnvironment

_WHY = requirements()
TEST_LOCK = "/run/lock/raftmux-chaos-tests.lock"


class _Collect(protocol.ProcessProtocol):
    def __init__(self):
        self.out = []
        self.err = []
        self.ended = defer.Deferred()

    def outReceived(self, data):
        self.out.append(data)

    def errReceived(self, data):
        self.err.append(data)

    def processEnded(self, reason):
        self.ended.callback(getattr(reason.value, "exitCode", None))


def _ourNamespaces():
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listed.splitlines()
            if line.strip().startswith(PREFIX + "-")]


class ChaosRunTests(TestCase):

    timeout = 900

    def setUp(self):
        if _WHY:
            raise SkipTest("chaos runs need the machine's network namespaces: " + _WHY)
        return defer.ensureDeferred(self.exclusive())

    async def exclusive(self):
        """
        Hold this module's lock for the whole test: trial's -j2 may run two
        of these at once, and each checks that no namespace of ours is
        left, which only means something while no other run is going.
        """
        f = open(TEST_LOCK, "a")
        self.addCleanup(f.close)
        for _ in range(3000):
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError:
                await deferLater(reactor, 0.2, lambda: None)
        self.fail("another chaos test held %s for 10 minutes" % (TEST_LOCK,))

    def spawn(self, *args):
        out = os.path.abspath(self.mktemp())
        argv = [sys.executable, "-m", "raftmux.chaos", "--out", out, "--wait", "60"] + list(args)
        collect = _Collect()
        collect.process = reactor.spawnProcess(collect, sys.executable, argv,
                                                env=childEnvironment(),
                                                childFDs={0: "w", 1: "r", 2: "r"})
        collect.directory = out
        return collect

    async def chaos(self, *args):
        collect = self.spawn(*args)
        code = await collect.ended
        self.assertEqual(_ourNamespaces(), [], "namespaces left behind")
        stdout = b"".join(collect.out).decode("utf-8", "replace")
        stderr = b"".join(collect.err).decode("utf-8", "replace")
        return code, stdout, stderr, collect.directory

    def assertRun(self, code, stdout, stderr, expected):
        if code != expected:
            self.fail("exit %s (expected %s)\n--- stdout\n%s\n--- stderr\n%s" % (
                code, expected, stdout[-4000:], stderr[-4000:]))

    async def test_raftmuxUnderFaultsIsLinearizable(self):
        """
        A partition of the leader and kill -9 of the leader (seed 18's
        schedule), with linearizable reads: valid.
        """
        code, stdout, stderr, out = await self.chaos("--time", "20", "--seed", "18", "--json")
        self.assertRun(code, stdout, stderr, 0)
        summary = json.loads(stdout)
        self.assertIs(summary["valid"], True)
        self.assertEqual(summary["verdict"], "linearizable")
        self.assertEqual(sorted(summary["nemesis"]["counts"]), ["kill", "partition-leader"])
        self.assertGreater(summary["ops"]["all"]["ok"], 100)
        for name in ("history.jsonl", "results.json"):
            self.assertTrue(os.path.exists(os.path.join(out, name)), name)
        self.assertEqual(summary["history"], os.path.join(out, "history.jsonl"))

    async def test_serializableReadsAreCaught(self):
        """
        With serializable (local) reads, a member answers from what it has
        applied: a follower lags the leader that acknowledged a write, and
        a leader cut off keeps answering while the majority moves on.  Not
        linearizable, and the table shows the operations involved.
        """
        code, stdout, stderr, out = await self.chaos(
            "--time", "12", "--seed", "1", "--reads", "serializable",
            "--nemesis", "partition-leader")
        self.assertRun(code, stdout, stderr, 1)
        self.assertIn("NOT LINEARIZABLE", stdout)
        self.assertIn("<- cannot take effect", stdout)
        self.assertIn("read k", stdout)
        with open(os.path.join(out, "results.json")) as f:
            summary = json.load(f)
        self.assertIs(summary["valid"], False)
        self.assertTrue(summary["anomalies"])
        # Each window holds a read that saw an overwritten value.
        for anomaly in summary["anomalies"]:
            self.assertIn("read", [op["f"] for op in anomaly["ops"]], anomaly)

    async def test_etcdIsLinearizable(self):
        if not os.path.exists(ETCD):
            raise SkipTest("etcd is not installed at %s" % (ETCD,))
        code, stdout, stderr, out = await self.chaos(
            "--time", "15", "--seed", "12", "--target", "etcd", "--json")
        self.assertRun(code, stdout, stderr, 0)
        summary = json.loads(stdout)
        self.assertIs(summary["valid"], True)
        self.assertEqual(summary["target"], "etcd")
        self.assertTrue(summary["nemesis"]["counts"])
        self.assertGreater(summary["ops"]["all"]["ok"], 100)

    async def test_interruptedRunCleansUp(self):
        """
        SIGINT (Ctrl-C) once the workload runs: the members stop, the
        namespaces go, exit status 130.
        """
        collect = self.spawn("--time", "120", "--seed", "3", "--nemesis", "pause")
        history = os.path.join(collect.directory, "history.jsonl")

        def started():
            try:
                with open(history) as f:
                    return sum(1 for line in f if '"record":"op"' in line) > 20
            except OSError:
                return False
        for _ in range(600):
            if started() or collect.ended.called:
                break
            await deferLater(reactor, 0.1, lambda: None)
        self.assertTrue(started(), b"".join(collect.err).decode("utf-8", "replace")[-3000:])
        self.assertTrue(_ourNamespaces())
        collect.process.signalProcess(signal.SIGINT)
        code = await collect.ended
        self.assertEqual(code, 130, b"".join(collect.err).decode("utf-8", "replace")[-3000:])
        self.assertEqual(_ourNamespaces(), [])
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        self.assertNotIn(os.path.join(collect.directory, "members"), ps)
