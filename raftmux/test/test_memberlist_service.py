# -*- test-case-name: raftmux.test.test_memberlist_service -*-
"""
The Twisted shell: ``Memberlist`` on a fake clock with a recording
transport (timers, failure detection, events), on real loopback UDP/TCP
(three Python members, user messages, leave), and fed bad stream and
packet input (an errMsg answer and a close, bounded buffering, a deadline
for silent peers).
"""

import os
import random
import subprocess
import sys

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from raftmux.memberlist import (
    IMemberlistTransport,
    Memberlist,
    MemberlistConfig,
    NodeStateType,
    SimpleBroadcast,
)
from raftmux.memberlist.messages import (
    Alive,
    ErrResp,
    Ping,
    PushPullHeader,
    decodePacketMessage,
    ipToBytes,
    stripCrc,
)
from raftmux.memberlist.stream import StreamDecoder
from raftmux.memberlist.suspicion import suspicionTimeout
from raftmux.test.test_memberlist_interop import Delegate, Events, config, waitUntil
from raftmux.testing.tree import ROOT, repositoryFile


@implementer(IMemberlistTransport)
class RecordingTransport:
    """Packets are recorded; streams fail to connect."""

    def __init__(self):
        self.sent = []
        self.receiver = None

    def start(self, receiver):
        self.receiver = receiver
        return defer.succeed(("127.0.0.1", 7000))

    def finalAdvertiseAddr(self, ip, port):
        return ip or "127.0.0.1", port

    def writeTo(self, data, address):
        self.sent.append((address, data))

    def connectStream(self, address, timeout, protocol):
        return defer.fail(ConnectionRefusedError(address))

    def stop(self):
        return defer.succeed(None)


class FakeClockTests(TestCase):
    def test_failureDetectionOnFakeClock(self):
        """
        A peer that never answers is pinged each probe interval, suspected,
        then reported dead after the suspicion timeout, all on a fake clock.
        """
        clock, transport, events = Clock(), RecordingTransport(), Events()
        cfg = MemberlistConfig.local(name="me", bindPort=7000)
        member = Memberlist(cfg, transport=transport, events=events, reactor=clock,
                            rng=random.Random(1))
        member.startService()
        self.assertEqual([e[1].name for e in events.log], ["me"])
        peer = Alive(incarnation=1, node="peer", addr=ipToBytes("127.0.0.2"), port=7001,
                     vsn=bytes([1, 5, 2, 0, 0, 0]))
        transport.receiver.packetReceived(peer.encode(), "127.0.0.2:7001", 0)
        self.assertEqual(member.numMembers(), 2)
        for _ in range(int(3 / 0.05)):
            clock.advance(0.05)
        pings = [decodePacketMessage(stripCrc(data)) for address, data in transport.sent
                 if address == "127.0.0.2:7001"]
        kinds = {type(m).__name__ for msgs in pings for _, m in msgs}
        self.assertIn("Ping", kinds)
        self.assertEqual(member.core.node("peer").state, NodeStateType.SUSPECT)
        timeout = suspicionTimeout(cfg.suspicionMult, 2, cfg.probeInterval)
        for _ in range(int((timeout + 1) / 0.05)):
            clock.advance(0.05)
        self.assertEqual(member.core.node("peer").state, NodeStateType.DEAD)
        self.assertEqual([(k, n.name, n.state) for k, n in events.log[1:]],
                         [("join", "peer", NodeStateType.ALIVE),
                          ("leave", "peer", NodeStateType.DEAD)])
        self.assertGreater(member.healthScore(), 0)
        member.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_leaveTimesOutWithoutPeersHearing(self):
        """
        The leave broadcast needs two transmissions (2 x ceil(log10(2 + 1)));
        with gossip every second and no probe yet, 0.06 s is too short.
        """
        clock, transport = Clock(), RecordingTransport()
        cfg = MemberlistConfig.local(name="me", gossipInterval=1.0, probeInterval=10.0)
        member = Memberlist(cfg, transport=transport, reactor=clock, rng=random.Random(1))
        member.startService()
        peer = Alive(incarnation=1, node="peer", addr=ipToBytes("127.0.0.2"), port=7001,
                     vsn=bytes([1, 5, 2, 0, 0, 0]))
        transport.receiver.packetReceived(peer.encode(), "127.0.0.2:7001", 0)
        d = member.leave(0.05)
        clock.advance(0.01)
        clock.advance(0.05)
        self.failureResultOf(d, defer.TimeoutError)
        # with time, it goes out and a second leave fires at once
        for _ in range(30):
            clock.advance(1.0)
        self.successResultOf(member.leave(1.0))
        member.stopService()


class LoopbackTests(TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.members = []
        for name in ("a", "b", "c"):
            delegate, events = Delegate(), Events()
            # config() pushes/pulls every second: see why there.
            member = Memberlist(config(name), delegate=delegate, events=events)
            member.startService()
            yield member.whenRunning()
            self.addCleanup(lambda m=member: m.running and m.stopService())
            self.members.append((member, delegate, events))
        self.a, self.b, self.c = (m for m, _, _ in self.members)

    def views(self):
        """What each member knows: every node's state and incarnation, by member."""
        return {m.localNode.name: sorted((n.name, n.state.name, n.incarnation)
                                         for n in m.allNodes())
                for m, _, _ in self.members}

    @defer.inlineCallbacks
    def test_threeMembers(self):
        seed = self.a.localNode.address
        self.assertEqual((yield self.b.join([seed])), 1)
        self.assertEqual((yield self.c.join(["a/" + seed, "127.0.0.1:1"])), 1)
        yield waitUntil(lambda: all(m.numMembers() == 3 for m, _, _ in self.members), 10,
                        describe=self.views)
        self.members[2][1].queue.queueBroadcast(SimpleBroadcast(b"from-c"))
        yield waitUntil(lambda: all(b"from-c" in d.received for _, d, _ in self.members[:2]), 10)
        yield self.c.leave(5.0)
        yield self.c.stopService()
        yield waitUntil(lambda: all(m.core.node("c").state == NodeStateType.LEFT
                                    for m in (self.a, self.b)), 5)

    @defer.inlineCallbacks
    def test_joinFailure(self):
        from raftmux.memberlist import JoinError
        with self.assertRaises(JoinError) as caught:
            yield self.a.join(["127.0.0.1:1"])
        self.assertIn("127.0.0.1:1", caught.exception.errors)

    def rawStream(self, member, data):
        """Connect to ``member``'s TCP port, send ``data``; fires with (reply bytes, closed)."""
        result = defer.Deferred()

        class Client(protocol.Protocol):
            received = b""

            def connectionMade(self):
                if data:
                    self.transport.write(data)

            def dataReceived(self, more):
                self.received += more

            def connectionLost(self, reason):
                result.callback(self.received)
        addr = member.localNode
        connectProtocol(TCP4ClientEndpoint(reactor, addr.addr, addr.port), Client())
        return result

    @defer.inlineCallbacks
    def test_badStreamGetsErrMsg(self):
        for data in (b"\x63garbage", b"\x0a\x00\x00\x00\x10", b"\x07abc"):
            reply = yield self.rawStream(self.a, data)
            message = StreamDecoder().feed(reply)
            self.assertIsInstance(message, ErrResp)

    @defer.inlineCallbacks
    def test_oversizedDeclaredStateRefused(self):
        reply = yield self.rawStream(
            self.a, PushPullHeader(nodes=0, userStateLen=1 << 40).encode())
        self.assertIsInstance(StreamDecoder().feed(reply), ErrResp)

    @defer.inlineCallbacks
    def test_silentStreamClosedAfterTimeout(self):
        start = reactor.seconds()
        reply = yield self.rawStream(self.a, b"")
        self.assertEqual(reply, b"")
        self.assertGreaterEqual(reactor.seconds() - start, self.a.config.tcpTimeout * 0.9)

    @defer.inlineCallbacks
    def test_tcpPing(self):
        reply = yield self.rawStream(self.a, Ping(seqNo=42, node="a").encode())
        self.assertEqual(StreamDecoder().feed(reply).seqNo, 42)

    @defer.inlineCallbacks
    def test_garbagePackets(self):
        """Random datagrams are logged and dropped; the member keeps working."""
        port = reactor.listenUDP(0, protocol.DatagramProtocol(), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        target = (self.a.localNode.addr, self.a.localNode.port)
        for data in (b"\x00", b"\x0c\x00\x00\x00\x00", b"\x07\xff", os.urandom(1400),
                     b"\x09\x82\xa4Algo\x00\xa3Buf\xa1\x00"):
            port.write(data, target)
        yield self.b.join([self.a.localNode.address])
        yield waitUntil(lambda: self.a.numMembers() == 2, 5)
        self.assertEqual(self.flushLoggedErrors(), [])


class ExampleTests(TestCase):
    timeout = 60

    def test_docsExampleRuns(self):
        """docs/examples/memberlist_local.py starts 3 members that converge, then exits 0."""
        example = repositoryFile("docs", "examples", "memberlist_local.py")
        env = dict(os.environ, PYTHONPATH=ROOT)
        result = subprocess.run([sys.executable, example], capture_output=True, text=True,
                                timeout=50, env=env)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("3 members alive everywhere", result.stdout)
        self.assertIn("left", result.stdout)
