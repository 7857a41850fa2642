# -*- test-case-name: raftmux.test.test_rafthttp_loopback -*-
"""
Two real Transports on 127.0.0.1 talking to each other: streams, pipeline
fallback, snapshots (etcd's TestSendMessage and friends).  The waits are
bounded polls on real sockets, never sleeps used as synchronisation.
"""

import io
import os
import tempfile

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase
from twisted.web.server import Site

from raftmux import raftpb
from raftmux.rafthttp import SNAPSHOT_FINISH, Transport
from raftmux.rafthttp.stream import MESSAGE, MSGAPP
from raftmux.rafthttp.testing import FakeRaft, waitFor
from raftmux.raftpb import Entry, Message, encode


def _message(t, to, frm, **kw):
    return Message(type=t, to=to, **dict(kw, **{"from": frm}))


class LoopbackTests(TestCase):
    """Transport to Transport over real TCP."""

    async def _node(self, id, peerURL=None):
        raft = FakeRaft()
        site = Site(None)
        site.displayTracebacks = False
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
        self.addCleanup(port.stopListening)
        url = "http://127.0.0.1:%d" % (port.getHost().port,)
        snapdir = tempfile.mkdtemp()
        self.addCleanup(lambda: [os.unlink(os.path.join(snapdir, f))
                                 for f in os.listdir(snapdir)] and os.rmdir(snapdir))
        t = Transport(id, 0xC1, [url], raft, reactor=reactor, snapshotDir=snapdir,
                      probing=False)
        site.resource = t.resource()
        self.addCleanup(t.stop)
        return t, raft, url, port

    async def _pair(self):
        a, ra, ua, pa = await self._node(1)
        b, rb, ub, pb = await self._node(2)
        a.addPeer(2, [ub])
        b.addPeer(1, [ua])

        def up():
            return all(t.peer(p).writers[k].working and t.peer(p).readers[k].connected
                       for t, p in ((a, 2), (b, 1)) for k in (MESSAGE, MSGAPP))
        await waitFor(reactor, up, what="all four streams")
        return a, ra, b, rb, pa, pb

    @defer.inlineCallbacks
    def test_sendMessageOnStreams(self):
        """
        Once the streams are up, every kind of message arrives intact, MsgApp
        over msgappv2 (consecutive ones as AppEntries), the rest over the
        message stream; both peers are active.
        """
        a, ra, b, rb, _, _ = yield defer.ensureDeferred(self._pair())
        sent = [
            _message(raftpb.MsgProp, 2, 1, entries=[Entry(Data=b"some data")]),
            _message(raftpb.MsgApp, 2, 1, term=1, logTerm=1, index=3,
                     entries=[Entry(Term=1, Index=4, Data=b"x" * 128)], commit=3),
            _message(raftpb.MsgApp, 2, 1, term=1, logTerm=1, index=4,
                     entries=[Entry(Term=1, Index=5)], commit=4),
            _message(raftpb.MsgAppResp, 2, 1, term=1, index=3),
            _message(raftpb.MsgVote, 2, 1, term=1, index=3, logTerm=1),
            _message(raftpb.MsgVoteResp, 2, 1, term=3),
            _message(raftpb.MsgHeartbeat, 2, 1, term=1, commit=3, context=b"\x00\x01"),
            _message(raftpb.MsgHeartbeatResp, 2, 1, term=1),
        ]
        self.assertEqual([a.peer(2).channel(m) for m in sent[:3]],
                         ["stream Message", "stream MsgApp v2", "stream MsgApp v2"])
        a.send(sent)
        got = yield rb.waitForMessages(len(sent))
        key = lambda m: (m.type, m.index)  # noqa: E731
        self.assertEqual(sorted(encode(m) for m in got), sorted(encode(m) for m in sent))
        self.assertEqual(sorted(map(key, got)), sorted(map(key, sent)))
        self.assertIsNotNone(a.activeSince(2))
        self.assertEqual(a.activePeers(), 1)
        self.assertEqual(ra.unreachable, [])

    @defer.inlineCallbacks
    def test_pipelineWhenStreamsBroken(self):
        """
        With b's stream readers stopped and a's writers gone, a heartbeat
        travels over POST /raft and still arrives (TestSendMessageWhenStreamIsBroken).
        """
        a, ra, b, rb, _, _ = yield defer.ensureDeferred(self._pair())
        for reader in b.peer(1).readers.values():
            reader.stop()
        yield defer.ensureDeferred(waitFor(
            reactor, lambda: not any(w.working for w in a.peer(2).writers.values()),
            what="a's writers to notice"))
        hb = _message(raftpb.MsgHeartbeat, 2, 1, term=2, commit=1)
        self.assertEqual(a.peer(2).channel(hb), "pipeline")
        a.send([hb])
        got = yield rb.waitForMessages(1)
        self.assertEqual(encode(got[0]), encode(hb))

    @defer.inlineCallbacks
    def test_sendSnapshot(self):
        """A MsgSnap and its database arrive whole and are saved as one file."""
        a, ra, b, rb, _, _ = yield defer.ensureDeferred(self._pair())
        database = os.urandom(300000)
        snap = _message(raftpb.MsgSnap, 2, 1, term=2, snapshot=raftpb.Snapshot(
            data=b"v2 store", metadata=raftpb.SnapshotMetadata(index=7206, term=2)))
        ok = yield a.sendSnapshot(snap, io.BytesIO(database))
        self.assertTrue(ok)
        self.assertEqual(ra.snapshots, [(2, SNAPSHOT_FINISH)])
        self.assertEqual(encode(rb.messages[-1]), encode(snap))
        files = os.listdir(b.snapshotDir)
        self.assertEqual(files, ["0000000000001c26.snap.db"])
        with open(os.path.join(b.snapshotDir, files[0]), "rb") as f:
            self.assertEqual(f.read(), database)
