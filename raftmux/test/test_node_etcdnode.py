# -*- test-case-name: raftmux.test.test_node_etcdnode -*-
"""
The node's ``EtcdNode`` (``IEtcdNode``) under etcd's v3 API, with three
``RaftNode``s in this process on loopback: every service on every member
(writes on followers go to the leader through raft), linearizable reads,
response headers, watches fed by the applied log, leases kept alive
through a follower and expired by the leader only, leadership moving with
the lessor, membership as etcd's conf changes and its errors, status and
etcd's metric names; then the key space surviving a restart and a member
far behind catching up from a snapshot.
"""

import base64
import json

from twisted.internet import reactor
from twisted.internet.task import deferLater
from zope.interface.verify import verifyObject

from raftmux.etcd import IEtcdNode
from raftmux.etcd.testing import FakeResponder
from raftmux.etcdpb import rpc_pb2 as pb
from raftmux.mvcc import errors
from raftmux.node.service import RaftNode
from raftmux.node.testing import startNode, stopNode, urlOf
from raftmux.rafthttp.testing import waitFor
from raftmux.test.test_node import ClusterCase

FAST = {"heartbeat-interval": 50, "election-timeout": 500}


def ok(d):
    return d


def b64(data):
    return base64.b64encode(data).decode()


class EtcdCase(ClusterCase):
    options = FAST

    def leaderAndFollowers(self):
        leader = self.leaderOf()
        return leader, [n for n in self.nodes if n is not leader]

    async def assertEtcdError(self, d, cls):
        try:
            await d
        except errors.EtcdError as e:
            self.assertIsInstance(e, cls)
            return e
        self.fail("no %s" % (cls.__name__,))

    async def assertEtcdErrorRetried(self, call, cls, attempts=3):
        """
        As ``assertEtcdError`` for ``call()``, tried again after
        ``ErrTimeout``, which etcd allows for any proposal (a follower's
        forwarded proposal may be dropped on a loaded machine) and its
        clients retry.
        """
        for _ in range(attempts - 1):
            try:
                await call()
            except errors.ErrTimeout:
                continue
            except errors.EtcdError as e:
                self.assertIsInstance(e, cls)
                return e
            self.fail("no %s" % (cls.__name__,))
        return await self.assertEtcdError(call(), cls)

    async def allApplied(self, what="every member applied the same"):
        def same():
            revisions = {n.keySpace.revision for n in self.nodes if n.running}
            applied = {n.etcd.appliedIndex() for n in self.nodes if n.running}
            return len(revisions) == 1 and len(applied) == 1
        await waitFor(reactor, same, timeout=20, what=what)

    async def gateway(self, node, path, body):
        code, answer, _ = await self.request(b"POST", node, path, json.dumps(body).encode())
        return code, json.loads(answer)


class EtcdNodeTests(EtcdCase):

    async def test_providesIEtcdNode(self):
        """Each member's EtcdNode is an IEtcdNode with its own IDs and the members' list."""
        await self.startCluster()
        for node in self.nodes:
            self.assertTrue(verifyObject(IEtcdNode, node.etcd))
            self.assertEqual((node.etcd.memberID, node.etcd.clusterID),
                             (node.id, node.clusterID))
        await waitFor(reactor, lambda: all(
            all(m.clientURLs for m in n.etcd.members()) for n in self.nodes),
            what="published attributes")
        for node in self.nodes:
            members = node.etcd.members()
            self.assertEqual(sorted(m.name for m in members), ["n1", "n2", "n3"])
            self.assertEqual([m.ID for m in members], sorted(n.id for n in self.nodes))
            self.assertEqual({tuple(m.clientURLs) for m in members},
                             {(urlOf(p),) for p in self.ports})

    async def test_kvOnEveryMember(self):
        """
        Put, Txn and DeleteRange made on followers are applied everywhere
        at the same revisions; a linearizable Range on another member sees
        them at once; headers carry the answering member's IDs and term.
        """
        await self.startCluster()
        leader, (f1, f2) = self.leaderAndFollowers()
        put = await f1.etcdAPI.kv.Put(pb.PutRequest(key=b"a", value=b"1"))
        self.assertEqual(put.header, pb.ResponseHeader(
            cluster_id=f1.clusterID, member_id=f1.id, revision=2, raft_term=leader.etcd.term()))
        got = await f2.etcdAPI.kv.Range(pb.RangeRequest(key=b"a"))
        self.assertEqual([(kv.key, kv.value, kv.mod_revision) for kv in got.kvs],
                         [(b"a", b"1", 2)])
        self.assertEqual(got.header.member_id, f2.id)
        txn = await f2.etcdAPI.kv.Txn(pb.TxnRequest(
            compare=[pb.Compare(key=b"a", target=pb.Compare.VALUE, value=b"1")],
            success=[pb.RequestOp(request_put=pb.PutRequest(key=b"b", value=b"2"))]))
        self.assertTrue(txn.succeeded)
        deleted = await leader.etcdAPI.kv.DeleteRange(pb.DeleteRangeRequest(
            key=b"a", prev_kv=True))
        self.assertEqual((deleted.deleted, deleted.prev_kvs[0].value), (1, b"1"))
        got = await f1.etcdAPI.kv.Range(pb.RangeRequest(key=b"a", range_end=b"c"))
        self.assertEqual([kv.key for kv in got.kvs], [b"b"])
        self.assertEqual(got.header.revision, 4)
        await self.allApplied()
        hashes = {n.keySpace.hashKV().hash for n in self.nodes}
        self.assertEqual(len(hashes), 1)
        # Compaction reaches every member's history.
        await f1.etcdAPI.kv.Compact(pb.CompactionRequest(revision=3))
        await self.allApplied()
        for node in self.nodes:
            await self.assertEtcdError(node.etcdAPI.kv.Range(pb.RangeRequest(
                key=b"a", revision=2, serializable=True)), errors.ErrCompacted)
        # A put that fails in the key space fails for its proposer only.
        await self.assertEtcdError(f2.etcdAPI.kv.Put(pb.PutRequest(
            key=b"c", lease=12345)), errors.ErrLeaseNotFound)

    async def test_gatewayOnEveryMember(self):
        """etcd's JSON gateway at /v3 (and /v3beta) on each member's URL."""
        await self.startCluster()
        leader, (f1, f2) = self.leaderAndFollowers()
        code, answer = await self.gateway(f1, "/v3/kv/put", {"key": b64(b"g"),
                                                             "value": b64(b"w")})
        self.assertEqual(code, 200, answer)
        self.assertEqual(answer["header"]["member_id"], str(f1.id))
        code, answer = await self.gateway(f2, "/v3beta/kv/range", {"key": b64(b"g")})
        self.assertEqual((code, answer["kvs"][0]["value"]), (200, b64(b"w")))
        code, answer = await self.gateway(f2, "/v3/cluster/member/list", {})
        self.assertEqual(len(answer["members"]), 3)
        code, answer = await self.gateway(f1, "/v3/maintenance/status", {})
        self.assertEqual((code, answer["leader"]), (200, str(leader.id)))
        self.assertEqual(answer["version"], "3.4.23")
        code, answer = await self.gateway(f1, "/v3/kv/range", {"key": "!!"})
        self.assertEqual(code, 400, answer)

    async def test_watchOnAFollower(self):
        """A watch on a follower sees writes made on the leader, in order, as applied."""
        await self.startCluster()
        leader, (follower, _) = self.leaderAndFollowers()
        responder = FakeResponder()
        stream = follower.etcdAPI.watch.Watch(responder)
        stream.receive(pb.WatchRequest(create_request=pb.WatchCreateRequest(
            key=b"w", range_end=b"x", prev_kv=True)))
        (created,) = responder.take()
        self.assertTrue(created.created)
        for i in range(3):
            await leader.etcdAPI.kv.Put(pb.PutRequest(key=b"w%d" % (i % 2,), value=b"%d" % i))
        events = []

        def seen():
            for response in responder.take():
                events.extend((e.kv.key, e.kv.value, e.prev_kv.value) for e in response.events)
            return len(events) == 3
        await waitFor(reactor, seen, what="watch events on the follower")
        self.assertEqual(events, [(b"w0", b"0", b""), (b"w1", b"1", b""), (b"w0", b"2", b"0")])
        stream.cancel()

    async def test_leasesKeptAliveThroughAFollowerExpireByTheLeader(self):
        """
        A lease granted on a follower is renewed there (the follower asks
        the leader over /leases); only the leader's lessor decides expiry;
        once keep-alives stop, its revoke deletes the key everywhere.
        """
        await self.startCluster()
        leader, (follower, other) = self.leaderAndFollowers()
        await waitFor(reactor, lambda: leader.etcdAPI.lessor.isPrimary,
                      what="the leader's lessor promoted")
        self.assertFalse(follower.etcdAPI.lessor.isPrimary)
        grant = await follower.etcdAPI.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=2))
        await follower.etcdAPI.kv.Put(pb.PutRequest(key=b"l", value=b"x", lease=grant.ID))
        responder = FakeResponder()
        stream = follower.etcdAPI.lease.LeaseKeepAlive(responder)
        for i in range(4):
            if i:
                await deferLater(reactor, 1.0, lambda: None)
            stream.receive(pb.LeaseKeepAliveRequest(ID=grant.ID))
            await waitFor(reactor, lambda: responder.messages, what="keep-alive answer")
            (answer,) = responder.take()
            self.assertEqual((answer.ID, answer.TTL), (grant.ID, 2))
        # Still there after 3 s: the renewals counted.
        got = await other.etcdAPI.kv.Range(pb.RangeRequest(key=b"l"))
        self.assertEqual(len(got.kvs), 1)
        ttl = await other.etcdAPI.lease.LeaseTimeToLive(pb.LeaseTimeToLiveRequest(
            ID=grant.ID, keys=True))
        self.assertEqual((ttl.grantedTTL, list(ttl.keys)), (2, [b"l"]))
        self.assertGreater(ttl.TTL, 0)
        stream.cancel()
        await waitFor(reactor, lambda: all(n.keySpace.get(b"l") is None for n in self.nodes),
                      timeout=10, what="the leader revoked the expired lease")
        for node in self.nodes:
            self.assertIsNone(node.keySpace.lease(grant.ID))

    async def test_leadershipMovesWithTheLessor(self):
        """
        MoveLeader hands leadership over; the new leader's lessor becomes
        primary once it applied its term's first entry, the old one's
        stops; every member counts the change.
        """
        await self.startCluster()
        leader, (target, _) = self.leaderAndFollowers()
        before = {n.id: n.etcd.leaderChanges for n in self.nodes}
        await leader.etcdAPI.maintenance.MoveLeader(pb.MoveLeaderRequest(targetID=target.id))
        await self.waitForLeader()
        self.assertIs(self.leaderOf(), target)
        await waitFor(reactor, lambda: target.etcdAPI.lessor.isPrimary, what="promoted")
        self.assertFalse(leader.etcdAPI.lessor.isPrimary)
        for node in self.nodes:
            self.assertGreater(node.etcd.leaderChanges, before[node.id])
            status = await node.etcdAPI.maintenance.Status(pb.StatusRequest())
            self.assertEqual(status.leader, target.id)
        await self.assertEtcdError(target.etcdAPI.maintenance.MoveLeader(
            pb.MoveLeaderRequest(targetID=12345)), errors.ErrBadLeaderTransferee)

    async def test_membershipAsEtcd(self):
        """
        MemberAdd (learners too), MemberUpdate, MemberPromote and
        MemberRemove from any member, with etcd's errors.
        """
        await self.startCluster()
        leader, (f1, f2) = self.leaderAndFollowers()
        cluster = f1.etcdAPI.cluster
        added = await cluster.MemberAdd(pb.MemberAddRequest(
            peerURLs=["http://127.0.0.1:1"], isLearner=True))
        self.assertTrue(added.member.isLearner)
        self.assertEqual(len(added.members), 4)
        await waitFor(reactor, lambda: all(len(n.etcd.members()) == 4 for n in self.nodes),
                      what="added everywhere")
        learner = added.member.ID
        await self.assertEtcdError(cluster.MemberAdd(pb.MemberAddRequest(
            peerURLs=["http://127.0.0.1:2"], isLearner=True)), errors.ErrTooManyLearners)
        await self.assertEtcdErrorRetried(lambda: f2.etcdAPI.cluster.MemberAdd(
            pb.MemberAddRequest(peerURLs=[urlOf(self.ports[0])])), errors.ErrPeerURLExist)
        # It never started: the leader will not promote it.
        await self.assertEtcdError(leader.etcdAPI.cluster.MemberPromote(
            pb.MemberPromoteRequest(ID=learner)), errors.ErrMemberLearnerNotReady)
        await self.assertEtcdError(leader.etcdAPI.cluster.MemberPromote(
            pb.MemberPromoteRequest(ID=f1.id)), errors.ErrMemberNotLearner)
        updated = await f2.etcdAPI.cluster.MemberUpdate(pb.MemberUpdateRequest(
            ID=learner, peerURLs=["http://127.0.0.1:3"]))
        self.assertEqual([list(m.peerURLs) for m in updated.members if m.ID == learner],
                         [["http://127.0.0.1:3"]])
        await self.assertEtcdErrorRetried(lambda: f2.etcdAPI.cluster.MemberUpdate(
            pb.MemberUpdateRequest(ID=learner, peerURLs=[urlOf(self.ports[1])])),
            errors.ErrPeerURLExist)
        removed = await f2.etcdAPI.cluster.MemberRemove(pb.MemberRemoveRequest(ID=learner))
        self.assertEqual(len(removed.members), 3)
        await self.assertEtcdError(f1.etcdAPI.cluster.MemberRemove(
            pb.MemberRemoveRequest(ID=learner)), errors.ErrMemberNotFound)
        await waitFor(reactor, lambda: all(len(n.etcd.members()) == 3 for n in self.nodes),
                      what="removed everywhere")

    async def test_statusAndEtcdMetrics(self):
        """Status from each member; /metrics carries etcd's names and types."""
        await self.startCluster()
        leader, _ = self.leaderAndFollowers()
        await leader.etcdAPI.kv.Put(pb.PutRequest(key=b"m", value=b"x" * 100))
        await self.allApplied()
        for node in self.nodes:
            status = await node.etcdAPI.maintenance.Status(pb.StatusRequest())
            self.assertEqual(status.leader, leader.id)
            self.assertEqual(status.raftAppliedIndex, node.etcd.appliedIndex())
            self.assertGreaterEqual(status.raftIndex, status.raftAppliedIndex)
            self.assertGreater(status.dbSize, 100)
            self.assertEqual(status.header.member_id, node.id)
        code, text, _ = await self.request(b"GET", leader, "/metrics")
        self.assertEqual(code, 200)
        text = text.decode()
        for name, kind in [
                ("etcd_server_has_leader", "gauge"), ("etcd_server_is_leader", "gauge"),
                ("etcd_server_leader_changes_seen_total", "counter"),
                ("etcd_server_proposals_committed_total", "gauge"),
                ("etcd_server_proposals_applied_total", "gauge"),
                ("etcd_server_proposals_pending", "gauge"),
                ("etcd_server_proposals_failed_total", "counter"),
                ("etcd_disk_wal_fsync_duration_seconds", "histogram"),
                ("etcd_mvcc_db_total_size_in_bytes", "gauge"),
                ("process_cpu_seconds_total", "counter"),
                ("raftmux_node_is_leader", "gauge")]:
            self.assertTrue("# TYPE %s %s\n" % (name, kind) in text, name)
        samples = dict(line.rsplit(" ", 1) for line in text.splitlines()
                       if line and not line.startswith("#"))
        self.assertEqual(float(samples["etcd_server_has_leader"]), 1)
        self.assertEqual(float(samples["etcd_server_is_leader"]), 1)
        self.assertEqual(float(samples["etcd_server_proposals_applied_total"]),
                         leader.etcd.appliedIndex())
        self.assertGreaterEqual(float(samples["etcd_server_leader_changes_seen_total"]), 1)
        self.assertGreater(float(samples["etcd_disk_wal_fsync_duration_seconds_count"]), 0)
        for line in ('etcd_disk_wal_fsync_duration_seconds_bucket{le="8.192"}',
                     'etcd_server_version{server_version="3.4.23"} 1.0',
                     'etcd_server_id{server_id="%x"} 1.0' % (leader.id,)):
            self.assertTrue(line in text, line)
        self.assertGreater(float(samples["etcd_mvcc_db_total_size_in_bytes"]), 100)


class DurabilityTests(EtcdCase):
    """The key space is rebuilt from the data directory, and sent as a snapshot."""

    options = dict(FAST, **{"snapshot-count": 20, "snapshot-catchup-entries": 5})

    async def fill(self, nodes, n, start=0):
        """Puts, deletes, a lease holding keys and a compaction, on ``nodes`` in turn."""
        grant = await nodes[0].etcdAPI.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=3600))
        for i in range(start, start + n):
            api = nodes[i % len(nodes)].etcdAPI
            await api.kv.Put(pb.PutRequest(key=b"k%d" % (i % 7,), value=b"v%d" % i,
                                           lease=grant.ID if i % 5 == 0 else 0))
            if i % 9 == 8:
                await api.kv.DeleteRange(pb.DeleteRangeRequest(key=b"k%d" % (i % 7,)))
        await nodes[-1].etcdAPI.kv.Compact(pb.CompactionRequest(
            revision=nodes[0].keySpace.revision - 3))
        return grant.ID

    def fingerprint(self, node):
        ks = node.keySpace
        return (ks.revision, ks.compactRevision, ks.hashKV().hash,
                [(i.id, i.ttl, i.keys) for i in ks.leases()])

    async def test_restartKeepsTheKeySpace(self):
        """A restart replays snapshot and log into the same key space."""
        await self.startCluster()
        await self.fill(self.nodes, 30)
        await self.allApplied()
        before = {n.config.name: self.fingerprint(n) for n in self.nodes}
        self.assertEqual(len(set(map(repr, before.values()))), 1, before)
        self.assertGreater(self.nodes[0].snapshotIndex, 0)
        for i, node in enumerate(list(self.nodes)):
            await stopNode(node)
            again = RaftNode(node.config, reactor=reactor, listen=False, fsync=False)
            self.nodes[i] = again
            await startNode(again, self.ports[i])
            self.addCleanup(self.stopIfRunning, again)
        await self.waitForLeader()
        for node in self.nodes:
            try:
                await waitFor(reactor,
                              lambda n=node: self.fingerprint(n) == before[n.config.name],
                              what="the key space back")
            except AssertionError:
                self.fail("%s: %r, was %r" % (node.config.name, self.fingerprint(node),
                                              before[node.config.name]))
        # And it goes on from there.
        leader = self.leaderOf()
        put = await leader.etcdAPI.kv.Put(pb.PutRequest(key=b"after", value=b"1"))
        self.assertEqual(put.header.revision, before["n1"][0] + 1)

    async def test_snapshotCatchUpRestoresTheKeySpace(self):
        """
        A member stopped while the others write past a snapshot (and
        compact their logs) gets the leader's snapshot: the same key space,
        history and leases; its watchers then see what follows.
        """
        await self.startCluster()
        leader, (lagging, other) = self.leaderAndFollowers()
        index = self.nodes.index(lagging)
        await stopNode(lagging)
        await self.fill([leader, other], 60)
        self.assertGreater(leader.storage.firstIndex(), 10)
        revived = RaftNode(lagging.config, reactor=reactor, listen=False, fsync=False)
        self.nodes[index] = revived
        await startNode(revived, self.ports[index])
        self.addCleanup(self.stopIfRunning, revived)
        await waitFor(reactor, lambda: self.fingerprint(revived) == self.fingerprint(leader),
                      timeout=20, what="caught up")
        self.assertGreater(revived.snapshotIndex, 20)
        responder = FakeResponder()
        stream = revived.etcdAPI.watch.Watch(responder)
        stream.receive(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"new")))
        await leader.etcdAPI.kv.Put(pb.PutRequest(key=b"new", value=b"1"))
        await waitFor(reactor, lambda: any(r.events for r in responder.messages),
                      what="a watch on the restored member")
        stream.cancel()
