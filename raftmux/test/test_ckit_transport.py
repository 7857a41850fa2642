# -*- test-case-name: raftmux.test.test_ckit_transport -*-
"""
memberlist over ckit's HTTP/2 transport (``CkitTransport`` around
``raftmux.gossip.GossipTransport``) on real loopback: ckit's own
``TestTransport`` (three members, two join the first, all see three),
user messages by packet and by stream, leave; a stream the receiver cannot
read is answered with memberlist's errMsg over ``/stream``; and
``CkitNode``s gossiping states over it, through a partition (a transport
that drops, in-process) that heals.  Every wait polls with a deadline.
"""

import os
import subprocess
import sys

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import SynchronousTestCase, TestCase

from raftmux.ckit import CkitNode, PeerState, ckitConfig
from raftmux.gossip import GossipTransport
from raftmux.memberlist import CkitTransport, Memberlist, MemberlistConfig, NodeStateType
from raftmux.memberlist.messages import ErrResp, UserStream
from raftmux.memberlist.stream import StreamDecoder
from raftmux.test.test_memberlist_interop import Delegate, Events, waitUntil
from raftmux.testing.membership import PartitionTransport

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
EXAMPLE = os.path.join(ROOT, "docs", "examples", "gossip_local.py")

FAST = dict(probeInterval=0.2, probeTimeout=0.1, gossipInterval=0.05, suspicionMult=3,
            pushPullInterval=5.0, tcpTimeout=2.0)


def listeningTransport():
    return CkitTransport(reactor, "127.0.0.1:0",
                         endpoint=TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"))


class AdvertiseTests(SynchronousTestCase):
    def test_finalAdvertiseAddr(self):
        """The configured address, the bound port when it says 0, ckit's checks."""
        t = CkitTransport(reactor, "127.0.0.1:0")
        self.assertEqual(t.finalAdvertiseAddr("", 7946), ("127.0.0.1", 7946))
        self.assertEqual(t.advertiseAddress, "127.0.0.1:7946")
        self.assertEqual(t.finalAdvertiseAddr("::ffff:10.0.0.1", 7946), ("10.0.0.1", 7946))
        self.assertEqual(CkitTransport(reactor, "[::1]:80").finalAdvertiseAddr("", 1),
                         ("::1", 80))
        self.assertRaises(ValueError, t.finalAdvertiseAddr, "localhost", 7946)
        self.assertRaises(ValueError, CkitTransport, reactor, "no-port")


class MemberlistOverHTTP2Tests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.members = []
        for name in ("a", "b", "c"):
            delegate, events = Delegate(), Events()
            config = MemberlistConfig.local(name=name, disableTcpPings=True, **FAST)
            member = Memberlist(config, transport=listeningTransport(), delegate=delegate,
                                events=events)
            member.startService()
            yield member.whenRunning()
            self.addCleanup(lambda m=member: m.running and m.stopService())
            self.members.append((member, delegate))
        self.a, self.b, self.c = (m for m, _ in self.members)

    @defer.inlineCallbacks
    def test_threeMembers(self):
        """ckit's TestTransport, then messages and a leave."""
        seed = self.a.localNode.address
        self.assertEqual((yield self.b.join([seed])), 1)
        self.assertEqual((yield self.c.join([seed])), 1)
        yield waitUntil(lambda: all(m.numMembers() == 3 for m, _ in self.members), 10)
        self.a.sendBestEffort(self.c.localNode, b"by-packet")
        yield self.b.sendReliable(self.c.localNode, b"by-stream")
        delegate = self.members[2][1]
        yield waitUntil(lambda: {b"by-packet", b"by-stream"} <= set(delegate.received), 10)
        yield self.c.leave(5.0)
        yield self.c.stopService()
        yield waitUntil(lambda: all(m.core.node("c").state == NodeStateType.LEFT
                                    for m in (self.a, self.b)), 10)

    @defer.inlineCallbacks
    def test_unreadableStreamGetsErrMsg(self):
        """Garbage on /stream: memberlist's errMsg comes back, framed, and the stream ends."""
        client = GossipTransport(reactor, "127.0.0.1:1", onPacket=lambda *a: None,
                                 onStream=lambda s: s.abortConnection())
        self.addCleanup(client.shutdown)
        stream = yield client.dialTimeout(self.a.localNode.address, 5.0)
        got = defer.Deferred()

        class Reader(protocol.Protocol):
            data = b""

            def dataReceived(self, data):
                self.data += data

            def connectionLost(self, reason):
                got.callback(self.data)
        stream.attach(Reader())
        stream.write(b"\x63garbage")
        reply = yield got
        self.assertIsInstance(StreamDecoder().feed(reply), ErrResp)

    @defer.inlineCallbacks
    def test_reliableUserMessageFromRawStream(self):
        """A stream carrying memberlist's userMsg reaches the delegate."""
        client = GossipTransport(reactor, "127.0.0.1:1", onPacket=lambda *a: None,
                                 onStream=lambda s: s.abortConnection())
        self.addCleanup(client.shutdown)
        stream = yield client.dialTimeout(self.b.localNode.address, 5.0)
        stream.attach(protocol.Protocol())
        stream.write(UserStream(b"raw").encode())
        yield waitUntil(lambda: b"raw" in self.members[1][1].received, 10)
        stream.loseConnection()


class CkitOverHTTP2Tests(TestCase):
    timeout = 90

    @defer.inlineCallbacks
    def setUp(self):
        self.nodes = []
        for name in "abcde":
            transport = PartitionTransport(listeningTransport())
            node = CkitNode(ckitConfig(name, **FAST), transport, reactor=reactor,
                            rejoinInterval=0.5, leaveTimeout=2.0)
            node.partition = transport
            node.startService()
            yield node.whenRunning()
            self.addCleanup(lambda n=node: n.running and n.stopService())
            self.nodes.append(node)
        for node in self.nodes[1:]:
            yield node.start([self.nodes[0].address])

    def sees(self, node):
        return {p.name: p.state for p in node.peers()}

    @defer.inlineCallbacks
    def test_fiveConvergeStatesSpreadPartitionHeals(self):
        """
        Five members converge and learn each other's states; cut {a, b} from
        {c, d, e} until each side removed the other (memberlist says dead),
        heal, and all five come back with their states.
        """
        nodes = self.nodes
        yield waitUntil(lambda: all(len(n.peers()) == 5 for n in nodes), 15)
        yield nodes[1].changeState(PeerState.PARTICIPANT, timeout=10)
        yield nodes[3].changeState(PeerState.PARTICIPANT, timeout=10)
        truth = {n.name: n.currentState for n in nodes}
        yield waitUntil(lambda: all(self.sees(n) == truth for n in nodes), 15)
        left, right = nodes[:2], nodes[2:]
        for side, other in ((left, right), (right, left)):
            for n in side:
                n.partition.cut([m.address for m in other])
        yield waitUntil(lambda: all(set(self.sees(n)) == {"a", "b"} for n in left)
                        and all(set(self.sees(n)) == {"c", "d", "e"} for n in right), 30)
        states = {m.name: m.state for m in nodes[0].memberlist.allNodes()}
        self.assertEqual(states["c"], NodeStateType.DEAD)
        yield nodes[4].changeState(PeerState.PARTICIPANT, timeout=10)
        for n in nodes:
            n.partition.heal()
        truth = {n.name: n.currentState for n in nodes}
        yield waitUntil(lambda: all(self.sees(n) == truth for n in nodes), 30)
        self.assertGreater(sum(n.partition.dropped for n in nodes), 0)


class ExampleTests(TestCase):
    timeout = 60

    def test_docsExampleRuns(self):
        """docs/examples/gossip_local.py: three members converge, agree on owners, one leaves."""
        env = dict(os.environ, PYTHONPATH=ROOT)
        result = subprocess.run([sys.executable, EXAMPLE], capture_output=True, text=True,
                                timeout=50, env=env)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("3 members everywhere", result.stdout)
        self.assertIn("owners of some-key", result.stdout)
        self.assertIn("gamma left", result.stdout)
