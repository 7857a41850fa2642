# -*- test-case-name: raftmux.test.test_etcdctl -*-
"""
etcdctl 3.4 (grpc-go, ``ETCDCTL_API=3``) against a 3-member raftmux cluster
(``python -m raftmux.cluster run``: three ``twistd raftmux`` processes),
and, where the output is the same program's answer to the same requests,
against a real one-member etcd 3.4 fed the same commands in the same order:
the two outputs must match once what legitimately differs is taken out
(cluster, member and lease IDs, raft terms, a lease's remaining seconds).

One cluster (and one etcd) for the whole class, started by the first test
as child processes outside the reactor (trial kills reactor-managed
processes after each test); each test runs etcdctl through the reactor.
Skipped when etcdctl is missing; the comparisons are skipped (the raftmux
checks still run) when etcd is.
"""

import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

from twisted.internet import defer, protocol, reactor, task
from twisted.trial.unittest import SkipTest, TestCase

from raftmux.cluster import ETCD, freePort

ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"
FAST = ["--heartbeat-interval", "50", "--election-timeout", "500"]
START_TIMEOUT = 60.0


class _Child:
    """
    A child process outside the reactor; a thread copies its output to a
    log file and sets ``ready`` at the first line containing ``readyText``
    (or when the process ends, with ``ended`` set).
    """

    def __init__(self, argv, logPath, readyText, cwd=None):
        self.logPath = logPath
        self.ready = threading.Event()
        self.ended = False
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=cwd,
                                        env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self._readyText = readyText.encode()
        self._thread = threading.Thread(target=self._copy, daemon=True)
        self._thread.start()

    def _copy(self):
        with open(self.logPath, "ab") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                if self._readyText in line:
                    self.ready.set()
        self.ended = True
        self.ready.set()

    def waitReady(self, what):
        if not self.ready.wait(START_TIMEOUT) or self.ended:
            raise RuntimeError("%s did not start:\n%s" % (what, self.tail()))

    def tail(self, size=4000):
        with open(self.logPath, "rb") as f:
            return f.read()[-size:].decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._thread.join(timeout)


class _Ctl(protocol.ProcessProtocol):
    """One etcdctl run: ``stdin`` written and closed; ``done`` fires ``(code, out, err)``."""

    def __init__(self, stdin=b"", until=None):
        self.stdin = stdin
        self.until = until
        self.out = b""
        self.err = b""
        self.done = defer.Deferred()
        self.stopped = False

    def connectionMade(self):
        if self.stdin:
            self.transport.write(self.stdin)
        self.transport.closeStdin()

    def outReceived(self, data):
        self.out += data
        if self.until is not None and not self.stopped and self.until(self.out):
            # A watch printed what was expected: end it as ^C would.
            self.stopped = True
            self.transport.signalProcess("INT")

    def errReceived(self, data):
        self.err += data

    def processEnded(self, reason):
        code = getattr(reason.value, "exitCode", None)
        self.done.callback((code, self.out.decode("utf-8", "replace"),
                            self.err.decode("utf-8", "replace")))


def etcdctl(endpoints, args, stdin=b"", until=None, timeout=20.0):
    """Run etcdctl; ``until(stdout)`` ends a long-running one (watch) once true."""
    ctl = _Ctl(stdin, until)
    argv = [ETCDCTL, "--endpoints", ",".join(endpoints), "--command-timeout=5s",
            "--dial-timeout=5s"] + list(args)
    process = reactor.spawnProcess(ctl, ETCDCTL, argv, env=dict(os.environ, ETCDCTL_API="3"))
    # Bounded: a run still going at the deadline is killed (its code is then None).
    timer = reactor.callLater(timeout, lambda: process.signalProcess("KILL"))

    def ended(result):
        if timer.active():
            timer.cancel()
        return result
    return ctl.done.addBoth(ended)


_LEASE = re.compile(r"\b[0-9a-f]{16}\b")
_REMAINING = re.compile(r"remaining\(\d+s\)")
_HEADER_IDS = ("cluster_id", "member_id", "raft_term")
_FIELDS_IDS = re.compile(r'^"(ClusterID|MemberID|RaftTerm)" : \d+$', re.M)


def normalise(text):
    """What differs between two clusters answering the same: IDs, terms, remaining TTLs."""
    text = _REMAINING.sub("remaining(N)", _LEASE.sub("<lease>", text))
    text = _FIELDS_IDS.sub(lambda m: '"%s" : N' % (m.group(1),), text).rstrip("\n")
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                line = json.dumps(_normaliseJSON(json.loads(line)), sort_keys=True)
            except ValueError:
                pass
        lines.append(line)
    return "\n".join(lines)


def _normaliseJSON(value):
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in _HEADER_IDS:
                continue
            if k in ("id", "ID", "lease") and isinstance(v, int) and v:
                v = "<lease>"
            elif k == "ttl" and isinstance(v, int):
                v = "N"
            out[k] = _normaliseJSON(v)
        return out
    if isinstance(value, list):
        return [_normaliseJSON(v) for v in value]
    return value


class _Fixture:
    """
    The raftmux cluster and the etcd of the tests, started by the first
    test that needs them and stopped when the last one is done (trial has
    no class fixtures; a worker of ``trial -j`` that ran only some of the
    tests stops them at exit).
    """

    def __init__(self, tests):
        self.remaining = tests
        self.cluster = self.etcd = None
        self.theirs = None
        self.directory = tempfile.mkdtemp(
            prefix="raftmux-etcdctl-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        atexit.register(self.stop)
        try:
            self._startCluster()
            self._startEtcd()
        except BaseException:
            self.stop()
            raise

    def _startCluster(self):
        clusterDir = os.path.join(self.directory, "cluster")
        self.cluster = _Child(
            [sys.executable, "-m", "raftmux.cluster", "run", "--size", "3", "--ports", "auto",
             "--dir", clusterDir, "--clean", "--timeout", str(START_TIMEOUT), "--"] + FAST,
            os.path.join(self.directory, "cluster.out"), "healthy after",
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        self.cluster.waitReady("the raftmux cluster")
        with open(os.path.join(clusterDir, "cluster.json")) as f:
            state = json.load(f)
        self.members = {m["name"]: m for m in state["members"]}
        self.ours = [m["clientURL"] for m in state["members"]]

    def _startEtcd(self):
        if not os.path.exists(ETCD):
            return
        peer = "http://127.0.0.1:%d" % (freePort(),)
        client = "http://127.0.0.1:%d" % (freePort(),)
        self.etcd = _Child([
            ETCD, "--name", "e", "--data-dir", os.path.join(self.directory, "etcd"),
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--initial-cluster", "e=%s" % (peer,)],
            os.path.join(self.directory, "etcd.log"), "ready to serve client requests")
        self.etcd.waitReady("etcd")
        self.theirs = [client]

    def release(self):
        """One test is done; after the last, stop."""
        self.remaining -= 1
        if self.remaining <= 0:
            self.stop()

    def stop(self):
        global _fixture
        if _fixture is self:
            _fixture = None
        # The supervisor stops its members on SIGINT, as on a Ctrl-C.
        for child, sig in ((self.cluster, signal.SIGINT), (self.etcd, signal.SIGTERM)):
            if child is not None:
                child.stop(sig)
        self.cluster = self.etcd = None
        if os.path.isdir(self.directory) and not os.environ.get("RAFTMUX_KEEP_TEST_DIRS"):
            shutil.rmtree(self.directory, True)


_fixture = None


class EtcdctlTests(TestCase):
    """etcdctl's commands on one 3-member cluster (and one etcd, to compare)."""

    timeout = 60

    def setUp(self):
        global _fixture
        if not os.path.exists(ETCDCTL):
            raise SkipTest("etcdctl (etcd-client 3.4) is not installed")
        if _fixture is None:
            tests = len([n for n in dir(type(self)) if n.startswith("test_")])
            _fixture = _Fixture(tests)
        fixture = _fixture
        self.addCleanup(fixture.release)
        self.ours = fixture.ours
        self.members = fixture.members
        self.theirs = fixture.theirs
        self.directory = fixture.directory
        self.cluster = fixture.cluster

    # -- helpers -------------------------------------------------------------------

    async def ctlOurs(self, *args, **kw):
        return await etcdctl(self.ours, args, **kw)

    async def ok(self, *args, **kw):
        """etcdctl on the raftmux cluster; its stdout (it must succeed)."""
        code, out, err = await etcdctl(self.ours, args, **kw)
        self.assertEqual(code, 0, "etcdctl %s: %s%s\n--- cluster\n%s" % (
            " ".join(args), out, err, self.cluster.tail(2000)))
        return out

    async def same(self, *args, leases=None, **kw):
        """
        etcdctl on both; the raftmux output (normalised) must be etcd's, and
        so must the exit status.  Without etcd: the raftmux answer only.
        Every write goes through here, so both see the same revisions.
        ``leases``: ``(ours, etcd's)`` lease IDs for ``{lease}`` in ``args``.
        """
        ours, theirs = leases or (None, None)
        code, out, err = await etcdctl(
            self.ours, [a.replace("{lease}", ours) if ours else a for a in args], **kw)
        if self.theirs is not None:
            theirCode, theirOut, theirErr = await etcdctl(
                self.theirs, [a.replace("{lease}", theirs) if theirs else a for a in args], **kw)
            self.assertEqual((code, normalise(out)), (theirCode, normalise(theirOut)),
                             "etcdctl %s\n--- ours: %s%s\n--- etcd's: %s%s" % (
                                 " ".join(args), out, err, theirOut, theirErr))
        return code, out, err

    async def grant(self, ttl):
        """``lease grant`` on both: ``(ours, etcd's)`` lease IDs."""
        pattern = r"lease ([0-9a-f]{16}) granted with TTL\(%ds\)\n$" % (ttl,)
        code, out, err = await etcdctl(self.ours, ["lease", "grant", str(ttl)])
        self.assertEqual(code, 0, err)
        ours = re.match(pattern, out).group(1)
        theirs = None
        if self.theirs is not None:
            code, out, err = await etcdctl(self.theirs, ["lease", "grant", str(ttl)])
            theirs = re.match(pattern, out).group(1)
        return ours, theirs

    async def sameOK(self, *args, **kw):
        code, out, err = await self.same(*args, **kw)
        self.assertEqual(code, 0, "etcdctl %s: %s%s" % (" ".join(args), out, err))
        return out

    # -- the commands --------------------------------------------------------------

    async def test_putGet(self):
        """put, get with --prefix, --rev, --limit, --sort-by, --keys-only, -w json."""
        self.assertEqual(await self.sameOK("put", "pg/a", "1"), "OK\n")
        await self.sameOK("put", "pg/b", "2")
        await self.sameOK("put", "pg/c", "3")
        await self.sameOK("put", "pg/a", "4", "--prev-kv")
        self.assertEqual(await self.sameOK("get", "pg/", "--prefix"),
                         "pg/a\n4\npg/b\n2\npg/c\n3\n")
        rev = json.loads(await self.ok("get", "pg/a", "-w", "json"))["kvs"][0]["create_revision"]
        self.assertEqual(await self.sameOK("get", "pg/a", "--rev", str(rev)), "pg/a\n1\n")
        await self.sameOK("get", "pg/", "--prefix", "--limit", "2")
        await self.sameOK("get", "pg/", "--prefix", "--sort-by", "MODIFY", "--order", "DESCEND")
        await self.sameOK("get", "pg/", "--prefix", "--sort-by", "VALUE")
        await self.sameOK("get", "pg/", "--prefix", "--keys-only")
        await self.sameOK("get", "pg/a", "pg/c")
        await self.sameOK("get", "pg/b", "--from-key", "--print-value-only")
        answer = await self.sameOK("get", "pg/", "--prefix", "--limit", "1", "-w", "json")
        parsed = json.loads(answer)
        self.assertEqual((parsed["count"], parsed["more"], len(parsed["kvs"])), (3, True, 1))
        await self.sameOK("get", "pg/nothing", "-w", "json")
        await self.sameOK("get", "pg/a", "--consistency", "s")
        await self.sameOK("get", "pg/a", "-w", "fields")
        # Every member answers the same (reads go through each one's gRPC port).
        for url in self.ours:
            code, out, err = await etcdctl([url], ["get", "pg/a", "--print-value-only"])
            self.assertEqual((code, out), (0, "4\n"), err)

    async def test_delete(self):
        await self.sameOK("put", "del/a", "1")
        await self.sameOK("put", "del/b", "2")
        await self.sameOK("put", "del/c", "3")
        self.assertEqual(await self.sameOK("del", "del/a"), "1\n")
        self.assertEqual(await self.sameOK("del", "del/nothing"), "0\n")
        self.assertEqual(await self.sameOK("del", "del/", "--prefix", "--prev-kv"),
                         "2\ndel/b\n2\ndel/c\n3\n")
        self.assertEqual(await self.sameOK("get", "del/", "--prefix"), "")

    async def test_txn(self):
        """Interactive txn (etcdctl reads the compares and requests from stdin)."""
        await self.sameOK("put", "txn/k", "v1")
        script = (b'value("txn/k") = "v1"\n\n'
                  b'put txn/k v2\nget txn/k\n\n'
                  b'put txn/failed x\n\n')
        out = await self.sameOK("txn", "-i", stdin=script)
        self.assertIn("SUCCESS", out)
        self.assertIn("txn/k\nv2", out)
        # The same again fails now: the failure branch runs.
        out = await self.sameOK("txn", stdin=script)
        self.assertIn("FAILURE", out)
        await self.sameOK("get", "txn/", "--prefix")
        script = b'mod("txn/k") > "0"\nversion("txn/k") = "2"\n\nget txn/k\n\n\n'
        await self.sameOK("txn", "-w", "json", stdin=script)
        # A malformed compare: etcdctl refuses it itself (same on both).
        await self.same("txn", stdin=b'nonsense\n\n\n\n')

    async def test_watch(self):
        """watch from a revision (history, then live) until the expected events."""
        first = json.loads(await self.sameOK("put", "watch/k", "a", "-w", "json"))
        await self.sameOK("put", "watch/k", "b")
        await self.sameOK("del", "watch/k")
        rev = str(first["header"]["revision"])
        expected = "PUT\nwatch/k\na\nPUT\nwatch/k\nb\nDELETE\nwatch/k\n"

        def afterDelete(lines):
            """Has the DELETE event and ``lines`` lines after it been printed?"""
            return lambda out: b"DELETE" in out and \
                out.split(b"DELETE", 1)[1].count(b"\n") >= lines
        code, out, err = await self.same("watch", "watch/k", "--rev", rev,
                                         until=afterDelete(2))
        self.assertEqual(out.rstrip("\n"), expected.rstrip("\n"), err)
        # Prefix, previous values (the DELETE's previous value, then its key).
        code, out, err = await self.same("watch", "watch/", "--prefix", "--rev", rev,
                                         "--prev-kv", until=afterDelete(4))
        self.assertTrue(out.rstrip("\n").endswith("DELETE\nwatch/k\nb\nwatch/k"), out)
        code, out, err = await self.same("watch", "watch/k", "--rev", rev, "-w", "json",
                                         until=lambda out: out.count(b"\n") >= 1)
        events = json.loads(out.splitlines()[0])["Events"]
        self.assertEqual(len(events), 3, out)
        # Live events.  etcdctl prints nothing once its watch is registered,
        # so the put is repeated until the watch has seen one (a put made
        # before the watch exists is, rightly, never shown).
        opened = etcdctl(self.ours, ["watch", "watch/live"],
                         until=lambda out: b"later" in out)
        for _attempt in range(40):
            await etcdctl(self.ours, ["put", "watch/live", "later"])
            if opened.called:
                break
            await task.deferLater(reactor, 0.25, lambda: None)
        code, out, err = await opened
        self.assertEqual(out.split("\n")[:3], ["PUT", "watch/live", "later"], err)

    async def test_lease(self):
        """grant, keep-alive --once, timetolive --keys, list, revoke."""
        leases = await self.grant(120)
        lease = leases[0]
        await self.sameOK("put", "lease/k", "v", "--lease", "{lease}", leases=leases)
        out = await self.sameOK("lease", "keep-alive", "--once", "{lease}", leases=leases)
        self.assertEqual(out, "lease %s keepalived with TTL(120)\n" % (lease,))
        out = await self.sameOK("lease", "timetolive", "{lease}", "--keys", leases=leases)
        self.assertRegex(out, r"^lease %s granted with TTL\(120s\), remaining\(1[12]\ds\), "
                              r"attached keys\(\[lease/k\]\)\n$" % (lease,))
        out = await self.sameOK("lease", "timetolive", "{lease}", "--keys", "-w", "json",
                                leases=leases)
        answer = json.loads(out)
        self.assertEqual((answer["id"], answer["granted-ttl"]), (int(lease, 16), 120))
        self.assertIn(lease, (await self.ok("lease", "list")).split())
        self.assertEqual(await self.sameOK("lease", "revoke", "{lease}", leases=leases),
                         "lease %s revoked\n" % (lease,))
        self.assertEqual(await self.sameOK("get", "lease/k"), "")
        out = await self.sameOK("lease", "timetolive", "{lease}", leases=leases)
        self.assertEqual(out, "lease %s already expired\n" % (lease,))
        # Errors match etcd's.
        code, out, err = await self.same("lease", "revoke", "1234")
        self.assertNotEqual(code, 0)
        self.assertIn("requested lease not found", err)
        code, out, err = await self.same("lease", "keep-alive", "--once", "1234")
        self.assertNotEqual(code, 0)
        await self.same("lease", "timetolive", "1234", "--keys")

    async def test_members(self):
        """member list (simple and json), add (as a learner too), remove."""
        out = await self.ok("member", "list")
        rows = [[c.strip() for c in line.split(",")] for line in out.splitlines()]
        self.assertEqual(sorted(r[2] for r in rows), ["n1", "n2", "n3"])
        for row in rows:
            member = self.members[row[2]]
            self.assertEqual((row[1], row[3], row[4], row[5]),
                             ("started", member["peerURL"], member["clientURL"], "false"))
        listed = json.loads(await self.ok("member", "list", "-w", "json"))
        self.assertEqual(len(listed["members"]), 3)
        peer = "http://127.0.0.1:%d" % (freePort(),)
        out = await self.ok("member", "add", "n4", "--peer-urls", peer)
        # etcdctl pads IDs to 16 columns (%16x).
        added = re.search(r"Member +([0-9a-f]+) added to cluster +([0-9a-f]+)", out)
        self.assertIsNotNone(added, out)
        self.assertIn('ETCD_INITIAL_CLUSTER_STATE="existing"', out)
        self.assertIn('ETCD_INITIAL_ADVERTISE_PEER_URLS="%s"' % (peer,), out)
        self.assertIn("n4=%s" % (peer,), out)
        out = await self.ok("member", "list")
        self.assertIn("%s, unstarted, , %s, , false" % (added.group(1), peer), out)
        # A member's peer URL again (the new member's ID, a hash of the URLs
        # and the second, differs from n1's: etcd's check of the URLs answers).
        code, out, err = await self.ctlOurs("member", "add", "n5", "--peer-urls",
                                            self.members["n1"]["peerURL"])
        self.assertNotEqual(code, 0)
        self.assertIn("etcdserver: Peer URLs already exists", err)
        out = await self.ok("member", "remove", added.group(1))
        self.assertRegex(out, r"^Member +%s removed from cluster +%s\n$" % added.groups())
        self.assertEqual(len((await self.ok("member", "list")).splitlines()), 3)
        # A learner that never started is not in sync: every member (the
        # followers ask the leader, as etcd's do) refuses to promote it.
        out = await self.ok("member", "add", "l1", "--learner", "--peer-urls",
                            "http://127.0.0.1:%d" % (freePort(),))
        learner = re.search(r"Member +([0-9a-f]+) added", out).group(1)
        for url in self.ours:
            code, out, err = await etcdctl([url], ["member", "promote", learner])
            self.assertNotEqual(code, 0, out)
            self.assertIn("Error: etcdserver: can only promote a learner member which is in "
                          "sync with leader", err, url)
        if self.theirs is not None:
            out = (await etcdctl(self.theirs, ["member", "add", "l1", "--learner",
                                               "--peer-urls", "http://127.0.0.1:1"]))[1]
            theirs = re.search(r"Member +([0-9a-f]+) added", out).group(1)
            code, out, theirErr = await etcdctl(self.theirs, ["member", "promote", theirs])
            self.assertEqual(theirErr.splitlines()[-1], err.splitlines()[-1])
            await etcdctl(self.theirs, ["member", "remove", theirs])
        await self.ok("member", "remove", learner)
        code, out, err = await self.same("member", "promote", learner)
        self.assertIn("member not found", err)
        code, out, err = await self.same("member", "remove", "1234")
        self.assertNotEqual(code, 0)
        self.assertIn("member not found", err)

    async def test_endpoints(self):
        """endpoint status (table and json) and endpoint health of each member."""
        out = await self.ok("endpoint", "status")
        rows = [[c.strip() for c in line.split(",")] for line in out.splitlines()]
        self.assertEqual(sorted(r[0] for r in rows), sorted(self.ours))
        self.assertEqual(sorted(r[4] for r in rows), ["false", "false", "true"])
        self.assertEqual({r[2] for r in rows}, {"3.4.23"})
        statuses = json.loads(await self.ok("endpoint", "status", "-w", "json"))
        leaders = {s["Status"]["leader"] for s in statuses}
        self.assertEqual(len(leaders), 1)
        ids = {s["Status"]["header"]["member_id"] for s in statuses}
        self.assertIn(leaders.pop(), ids)
        if self.theirs is not None:
            theirs = json.loads((await etcdctl(self.theirs, ["endpoint", "status", "-w",
                                                             "json"]))[1])
            self.assertEqual(sorted(statuses[0]["Status"]), sorted(theirs[0]["Status"]))
        code, out, err = await etcdctl(self.ours, ["endpoint", "health"])
        self.assertEqual(code, 0, err)
        # etcdctl prints the simple health lines on stderr.
        self.assertEqual(sorted(re.findall(r"^(\S+) is healthy: successfully committed proposal",
                                           err, re.M)), sorted(self.ours), err)
        out = await self.ok("endpoint", "health", "-w", "json")
        self.assertEqual([h["health"] for h in json.loads(out)], [True] * 3)
        await self.ok("endpoint", "hashkv")

    async def test_compaction(self):
        await self.sameOK("put", "compact/k", "1")
        second = json.loads(await self.sameOK("put", "compact/k", "2", "-w", "json"))
        rev = second["header"]["revision"]
        self.assertEqual(await self.sameOK("compaction", str(rev)),
                         "compacted revision %d\n" % (rev,))
        code, out, err = await self.same("get", "compact/k", "--rev", str(rev - 1))
        self.assertNotEqual(code, 0)
        self.assertIn("required revision has been compacted", err)
        code, out, err = await self.same("compaction", str(rev))
        self.assertIn("required revision has been compacted", err)
        third = json.loads(await self.sameOK("put", "compact/k", "3", "-w", "json"))
        await self.sameOK("compaction", "--physical", str(third["header"]["revision"]))
        self.assertEqual(await self.sameOK("get", "compact/k"), "compact/k\n3\n")

    async def test_snapshotSave(self):
        path = os.path.join(self.directory, "snap.db")
        code, out, err = await etcdctl(self.ours[:1], ["snapshot", "save", path])
        self.assertEqual(code, 0, err)
        self.assertIn("Snapshot saved at %s" % (path,), out)
        self.assertGreater(os.path.getsize(path), 0)

    async def test_maintenance(self):
        """alarm list, defrag: the same answers as etcd's."""
        self.assertEqual(await self.sameOK("alarm", "list"), "")
        out = await self.ok("defrag")
        self.assertIn("Finished defragmenting etcd member", out)
