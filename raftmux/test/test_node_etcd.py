# -*- test-case-name: raftmux.test.test_node_etcd -*-
"""
A mixed 2-member cluster from the command line: a real etcd 3.4 member e1
and a raftmux member p2 run as ``twistd -n raftmux`` (same
``--initial-cluster``, same token), both managed by
``raftmux.cluster.LocalCluster``.  Skipped when /usr/bin/etcd or etcdctl
is missing.

etcd elects itself with p2's vote and commits ``etcdctl put`` through p2's
acknowledgements; a linearizable ``etcdctl get`` needs p2 to echo the
heartbeat context.  p2 applies etcd's entries to its own MVCC key space
(the same revisions as etcd's), and what p2 proposes (its writes, its
published attributes) are etcd's requests that etcd applies: p2 never
campaigns beside etcd, but it writes through it.  After a kill -9 of p2
and a restart from its data directory, p2 recovers its log and key space
and etcd commits again.
"""

import base64
import json
import os
import re
import shutil
import signal
import tempfile

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, TestCase

from raftmux.cluster import ETCD, LocalCluster, planMembers

ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


class MixedClusterTests(TestCase):
    timeout = 90

    def setUp(self):
        if not (os.path.exists(ETCD) and os.path.exists(ETCDCTL)):
            raise SkipTest("etcd 3.4 (%s) and etcdctl are not installed" % (ETCD,))
        directory = tempfile.mkdtemp(prefix="raftmux-etcd-",
                                     dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        if not os.environ.get("RAFTMUX_KEEP_TEST_DIRS"):
            self.addCleanup(shutil.rmtree, directory, True)
        members = planMembers(names=["e1", "p2"], etcd=["e1"], ports="auto", onePort=True)
        # Fast elections on both sides keep the test short.
        fast = ["--heartbeat-interval", "50", "--election-timeout", "500"]
        self.cluster = LocalCluster(directory, members, token="tok", flags=fast, etcdFlags=fast)
        self.addCleanup(self.cluster.stopAll)
        self.e1 = self.cluster.member("e1")
        self.p2 = self.cluster.member("p2")

    def ctl(self, *args):
        """``etcdctl`` against e1's client URL: ``(code, output text)``."""
        d = getProcessOutputAndValue(
            ETCDCTL, ["--endpoints", self.e1.clientURL, "--command-timeout=5s"] + list(args),
            env=dict(os.environ, ETCDCTL_API="3"))
        d.addTimeout(20, reactor)
        return d.addCallback(lambda r: (r[2], (r[0] + r[1]).decode("utf-8", "replace")))

    async def putUntilCommitted(self, key, value, timeout=30.0):
        """``etcdctl put`` until etcd commits it (bounded)."""
        deadline = reactor.seconds() + timeout
        while True:
            code, out = await self.ctl("put", key, value)
            if code == 0 and out.split() == ["OK"]:
                return
            if reactor.seconds() > deadline:
                self.fail("etcd did not commit %s in %.0f s: %s\n--- e1.log\n%s" % (
                    key, timeout, out, self.e1.tail()))
            await deferLater(reactor, 0.1, lambda: None)

    async def etcdGet(self, key):
        """``etcdctl get -w json``: ``(value, mod_revision)`` or None."""
        code, out = await self.ctl("get", key, "-w", "json")
        self.assertEqual(code, 0, out)
        kvs = json.loads(out).get("kvs") or []
        if not kvs:
            return None
        return base64.b64decode(kvs[0]["value"]), int(kvs[0]["mod_revision"])

    async def p2Range(self, key):
        """p2's own key space through its JSON gateway (serializable)."""
        body = json.dumps({"key": base64.b64encode(key.encode()).decode(),
                           "serializable": True})
        code, answer, _ = await self.cluster.request("p2", "POST", "/v3/kv/range", body)
        self.assertEqual(code, 200, answer)
        kvs = json.loads(answer).get("kvs") or []
        if not kvs:
            return None
        return base64.b64decode(kvs[0]["value"]), int(kvs[0]["mod_revision"])

    async def untilP2Has(self, key, expected, timeout=10.0):
        deadline = reactor.seconds() + timeout
        while True:
            got = await self.p2Range(key)
            if got == expected:
                return
            if reactor.seconds() > deadline:
                self.fail("p2 has %r for %s, etcd %r" % (got, key, expected))
            await deferLater(reactor, 0.05, lambda: None)

    async def memberList(self):
        code, out = await self.ctl("member", "list")
        self.assertEqual(code, 0, out)
        # id, status, name, peer URLs, client URLs, is learner
        return {row[2]: row for row in (
            [c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip())}

    def test_etcdCommitsBesideARaftmuxMember(self):
        """
        etcd leads and commits with the raftmux member; the raftmux
        member's key space holds what etcdctl put, at etcd's revisions; its
        writes and its attributes reach etcd through raft; after its kill
        -9 and a restart from the same data directory, it recovers its log
        and key space and etcd commits again.
        """
        async def go():
            cluster = self.cluster
            cluster.start()
            await cluster.waitHealthy(timeout=30)
            await self.putUntilCommitted("k", "v")
            code, out = await self.ctl("get", "k")
            self.assertEqual((code, out.split()), (0, ["k", "v"]), out)

            # p2 applied etcd's entry to its key space, at etcd's revision.
            inEtcd = await self.etcdGet("k")
            self.assertEqual(inEtcd[0], b"v")
            await self.untilP2Has("k", inEtcd)
            code, body, _ = await cluster.request("p2", "GET", "/kv/k")
            self.assertEqual((code, body), (200, b"v"))
            # What p2 proposes is etcd's request: raft takes it to etcd.
            code, body, _ = await cluster.request("p2", "PUT", "/kv/x", "y")
            self.assertEqual(code, 200, body)
            code, body, _ = await cluster.request("p2", "POST", "/v3/kv/put", json.dumps(
                {"key": base64.b64encode(b"g").decode(), "value": base64.b64encode(b"w").decode()}))
            self.assertEqual(code, 200, body)
            inEtcd = await self.etcdGet("g")
            self.assertEqual(inEtcd[0], b"w")
            self.assertEqual(json.loads(body)["header"]["revision"], str(inEtcd[1]))
            self.assertEqual((await self.etcdGet("x"))[0], b"y")
            code, body, _ = await cluster.request("p2", "GET", "/cluster/members")
            listing = json.loads(body)
            names = {m["id"]: m["name"] for m in listing["members"]}
            self.assertEqual(names[listing["leader"]], "e1")
            self.assertEqual(sorted(names.values()), ["e1", "p2"])

            # etcd applies p2's attributes (a v2 PUT, as etcd publishes them).
            deadline = reactor.seconds() + 10
            while True:
                members = await self.memberList()
                if members["p2"][4] == self.p2.clientURL or reactor.seconds() > deadline:
                    break
                await deferLater(reactor, 0.1, lambda: None)
            self.assertEqual(sorted(members), ["e1", "p2"])
            for m in members.values():
                self.assertEqual(m[1], "started", m)
            self.assertEqual(members["p2"][3], self.p2.peerURL)
            self.assertEqual(members["p2"][4], self.p2.clientURL)
            self.assertEqual(members["e1"][4], self.e1.clientURL)

            # kill -9 of the raftmux member; a restart from its data directory.
            self.assertEqual(await cluster.kill("p2"), ("signal", signal.SIGKILL))
            cluster.start("p2")
            await cluster.waitHealthy(["p2"], timeout=30)
            output = self.p2.output()
            self.assertIn("raftmux: restarting member %s" % (members["p2"][0],), output)
            self.assertNotIn("bootstrapped", output)
            await self.putUntilCommitted("k2", "v2")
            code, out = await self.ctl("endpoint", "health")
            self.assertEqual(code, 0, out)
            self.assertIn("is healthy", out)
            code, out = await self.ctl("get", "k2")
            self.assertEqual((code, out.split()), (0, ["k2", "v2"]), out)
            code, out = await self.ctl("get", "k")
            self.assertEqual((code, out.split()), (0, ["k", "v"]), out)
            # p2's key space came back from its log, and follows on.
            for key in ("k", "x", "g", "k2"):
                await self.untilP2Has(key, await self.etcdGet(key))

            etcdLog = self.e1.output()
            self.assertNotIn("panic", etcdLog)
            # etcd lost p2 and found it again.
            self.assertGreaterEqual(len(re.findall(
                r"peer %s became active" % (members["p2"][0],), etcdLog)), 2, etcdLog[-3000:])
            self.assertNotIn("Traceback", self.p2.output(sinceStart=False))
        return defer.ensureDeferred(go())
