# -*- test-case-name: raftmux.test.test_etcd_goclient -*-
"""
etcd's own Go client (clientv3 from etcd 3.4, as Debian ships it, driven by
``raftmux/test/go/etcdclient``) against a 3-member raftmux cluster, over
the gRPC API on the members' client ports, and -- the control, the same
program and the same steps -- against a 3-member etcd 3.4.23 cluster.

The client checks puts, gets, a txn, a watch and a lease, then writes keys
one after another, printing each acknowledged one.  Meanwhile the test
kill -9s the leader (found through ``/v3/maintenance/status``), lets the
client write on through the new leader, restarts the killed member from
its data directory and lets it write on again; then every member, asked
alone, must hold every acknowledged key.

Skipped when ``go``, clientv3's source or /usr/bin/etcd is absent, and for
raftmux when this tree serves no gRPC on the node.
"""

import os
import shutil
import signal
import tempfile

from twisted.internet import defer, protocol, reactor
from twisted.trial.unittest import SkipTest, TestCase

from raftmux.cluster import ETCD
from raftmux.testing.etcdcluster import grpcOnTheNode, newCluster, v3Leader
from raftmux.testing.gopeer import buildEtcdClient

#: Fast elections keep the run short, on both sides.
FAST = ["--heartbeat-interval", "50", "--election-timeout", "500"]
#: Acknowledged writes before the kill, while the leader is down, and after
#: the restart.
ACKS = 30


class _GoClient(protocol.ProcessProtocol):
    """The check run's output, line by line; ``acks(n)`` fires at n acknowledged keys."""

    def __init__(self):
        self.lines = []
        self.errors = b""
        self.acked = 0
        self.buffer = b""
        self.ended = defer.Deferred()
        self._waiters = []

    def outReceived(self, data):
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            self.lines.append(line)
            if line.startswith("ACK "):
                if int(line[4:]) != self.acked:
                    self.lines.append("(test: ACK out of order)")
                self.acked += 1
        self._wake()

    def errReceived(self, data):
        # Failed puts while a member is down, one line each: keep the last few.
        self.errors = (self.errors + data)[-4000:]

    def _wake(self):
        ready = [(n, d) for n, d in self._waiters if self.acked >= n]
        self._waiters = [(n, d) for n, d in self._waiters if self.acked < n]
        for _, d in ready:
            d.callback(self.acked)

    def acks(self, n, timeout=20.0):
        d = defer.Deferred()
        self._waiters.append((n, d))
        self._wake()
        return d.addTimeout(timeout, reactor)

    def processEnded(self, reason):
        for _, d in self._waiters:
            d.errback(RuntimeError("the Go client ended at %d acknowledged keys" % (
                self.acked,)))
        self._waiters = []
        self.ended.callback(reason.value.exitCode)

    def transcript(self):
        shown = [line for line in self.lines if not line.startswith("ACK ")]
        return "stdout (ACK lines left out, %d acked):\n%s\nstderr (tail):\n%s" % (
            self.acked, "\n".join(shown), self.errors.decode("utf-8", "replace"))


class _CheckMixin:
    """The check run against ``self.kind``'s cluster."""

    timeout = 90
    kind: str

    def setUp(self):
        self.binary = buildEtcdClient()
        directory = tempfile.mkdtemp(prefix="raftmux-goclient-",
                                     dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        if not os.environ.get("RAFTMUX_KEEP_TEST_DIRS"):
            self.addCleanup(shutil.rmtree, directory, True)
        self.cluster = newCluster(self.kind, directory, reactor, flags=FAST)
        self.addCleanup(self.cluster.stopAll)

    def logs(self):
        return "\n".join("--- %s.log\n%s" % (m.name, m.tail(20))
                         for m in self.cluster.members.values())

    def test_clientChecksAndSurvivesALeaderKill(self):
        """
        clientv3's kv, txn, watch and lease calls work; no write the client
        saw acknowledged is lost across a kill -9 of the leader and its
        restart, on any member.
        """
        async def go():
            cluster = self.cluster
            cluster.start()
            await cluster.waitHealthy(timeout=30)
            await v3Leader(cluster, timeout=30)
            client = _GoClient()
            endpoints = ",".join(m.clientURL for m in cluster.members.values())
            process = reactor.spawnProcess(
                client, self.binary,
                [self.binary, "check", "--endpoints", endpoints, "--prefix", "goclient",
                 "--timeout", "60s"],
                env={"PATH": os.environ.get("PATH", "")})
            self.addCleanup(self.endClient, process, client)
            try:
                await client.acks(ACKS)
                leader = await v3Leader(cluster, timeout=10)
                killedAt = client.acked
                self.assertEqual(await cluster.kill(leader), ("signal", signal.SIGKILL))
                # The two left elect a leader; the client writes on through it.
                await client.acks(killedAt + ACKS)
                newLeader = await v3Leader(cluster, timeout=10)
                self.assertNotEqual(newLeader, leader)
                cluster.start(leader)
                await cluster.waitHealthy([leader], timeout=30)
                await client.acks(client.acked + ACKS)
            except Exception as e:
                self.fail("%s\n%s\n%s" % (e, client.transcript(), self.logs()))
            process.writeToChild(0, b"stop\n")
            code = await client.ended.addTimeout(60, reactor)
            self.assertEqual(code, 0, client.transcript() + "\n" + self.logs())
            for step in ("OK kv", "OK txn", "OK watch", "OK lease", "OK verify"):
                self.assertIn(step, client.lines, client.transcript())
            self.assertNotIn("(test: ACK out of order)", client.lines)
            self.assertGreaterEqual(client.acked, 3 * ACKS)
            written = [line for line in client.lines if line.startswith("OK write ")]
            self.assertEqual(written[0].split()[2], str(client.acked), written)
            verified = [line.split() for line in client.lines if line.startswith("VERIFIED ")]
            self.assertEqual(sorted(v[1] for v in verified),
                             sorted(m.clientURL for m in cluster.members.values()))
            for v in verified:
                self.assertGreaterEqual(int(v[2]), client.acked, v)
            self.assertEqual(cluster.member(leader).starts, 2)
            for m in cluster.members.values():
                self.assertNotIn("Traceback", m.output(sinceStart=False), m.name)
        return defer.ensureDeferred(go())

    def endClient(self, process, client):
        if client.ended.called:
            return None
        try:
            process.signalProcess("KILL")
        except Exception:
            pass
        return client.ended


class RaftmuxClusterTests(_CheckMixin, TestCase):
    """etcd's Go client against three ``twistd raftmux`` members."""

    kind = "raftmux"

    def setUp(self):
        if not grpcOnTheNode():
            raise SkipTest("this raftmux serves no etcd gRPC API on the node "
                           "(raftmux.grpc is missing): etcd's Go client cannot talk to it")
        return super().setUp()


class EtcdClusterTests(_CheckMixin, TestCase):
    """The control: the same run against three etcd 3.4 members."""

    kind = "etcd"

    def setUp(self):
        if not os.path.exists(ETCD):
            raise SkipTest("etcd 3.4 (%s) is not installed (Debian: apt-get install etcd-server)"
                           % (ETCD,))
        return super().setUp()
