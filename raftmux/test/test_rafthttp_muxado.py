# -*- test-case-name: raftmux.test.test_rafthttp_muxado -*-
"""
rafthttp over muxado: two Transports whose every request (the four stream
GETs, pipeline POSTs, a snapshot upload) rides streams of ONE muxado
session on ONE TCP connection.  Node A dials the session and serves its
``Site`` on the streams B opens; B's side is
``MuxadoServerFactory(Site(transport.resource()))`` and sends its requests
on streams of the session it accepted.  Neither node listens for HTTP on
TCP at all.
"""

import io
import os
import shutil
import tempfile

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.error import ConnectError
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.server import Site

from raftmux import raftpb
from raftmux.muxado import MuxadoServerFactory, SessionEndpoint, connectSession
from raftmux.rafthttp import SNAPSHOT_FINISH, Transport
from raftmux.rafthttp.peer import PIPELINE
from raftmux.rafthttp.snapshot import snapshotPath
from raftmux.rafthttp.stream import MESSAGE, MSGAPP
from raftmux.rafthttp.testing import FakeRaft, waitFor
from raftmux.raftpb import Entry, Message, encode

# URLs only name the peers: the endpoint factory ignores host and port.
URL_A = "http://127.0.0.1:1"
URL_B = "http://127.0.0.1:2"


def _message(t, to, frm, **kw):
    return Message(type=t, to=to, **dict(kw, **{"from": frm}))


class _LazySessionEndpoints:
    """
    An endpoint factory for ``Agent.usingEndpointFactory`` whose session is
    known only later: ``getSession()`` returns it (or None: the dial fails
    and the stream readers retry).
    """

    def __init__(self, getSession):
        self.getSession = getSession

    def endpointForURI(self, uri):
        session = self.getSession()
        if session is None:
            return self
        return SessionEndpoint(session)

    def connect(self, factory):
        return defer.fail(ConnectError("no muxado session yet"))


class _CountingServerFactory(MuxadoServerFactory):
    """Counts the TCP connections accepted."""

    accepted = 0

    def buildProtocol(self, addr):
        self.accepted += 1
        return MuxadoServerFactory.buildProtocol(self, addr)


class RaftHTTPOverMuxadoTests(TestCase):
    timeout = 30

    def _transport(self, id, url, endpoints):
        raft = FakeRaft()
        pool = HTTPConnectionPool(reactor, persistent=True)
        self.addCleanup(pool.closeCachedConnections)
        agent = Agent.usingEndpointFactory(reactor, endpoints, pool)
        snapdir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, snapdir, True)
        t = Transport(id, 0xC1, [url], raft, reactor=reactor, agent=agent,
                      snapshotDir=snapdir, probing=False)
        return t, raft

    async def _setUp(self):
        self.session = None
        b, rb = self._transport(2, URL_B, _LazySessionEndpoints(
            lambda: next(iter(self.serverFactory.sessions), None)))
        self.serverFactory = _CountingServerFactory(Site(b.resource()))
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            self.serverFactory)
        self.addCleanup(port.stopListening)
        a, ra = self._transport(1, URL_A, _LazySessionEndpoints(lambda: self.session))
        self.session = await connectSession(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), Site(a.resource()))
        self.addCleanup(self._closeSession)
        self.addCleanup(b.stop)
        self.addCleanup(a.stop)
        a.addPeer(2, [URL_B])
        b.addPeer(1, [URL_A])
        return a, ra, b, rb

    def _closeSession(self):
        closed = [self.session.whenClosed()] + [
            s.whenClosed() for s in self.serverFactory.sessions]
        self.session.close()
        return defer.gatherResults(closed).addTimeout(10, reactor)

    @defer.inlineCallbacks
    def test_streamsAndPipelineOverOneSession(self):
        """
        All four streams come up over the one session; messages flow both
        ways on them and on the pipeline, a 300 kB snapshot (more than a
        muxado window) arrives whole, and exactly one TCP connection was
        ever made.
        """
        a, ra, b, rb = yield defer.ensureDeferred(self._setUp())

        def up():
            return all(t.peer(p).writers[k].working and t.peer(p).readers[k].connected
                       for t, p in ((a, 2), (b, 1)) for k in (MESSAGE, MSGAPP))
        yield defer.ensureDeferred(waitFor(reactor, up, timeout=15, what="all four streams"))

        toB = [
            _message(raftpb.MsgApp, 2, 1, term=1, logTerm=1, index=3, commit=3,
                     entries=[Entry(Term=1, Index=4, Data=b"x" * 128)]),
            _message(raftpb.MsgHeartbeat, 2, 1, term=1, commit=4, context=b"ctx"),
        ]
        toA = [
            _message(raftpb.MsgAppResp, 1, 2, term=1, index=4),
            _message(raftpb.MsgProp, 1, 2, entries=[Entry(Data=b"proposal")]),
        ]
        a.send(toB)
        b.send(toA)
        yield rb.waitForMessages(2)
        yield ra.waitForMessages(2)
        self.assertEqual(sorted(encode(m) for m in rb.messages),
                         sorted(encode(m) for m in toB))
        self.assertEqual(sorted(encode(m) for m in ra.messages),
                         sorted(encode(m) for m in toA))

        # A raw MsgSnap always takes the pipeline (spec 5): POST /raft, both ways.
        snapAB = _message(raftpb.MsgSnap, 2, 1, term=1)
        snapBA = _message(raftpb.MsgSnap, 1, 2, term=1)
        self.assertEqual(a.peer(2).channel(snapAB), PIPELINE)
        a.send([snapAB])
        b.send([snapBA])
        yield rb.waitForMessages(3)
        yield ra.waitForMessages(3)
        self.assertEqual(encode(rb.messages[-1]), encode(snapAB))
        self.assertEqual(encode(ra.messages[-1]), encode(snapBA))

        database = os.urandom(300 * 1024)
        snap = _message(raftpb.MsgSnap, 2, 1, term=1)
        snap.snapshot.metadata.index = 42
        ok = yield a.sendSnapshot(snap, io.BytesIO(database))
        self.assertTrue(ok)
        # One for the raw MsgSnap's 204 on the pipeline, one for the upload.
        self.assertEqual(ra.snapshots, [(2, SNAPSHOT_FINISH)] * 2)
        with open(snapshotPath(b.snapshotDir, 42), "rb") as f:
            self.assertEqual(f.read(), database)

        self.assertEqual(self.serverFactory.accepted, 1)
        self.assertEqual(len(self.serverFactory.sessions), 1)
        self.assertEqual((ra.unreachable, rb.unreachable), ([], []))
