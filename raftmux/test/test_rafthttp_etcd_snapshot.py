# -*- test-case-name: raftmux.test.test_rafthttp_etcd_snapshot -*-
"""
A real etcd 3.4 leader sends our Transport a snapshot over
``POST /raft/snapshot``, and we receive it whole (issue 4, point 7).

etcd's leader sends MsgSnap when a follower needs entries it has already
compacted.  etcd snapshots every ``--snapshot-count`` applied entries and
then compacts its raft log, keeping ``snapshotCatchUpEntries`` = 5000
entries behind.  So the test:

1. starts etcd (e1) with ``--snapshot-count 100`` beside our Transport (p2)
   with a follower that acks everything;
2. commits 5300 puts through etcd's JSON gateway (``/v3/kv/put``, 32 at a
   time on a persistent pool), until etcd logs ``compacted Raft logs`` at
   an index > 1;
3. makes the follower behave as a member that lost its log: every MsgApp
   is rejected with ``RejectHint`` 0.  One more put gives the leader a new
   entry; its MsgApp (index == Match) is ignored as stale (spec Surprise
   10), but the empty MsgApp that the next heartbeat response triggers
   has an index above Match, so the leader goes to probe, resends at
   Match, gets the hint 0, wants index 1, which is compacted, and sends a
   snapshot;
4. checks that the MsgSnap reached ``IRaft.process``, that the database was
   saved as ``<index %016x>.snap.db`` with exactly the size etcd logged
   ("sent database snapshot to writer"; and "sent database snapshot"'s
   ``bytes`` is the MsgSnap's protobuf size plus that), that it is a
   bbolt file (meta page magic) holding a value put before the snapshot,
   and that the snapshot-receive metric counted it;
5. answers the MsgSnap with ``MsgAppResp{Index: snapshot index}`` and
   checks etcd then commits the pending put through our acks, i.e. it
   accepted the snapshot as delivered.
"""

import base64
import json
import os
import re
import shutil
import struct
import tempfile

from prometheus_client import CollectorRegistry
from twisted.internet import defer, reactor
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers

from raftmux import raftpb
from raftmux.httpbody import BytesProducer
from raftmux.rafthttp.snapshot import snapshotPath
from raftmux.rafthttp.testing import FakeRaft, waitFor
from raftmux.raftpb import Message
from raftmux.test.test_rafthttp_etcd import EtcdHarness, Follower

# etcd's snapshotCatchUpEntries, plus enough for a snapshot after it.
CATCH_UP_ENTRIES = 5000
PUTS = 5300
CONCURRENCY = 32
MARKER = b"raftmux-snapshot-marker-7f3a"
BOLT_MAGIC = 0xED0CDAED


def _b64(data):
    return base64.b64encode(data).decode("ascii")


class LostLogFollower(Follower):
    """
    ``Follower`` that, once ``lost`` is set, answers every MsgApp as a
    member with an empty log would (reject, hint 0) until a MsgSnap
    restores it; the MsgSnap is answered with ``MsgAppResp{Index:
    snapshot index}`` (spec 12).
    """

    def __init__(self, me):
        Follower.__init__(self, me)
        self.lost = False
        self.rejected = []

    def process(self, m):
        if m.type == raftpb.MsgSnap:
            self.lost = False
            reply = Message(type=raftpb.MsgAppResp, to=getattr(m, "from"), term=m.term,
                            index=m.snapshot.metadata.index, **{"from": self.me})
            self.transport.send([reply])
            return FakeRaft.process(self, m)
        if self.lost and m.type == raftpb.MsgApp:
            self.rejected.append(m)
            reply = Message(type=raftpb.MsgAppResp, to=getattr(m, "from"), term=m.term,
                            index=m.index, reject=True, rejectHint=0, **{"from": self.me})
            self.transport.send([reply])
            return FakeRaft.process(self, m)
        return Follower.process(self, m)


class EtcdSnapshotTests(EtcdHarness):
    timeout = 90
    follower = LostLogFollower

    def _agent(self, concurrency):
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = concurrency
        self.addCleanup(pool.closeCachedConnections)
        return Agent(reactor, connectTimeout=5, pool=pool)

    async def _put(self, agent, key, value, timeout=10):
        body = json.dumps({"key": _b64(key), "value": _b64(value)}).encode()
        d = agent.request(b"POST", (self.clientURL + "/v3/kv/put").encode(),
                          Headers({b"Content-Type": [b"application/json"]}),
                          BytesProducer(body))
        d.addTimeout(timeout, reactor)
        response = await d
        text = await readBody(response)
        if response.code != 200:
            raise AssertionError("put %r: %d %r" % (key, response.code, text[:200]))
        return text

    async def _bulkPut(self, agent, n, concurrency):
        keys = iter(range(n))

        async def worker():
            for i in keys:
                await self._put(agent, b"bulk/%05d" % (i,), b"v" * 16)

        results = await defer.DeferredList(
            [defer.ensureDeferred(worker()) for _ in range(concurrency)], consumeErrors=True)
        for ok, result in results:
            if not ok:
                result.raiseException()

    def _compactedAt(self):
        """The highest index etcd logged compacting its raft log at."""
        found = [int(x) for x in re.findall(r'"compacted Raft logs".*?"compact-index":(\d+)',
                                            self._etcdLog())]
        return max(found) if found else 0

    def _logged(self, message, field="bytes"):
        """The last ``field`` etcd logged with ``message`` (zap JSON lines)."""
        found = re.findall(r'"msg":"%s".*?"%s":(\d+)' % (re.escape(message), field),
                           self._etcdLog())
        return int(found[-1]) if found else None

    @defer.inlineCallbacks
    def test_snapshotReceivedWhole(self):
        """
        etcd's MsgSnap and whole database reach us over /raft/snapshot: the
        saved file has the size etcd logged, is a bbolt file with our data,
        the MsgSnap went to IRaft, and etcd counts it as delivered.
        """
        snapdir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, snapdir, True)
        registry = CollectorRegistry()
        yield defer.ensureDeferred(self._start(
            ["--snapshot-count", "100", "--logger", "zap", "--log-outputs", "stderr"],
            snapshotDir=snapdir, registry=registry))
        yield defer.ensureDeferred(waitFor(
            reactor, lambda: any(m.type == raftpb.MsgApp for m in self.raft.messages),
            timeout=15, what="etcd's first MsgApp"))
        agent = self._agent(CONCURRENCY)
        yield defer.ensureDeferred(self._bulkPut(agent, PUTS, CONCURRENCY))
        yield defer.ensureDeferred(self._put(agent, b"marker", MARKER))
        yield defer.ensureDeferred(waitFor(
            reactor, lambda: (self._logged("compacted Raft logs", "compact-index") or 0) > 1,
            timeout=15, what="etcd compacting its raft log"))
        self.assertEqual([], [m for m in self.raft.messages if m.type == raftpb.MsgSnap])

        self.raft.lost = True
        pending = defer.ensureDeferred(self._put(agent, b"after", b"snapshot", timeout=30))
        yield defer.ensureDeferred(waitFor(
            reactor, lambda: any(m.type == raftpb.MsgSnap for m in self.raft.messages),
            timeout=20, what="etcd's MsgSnap"))
        # The put that was pending commits: etcd took our MsgAppResp for the
        # snapshot index and replicated the rest through our acks.
        yield pending
        self.assertTrue(self.raft.rejected, "no MsgApp was rejected")

        [snap] = [m for m in self.raft.messages if m.type == raftpb.MsgSnap]
        index = snap.snapshot.metadata.index
        self.assertEqual((getattr(snap, "from"), snap.to), (self.e1, self.p2))
        self.assertGreater(index, CATCH_UP_ENTRIES)
        self.assertEqual(sorted(snap.snapshot.metadata.conf_state.voters),
                         sorted([self.e1, self.p2]))
        self.assertTrue(snap.snapshot.data, "no v2 store in the MsgSnap")
        path = snapshotPath(snapdir, index)
        self.assertEqual(os.listdir(snapdir), [os.path.basename(path)])
        size = os.path.getsize(path)
        # etcd logs the database size it wrote, and its snap.Message's
        # TotalSize: the MsgSnap's protobuf size (without the 8-byte length
        # prefix) plus the database.
        yield defer.ensureDeferred(waitFor(
            reactor, lambda: self._logged("sent database snapshot") is not None,
            timeout=10, what="etcd's 'sent database snapshot'"))
        self.assertEqual(size, self._logged("sent database snapshot to writer"))
        self.assertEqual(len(raftpb.encode(snap)) + size,
                         self._logged("sent database snapshot"))
        with open(path, "rb") as f:
            data = f.read()
        self.assertEqual(size % 4096, 0)
        for page in (0, 4096):  # bbolt's two meta pages: flags 0x04, magic
            flags, = struct.unpack_from("<H", data, page + 8)
            magic, = struct.unpack_from("<I", data, page + 16)
            self.assertEqual((flags, magic), (0x04, BOLT_MAGIC))
        self.assertIn(MARKER, data)
        labels = {"From": "%x" % (self.e1,)}
        self.assertEqual(registry.get_sample_value(
            "etcd_network_snapshot_receive_success_total", labels), 1)
        self.assertGreaterEqual(registry.get_sample_value(
            "etcd_network_peer_received_bytes_total", labels), size)
        self.assertNotIn("panic", self._etcdLog())
