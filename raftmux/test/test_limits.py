# -*- test-case-name: raftmux.test.test_limits -*-
"""
Limits under load, small: each test starts a real ``twistd raftmux`` node
on loopback (``raftmux.testing.limits.NodeProcess``), attacks it with
hundreds of connections or streams, and checks that the node enforced the
limit in question (closed, refused, reset, GOAWAY: what a peer can see),
that writes from another client kept succeeding meanwhile, and that the
node's RSS grew by less than a bound.  ``python -m raftmux.bench limits``
runs the same attacks with thousands and prints the figures.

Waiting is on events (a socket closing, a frame arriving) with a bound,
never on a fixed sleep; the slow "slowloris" drips are the attack's own
pace.  Every socket and the node process are closed at the end of each
test.
"""

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from raftmux.testing import limits
from raftmux.testing.limits import (
    DeclaredLength,
    GossipFrameLength,
    H2HeaderFlood,
    H2RapidReset,
    HTTPSlowloris,
    IdleFlood,
    MuxadoStreamFlood,
    MuxadoWindowOverrun,
    NodeProcess,
    RSSSampler,
    SniffSlowloris,
    declaredLengthAttacks,
    put,
)

HOST = "127.0.0.1"
MB = 1 << 20
#: RSS the node may gain during one test's attacks (it starts near 60 MB).
RSS_BOUND = 48 * MB


class LimitsTests(SynchronousTestCase):
    def setUp(self):
        try:
            with open("/proc/self/status"):
                pass
        except OSError:
            raise SkipTest("needs Linux /proc to read the node's RSS")
        limits.raiseFileLimit(4096)
        self.node = NodeProcess()
        self.node.start()
        self.addCleanup(self.node.stop)
        self.baseline = self.node.rss()
        self.linesBefore = self.node.lineCount
        self.sampler = RSSSampler(self.node)
        self.sampler.__enter__()
        self.addCleanup(self.sampler.__exit__, None, None, None)

    def assertWrites(self, n=10):
        """``n`` writes from another client all succeed."""
        for i in range(n):
            status, body = put(HOST, self.node.clientPort, b"/kv/limits-%d" % (i,), b"v" * 100,
                               timeout=15)
            self.assertEqual(status, 200, "write %d failed: %r" % (i, body))

    def assertFewLogLines(self, bound):
        """A flood costs a few rate-limited log lines, not one per connection or stream."""
        logged = self.node.lineCount - self.linesBefore
        self.assertLess(logged, bound, "the node logged %d lines:\n%s" % (
            logged, "\n".join(list(self.node.lines)[-20:])))

    def assertBounded(self):
        grown = self.sampler.peak - self.baseline
        self.assertLess(grown, RSS_BOUND, "the node's RSS grew by %.1f MB" % (grown / MB,))

    def attack(self, *attacks, settle=15.0, ticks=0):
        """Start the attacks, write meanwhile, let the node act, check it did."""
        for a in attacks:
            self.addCleanup(a.close)
            a.start()
        for _ in range(ticks):
            for a in attacks:
                a.tick()
        self.assertWrites()
        for a in attacks:
            a.settle(settle)
        for a in attacks:
            self.assertIsNone(a.expected(), "%s: %s" % (a.name, a.outcome()))
        self.assertWrites(3)
        self.assertBounded()
        self.assertTrue(self.node.alive(), "the node died:\n" + "\n".join(self.node.lines))

    # -- connections ---------------------------------------------------------------

    def test_silentAndSlowConnectionsClosedAtTheSniffDeadline(self):
        """
        300 connections that send nothing and 100 that send a request line
        one byte a second are all closed by the sniffer's deadline (10 s
        from accept, for the whole sniff), while writes go on; the node
        logs a few lines about them, not one each.
        """
        self.attack(IdleFlood(HOST, self.node.peerPort, 300),
                    SniffSlowloris(HOST, self.node.peerPort, 100))
        self.assertFewLogLines(40)

    def test_requestHeadsPastTheirLimitRefused(self):
        """
        200 HTTP/1.1 heads sent a line at a time are held; once each passes
        16 KiB the node answers 400 and closes it.
        """
        self.attack(HTTPSlowloris(HOST, self.node.clientPort, 200), ticks=5)

    # -- muxado -------------------------------------------------------------------

    def test_streamFloodRefused(self):
        """
        1,100 streams on one session, of each generation: the 76 over
        maxIncomingStreams (1,024) are refused with RST, and logged a few
        lines at a time.
        """
        self.attack(MuxadoStreamFlood(HOST, self.node.peerPort, 1100, 2),
                    MuxadoStreamFlood(HOST, self.node.peerPort, 1100, 1))
        self.assertFewLogLines(40)

    def test_windowOverrunReset(self):
        """A stream sent past its window is reset (FLOW_CONTROL_ERROR), both generations."""
        self.attack(MuxadoWindowOverrun(HOST, self.node.peerPort, 5, 2, payload=512 * 1024),
                    MuxadoWindowOverrun(HOST, self.node.peerPort, 5, 1, payload=256 * 1024))

    # -- HTTP/2 -----------------------------------------------------------------------

    def test_rapidResetEndsTheConnection(self):
        """
        HEADERS + RST_STREAM pairs past the budget end the connection with
        GOAWAY, on the Site's h2c (Twisted, 1,000) and on gossip's server (200).
        """
        self.attack(H2RapidReset(HOST, self.node.peerPort, 3, gossip=False,
                                 resetsPerConnection=1500),
                    H2RapidReset(HOST, self.node.peerPort, 3, gossip=True,
                                 resetsPerConnection=600))

    def test_headerListFloodRefused(self):
        """A header block of 200 CONTINUATION frames ends the connection."""
        self.attack(H2HeaderFlood(HOST, self.node.peerPort, 5))

    # -- declared lengths ------------------------------------------------------------

    def test_hugeDeclaredLengthsRefused(self):
        """
        A gossip frame of 4 GiB is answered 400 and a rafthttp snapshot
        message of 2^63 bytes 400, both from their headers; a muxado DATA
        frame of 16 MiB gets its stream reset once past the window; a 64 KiB
        request head is refused.
        """
        byName = {a.name: a for a in declaredLengthAttacks(self.node, 5, 1 << 20)}
        self.attack(GossipFrameLength(HOST, self.node.peerPort, 5),
                    byName["rafthttp snapshot message length 2^63"],
                    byName["muxado v2 DATA length 16 MiB"],
                    byName["HTTP/1.1 request head 64 KiB"])

    def test_requestBodyRefusedFromItsDeclaredLength(self):
        """
        A body declared far over what the route takes (``PUT /kv`` over
        ``--max-value-bytes``, ``POST /raft`` over the message limit) is
        refused (413) from its Content-Length, before it is received.
        """
        cid = self.node.clusterID()
        rafthttp = (b"Host: x\r\nX-Server-Version: 3.4.23\r\nX-Min-Cluster-Version: 3.0.0\r\n"
                    b"X-Etcd-Cluster-ID: %s\r\nX-Server-From: 1234\r\n" % (cid,))
        refused = _status413
        self.attack(
            DeclaredLength(HOST, self.node.clientPort, 2, "PUT /kv 1 TiB", "",
                           b"PUT /kv/huge HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                           % (1 << 40,), 1 << 20, refused),
            DeclaredLength(HOST, self.node.peerPort, 2, "POST /raft 1 TiB", "",
                           b"POST /raft HTTP/1.1\r\n" + rafthttp
                           + b"Content-Length: %d\r\n\r\n" % (1 << 40,), 1 << 20, refused),
            settle=5.0)



def _status413(answer):
    return answer.startswith(b"HTTP/1.1 413 ")

