# -*- test-case-name: raftmux.test.test_node_etcd3gw -*-
"""
A real client of etcd's JSON gateway, python's ``etcd3gw`` (PyPI, in the
``test`` extra), against a 3-member raftmux cluster of ``twistd -n
raftmux`` processes (``raftmux.cluster.LocalCluster``, fsync on): put, get
with a prefix, delete, a watch seeing later events, leases (kept alive,
then expired by the leader), the member list; then a kill -9 of the
leader in the middle of acknowledged writes, and none of them lost.

etcd3gw is synchronous (``requests``): each call runs in a thread.
Skipped when etcd3gw is not installed.
"""

import os
import shutil
import signal
import tempfile

from twisted.internet import defer, reactor, threads
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, TestCase

from raftmux.cluster import LocalCluster

try:
    import etcd3gw
    from etcd3gw import exceptions as etcd3gwErrors
except ImportError:  # pragma: no cover - the test extra installs it
    etcd3gw = None

FAST = ["--heartbeat-interval", "50", "--election-timeout", "500"]


def inThread(f, *args, **kwargs):
    return threads.deferToThread(f, *args, **kwargs)


class Etcd3gwTests(TestCase):
    timeout = 180

    def setUp(self):
        if etcd3gw is None:
            raise SkipTest("etcd3gw is not installed (pip install etcd3gw)")
        directory = tempfile.mkdtemp(prefix="raftmux-etcd3gw-")
        if not os.environ.get("RAFTMUX_KEEP_TEST_DIRS"):
            self.addCleanup(shutil.rmtree, directory, True)
        self.cluster = LocalCluster.create(directory, size=3, flags=FAST)
        self.addCleanup(self.cluster.stopAll)

    def client(self, name):
        url = self.cluster.member(name).clientURL
        host, port = url.rsplit("/", 1)[1].rsplit(":", 1)
        return etcd3gw.client(host=host, port=int(port), timeout=10)

    async def start(self):
        self.cluster.start()
        await self.cluster.waitHealthy(timeout=60)
        return await self.cluster.waitLeader()

    def names(self, leader):
        return [n for n in self.cluster.members if n != leader]

    async def untilTrue(self, f, what, timeout=20.0):
        deadline = reactor.seconds() + timeout
        while not await inThread(f):
            if reactor.seconds() > deadline:
                self.fail("timed out waiting for " + what)
            await deferLater(reactor, 0.1, lambda: None)

    def test_clientOperations(self):
        """put, get, prefix, delete, watch, leases and members through etcd3gw."""
        async def go():
            leader = await self.start()
            f1, f2 = self.names(leader)
            c1, c2, cl = self.client(f1), self.client(f2), self.client(leader)
            self.assertTrue(await inThread(c1.put, "foo", "bar"))
            self.assertEqual(await inThread(c2.get, "foo"), [b"bar"])
            for key in ("dir/a", "dir/b", "dirx"):
                await inThread(cl.put, key, key.upper())
            found = await inThread(c2.get_prefix, "dir/")
            self.assertEqual(sorted((m["key"], v) for v, m in found),
                             [(b"dir/a", b"DIR/A"), (b"dir/b", b"DIR/B")])
            self.assertTrue(await inThread(c1.delete, "foo"))
            self.assertEqual(await inThread(cl.get, "foo"), [])
            self.assertFalse(await inThread(c1.delete, "foo"))

            # A watch on one member sees writes made later on another.
            events, cancel = await inThread(c2.watch_prefix, "w/")
            self.addCleanup(cancel)
            await deferLater(reactor, 0.5, lambda: None)
            await inThread(c1.put, "w/1", "one")
            await inThread(cl.delete, "w/1")
            seen = inThread(lambda: [next(events), next(events)])
            seen.addTimeout(20, reactor, onTimeoutCancel=lambda *_: cancel())
            first, second = await seen
            self.assertEqual((first["kv"]["key"], first["kv"]["value"]), (b"w/1", b"one"))
            self.assertEqual((second.get("type"), second["kv"]["key"]), ("DELETE", b"w/1"))
            cancel()

            # A lease kept alive through a follower; then left to expire.
            lease = await inThread(c1.lease, 2)
            await inThread(c1.put, "leased", "x", lease=lease)
            self.assertEqual(await inThread(lease.keys), [b"leased"])
            for i in range(4):
                if i:
                    await deferLater(reactor, 1.0, lambda: None)
                self.assertEqual(await inThread(lease.refresh), 2)
            self.assertGreater(await inThread(lease.ttl), 0)
            self.assertEqual(await inThread(c2.get, "leased"), [b"x"])
            await self.untilTrue(lambda: c2.get("leased") == [], "the lease to expire")
            self.assertEqual(await inThread(lease.ttl), -1)
            # And one revoked at once.
            other = await inThread(c2.lease, 60)
            await inThread(c2.put, "revoked", "y", lease=other)
            await inThread(other.revoke)
            self.assertEqual(await inThread(c1.get, "revoked"), [])

            members = await inThread(c1.members)
            self.assertEqual(sorted(m["name"] for m in members), ["n1", "n2", "n3"])
            self.assertEqual(sorted(m["clientURLs"][0] for m in members),
                             sorted(m.clientURL for m in self.cluster.members.values()))
            status = await inThread(c1.status)
            self.assertEqual(status["version"], "3.4.23")
        return defer.ensureDeferred(go())

    def test_killLeaderLosesNoAcknowledgedWrite(self):
        """
        Writers put keys through every member while the leader is killed
        -9 and later restarted: every put etcd3gw saw acknowledged is on
        every member afterwards.
        """
        async def go():
            leader = await self.start()
            clients = {name: self.client(name) for name in self.cluster.members}
            acknowledged = []
            state = {"i": 0, "killed": False}

            def writeOne(name):
                i = state["i"]
                key = "ack/%04d" % (i,)
                try:
                    clients[name].put(key, "v%d" % (i,))
                except etcd3gwErrors.Etcd3Exception:
                    return False
                acknowledged.append(key)
                return True

            async def writeFor(count, avoid=None):
                attempts = 0
                target = 0
                goal = len(acknowledged) + count
                names = sorted(clients)
                while len(acknowledged) < goal:
                    attempts += 1
                    self.assertLess(attempts, count * 50, "too many failed writes")
                    name = names[target % len(names)]
                    target += 1
                    if name == avoid:
                        continue
                    if await inThread(writeOne, name):
                        state["i"] += 1
                    else:
                        await deferLater(reactor, 0.1, lambda: None)

            await writeFor(30)
            # kill -9 the leader while writes go on.
            killed = self.cluster.kill(leader)
            await writeFor(10, avoid=leader)
            self.assertEqual(await killed, ("signal", signal.SIGKILL))
            await writeFor(30, avoid=leader)
            self.cluster.start(leader)
            await self.cluster.waitHealthy(timeout=60)
            await writeFor(10)
            for name, c in clients.items():
                def complete(c=c):
                    keys = {m["key"].decode() for _, m in c.get_prefix("ack/")}
                    return keys.issuperset(acknowledged)
                await self.untilTrue(complete, "every acknowledged write on " + name)
            self.assertEqual(len(set(acknowledged)), len(acknowledged))
            self.assertGreaterEqual(len(acknowledged), 80)
            output = self.cluster.member(leader).output(sinceStart=False)
            self.assertNotIn("Traceback", output)
        return defer.ensureDeferred(go())
