# -*- test-case-name: raftmux.test.test_node -*-
"""
Three ``RaftNode``s in this process on loopback: elections, the client API
on every member (followers forward writes), linearizable and serializable
reads, one muxado session per pair and no other connection between them,
membership changes, snapshots catching up a member far behind, and a
restart from the data directory.
"""

import json
import os

from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody

from raftmux.etcdpb import rpc_pb2
from raftmux.node.dialer import MUXADO, PLAIN
from raftmux.node.testing import bindPorts, makeCluster, startNode, stopNode, urlOf
from raftmux.rafthttp.testing import waitFor


def value(node, key):
    """``key``'s value in ``node``'s key space, or None."""
    record = node.keySpace.get(key)
    return record.value if record is not None else None


def liveKeys(node):
    return node.keySpace.range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0",
                                                    count_only=True)).count


class ClusterCase(TestCase):
    """Starts a cluster per test and an HTTP client; tears both down."""

    timeout = 60
    size = 3
    options = {}

    async def startCluster(self, **options):
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        opts = dict(self.options, **options)
        self.nodes, self.ports = await makeCluster(reactor, self.dir, self.size, **opts)
        for port in self.ports:
            self.addCleanup(port.stopListening)
        for node, port in zip(self.nodes, self.ports, strict=True):
            await startNode(node, port)
            self.addCleanup(self.stopIfRunning, node)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.agent = Agent(reactor, pool=self.pool)
        await self.waitForLeader()

    def stopIfRunning(self, node):
        if node.running:
            return stopNode(node)

    def leaderOf(self, nodes=None):
        nodes = [n for n in (nodes or self.nodes) if n.running]
        leaders = {n.leader for n in nodes}
        if len(leaders) == 1 and 0 not in leaders:
            (leader,) = leaders
            for n in nodes:
                if n.id == leader:
                    return n
        return None

    async def waitForLeader(self, nodes=None):
        await waitFor(reactor, lambda: self.leaderOf(nodes) is not None, timeout=20,
                      what="a leader every member agrees on")
        return self.leaderOf(nodes)

    async def request(self, method, node, path, body=None):
        url = (urlOf(self.ports[self.nodes.index(node)]) + path).encode()
        producer = FileBodyProducer(__import__("io").BytesIO(body)) if body is not None \
            else None
        response = await self.agent.request(method, url, None, producer)
        return response.code, await readBody(response), response.headers

    async def put(self, node, key, value):
        code, body, _ = await self.request(b"PUT", node, "/kv/" + key, value)
        self.assertEqual(code, 200, body)
        return json.loads(body)

    async def get(self, node, key, serializable=False):
        code, body, _ = await self.request(
            b"GET", node, "/kv/" + key + ("?serializable=true" if serializable else ""))
        return code, body


class ThreeNodeTests(ClusterCase):

    async def test_writesOnEveryMemberReadEverywhere(self):
        """
        A PUT on each member (the followers forward it) is readable,
        linearizably, on every member; a DELETE removes it everywhere.
        """
        await self.startCluster()
        for i, node in enumerate(self.nodes):
            answer = await self.put(node, "k%d" % (i,), b"v%d" % (i,))
            self.assertGreater(answer["index"], 3)
        for node in self.nodes:
            for i in range(3):
                self.assertEqual(await self.get(node, "k%d" % (i,)), (200, b"v%d" % (i,)))
        code, body, _ = await self.request(b"DELETE", self.nodes[1], "/kv/k0")
        self.assertEqual((code, json.loads(body)["deleted"]), (200, True))
        for node in self.nodes:
            self.assertEqual((await self.get(node, "k0"))[0], 404)
        followers = [n for n in self.nodes if not n.isLeader]
        self.assertTrue(all(f.metrics.forwarded._value.get() >= 1 for f in followers))

    async def test_compareAndSet(self):
        """
        ``PUT /kv/<key>?prevValue=<v>`` sets the key only when it holds
        ``v``, on the leader and through a follower alike; an absent key or
        another value is a 412 with a JSON error, and the value stays.
        """
        await self.startCluster()
        leader = self.leaderOf()
        follower = next(n for n in self.nodes if n is not leader)
        for node in (leader, follower):
            code, body, _ = await self.request(b"PUT", node, "/kv/c?prevValue=a", b"b")
            self.assertEqual(code, 412, body)
            self.assertIn("compare failed", json.loads(body)["error"])
        self.assertEqual((await self.get(leader, "c"))[0], 404)
        await self.put(follower, "c", b"a b")
        code, body, _ = await self.request(b"PUT", follower, "/kv/c?prevValue=zz", b"b")
        self.assertEqual(code, 412, body)
        self.assertEqual(await self.get(leader, "c"), (200, b"a b"))
        code, body, _ = await self.request(b"PUT", follower, "/kv/c?prevValue=a%20b", b"b")
        self.assertEqual(code, 200, body)
        self.assertGreater(json.loads(body)["index"], 3)
        self.assertEqual(await self.get(follower, "c"), (200, b"b"))
        code, body, _ = await self.request(b"PUT", leader, "/kv/c?prevValue=b", b"")
        self.assertEqual(code, 200, body)
        code, body, _ = await self.request(b"PUT", leader, "/kv/c?prevValue=", b"e")
        self.assertEqual(code, 200, body)
        self.assertEqual(await self.get(leader, "c"), (200, b"e"))

    async def test_oneMuxadoSessionPerPair(self):
        """
        Between raftmux nodes every raft request rides one muxado session
        per pair: each pair has exactly one session, dialed by the member
        with the smaller ID, and no plain TCP connection carried raft.
        """
        await self.startCluster()
        await self.put(self.nodes[0], "x", b"1")
        byID = {n.id: n for n in self.nodes}
        for node in self.nodes:
            for other in self.nodes:
                if other is node:
                    continue
                address = ("127.0.0.1", self.ports[self.nodes.index(other)].getHost().port)
                self.assertEqual(node.dialer.kinds.get(address), MUXADO)
                self.assertEqual(node.dialer.dials[(address, PLAIN)], 0)
                dialed = node.dialer.dials[(address, MUXADO)]
                self.assertEqual(dialed, 1 if node.id < other.id else 0,
                                 (node.config.name, other.config.name))
                self.assertIn(address, node.dialer.sessions)
        # The two ends of each pair hold the same TCP connection.
        for node in self.nodes:
            for address, session in node.dialer.sessions.items():
                other = [n for n in byID.values()
                         if self.ports[self.nodes.index(n)].getHost().port == address[1]][0]
                mine = session.transport.getHost().port, session.transport.getPeer().port
                theirs = [(s.transport.getPeer().port, s.transport.getHost().port)
                          for s in other.dialer.sessions.values()]
                self.assertIn(mine, theirs)

    async def test_serializableReadIsLocal(self):
        await self.startCluster()
        await self.put(self.nodes[0], "s", b"here")
        follower = [n for n in self.nodes if not n.isLeader][0]
        await waitFor(reactor, lambda: value(follower, b"s") == b"here", what="apply")
        self.assertEqual(await self.get(follower, "s", serializable=True), (200, b"here"))

    async def test_membersListedWithClientURLs(self):
        """Every member publishes its name and client URLs through the log."""
        await self.startCluster()

        def published():
            return all(len(n.members.members) == 3 and all(
                m.clientURLs for m in n.members.members.values()) for n in self.nodes)
        await waitFor(reactor, published, what="published attributes")
        code, body, _ = await self.request(b"GET", self.nodes[2], "/cluster/members")
        self.assertEqual(code, 200)
        listing = json.loads(body)
        self.assertEqual(sorted(m["name"] for m in listing["members"]), ["n1", "n2", "n3"])
        self.assertEqual(listing["leader"], "%x" % (self.leaderOf().id,))

    async def test_badRequests(self):
        await self.startCluster(**{"max-value-bytes": 16})
        leader = self.leaderOf()
        code, body, _ = await self.request(b"PUT", leader, "/kv/big", b"x" * 17)
        self.assertEqual(code, 413)
        self.assertIn("limit", json.loads(body)["error"])
        code, body, _ = await self.request(b"PUT", leader, "/kv/", b"v")
        self.assertEqual(code, 400)
        code, body, headers = await self.request(b"PATCH", leader, "/kv/a", b"v")
        self.assertEqual(code, 405)
        code, body, _ = await self.request(b"POST", leader, "/cluster/members", b"{nope")
        self.assertEqual(code, 400)
        code, body, _ = await self.request(b"DELETE", leader, "/cluster/members/zz")
        self.assertEqual(code, 404)
        code, body, _ = await self.request(b"GET", leader, "/kv/missing")
        self.assertEqual((code, json.loads(body)), (404, {"error": "key not found"}))

    async def test_writeOutcomes(self):
        """
        A write a follower handed to a leader that dropped it answers 504
        (its outcome is unknown to the client: it timed out); with no
        leader at all, writes and linearizable reads answer 503 "no
        leader" (nothing was proposed).
        """
        await self.startCluster(**{"request-timeout": 1})
        leader = self.leaderOf()
        follower = next(n for n in self.nodes if n is not leader)
        leader.driver.stop()  # it drops everything it is sent from now on
        code, body, _ = await self.request(b"PUT", follower, "/kv/k", b"v")
        self.assertEqual(code, 504, body)
        self.assertIn("timed out", json.loads(body)["error"])
        for node in self.nodes:
            if node is not follower:
                await stopNode(node)
        await waitFor(reactor, lambda: not follower.leader, timeout=20, what="no leader")
        for method, path in ((b"PUT", "/kv/k"), (b"GET", "/kv/k"), (b"DELETE", "/kv/k")):
            code, body, _ = await self.request(method, follower, path, b"v")
            self.assertEqual((code, json.loads(body)), (503, {"error": "no leader"}))
        code, body, _ = await self.request(b"GET", follower, "/health")
        self.assertEqual((code, json.loads(body)["reason"]), (503, "no leader"))
        # What the stopped driver refused while its transport still ran.
        from raftmux.raft.driver import DriverStopped
        self.flushLoggedErrors(DriverStopped)
        self.assertEqual(self.flushLoggedErrors(), [])

    async def test_health(self):
        await self.startCluster()
        code, body, _ = await self.request(b"GET", self.nodes[0], "/health")
        self.assertEqual((code, json.loads(body)["health"]), (200, "true"))

    async def test_campaignAllowedFollowsWhatPeersSpeak(self):
        """
        Whether raft may campaign is an input the node sets when it learns a
        peer's kind: a peer that answered as etcd (PLAIN) forbids it, and
        forgetting that answer allows it again.
        """
        from raftmux.node.config import addressOf
        await self.startCluster()
        leader = self.leaderOf()
        follower = [n for n in self.nodes if n is not leader][0]
        self.assertTrue(follower.rawNode.raft.campaignAllowed)
        address = addressOf(follower.peerURLsOf(leader.id)[0])
        dialer = follower.dialer
        previous = dialer.kinds.get(address)
        dialer.kinds[address] = PLAIN
        dialer.onKindChange(address, PLAIN)
        self.assertFalse(follower.rawNode.raft.campaignAllowed)
        dialer.kinds[address] = previous
        dialer.onKindChange(address, previous)
        self.assertTrue(follower.rawNode.raft.campaignAllowed)

    async def test_leaderStopsWritesContinue(self):
        """Stop the leader: the others elect a new one and take writes."""
        await self.startCluster()
        await self.put(self.nodes[0], "before", b"1")
        old = self.leaderOf()
        await stopNode(old)
        rest = [n for n in self.nodes if n is not old]
        new = await self.waitForLeader(rest)
        self.assertIsNot(new, old)
        await self.put(rest[0], "after", b"2")
        for node in rest:
            self.assertEqual(await self.get(node, "before"), (200, b"1"))
            self.assertEqual(await self.get(node, "after"), (200, b"2"))


class SnapshotTests(ClusterCase):
    options = {"snapshot-count": 20, "snapshot-catchup-entries": 5}

    async def test_farBehindCatchesUpFromSnapshot(self):
        """
        A member stopped while the others commit more than a snapshot's
        worth (and compact) comes back and catches up from a snapshot; a
        restarted member restores from its own snapshot first.
        """
        await self.startCluster()
        leader = self.leaderOf()
        lagging = [n for n in self.nodes if n is not leader][0]
        index = self.nodes.index(lagging)
        await stopNode(lagging)
        rest = [n for n in self.nodes if n is not lagging]
        for i in range(60):
            await self.put(rest[i % 2], "k%d" % (i,), b"v%d" % (i,))
        self.assertGreater(leader.snapshotIndex, 20)
        self.assertGreater(leader.storage.firstIndex(), 10)
        # Start it again from its data directory.
        from raftmux.node.service import RaftNode

        revived = RaftNode(lagging.config, reactor=reactor, listen=False, fsync=False)
        self.nodes[index] = revived
        await startNode(revived, self.ports[index])
        self.addCleanup(self.stopIfRunning, revived)
        await waitFor(reactor, lambda: value(revived, b"k59") == b"v59", timeout=20,
                      what="catch up")
        self.assertGreater(revived.snapshotIndex, 20)
        self.assertEqual(liveKeys(revived), 60)
        # And a restart of it restores from its snapshot, not the whole log.
        await stopNode(revived)
        again = RaftNode(lagging.config, reactor=reactor, listen=False, fsync=False)
        self.nodes[index] = again
        await startNode(again, self.ports[index])
        self.addCleanup(self.stopIfRunning, again)
        # Restored from the snapshot before any entry was replayed.
        self.assertGreater(again.snapshotIndex, 20)
        self.assertGreater(again.storage.firstIndex(), 10)
        self.assertGreaterEqual(liveKeys(again), again.snapshotIndex - 20)
        await waitFor(reactor, lambda: liveKeys(again) == 60, what="replay after snapshot")


class MembershipTests(ClusterCase):
    size = 2

    async def test_addAndRemoveMember(self):
        """
        POST /cluster/members adds a member; a node started with
        ``--initial-cluster-state existing`` joins and receives the data;
        DELETE removes it again.
        """
        await self.startCluster()
        await self.put(self.nodes[0], "a", b"1")
        (port,) = await bindPorts(reactor, 1)
        self.addCleanup(port.stopListening)
        url = urlOf(port)
        code, body, _ = await self.request(
            b"POST", self.nodes[1], "/cluster/members",
            json.dumps({"peerURLs": [url], "name": "n3"}).encode())
        self.assertEqual(code, 201, body)
        answer = json.loads(body)
        self.assertIn("n3=" + url, answer["initialCluster"])
        from raftmux.node.config import NodeConfig
        from raftmux.node.service import RaftNode

        config = NodeConfig({
            "name": "n3", "data-dir": os.path.join(self.dir, "n3"),
            "listen-peer-urls": url, "initial-advertise-peer-urls": url,
            "listen-client-urls": url, "advertise-client-urls": url,
            "initial-cluster": answer["initialCluster"], "initial-cluster-token": "test",
            "initial-cluster-state": "existing"})
        joined = RaftNode(config, reactor=reactor, listen=False, fsync=False)
        self.nodes.append(joined)
        self.ports.append(port)
        await startNode(joined, port)
        self.addCleanup(self.stopIfRunning, joined)
        self.assertEqual("%x" % (joined.id,), answer["changed"])
        await waitFor(reactor, lambda: value(joined, b"a") == b"1", what="joined member data")
        await self.put(joined, "b", b"2")
        self.assertEqual(await self.get(self.nodes[0], "b"), (200, b"2"))
        code, body, _ = await self.request(b"DELETE", self.nodes[0],
                                           "/cluster/members/%x" % (joined.id,))
        self.assertEqual(code, 200, body)
        await waitFor(reactor, lambda: joined.removed, what="removed member stops")
        self.assertEqual(len(self.nodes[0].members.members), 2)


class RestartTests(ClusterCase):
    size = 1

    async def test_restartKeepsDataAndIdentity(self):
        """A stopped member restarts from its data directory with its state."""
        await self.startCluster()
        (node,) = self.nodes
        for i in range(5):
            await self.put(node, "r%d" % (i,), b"%d" % (i,))
        await stopNode(node)
        from raftmux.node.service import RaftNode

        again = RaftNode(node.config, reactor=reactor, listen=False, fsync=False)
        self.nodes[0] = again
        await startNode(again, self.ports[0])
        self.addCleanup(self.stopIfRunning, again)
        self.assertEqual((again.id, again.clusterID), (node.id, node.clusterID))
        await self.waitForLeader()
        self.assertEqual(await self.get(again, "r4"), (200, b"4"))

    async def test_corruptLogRefusesToStart(self):
        """
        A record damaged in the middle of the log (not a torn tail): the
        member refuses to start, saying why, and serves nothing.
        """
        await self.startCluster()
        (node,) = self.nodes
        for i in range(5):
            await self.put(node, "c%d" % (i,), b"x" * 50)
        await stopNode(node)
        raftDir = node.config.raftDir
        (segment,) = [f for f in os.listdir(raftDir) if f.endswith(".wal")]
        path = os.path.join(raftDir, segment)
        with open(path, "r+b") as f:
            data = bytearray(f.read())
            data[len(data) // 3] ^= 0x40
            f.seek(0)
            f.write(data)
        from raftmux.node.service import NodeStartError, RaftNode

        again = RaftNode(node.config, reactor=reactor, listen=False, fsync=False)
        self.nodes[0] = again
        failure = None
        try:
            await startNode(again, self.ports[0])
        except NodeStartError as e:
            failure = e
        self.assertIsNotNone(failure)
        self.assertIn("cannot be used", str(failure))
        self.assertIsNone(again.driver)
        code, body, _ = await self.request(b"GET", again, "/health")
        self.assertEqual(code, 503)


class StartTests(TestCase):
    """
    A failed start leaves nothing behind (issue 18): ports open before the
    data directory is touched; a directory an old failed start left with an
    identity but no raft state starts afresh; a directory that overrides
    the flags says so.
    """

    timeout = 60

    def setUp(self):
        from twisted.logger import globalLogPublisher
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def config(self, port, token="tok"):
        from raftmux.node.config import NodeConfig
        url = urlOf(port)
        return NodeConfig({"name": "n1", "data-dir": os.path.join(self.dir, "n1"),
                           "listen-peer-urls": url, "initial-advertise-peer-urls": url,
                           "listen-client-urls": url, "advertise-client-urls": url,
                           "initial-cluster-token": token})

    async def start(self, config, port, **kwargs):
        from raftmux.node.service import RaftNode
        node = RaftNode(config, reactor=reactor, listen=False, fsync=False, **kwargs)
        await startNode(node, port)
        self.addCleanup(lambda: stopNode(node) if node.running else None)
        return node

    def lines(self, text):
        from twisted.logger import formatEvent
        return [formatEvent(e) for e in self.events if text in formatEvent(e)]

    async def test_portTakenWritesNothing(self):
        """
        A listen URL that cannot be had ends the start before the data
        directory is touched; once the port is free, the member elects.
        """
        from twisted.internet.endpoints import TCP4ServerEndpoint

        from raftmux.node.service import NodeStartError, RaftNode
        (port,) = await bindPorts(reactor, 1)
        self.addCleanup(port.stopListening)
        config = self.config(port)
        failures = []
        node = RaftNode(config, reactor=reactor, fsync=False, onStartFailure=failures.append,
                        serverEndpoint=lambda url: TCP4ServerEndpoint(
                            reactor, port.getHost().port, interface="127.0.0.1"))
        node.startService()
        failure = None
        try:
            await node.whenStarted()
        except NodeStartError as e:
            failure = e
        self.assertIn("cannot listen on %s" % (urlOf(port),), str(failure))
        self.assertEqual([f.value for f in failures], [failure])
        self.assertFalse(os.path.exists(config.dataDir), os.listdir(self.dir))
        node = await self.start(config, port)
        await waitFor(reactor, lambda: node.isLeader, timeout=20, what="leader")

    async def test_identityWithoutRaftStateStartsAfresh(self):
        """
        What an older failed start left (identity.json and an empty raft/,
        written before the port failed) no longer stops the member from
        electing, and the token of this start is the one used.
        """
        from raftmux.node import identity
        from raftmux.raft.diskstorage import DiskStorage
        (port,) = await bindPorts(reactor, 1)
        self.addCleanup(port.stopListening)
        old, new = self.config(port, "old"), self.config(port, "new")
        self.assertNotEqual(old.clusterID, new.clusterID)
        identity.save(old.identityFile, old.id, old.clusterID, "n1",
                      [{"id": old.id, "name": "n1", "peerURLs": old.advertisePeerURLs}])
        DiskStorage(old.raftDir).close()
        node = await self.start(new, port)
        await waitFor(reactor, lambda: node.isLeader, timeout=20, what="leader")
        self.assertEqual((node.id, node.clusterID), (new.id, new.clusterID))
        self.assertEqual(identity.load(new.identityFile)["clusterID"], new.clusterID)
        self.assertEqual(len(self.lines("holds an identity but no raft state")), 1)

    async def test_dataDirectoryOverridingFlagsSaysSo(self):
        """A restart with other cluster flags keeps the directory's identity and logs one line."""
        (port,) = await bindPorts(reactor, 1)
        self.addCleanup(port.stopListening)
        first = self.config(port, "first")
        node = await self.start(first, port)
        await waitFor(reactor, lambda: node.isLeader, timeout=20, what="leader")
        await stopNode(node)
        self.assertEqual(self.lines("the data directory wins"), [])
        again = await self.start(self.config(port, "second"), port)
        await waitFor(reactor, lambda: again.isLeader, timeout=20, what="leader again")
        self.assertEqual((again.id, again.clusterID), (first.id, first.clusterID))
        (line,) = self.lines("the data directory wins")
        self.assertIn("cluster %x" % (first.clusterID,), line)
        self.assertIn("--initial-cluster-token", line)

    async def test_failedJoinWritesNothing(self):
        """Joining a cluster nobody answers for fails, and leaves no data directory."""
        from raftmux.node.config import NodeConfig
        from raftmux.node.join import JoinError
        from raftmux.node.service import RaftNode
        (port,) = await bindPorts(reactor, 1)
        self.addCleanup(port.stopListening)
        url = urlOf(port)
        config = NodeConfig({"name": "n2", "data-dir": os.path.join(self.dir, "n2"),
                             "listen-peer-urls": url, "initial-advertise-peer-urls": url,
                             "listen-client-urls": url, "advertise-client-urls": url,
                             "initial-cluster": "n1=http://127.0.0.1:1,n2=" + url,
                             "initial-cluster-state": "existing", "request-timeout": 2})
        node = RaftNode(config, reactor=reactor, listen=False, fsync=False)
        await startNode(node, port).addErrback(lambda f: f.trap(JoinError))
        self.failureResultOf(node.whenStarted(), JoinError)
        self.assertFalse(os.path.exists(config.dataDir))
