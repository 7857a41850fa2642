# -*- test-case-name: raftmux.test.test_memberlist_interop -*-
"""
Interop with Go memberlist (Debian's golang-github-hashicorp-memberlist-dev
0.2.2) on loopback: a small Go program of ours
(``raftmux/test/go/memberlistpeer``) and two Python members over UDP and
TCP.  Skipped, with the reason, only when ``go`` or the Go sources are
missing.  Every wait polls with a deadline; nothing sleeps.
"""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile

from twisted.internet import defer, protocol, reactor, task
from twisted.trial.unittest import SkipTest, TestCase
from zope.interface import implementer

from raftmux.memberlist import (
    IDelegate,
    IEventDelegate,
    Memberlist,
    MemberlistConfig,
    NodeStateType,
    SimpleBroadcast,
    TransmitLimitedQueue,
)
from raftmux.memberlist.messages import PushPull
from raftmux.memberlist.stream import StreamDecoder
from raftmux.memberlist.suspicion import suspicionTimeout

HERE = os.path.dirname(os.path.abspath(__file__))
PEER_SOURCE = os.path.join(HERE, "go", "memberlistpeer")
GOCODE = "/usr/share/gocode"
MEMBERLIST_SOURCE = os.path.join(GOCODE, "src", "github.com", "hashicorp", "memberlist")

# fast timings, the same on both sides
PROBE_INTERVAL = 0.2
PROBE_TIMEOUT = 0.1
GOSSIP_INTERVAL = 0.05
SUSPICION_MULT = 3


def buildGoProgram(sourceDir, name):
    """
    Build a Go program of ours against Debian's Go sources (GOPATH mode,
    offline) into a cache directory keyed by the source's hash; the binary's
    path.  SkipTest when ``go`` or the memberlist sources are missing.
    """
    goBinary = shutil.which("go")
    if goBinary is None:
        raise SkipTest("the go toolchain is not installed (Debian golang-go)")
    if not os.path.isdir(MEMBERLIST_SOURCE):
        raise SkipTest("Go memberlist sources missing (Debian golang-github-hashicorp-"
                       "memberlist-dev): %s" % MEMBERLIST_SOURCE)
    digest = hashlib.sha256()
    for entry in sorted(os.listdir(sourceDir)):
        with open(os.path.join(sourceDir, entry), "rb") as f:
            digest.update(entry.encode() + b"\0" + f.read())
    cache = os.path.join(tempfile.gettempdir(), "raftmux-go-cache")
    target = os.path.join(cache, "%s-%s" % (name, digest.hexdigest()[:16]))
    if os.path.exists(target):
        return target
    gopath = tempfile.mkdtemp(prefix="raftmux-gopath-")
    try:
        pkg = os.path.join(gopath, "src", name)
        shutil.copytree(sourceDir, pkg)
        env = dict(os.environ, GOPATH="%s:%s" % (gopath, GOCODE), GO111MODULE="off",
                   GOCACHE=os.path.join(cache, "gocache"), CGO_ENABLED="0")
        env.pop("GOFLAGS", None)
        os.makedirs(cache, exist_ok=True)
        tmpTarget = target + ".tmp%d" % os.getpid()
        result = subprocess.run([goBinary, "build", "-o", tmpTarget, "."], cwd=pkg, env=env,
                                capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise AssertionError("go build failed:\n" + result.stderr)
        os.replace(tmpTarget, target)
    finally:
        shutil.rmtree(gopath, ignore_errors=True)
    return target


def waitUntil(predicate, timeout, interval=0.02, clock=reactor, describe=None):
    """
    A Deferred firing once ``predicate()`` is true; fails after ``timeout``
    seconds, with what ``describe()`` returns then (the state that did not
    converge) in the message.
    """
    start = clock.seconds()

    def check():
        if predicate():
            loop.stop()
        elif clock.seconds() - start > timeout:
            raise AssertionError("condition not met within %.1f s%s" % (
                timeout, "" if describe is None else ": %s" % (describe(),)))
    loop = task.LoopingCall(check)
    loop.clock = clock
    return loop.start(interval, now=True).addCallback(lambda _: None)


class GoPeer(protocol.ProcessProtocol):
    """The Go program: JSON lines in ``events``, commands through ``command``."""

    def __init__(self):
        self.events = []
        self._buf = b""
        self.ended = defer.Deferred()
        self.stderr = b""

    def outReceived(self, data):
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            if line.strip():
                self.events.append(json.loads(line))

    def errReceived(self, data):
        self.stderr = (self.stderr + data)[-20000:]

    def processEnded(self, reason):
        self.ended.callback(None)

    def command(self, line):
        self.transport.write(line.encode() + b"\n")

    def find(self, kind, **match):
        for ev in self.events:
            if ev.get("event") == kind and all(
                    ev.get("node", {}).get(k) == v or ev.get(k) == v for k, v in match.items()):
                return ev
        return None


@implementer(IDelegate)
class Delegate:
    def __init__(self, meta=b""):
        self.meta = meta
        self.received = []
        self.queue = TransmitLimitedQueue(lambda: 3, 4)

    def nodeMeta(self, limit):
        return self.meta

    def notifyMsg(self, data):
        self.received.append(bytes(data))

    def getBroadcasts(self, overhead, limit):
        return self.queue.getBroadcasts(overhead, limit)

    def localState(self, join):
        return b""

    def mergeRemoteState(self, data, join):
        pass


@implementer(IEventDelegate)
class Events:
    def __init__(self):
        self.log = []

    def notifyJoin(self, node):
        self.log.append(("join", node))

    def notifyLeave(self, node):
        self.log.append(("leave", node))

    def notifyUpdate(self, node):
        self.log.append(("update", node))


class RecordingMemberlist(Memberlist):
    """Remembers the framing of each packet: (outer type byte, type inside a CRC wrapper)."""

    def __init__(self, *a, **kw):
        Memberlist.__init__(self, *a, **kw)
        self.framings = set()

    def packetReceived(self, data, fromAddress, timestamp):
        if data:
            self.framings.add((data[0], data[5] if data[0] == 12 and len(data) > 5 else None))
        Memberlist.packetReceived(self, data, fromAddress, timestamp)


def config(name):
    """
    A fast member for loopback tests.  Push/pull runs every second because
    gossip alone may never tell an earlier member about a newcomer:
    memberlist piggybacks broadcasts on pings and acks too, so the two
    transmissions a newcomer's alive gets (retransmitMult 2) can both go to
    the newcomer itself, and only push/pull then repairs the view (seen in
    test_memberlist_service: b without c after 10 s, about once in 300 runs
    on a busy machine).
    """
    return MemberlistConfig.local(name=name, bindAddr="127.0.0.1", bindPort=0,
                                  probeInterval=PROBE_INTERVAL, probeTimeout=PROBE_TIMEOUT,
                                  gossipInterval=GOSSIP_INTERVAL, suspicionMult=SUSPICION_MULT,
                                  pushPullInterval=1.0, tcpTimeout=1.0)


class GoInteropTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        binary = buildGoProgram(PEER_SOURCE, "memberlistpeer")
        self.go = GoPeer()
        args = [binary, "-name", "go1", "-bind", "127.0.0.1", "-port", "0",
                "-probe-interval", "%dms" % (PROBE_INTERVAL * 1000),
                "-probe-timeout", "%dms" % (PROBE_TIMEOUT * 1000),
                "-gossip-interval", "%dms" % (GOSSIP_INTERVAL * 1000),
                "-suspicion-mult", str(SUSPICION_MULT), "-pushpull-interval", "15s",
                "-tcp-timeout", "1s", "-meta", "go-meta"]
        self.goProcess = reactor.spawnProcess(self.go, binary, args, env=os.environ.copy())
        self.addCleanup(self._stopGo)
        yield waitUntil(lambda: self.go.find("ready"), 10)
        ready = self.go.find("ready")["node"]
        self.goAddress = "%s:%d" % (ready["addr"], ready["port"])
        self.members = []
        for name in ("py1", "py2"):
            delegate, events = Delegate(meta=name.encode() + b"-meta"), Events()
            member = RecordingMemberlist(config(name), delegate=delegate, events=events)
            member.startService()
            yield member.whenRunning()
            self.addCleanup(self._stopMember, member)
            self.members.append((member, delegate, events))

    def _stopGo(self):
        if self.goProcess.pid is not None:
            self.goProcess.signalProcess("KILL")
        return self.go.ended

    def _stopMember(self, member):
        if member.running:
            return member.stopService()

    @defer.inlineCallbacks
    def converge(self):
        for member, _, _ in self.members:
            joined = yield member.join([self.goAddress])
            self.assertEqual(joined, 1)
        names = {"go1", "py1", "py2"}

        def goSees():
            self.go.command("members")
            ev = [e for e in self.go.events if e.get("event") == "members"]
            return ev and {m["name"] for m in ev[-1]["members"] or []} == names

        def pythonSees():
            return all({n.name for n in m.members()} == names
                       and all(n.state == NodeStateType.ALIVE for n in m.members())
                       for m, _, _ in self.members)
        yield waitUntil(pythonSees, 10)
        yield waitUntil(goSees, 10, interval=0.1)

    @defer.inlineCallbacks
    def test_convergeOnThreeAlive(self):
        """Go and two Python members each see three alive members, with their meta."""
        yield self.converge()
        py1 = self.members[0][0]
        goNode = [n for n in py1.members() if n.name == "go1"][0]
        self.assertEqual(goNode.meta, b"go-meta")
        self.assertEqual((goNode.pmin, goNode.pmax, goNode.pcur), (1, 5, 2))
        self.assertEqual(self.go.find("join", name="py2")["node"]["meta"], "py2-meta")
        self.assertEqual(self.go.find("join", name="py1")["node"]["pmax"], 5)
        # no probe failures while all are up
        for member, _, _ in self.members:
            self.assertEqual(member.healthScore(), 0)
        # Go wrapped its gossip to us in a CRC (we announce protocol max 5)
        # and compressed what LZW made smaller; we read both
        framings = self.members[0][0].framings | self.members[1][0].framings
        self.assertIn(12, {outer for outer, _ in framings})
        self.assertIn(9, {inner for _, inner in framings})

    @defer.inlineCallbacks
    def test_killedGoNodeSuspectedThenDead(self):
        """
        Killing the Go node: the Python members suspect it, then declare it
        dead, within the configured timeouts.
        """
        yield self.converge()
        killedAt = reactor.seconds()
        self.goProcess.signalProcess("KILL")
        yield self.go.ended
        py = [m for m, _, _ in self.members]

        def state(member):
            node = member.core.node("go1")
            return node.state if node is not None else None
        # the first probe of go1 starts within one probe round (3 members)
        # and fails after one probe interval
        suspectBound = 4 * PROBE_INTERVAL + 1.0
        yield waitUntil(lambda: any(state(m) == NodeStateType.SUSPECT for m in py),
                        suspectBound)
        suspectedAt = reactor.seconds()
        minimum = suspicionTimeout(SUSPICION_MULT, 3, PROBE_INTERVAL)
        maximum = 6 * minimum
        yield waitUntil(lambda: all(state(m) == NodeStateType.DEAD for m in py),
                        maximum + suspectBound + 1.0)
        deadAt = reactor.seconds()
        self.assertGreaterEqual(deadAt - suspectedAt, minimum * 0.9)
        self.assertLess(deadAt - killedAt, maximum + 2 * suspectBound + 1.0)
        for _, _, events in self.members:
            left = [n for kind, n in events.log if kind == "leave"]
            self.assertEqual([(n.name, n.state) for n in left], [("go1", NodeStateType.DEAD)])

    @defer.inlineCallbacks
    def test_leaveSeenByGo(self):
        """A Python member that leaves is left in Go's own state (read by push/pull)."""
        yield self.converge()
        py2 = self.members[1][0]
        leftAt = reactor.seconds()
        yield py2.leave(5.0)
        yield py2.stopService()
        yield waitUntil(lambda: self.go.find("leave", name="py2"), 5)
        # Go notified long before a failure could have been declared
        self.assertLess(reactor.seconds() - leftAt,
                        suspicionTimeout(SUSPICION_MULT, 3, PROBE_INTERVAL) + 1.0)
        states = yield self.goPushPullStates()
        self.assertEqual(states["py2"], NodeStateType.LEFT)
        self.assertEqual(states["py1"], NodeStateType.ALIVE)
        py1 = self.members[0][0]
        yield waitUntil(lambda: py1.core.node("py2").state == NodeStateType.LEFT, 5)

    def goPushPullStates(self):
        """Ask the Go node for its state table with an empty push/pull over TCP."""
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
        host, port = self.goAddress.rsplit(":", 1)
        result = defer.Deferred()

        class Client(protocol.Protocol):
            decoder = StreamDecoder()

            def connectionMade(self):
                self.transport.write(PushPull(join=False, nodes=[], userState=b"").encode())

            def dataReceived(self, data):
                message = self.decoder.feed(data)
                if message is not None and not result.called:
                    result.callback({n.name: n.state for n in message.nodes})
                    self.transport.loseConnection()
        d = connectProtocol(TCP4ClientEndpoint(reactor, host, int(port)), Client())
        d.addErrback(result.errback)
        return result

    @defer.inlineCallbacks
    def test_userBroadcastsBothWays(self):
        """A user broadcast from each side reaches the others."""
        yield self.converge()
        self.go.command("broadcast from-go")
        for member, delegate, _ in self.members:
            delegate.queue.queueBroadcast(
                SimpleBroadcast(b"from-" + member.config.name.encode()))

        def goGot(text):
            return any(e.get("event") == "msg" and e.get("data") == text for e in self.go.events)
        yield waitUntil(lambda: goGot("from-py1") and goGot("from-py2"), 10)
        (m1, d1, _), (m2, d2, _) = self.members
        yield waitUntil(lambda: {b"from-go", b"from-py2"} <= set(d1.received)
                        and {b"from-go", b"from-py1"} <= set(d2.received), 10)

    @defer.inlineCallbacks
    def test_directMessages(self):
        """Best-effort and reliable user messages, and Go's SendBestEffort to us."""
        yield self.converge()
        py1, d1, _ = self.members[0]
        goNode = [n for n in py1.members() if n.name == "go1"][0]
        py1.sendBestEffort(goNode, b"packet-to-go")
        yield py1.sendReliable(goNode, b"stream-to-go")
        self.go.command("send py1 packet-from-go")

        def goGot(text):
            return any(e.get("event") == "msg" and e.get("data") == text for e in self.go.events)
        yield waitUntil(lambda: goGot("packet-to-go") and goGot("stream-to-go"), 5)
        yield waitUntil(lambda: b"packet-from-go" in d1.received, 5)

    @defer.inlineCallbacks
    def test_goLeaveSeenAsLeft(self):
        """Go's Leave reaches the Python members as left, not dead."""
        yield self.converge()
        self.go.command("leave")
        yield waitUntil(lambda: self.go.find("left"), 10)
        self.assertNotIn("error", self.go.find("left"))
        yield waitUntil(lambda: all(m.core.node("go1").state == NodeStateType.LEFT
                                    for m, _, _ in self.members), 5)
