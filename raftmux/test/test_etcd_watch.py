# -*- test-case-name: raftmux.test.test_etcd_watch -*-
"""
The watch hub and its streams (L{raftmux.etcd.watch}) over the fake node:
etcd's answers to create, cancel and progress requests, catch-up from
history, compaction, filters, prev_kv, progress notifications,
fragments, slow clients; and a hypothesis state machine for delivery:
every event reaches every watcher exactly once and in order, whatever
the interleaving of slow and fast consumption, compactions and restores.
"""

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from raftmux.etcd.api import EtcdAPI
from raftmux.etcd.testing import FakeEtcdNode, FakeResponder
from raftmux.etcd.watch import fragments
from raftmux.etcdpb import kv_pb2
from raftmux.etcdpb import rpc_pb2 as pb
from raftmux.etcdpb.raft_internal_pb2 import InternalRaftRequest

T0 = 1700000000.0
PUT, DELETE = kv_pb2.Event.PUT, kv_pb2.Event.DELETE
NOPUT, NODELETE = pb.WatchCreateRequest.NOPUT, pb.WatchCreateRequest.NODELETE


def create(key=b"", **kw):
    return pb.WatchRequest(create_request=pb.WatchCreateRequest(key=key, **kw))


def cancel(id):
    return pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=id))


def events(responses, watchID=None):
    """(type, key, value, mod) of every event in ``responses``."""
    return [(e.type, e.kv.key, e.kv.value, e.kv.mod_revision)
            for r in responses if watchID is None or r.watch_id == watchID
            for e in r.events]


class Base:

    def build(self, **options):
        self.clock = Clock()
        self.clock.advance(T0)
        self.node = FakeEtcdNode(self.clock)
        options.setdefault("progressInterval", 600)
        self.api = EtcdAPI(self.node, self.clock, **options)
        self.api.startService()
        self.hub = self.api.watchHub
        self.kv = self.api.kv

    def open(self):
        responder = FakeResponder()
        stream = self.api.watch.Watch(responder)
        return responder, stream

    def put(self, key, value=b"v", **kw):
        d = self.kv.Put(pb.PutRequest(key=key, value=value, **kw))
        return self.successResultOf(d).header.revision

    def delete(self, key, end=b""):
        return self.successResultOf(self.kv.DeleteRange(pb.DeleteRangeRequest(
            key=key, range_end=end))).header.revision

    def flush(self):
        """Run catch-up rounds until none is scheduled."""
        for _ in range(1000):
            if not self.clock.getDelayedCalls() or all(
                    c.getTime() > self.clock.seconds() for c in self.clock.getDelayedCalls()):
                return
            self.clock.advance(0)
        raise AssertionError("catch-up does not settle")


class CreateTests(Base, SynchronousTestCase):

    def setUp(self):
        self.build()

    def test_createThenEvents(self):
        """Created with the current revision; then one response per revision."""
        self.put(b"a")
        r, s = self.open()
        s.receive(create(b"a"))
        [created] = r.take()
        self.assertEqual(created, pb.WatchResponse(
            header=pb.ResponseHeader(cluster_id=self.node.clusterID,
                                     member_id=self.node.memberID, revision=2, raft_term=2),
            watch_id=0, created=True))
        self.put(b"a", b"x")
        self.put(b"b", b"y")
        self.put(b"a", b"z")
        out = r.take()
        self.assertEqual([m.header.revision for m in out], [3, 5])
        self.assertEqual(events(out), [(PUT, b"a", b"x", 3), (PUT, b"a", b"z", 5)])
        self.assertEqual(out[0].events[0].kv.version, 2)

    def test_autoIDs(self):
        """0 asks for the lowest unused ID counting up; a used ID is refused."""
        r, s = self.open()
        s.receive(create(b"a", watch_id=1))
        s.receive(create(b"a"))
        s.receive(create(b"a"))
        s.receive(create(b"a", watch_id=7))
        s.receive(create(b"a", watch_id=7))
        s.receive(create(b"a", watch_id=-3))
        out = r.take()
        self.assertEqual([(m.watch_id, m.created, m.canceled) for m in out], [
            (1, True, False), (0, True, False), (2, True, False), (7, True, False),
            (-1, True, True), (-3, True, False)])
        self.assertEqual(out[4].cancel_reason,
                         "mvcc: duplicate watch ID provided on the WatchStream")

    def test_emptyRange(self):
        r, s = self.open()
        s.receive(create(b"b", range_end=b"a"))
        s.receive(create(b"b", range_end=b"b"))
        out = r.take()
        for m in out:
            self.assertEqual((m.watch_id, m.created, m.canceled, m.cancel_reason),
                             (-1, True, True, "mvcc: watcher range is empty"))
        self.assertEqual(self.hub.counts(), (0, 0))

    def test_ranges(self):
        """One key, [key, end), from a key on (end "\\0"), every key ("\\0", "\\0")."""
        r, s = self.open()
        s.receive(create(b"b"))
        s.receive(create(b"b", range_end=b"c"))
        s.receive(create(b"b", range_end=b"\x00"))
        s.receive(create(b"\x00", range_end=b"\x00"))
        s.receive(create(b""))
        r.take()
        for k in (b"a", b"b", b"ba", b"c", b"\x00"):
            self.put(k)
        out = r.take()
        self.assertEqual([e[1] for e in events(out, 0)], [b"b"])
        self.assertEqual([e[1] for e in events(out, 1)], [b"b", b"ba"])
        self.assertEqual([e[1] for e in events(out, 2)], [b"b", b"ba", b"c"])
        self.assertEqual([e[1] for e in events(out, 3)], [b"a", b"b", b"ba", b"c", b"\x00"])
        self.assertEqual([e[1] for e in events(out, 4)], [b"\x00"])

    def test_txnIsOneResponse(self):
        """A txn's changes reach a watcher in one response."""
        r, s = self.open()
        s.receive(create(b"a", range_end=b"z"))
        r.take()
        self.successResultOf(self.kv.Txn(pb.TxnRequest(success=[
            pb.RequestOp(request_put=pb.PutRequest(key=b"b", value=b"1")),
            pb.RequestOp(request_put=pb.PutRequest(key=b"c", value=b"2")),
            pb.RequestOp(request_put=pb.PutRequest(key=b"zz", value=b"3"))])))
        [m] = r.take()
        self.assertEqual(events([m]), [(PUT, b"b", b"1", 2), (PUT, b"c", b"2", 2)])

    def test_prevKvAndDeletes(self):
        """prev_kv: the previous record; none for a create; deletes carry the key."""
        self.put(b"a", b"1")
        r, s = self.open()
        s.receive(create(b"a", prev_kv=True))
        r.take()
        self.put(b"a", b"2")
        self.delete(b"a")
        self.put(b"a", b"3")
        out = r.take()
        self.assertEqual(events(out), [(PUT, b"a", b"2", 3), (DELETE, b"a", b"", 4),
                                       (PUT, b"a", b"3", 5)])
        self.assertEqual([e.prev_kv.value for m in out for e in m.events], [b"1", b"2", b""])
        self.assertFalse(out[2].events[0].HasField("prev_kv"))
        self.assertEqual(out[1].events[0].kv, kv_pb2.KeyValue(key=b"a", mod_revision=4))

    def test_filters(self):
        """NOPUT and NODELETE drop events; a response left empty is not sent."""
        r, s = self.open()
        s.receive(create(b"a", filters=[NOPUT]))
        s.receive(create(b"a", filters=[NODELETE]))
        s.receive(create(b"a", filters=[NOPUT, NODELETE]))
        r.take()
        self.put(b"a")
        self.delete(b"a")
        out = r.take()
        self.assertEqual(events(out, 0), [(DELETE, b"a", b"", 3)])
        self.assertEqual(events(out, 1), [(PUT, b"a", b"v", 2)])
        self.assertEqual(len(out), 2)

    def test_cancel(self):
        r, s = self.open()
        s.receive(create(b"a"))
        s.receive(cancel(0))
        s.receive(cancel(0))
        s.receive(cancel(42))
        out = r.take()
        self.assertEqual([(m.watch_id, m.canceled, m.header.revision) for m in out],
                         [(0, False, 1), (0, True, 1)])
        self.put(b"a")
        self.assertEqual(r.take(), [])
        self.assertEqual(self.hub.counts(), (0, 0))

    def test_progressRequest(self):
        self.put(b"a")
        r, s = self.open()
        s.receive(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))
        [m] = r.take()
        self.assertEqual((m.watch_id, m.header.revision, m.created), (-1, 2, False))

    def test_emptyRequestIgnored(self):
        r, s = self.open()
        s.receive(pb.WatchRequest())
        self.assertEqual(r.take(), [])

    def test_streamCloseDropsWatchers(self):
        r, s = self.open()
        s.receive(create(b"a"))
        s.receive(create(b"a", start_revision=1))
        self.assertEqual(self.hub.counts(), (1, 1))
        s.cancel()
        self.assertEqual(self.hub.counts(), (0, 0))
        self.assertIsNone(r.producer)
        self.put(b"a")
        self.flush()
        self.assertEqual(len(r.take()), 2)

    def test_requestsDoneKeepsServing(self):
        """etcd serves a watch stream after the client half-closes it."""
        r, s = self.open()
        s.receive(create(b"a"))
        s.requestsDone()
        self.put(b"a")
        self.assertEqual(len(r.take()), 2)
        self.assertFalse(r.finished)


class HistoryTests(Base, SynchronousTestCase):

    def setUp(self):
        self.build()

    def test_catchUp(self):
        """A start revision in the past: history in one response, header current."""
        for i in range(5):
            self.put(b"k%d" % (i % 2,), b"%d" % (i,))
        r, s = self.open()
        s.receive(create(b"k", range_end=b"l", start_revision=3))
        [created] = r.take()
        self.assertEqual(created.header.revision, 6)
        self.assertEqual(self.hub.counts(), (0, 1))
        self.put(b"k0", b"live")
        self.flush()
        out = r.take()
        self.assertEqual(events(out), [
            (PUT, b"k1", b"1", 3), (PUT, b"k0", b"2", 4), (PUT, b"k1", b"3", 5),
            (PUT, b"k0", b"4", 6), (PUT, b"k0", b"live", 7)])
        self.assertEqual(out[0].header.revision, 7)
        self.assertEqual(self.hub.counts(), (1, 0))
        self.put(b"k1", b"after")
        self.assertEqual(events(r.take()), [(PUT, b"k1", b"after", 8)])

    def test_futureStart(self):
        """A start revision ahead: synced, nothing before it."""
        r, s = self.open()
        s.receive(create(b"a", start_revision=4))
        self.put(b"a", b"2")
        self.put(b"a", b"3")
        self.put(b"a", b"4")
        self.assertEqual(events(r.take()), [(PUT, b"a", b"4", 4)])

    def test_compacted(self):
        """Below the compact revision: etcd's compaction answer, then nothing."""
        for i in range(4):
            self.put(b"a", b"%d" % (i,))
        self.successResultOf(self.kv.Compact(pb.CompactionRequest(revision=4)))
        r, s = self.open()
        s.receive(create(b"a", start_revision=2))
        self.flush()
        created, compacted = r.take()
        self.assertEqual(compacted, pb.WatchResponse(
            header=pb.ResponseHeader(cluster_id=self.node.clusterID,
                                     member_id=self.node.memberID, raft_term=2),
            watch_id=0, canceled=True, compact_revision=4))
        self.put(b"a")
        self.flush()
        self.assertEqual(r.take(), [])
        s.receive(cancel(0))
        self.assertEqual([m.canceled for m in r.take()], [True])

    def test_atCompactRevision(self):
        """The compact revision itself can still be watched from."""
        for i in range(4):
            self.put(b"a", b"%d" % (i,))
        self.successResultOf(self.kv.Compact(pb.CompactionRequest(revision=4)))
        r, s = self.open()
        s.receive(create(b"a", start_revision=4, prev_kv=True))
        self.flush()
        out = r.take()
        self.assertEqual(events(out), [(PUT, b"a", b"2", 4), (PUT, b"a", b"3", 5)])
        self.assertFalse(out[1].events[0].HasField("prev_kv"))
        self.assertEqual(out[1].events[1].prev_kv.value, b"2")

    def test_catchUpInBatches(self):
        """At most maxEvents a response, never splitting a revision."""
        self.hub.maxEvents = 3
        for i in range(7):
            self.put(b"a", b"%d" % (i,))
        r, s = self.open()
        s.receive(create(b"a", start_revision=1))
        self.flush()
        out = r.take()[1:]
        self.assertEqual([len(m.events) for m in out], [3, 3, 1])
        self.assertEqual([e[3] for e in events(out)], list(range(2, 9)))

    def test_restore(self):
        """After a snapshot restore, watchers catch up from the new history."""
        other = FakeEtcdNode(self.clock)
        for i in range(3):
            other.keySpace.put(pb.PutRequest(key=b"a", value=b"o%d" % (i,)))
        self.put(b"a", b"mine")
        r, s = self.open()
        s.receive(create(b"a"))
        r.take()
        other.keySpace.put(pb.PutRequest(key=b"a", value=b"o3"))
        self.node.restore(other.keySpace.snapshot())
        self.assertEqual(self.hub.counts(), (0, 1))
        self.flush()
        # Seen up to revision 2 before: the new history from 3 on.
        self.assertEqual(events(r.take()), [(PUT, b"a", b"o1", 3), (PUT, b"a", b"o2", 4),
                                            (PUT, b"a", b"o3", 5)])
        self.put(b"a", b"next")
        self.assertEqual(events(r.take()), [(PUT, b"a", b"next", 6)])

    def test_leaseRevokeEvents(self):
        lease = self.successResultOf(self.api.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=100)))
        self.put(b"l1", lease=lease.ID)
        self.put(b"l2", lease=lease.ID)
        r, s = self.open()
        s.receive(create(b"l", range_end=b"m"))
        r.take()
        self.successResultOf(self.api.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=lease.ID)))
        [m] = r.take()
        self.assertEqual(events([m]), [(DELETE, b"l1", b"", 4), (DELETE, b"l2", b"", 4)])


class SlowClientTests(Base, SynchronousTestCase):

    def setUp(self):
        self.build(watchMaxPending=4)

    def test_slowWatcherDoesNotBlock(self):
        """
        A paused stream holds 4 responses; the watcher is then moved to
        unsynced; writes go on; on resume it gets everything, once, in order.
        """
        r, s = self.open()
        s.receive(create(b"a"))
        r.take()
        r.pause()
        revs = [self.put(b"a", b"%d" % (i,)) for i in range(20)]
        self.assertEqual(s.queued, 4)
        self.assertEqual(self.hub.counts(), (0, 1))
        self.assertEqual(r.messages, [])
        r.resume()
        self.flush()
        got = events(r.take())
        self.assertEqual([e[3] for e in got], revs)
        self.assertEqual(self.hub.counts(), (1, 0))

    def test_fastWatcherUnaffected(self):
        """Another stream keeps getting events live."""
        slow, s1 = self.open()
        fast, s2 = self.open()
        s1.receive(create(b"a"))
        s2.receive(create(b"a"))
        slow.pause()
        for i in range(10):
            self.put(b"a", b"%d" % (i,))
        self.assertEqual(len(events(fast.take())), 10)
        self.assertEqual(self.hub.counts(), (1, 1))

    def test_compactedWhileSlow(self):
        """Compacted past a slow watcher: what was queued, then the compaction answer."""
        r, s = self.open()
        s.receive(create(b"a"))
        r.take()
        r.pause()
        for i in range(10):
            self.put(b"a", b"%d" % (i,))
        self.successResultOf(self.kv.Compact(pb.CompactionRequest(revision=10)))
        r.resume()
        self.flush()
        out = r.take()
        self.assertEqual([e[3] for e in events(out)], [2, 3, 4, 5])
        self.assertEqual((out[-1].canceled, out[-1].compact_revision), (True, 10))

    def test_compactionAnswersWaitForRoom(self):
        """
        Compaction answers of one catch-up round take the room a paused
        stream has, as events do (etcd sends them only where the watcher's
        channel has room); the rest follow on resume.
        """
        for i in range(5):
            self.put(b"k%d" % (i,))
        r, s = self.open()
        r.pause()
        for key in (b"k0", b"k1", b"k2"):
            s.receive(create(key, start_revision=1))
        self.assertEqual(s.queued, 3)
        self.successResultOf(self.kv.Compact(pb.CompactionRequest(revision=4)))
        self.flush()
        self.assertEqual(s.queued, 4)
        r.resume()
        self.flush()
        out = r.take()
        self.assertEqual([m.created for m in out[:3]], [True] * 3)
        self.assertEqual(sorted((m.watch_id, m.canceled, m.compact_revision) for m in out[3:]),
                         [(id, True, 4) for id in sorted(m.watch_id for m in out[:3])])

    def test_inboundPausedWhenAnswersPileUp(self):
        """A client that sends requests but reads nothing is stopped from sending."""
        r, s = self.open()
        r.pause()
        for _ in range(5):
            s.receive(create(b"a"))
        self.assertTrue(r.inboundPaused)
        r.resume()
        self.assertFalse(r.inboundPaused)
        self.assertEqual(len(r.take()), 5)

    def test_pauseDuringFlush(self):
        """A transport that pauses while being flushed keeps the rest queued."""
        r, s = self.open()
        s.receive(create(b"a"))
        r.take()
        r.pause()
        for _ in range(3):
            self.put(b"a")
        sent = []

        def sendOnePause(m):
            sent.append(m)
            s.pauseProducing()

        r.sendMessage = sendOnePause
        r.resume()
        self.assertEqual((len(sent), s.queued), (1, 2))


class ProgressTests(Base, SynchronousTestCase):

    def setUp(self):
        self.build(progressInterval=10)
        self.hub._random = lambda: 0.0

    def test_progressNotify(self):
        """An idle synced watcher gets the current revision every interval."""
        r, s = self.open()
        s.receive(create(b"a", progress_notify=True))
        s.receive(create(b"b"))
        r.take()
        self.put(b"x")
        self.clock.advance(10)
        [m] = r.take()
        self.assertEqual((m.watch_id, m.header.revision, len(m.events)), (0, 2, 0))
        self.put(b"a")
        self.clock.advance(10)
        self.assertEqual(len(r.take()), 1)  # the event only, no progress this tick
        self.clock.advance(10)
        self.assertEqual([m.header.revision for m in r.take()], [3])

    def test_defaultInterval(self):
        """etcd's 10 minutes, with up to 10 % jitter."""
        self.build()
        self.hub._random = lambda: 0.999
        r, s = self.open()
        s.receive(create(b"a", progress_notify=True))
        r.take()
        self.clock.advance(659)
        self.assertEqual(r.take(), [])
        self.clock.advance(1)
        self.assertEqual(len(r.take()), 1)

    def test_unsyncedGetsNoProgress(self):
        r, s = self.open()
        for _ in range(3):
            self.put(b"a")
        s.receive(create(b"a", progress_notify=True, start_revision=1))
        r.take()
        self.clock.advance(10)
        out = r.take()
        self.assertEqual([len(m.events) for m in out], [3])

    def test_closeStopsTicks(self):
        r, s = self.open()
        s.receive(create(b"a", progress_notify=True))
        s.cancel()
        self.assertEqual([c for c in self.clock.getDelayedCalls()
                          if "_progressTick" in repr(c)], [])


class FragmentTests(Base, SynchronousTestCase):

    def test_fragments(self):
        """A response over the limit is split; all parts but the last say fragment."""
        self.build()
        self.assertEqual(self.hub.fragmentLimit, 1536 * 1024 + 512 * 1024)
        self.hub.fragmentLimit = 400
        r, s = self.open()
        s.receive(create(b"a", range_end=b"z", fragment=True))
        s.receive(create(b"a", range_end=b"z"))
        r.take()
        self.successResultOf(self.kv.Txn(pb.TxnRequest(success=[
            pb.RequestOp(request_put=pb.PutRequest(key=b"k%d" % (i,), value=b"x" * 90))
            for i in range(10)])))
        out = r.take()
        parts = [m for m in out if m.watch_id == 0]
        whole = [m for m in out if m.watch_id == 1]
        self.assertEqual(len(whole), 1)
        self.assertGreater(len(parts), 2)
        self.assertEqual([m.fragment for m in parts], [True] * (len(parts) - 1) + [False])
        self.assertEqual(events(parts), events(whole))
        for m in parts:
            self.assertLess(m.ByteSize(), 400)

    def test_fragmentsHelper(self):
        one = pb.WatchResponse(watch_id=1)
        one.events.add().kv.value = b"x" * 1000
        self.assertEqual(fragments(one, 10), [one])
        two = pb.WatchResponse(watch_id=1)
        two.events.add().kv.value = b"x" * 1000
        two.events.add().kv.value = b"y" * 1000
        parts = fragments(two, 10)
        self.assertEqual([len(p.events) for p in parts], [1, 1])
        self.assertEqual([p.fragment for p in parts], [True, False])


KEYS = [b"a", b"b", b"c"]
WATCH_RANGES = [(b"a", b""), (b"b", b""), (b"a", b"c"), (b"b", b"\x00"), (b"\x00", b"\x00")]


def _inRange(key, start, end):
    if not end:
        return key == start
    if end == b"\x00":
        return key >= start
    return start <= key < end


def _matches(got, expected, compactions, complete):
    """
    ``got`` is ``expected`` in order (a prefix of it unless ``complete``),
    except that a delete made at a revision later compacted to may be
    missing: compaction drops a tombstone at its own revision, and a
    watcher catching up from that revision cannot see it (etcd neither).
    """
    i = 0
    for e in expected:
        if i < len(got) and got[i] == e:
            i += 1
        elif i == len(got) and not complete:
            return True
        elif e[0] == DELETE and e[3] in compactions:
            continue
        else:
            return False
    return i == len(got)


class WatchDelivery(RuleBasedStateMachine):
    """
    Writes, compactions, restores, watchers created and cancelled on two
    streams that pause and resume: each watcher's events are, in order,
    exactly the matching events from its start revision (a prefix of them
    if it was cancelled or compacted), and prev_kv is always the record
    before.
    """

    @initialize()
    def setUp(self):
        self.clock = Clock()
        self.node = FakeEtcdNode(self.clock)
        self.api = EtcdAPI(self.node, self.clock, watchMaxPending=3)
        self.api.startService()
        self.api.watchHub.maxEvents = 4
        self.history = []
        self.compactions = set()
        self.streams = []
        self.watchers = []
        for _ in range(2):
            responder = FakeResponder()
            stream = self.api.watch.Watch(responder)
            self.streams.append({"responder": responder, "stream": stream,
                                 "paused": False, "controls": 0, "received": []})

    # -- writes ---------------------------------------------------------------

    def _record(self, **field):
        request = InternalRaftRequest(**field)
        request.header.ID = len(self.node.proposed) + 1
        results = []
        self.node.propose(request).addBoth(results.append)
        self.history.extend(results[0].events)

    @rule(key=st.sampled_from(KEYS), value=st.binary(max_size=2))
    def put(self, key, value):
        self._record(put=pb.PutRequest(key=key, value=value))

    @rule(key=st.sampled_from(KEYS))
    def delete(self, key):
        if self.node.keySpace.get(key) is not None:
            self._record(delete_range=pb.DeleteRangeRequest(key=key))

    @rule(keys=st.lists(st.sampled_from(KEYS), min_size=2, max_size=3, unique=True))
    def txn(self, keys):
        self._record(txn=pb.TxnRequest(success=[
            pb.RequestOp(request_put=pb.PutRequest(key=k, value=b"t")) for k in keys]))

    @rule(data=st.data())
    def compact(self, data):
        ks = self.node.keySpace
        low = max(ks.compactRevision + 1, 1)
        if low > ks.revision:
            return
        rev = data.draw(st.integers(low, ks.revision))
        self._record(compaction=pb.CompactionRequest(revision=rev))
        self.compactions.add(rev)

    @rule()
    def restore(self):
        self.node.restore(self.node.keySpace.snapshot())

    # -- watchers -------------------------------------------------------------

    @rule(which=st.integers(0, 1), rng=st.sampled_from(WATCH_RANGES), data=st.data(),
          prevKv=st.booleans(), filters=st.sampled_from([[], [NOPUT], [NODELETE]]))
    def create(self, which, rng, data, prevKv, filters):
        ks = self.node.keySpace
        start = data.draw(st.sampled_from([0, 1, max(1, ks.compactRevision),
                                           ks.revision, ks.revision + 2]))
        s = self.streams[which]
        s["stream"].receive(create(rng[0], range_end=rng[1], start_revision=start,
                                   prev_kv=prevKv, filters=filters))
        s["controls"] += 1
        effective = start if start else ks.revision + 1
        self.watchers.append({"stream": which, "id": None, "range": rng, "start": effective,
                              "prevKv": prevKv, "filters": filters, "ordinal": s["controls"],
                              "cancelled": False})

    @rule(data=st.data())
    def cancelOne(self, data):
        live = [w for w in self.watchers if w["id"] is not None and not w["cancelled"]]
        if not live:
            return
        w = data.draw(st.sampled_from(live))
        s = self.streams[w["stream"]]
        s["stream"].receive(cancel(w["id"]))
        s["controls"] += 1
        w["cancelled"] = True

    @rule(which=st.integers(0, 1))
    def pause(self, which):
        s = self.streams[which]
        if not s["paused"]:
            s["paused"] = True
            s["controls"] = 0
            s["responder"].pause()

    @rule(which=st.integers(0, 1))
    def resume(self, which):
        s = self.streams[which]
        if s["paused"]:
            s["paused"] = False
            s["responder"].resume()

    @rule()
    def runCatchUp(self):
        self.clock.advance(0)

    # -- checking -------------------------------------------------------------

    def _collect(self):
        for i, s in enumerate(self.streams):
            s["received"].extend(s["responder"].take())
            creates = [m for m in s["received"] if m.created]
            mine = [w for w in self.watchers if w["stream"] == i]
            for w, m in zip(mine, creates, strict=False):
                w["id"] = m.watch_id

    def _expected(self, w):
        start, end = w["range"]
        start = start or b"\x00"
        out = []
        for e in self.history:
            if e.revision < w["start"] or not _inRange(e.key, start, end):
                continue
            if NOPUT in w["filters"] and e.type == PUT:
                continue
            if NODELETE in w["filters"] and e.type == DELETE:
                continue
            out.append((e.type, e.kv.key, e.kv.value, e.kv.modRevision, e.kv.version))
        return out

    def _prevOf(self, key, revision):
        last = None
        for e in self.history:
            if e.revision >= revision:
                break
            if e.key == key:
                last = e
        return last

    def _check(self, final):
        self._collect()
        for s in self.streams:
            if s["paused"]:
                assert s["stream"].queued <= 3 + s["controls"], s["stream"].queued
        for w in self.watchers:
            if w["id"] is None or w["id"] < 0:
                continue
            s = self.streams[w["stream"]]
            got = []
            ended = False
            for m in s["received"]:
                if m.watch_id != w["id"] or m.created:
                    continue
                if ended:
                    # Only the answer to the client's own cancel may follow.
                    assert m.canceled and not m.events and w["cancelled"], m
                    continue
                if m.canceled:
                    ended = True
                    continue
                assert m.header.revision >= max(e.kv.mod_revision for e in m.events)
                for e in m.events:
                    got.append((e.type, e.kv.key, e.kv.value, e.kv.mod_revision, e.kv.version))
                    if e.HasField("prev_kv"):
                        assert w["prevKv"]
                        prev = self._prevOf(e.kv.key, e.kv.mod_revision)
                        assert prev is not None and prev.type == PUT, (e, prev)
                        assert (e.prev_kv.value, e.prev_kv.mod_revision) == (
                            prev.kv.value, prev.kv.modRevision)
                    elif w["prevKv"] and e.type == DELETE:
                        assert self.node.keySpace.compactRevision >= e.kv.mod_revision - 1
            complete = final and not ended and not w["cancelled"]
            assert _matches(got, self._expected(w), self.compactions, complete), (
                w, got, self._expected(w))

    @invariant()
    def deliveredSoFar(self):
        if hasattr(self, "streams"):
            self._check(final=False)

    def teardown(self):
        if not hasattr(self, "streams"):
            return
        for s in self.streams:
            if s["paused"]:
                s["paused"] = False
                s["responder"].resume()
        for _ in range(200):
            self.clock.advance(0)
        self._check(final=True)
        self.api.stopService()


class WatchDeliveryTests(SynchronousTestCase):

    def test_delivery(self):
        """Exactly once, in order, per watcher, whatever the interleaving."""
        run_state_machine_as_test(WatchDelivery, settings=settings(
            max_examples=150, stateful_step_count=40, deadline=None,
            suppress_health_check=[HealthCheck.too_slow]))
