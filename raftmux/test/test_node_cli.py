# -*- test-case-name: raftmux.test.test_node_cli -*-
"""
End to end from the command line: real ``twistd -n raftmux`` processes on
loopback, managed by ``raftmux.cluster.LocalCluster``.

- kill -9 of the leader, then of a follower, with writes going on and each
  victim restarted from its data directory; at the end every acknowledged
  write reads back right from every member, linearizable and
  serializable (once with the default snapshot count, once with
  ``--snapshot-count 50`` so that a restarted member catches up from the
  leader's snapshot);
- ``python -m raftmux.cluster``: run, status, kill, start, stop, and its
  members dying with it when it is killed;
- a bad flag: a usage message and a non-zero exit, no traceback;
- a log damaged in the middle: the member refuses to start, says why, and
  twistd exits.

Ports come from ``freePort`` (bind and release): a child must know its URLs
before it starts.  Data directories are on /dev/shm when there is one.
Every wait polls a condition with a bound.
"""

import glob
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sys
import tempfile

from twisted.internet import defer, protocol, reactor
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase, TestCase

from raftmux.cluster import (
    LocalCluster,
    childEnvironment,
    freePort,
    planMembers,
    twistdCommand,
)
from raftmux.raft import wal
from raftmux.rafthttp.testing import waitFor
from raftmux.testing.tree import repositoryFile

# Fast elections keep the outages short; a client retries while there is none.
FAST = ["--heartbeat-interval", "50", "--election-timeout", "500"]
SNAPSHOTS = ["--snapshot-count", "50", "--snapshot-catchup-entries", "10"]
# PUT answers after which a client tries again: no leader yet, not the
# leader, a leader that could not be reached or did not answer in time.
RETRY = (503, 504)


def scratchDirectory(testCase):
    """
    A directory on /dev/shm when there is one (cheap fsyncs), removed after
    the test unless ``RAFTMUX_KEEP_TEST_DIRS`` is set (the members' logs are
    in it).
    """
    directory = tempfile.mkdtemp(prefix="raftmux-cli-",
                                 dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    if not os.environ.get("RAFTMUX_KEEP_TEST_DIRS"):
        testCase.addCleanup(shutil.rmtree, directory, True)
    return directory


def alive(pid):
    """Is ``pid`` a live process (not gone, not a zombie)?"""
    try:
        with open("/proc/%d/stat" % (pid,)) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class ClusterCase(TestCase):
    """A ``LocalCluster`` per test, and a client that counts acknowledged writes."""

    timeout = 120

    async def startCluster(self, size=3, flags=()):
        self.cluster = LocalCluster.create(scratchDirectory(self), size=size, ports="auto",
                                           onePort=True, token="cli-test",
                                           flags=FAST + list(flags))
        self.addCleanup(self.cluster.stopAll)
        self.cluster.start()
        await self.cluster.waitHealthy(timeout=30)
        self.acked = {}
        self.lastIndex = 0
        return self.cluster

    async def write(self, key, value, via, timeout=30.0):
        """
        ``PUT /kv/key`` until a member acknowledges it (bounded): first on
        ``via``, then round the running members while there is no leader.
        The acknowledged write is recorded; an unacknowledged attempt may
        or may not have been applied.
        """
        deadline = reactor.seconds() + timeout
        names = [via] + [n for n in self.cluster.members if n != via]
        attempt = 0
        last = None
        while reactor.seconds() < deadline:
            running = [n for n in names if self.cluster.members[n].running]
            name = running[attempt % len(running)]
            attempt += 1
            try:
                code, body, _ = await self.cluster.request(name, "PUT", "/kv/" + key, value)
            except Exception as e:  # refused, reset, timed out: try again
                last = "%s: %r" % (name, e)
            else:
                if code == 200:
                    self.acked[key] = value
                    self.lastIndex = max(self.lastIndex, json.loads(body)["index"])
                    return
                answer = json.loads(body)
                self.assertEqual(answer.keys(), {"error"}, body)
                self.assertIn(code, RETRY,
                                "PUT %s on %s: %d %r" % (key, name, code, body))
                last = "%s: %d %s" % (name, code, answer["error"])
            await deferLater(reactor, 0.05, lambda: None)
        self.fail("PUT %s never acknowledged in %.0f s; last: %s" % (key, timeout, last))

    async def writeMany(self, prefix, count, via):
        for i in range(count):
            await self.write("%s-%03d" % (prefix, i), "%s value %d" % (prefix, i),
                             via[i % len(via)])

    async def read(self, name, key, serializable=False):
        path = "/kv/" + key + ("?serializable=true" if serializable else "")
        code, body, _ = await self.cluster.request(name, "GET", path)
        return code, body.decode("utf-8", "replace")

    async def waitCaughtUp(self, name, timeout=30.0):
        """Until ``name`` serves the latest acknowledged write from its own state."""
        key = list(self.acked)[-1]
        deadline = reactor.seconds() + timeout
        while True:
            try:
                if await self.read(name, key, serializable=True) == (200, self.acked[key]):
                    return
            except Exception:
                pass
            if reactor.seconds() > deadline:
                self.fail("%s did not catch up with %s in %.0f s:\n%s" % (
                    name, key, timeout, self.cluster.member(name).tail()))
            await deferLater(reactor, 0.05, lambda: None)

    async def checkEveryAckedWrite(self):
        """Every acknowledged write, on every member, both kinds of read."""
        wrong = []
        sem = defer.DeferredSemaphore(16)

        async def check(name, key, serializable):
            got = await self.read(name, key, serializable)
            if got != (200, self.acked[key]):
                wrong.append((name, key, "serializable" if serializable else "linearizable",
                              got))

        for name in self.cluster.members:
            await self.waitCaughtUp(name)
            await defer.gatherResults([
                sem.run(lambda n=name, k=key, s=s: defer.ensureDeferred(check(n, k, s)))
                for key in self.acked for s in (False, True)])
        self.assertEqual(wrong, [], "%d acknowledged writes read wrong" % (len(wrong),))


class KillNineTests(ClusterCase):
    """kill -9 of the leader, then of a follower, under writes; nothing acked is lost."""

    async def killAndRestart(self, victim, writes, snapshots):
        cluster = self.cluster
        before = self.lastIndex
        victimID = await self.memberID(victim)
        exit = await cluster.kill(victim)
        self.assertEqual(exit, ("signal", signal.SIGKILL))
        others = [n for n in cluster.members if n != victim]
        if snapshots:
            await self.waitGivenUp(victimID)
        await self.writeMany("without-" + victim, writes, others)
        cluster.start(victim)
        await cluster.waitHealthy([victim], timeout=30)
        await self.waitCaughtUp(victim)
        output = cluster.member(victim).output()
        self.assertIn("raftmux: restarting member", output)
        if snapshots:
            # Its log ended near ``before`` (its own snapshots are older);
            # the leader compacted past it, so the member caught up by
            # restoring the leader's snapshot (a MsgSnap on the pipeline).
            restored = [int(i) for i in re.findall(r"restored snapshot at index (\d+)", output)]
            self.assertTrue(restored and max(restored) > before + 10,
                            "%s caught up without a snapshot past %d: restored %s"
                            % (victim, before, restored))

    async def memberID(self, name):
        """``name``'s member ID (hex), as the cluster lists it."""
        asked = next(n for n in self.cluster.members if self.cluster.member(n).running)
        code, body, _ = await self.cluster.request(asked, "GET", "/cluster/members")
        url = self.cluster.member(name).peerURL
        return next(m["id"] for m in json.loads(body)["members"] if url in m["peerURLs"])

    async def metric(self, name, sample, **labels):
        """The sum of ``sample`` (with ``labels``) in member ``name``'s /metrics."""
        code, body, _ = await self.cluster.request(name, "GET", "/metrics")
        total = 0.0
        for line in body.decode().splitlines():
            match = re.match(r"%s\{([^}]*)\} (\S+)$" % (re.escape(sample),), line)
            if match and all('%s="%s"' % kv in match.group(1) for kv in labels.items()):
                total += float(match.group(2))
        return total

    async def waitGivenUp(self, victimID, timeout=20.0):
        """
        Until the leader has failed to send to the dead member (so it
        stopped streaming entries to it and only probes).  Before that,
        entries it sends may wait in its pipeline for the member's session
        and reach the member once it is back (see the report on
        ``PeerDialer._waitForPeer``), which would let it catch up from the
        log instead of a snapshot.
        """
        deadline = reactor.seconds() + timeout
        while True:
            leader = await self.cluster.leader()
            if leader is not None:
                failed = await self.metric(leader, "etcd_network_peer_sent_failures_total",
                                           To=victimID)
                dropped = await self.metric(leader, "raftmux_rafthttp_dropped_messages_total",
                                            Peer=victimID, Direction="out")
                if failed or dropped:
                    return
            if reactor.seconds() > deadline:
                self.fail("the leader never gave up sending to %s" % (victimID,))
            await deferLater(reactor, 0.05, lambda: None)

    async def scenario(self, flags=(), snapshots=False):
        cluster = await self.startCluster(3, flags)
        names = list(cluster.members)
        await self.writeMany("first", 30, names)
        leader = await cluster.waitLeader()
        await self.killAndRestart(leader, 80, snapshots)
        leader = await cluster.waitLeader()
        # A follower, the one not restarted already when there is a choice.
        follower = [n for n in names if n != leader and cluster.member(n).starts == 1] \
            or [n for n in names if n != leader]
        await self.killAndRestart(follower[0], 80, snapshots)
        await self.writeMany("last", 10, names)
        await self.checkEveryAckedWrite()
        self.assertGreaterEqual(len(self.acked), 200)

    def test_killNineLeaderThenFollower(self):
        """Default snapshot count: a restarted member catches up from the log."""
        return defer.ensureDeferred(self.scenario())

    def test_killNineCatchUpBySnapshot(self):
        """
        ``--snapshot-count 50 --snapshot-catchup-entries 10``: while a
        member is down the leader snapshots and compacts past its log, so
        the restarted member installs the leader's snapshot.
        """
        return defer.ensureDeferred(self.scenario(SNAPSHOTS, snapshots=True))

    @defer.inlineCallbacks
    def test_deleteEverywhere(self):
        """A DELETE acknowledged on a follower is gone from every member."""
        cluster = yield defer.ensureDeferred(self.startCluster(3))
        leader = yield defer.ensureDeferred(cluster.waitLeader())
        follower = [n for n in cluster.members if n != leader][0]
        yield defer.ensureDeferred(self.write("doomed", "soon gone", follower))
        code, body, _ = yield cluster.request(follower, "DELETE", "/kv/doomed")
        self.assertEqual((code, json.loads(body)["deleted"]), (200, True))
        for name in cluster.members:
            code, body = yield defer.ensureDeferred(self.read(name, "doomed"))
            self.assertEqual((code, json.loads(body)), (404, {"error": "key not found"}))


class _Collect(protocol.ProcessProtocol):
    """A child's output; ``done`` once it ended, ``exit`` its status (None: a signal)."""

    def __init__(self):
        self.output = b""
        self.ended = defer.Deferred()
        self.done = False
        self.exit = None

    def outReceived(self, data):
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason):
        self.done = True
        self.exit = reason.value.exitCode
        self.ended.callback(None)


class ClusterCommandTests(TestCase):
    """``python -m raftmux.cluster`` as a user runs it."""

    timeout = 90

    def runCluster(self):
        self.dir = os.path.join(scratchDirectory(self), "cluster")
        self.supervisor = _Collect()
        argv = [sys.executable, "-m", "raftmux.cluster", "--dir", self.dir, "--ports", "auto",
                "--one-port", "--"] + FAST
        process = reactor.spawnProcess(self.supervisor, sys.executable, argv,
                                       env=childEnvironment())
        self.seen = set()
        self.addCleanup(self.everyProcessGone)
        self.addCleanup(self.killSupervisor, process)
        return process

    def killSupervisor(self, process):
        if not self.supervisor.done and process.pid is not None:
            process.signalProcess("KILL")
        return self.supervisor.ended

    async def everyProcessGone(self):
        # The guardian SIGKILLs the members of a supervisor that died.
        await waitFor(reactor, lambda: not any(alive(pid) for pid in self.seen), timeout=15,
                      what="every member process gone")

    def memberPids(self):
        try:
            with open(os.path.join(self.dir, "cluster.json")) as f:
                pids = {m["name"]: m["pid"] for m in json.load(f)["members"]}
        except (OSError, ValueError):
            return {}
        self.seen.update(p for p in pids.values() if p)
        return pids

    async def waitHealthy(self):
        await waitFor(reactor, lambda: b"healthy after" in self.supervisor.output
                      or self.supervisor.done, timeout=40,
                      what="the cluster's 'healthy' line")
        self.assertFalse(self.supervisor.done, self.supervisor.output.decode())
        pids = self.memberPids()
        self.assertEqual(sorted(pids), ["n1", "n2", "n3"])
        return pids

    async def ctl(self, *args):
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-m", "raftmux.cluster", "--dir", self.dir] + list(args),
            env=childEnvironment())
        return code, (out + err).decode()

    async def healthyRows(self):
        code, text = await self.ctl("status")
        self.assertEqual(code, 0, text)
        header = text.splitlines()[0].split()
        self.assertEqual((header[0], header[-1]), ("NAME", "GOSSIP"), text)
        return {line.split()[0]: line.split()[3] == "yes"
                for line in text.splitlines()[1:] if line.strip() and not line.startswith("(")}

    def test_runStatusKillStartStop(self):
        """
        The cluster starts in the foreground and prints its URLs; ``status``
        shows three healthy members; ``kill leader`` kill -9s it, ``start``
        brings it back; ``add n4`` and ``remove n4`` change the membership;
        ``stop`` ends the supervisor with status 0 and every member with it.
        """
        async def go():
            self.runCluster()
            await self.waitHealthy()
            output = self.supervisor.output.decode()
            for n in ("n1", "n2", "n3"):
                self.assertRegex(output, r"%s +pid \d+ +http://127\.0\.0\.1:\d+" % (n,))
            self.assertEqual(await self.healthyRows(), {"n1": True, "n2": True, "n3": True})
            code, text = await self.ctl("kill", "leader")
            self.assertEqual(code, 0, text)
            victim = re.match(r"killed (n\d) \(killed by SIGKILL\)", text).group(1)
            rows = await self.healthyRows()
            self.assertFalse(rows[victim])
            code, text = await self.ctl("start", victim)
            self.assertEqual((code, text.split()[:2]), (0, ["started", victim]), text)
            self.memberPids()
            self.assertEqual(await self.healthyRows(), {"n1": True, "n2": True, "n3": True})
            code, text = await self.ctl("add", "n4")
            self.assertRegex(text, r"^added n4 \(member [0-9a-f]+\) at http://127\.0\.0\.1:\d+, "
                                   r"pid \d+\n$")
            self.memberPids()
            self.assertEqual(await self.healthyRows(),
                             {"n1": True, "n2": True, "n3": True, "n4": True})
            code, text = await self.ctl("remove", "n4")
            self.assertRegex(text, r"^removed n4 \(member [0-9a-f]+\)\n$")
            self.assertEqual(await self.healthyRows(), {"n1": True, "n2": True, "n3": True})
            code, text = await self.ctl("stop")
            self.assertEqual((code, text.strip()), (0, "stopped"))
            await waitFor(reactor, lambda: self.supervisor.done, timeout=20,
                          what="the supervisor's exit")
            self.assertEqual(self.supervisor.exit, 0, self.supervisor.output.decode())
            self.assertFalse([p for p in self.seen if alive(p)])
            self.assertIn(b"raftmux cluster: stopped", self.supervisor.output)
            self.assertNotIn(b"Traceback", self.supervisor.output)
            code, text = await self.ctl("status")
            self.assertEqual(code, 1)
            self.assertIn("no cluster is running", text)
        return defer.ensureDeferred(go())

    def test_membersDieWithTheSupervisor(self):
        """kill -9 of ``python -m raftmux.cluster``: its members do not outlive it."""
        async def go():
            process = self.runCluster()
            pids = await self.waitHealthy()
            self.assertTrue(all(alive(p) for p in pids.values()))
            process.signalProcess("KILL")
            await self.supervisor.ended
            await waitFor(reactor, lambda: not any(alive(p) for p in pids.values()),
                          timeout=10, what="the members' end")
        return defer.ensureDeferred(go())


class StartFailureTests(TestCase):
    """A member that cannot start says so and twistd exits."""

    timeout = 60

    def test_badFlagIsAUsageError(self):
        """A bad flag: the usage, the reason, a non-zero exit, no traceback."""
        async def go():
            command = twistdCommand()
            twistd = _Collect()
            process = reactor.spawnProcess(
                twistd, command[0], command + ["-n", "--pidfile=", "raftmux",
                                               "--initial-cluster-state", "bogus"],
                env=childEnvironment(), path=scratchDirectory(self))
            self.addCleanup(lambda: None if twistd.done else (
                process.signalProcess("KILL"), twistd.ended)[1])
            await waitFor(reactor, lambda: twistd.done, timeout=30, what="twistd's exit")
            text = twistd.output.decode()
            self.assertNotEqual(twistd.exit, 0)
            self.assertIn("Usage: twistd", text)
            self.assertIn("--initial-cluster-state must be 'new' or 'existing', got 'bogus'",
                          text)
            self.assertNotIn("Traceback", text)
        return defer.ensureDeferred(go())

    def test_corruptLogRefusesToStart(self):
        """
        A record damaged in the middle of the log (an intact record after
        it, so not a torn tail): the member logs that it cannot start and
        why, serves nothing, and twistd exits instead of hanging.
        """
        async def go():
            cluster = LocalCluster.create(scratchDirectory(self), size=1, ports="auto",
                                          token="corrupt", flags=FAST)
            self.addCleanup(cluster.stopAll)
            cluster.start()
            await cluster.waitHealthy(timeout=30)
            for i in range(10):
                code, body, _ = await cluster.request("n1", "PUT", "/kv/k%d" % (i,), "v")
                self.assertEqual(code, 200, body)
            # twistd ends a SIGTERM by raising it again once it has stopped.
            self.assertEqual(await cluster.stop("n1"), ("signal", signal.SIGTERM))
            member = cluster.member("n1")
            segment = sorted(glob.glob(os.path.join(member.dataDir, "member", "raft",
                                                    "*.wal")))[-1]
            with open(segment, "rb") as f:
                data = bytearray(f.read())
            records = wal.scanRecords(bytes(data)).records
            self.assertGreater(len(records), 4)
            kind, payload, start, end = records[len(records) // 2]
            self.assertTrue(payload)
            data[end - 1] ^= 0x40  # a payload byte: its CRC no longer matches
            with open(segment, "wb") as f:
                f.write(data)

            cluster.start("n1")
            try:
                await waitFor(reactor, lambda: not member.running, timeout=15,
                              what="twistd's exit")
            except AssertionError:
                self.fail("twistd did not exit after the member failed to start:\n"
                          + member.output())
            self.assertEqual(member.exits[-1], ("exit", 1), "twistd's exit status")
            output = member.output()
            self.assertIn("raftmux: member n1 cannot start: the raft log in", output)
            self.assertIn("CRC mismatch at offset %d" % (start,), output)
            self.assertNotIn("listening on", output)
            self.assertNotIn("Traceback", output)
        return defer.ensureDeferred(go())


class FailedStartTests(TestCase):
    """
    A failed start leaves nothing behind and ends the process with status 1
    (issue 18): under ``twistd raftmux`` and inside a ``.tac`` file.
    """

    timeout = 90

    def takePort(self, port):
        """Listen on ``port`` with a plain socket until the test ends."""
        taken = socket.socket()
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        self.addCleanup(taken.close)
        return taken

    async def waitExit(self, member):
        try:
            await waitFor(reactor, lambda: not member.running, timeout=30,
                          what="twistd's exit")
        except AssertionError:
            self.fail("twistd did not exit:\n" + member.output())

    def test_portTakenThenFree(self):
        """
        The client port is taken: twistd exits 1 having written nothing in
        the data directory.  Started again once the port is free, the member
        elects itself, even with another --initial-cluster-token.
        """
        async def go():
            directory = scratchDirectory(self)
            cluster = LocalCluster.create(directory, size=1, ports="auto", onePort=False,
                                          token="first", flags=FAST)
            self.addCleanup(cluster.stopAll)
            member = cluster.member("n1")
            taken = self.takePort(int(member.clientURL.rsplit(":", 1)[1]))
            cluster.start("n1")
            await self.waitExit(member)
            self.assertEqual(member.exits[-1], ("exit", 1), member.output())
            self.assertIn("cannot listen on %s" % (member.clientURL,), member.output())
            self.assertEqual(os.listdir(member.dataDir) if os.path.isdir(member.dataDir)
                             else [], [], "written by a start that failed")
            taken.close()
            cluster.token = "second"
            cluster.start("n1")
            await cluster.waitHealthy(timeout=30)
            self.assertEqual(await cluster.waitLeader(timeout=30), "n1")
        return defer.ensureDeferred(go())

    def test_tacExampleExitsOnFailedStart(self):
        """
        ``docs/examples/raftmux.tac`` under ``twistd -ny``, its port taken:
        the process ends with status 1 instead of running on without a node.
        """
        async def go():
            directory = scratchDirectory(self)
            with open(repositoryFile("docs", "examples", "raftmux.tac")) as f:
                tac = f.read()
            peer, client = freePort(), freePort()
            self.takePort(client)
            tac = tac.replace("http://127.0.0.1:2380", "http://127.0.0.1:%d" % (peer,)) \
                .replace("http://127.0.0.1:2379", "http://127.0.0.1:%d" % (client,)) \
                .replace('"example.etcd"', repr(os.path.join(directory, "example.etcd")))
            path = os.path.join(directory, "raftmux.tac")
            with open(path, "w") as f:
                f.write(tac)
            command = twistdCommand()
            twistd = _Collect()
            process = reactor.spawnProcess(
                twistd, command[0], command + ["-ny", path, "--pidfile="],
                env=childEnvironment(), path=directory)
            self.addCleanup(lambda: None if twistd.done else (
                process.signalProcess("KILL"), twistd.ended)[1])
            await waitFor(reactor, lambda: twistd.done, timeout=30, what="twistd's exit")
            text = twistd.output.decode()
            self.assertEqual(twistd.exit, 1, text)
            self.assertIn("cannot listen on http://127.0.0.1:%d" % (client,), text)
            self.assertFalse(os.path.exists(os.path.join(directory, "example.etcd")))
        return defer.ensureDeferred(go())


class ProcfileTests(SynchronousTestCase):
    """The Procfile and ``python -m raftmux.cluster`` run the same cluster."""

    def test_procfileIsTheDefaultLayout(self):
        """
        Each Procfile line is ``twistd -n --pidfile= raftmux`` with the flags
        ``LocalCluster`` gives the same member of the default layout
        (12379/12380, 22379/22380, 32379/32380, token raftmux-cluster, data
        in raftmux-cluster/<name>).
        """
        with open(repositoryFile("Procfile")) as f:
            entries = dict(line.split(":", 1) for line in f.read().splitlines()
                           if line.strip() and not line.startswith("#"))
        self.assertEqual(sorted(entries), ["n1", "n2", "n3"])
        cluster = LocalCluster("raftmux-cluster", planMembers(), guardian=False)
        for name, command in entries.items():
            argv = shlex.split(command)
            self.assertEqual(argv[:4], ["twistd", "-n", "--pidfile=", "raftmux"])
            expected = cluster.command(name)[-18:]
            expected[expected.index("--data-dir") + 1] = "raftmux-cluster/" + name
            self.assertEqual(dict(zip(argv[4::2], argv[5::2], strict=True)),
                             dict(zip(expected[::2], expected[1::2], strict=True)))


class ControlSocketTests(SynchronousTestCase):
    """The control socket: one JSON line in, one out, one ``command_<name>`` per command."""

    def connect(self, handler):
        from twisted.internet.testing import StringTransport

        from raftmux.cluster.control import controlFactory
        proto = controlFactory(handler).buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        return proto, transport

    def answers(self, transport):
        return [json.loads(line) for line in transport.value().splitlines()]

    def test_dispatchByName(self):
        class Handler:
            def command_echo(self, request):
                return {"ok": True, "said": request["what"]}

            async def command_later(self, request):
                return {"ok": True, "later": True}

            def command_broken(self, request):
                raise RuntimeError("it broke")
        proto, transport = self.connect(Handler())
        for request in ({"cmd": "echo", "what": "hi"}, {"cmd": "later"},
                        {"cmd": "broken"}, {"cmd": "nothing"}, {"cmd": "__class__"},
                        {"cmd": 3}, ["not", "a", "dict"]):
            proto.dataReceived(json.dumps(request).encode() + b"\n")
        self.assertEqual(self.answers(transport), [
            {"ok": True, "said": "hi"}, {"ok": True, "later": True},
            {"ok": False, "error": "it broke"},
            {"ok": False, "error": "unknown command 'nothing'"},
            {"ok": False, "error": "unknown command '__class__'"},
            {"ok": False, "error": "unknown command 3"},
            {"ok": False, "error": "a request is a JSON object"}])

    def test_badJSONAndLongLines(self):
        proto, transport = self.connect(object())
        proto.dataReceived(b"{nope\n")
        (answer,) = self.answers(transport)
        self.assertFalse(answer["ok"])
        proto.dataReceived(b"x" * (70 * 1024))
        self.assertTrue(transport.disconnecting)

    def test_supervisorCommands(self):
        """Every command of the command line has its method on the supervisor."""
        from raftmux.cluster.cli import COMMANDS
        from raftmux.cluster.supervisor import Supervisor
        remote = set(COMMANDS) - {"run", "leader"}
        self.assertEqual({c for c in remote if hasattr(Supervisor, "command_" + c)}, remote)
