# -*- test-case-name: raftmux.test.test_memberlist_core -*-
"""
memberlist's SWIM protocol as a sans-IO state machine: ``MemberlistCore``.

Inputs are method calls carrying the time (``now``, seconds, any origin):
packets (``packetReceived``), whole stream messages a peer sent
(``streamReceived``) or answered (``streamReplied`` / ``streamFailed``),
timers (``tick``, due at ``nextDeadline()``) and user requests (``join``,
``leave``, ``updateNode``, ``sendBestEffort``).  Every input returns the list
of outputs it produced, in order:

* ``SendPacket(address, data)``: one datagram, already framed (compound,
  compressed, CRC) as Go frames it.
* ``OpenStream(streamId, address, data, timeout)``: dial, write ``data``, read
  one stream message back (``stream.StreamDecoder``), hand it to
  ``streamReplied(streamId, ...)`` or report ``streamFailed``.
* ``StreamReply(data)``: the answer to write on the stream just received.
* ``StreamResult(streamId, error)``: a stream we opened is done (``error`` is
  None on success); ``join`` waits on these.
* ``NodeJoined`` / ``NodeLeft`` / ``NodeUpdated(node)``: the event delegate's
  calls, with a ``Node`` snapshot.
* ``BroadcastDone(tag)``: the leave or update broadcast has been sent as
  often as the retransmit limit asks (or there was nobody to tell).

The user's ``IDelegate`` (node meta, user messages, user broadcasts, local
state and merge) is called directly, as Go calls it, because those calls
return values the protocol needs at once.  Randomness comes from ``rng``
(a ``random.Random``) so simulations replay.  Nothing here knows sockets,
reactors or clocks; ``raftmux.memberlist.service`` is the Twisted shell.

Behaviour follows memberlist 0.2.2 (``state.go``, ``net.go``): probe one
node per ``probeInterval`` (scaled by the awareness score), indirect pings
through ``indirectChecks`` peers and a TCP ping after ``probeTimeout``, then
suspicion with Lifeguard's confirmations, dead after the suspicion timeout;
``gossipNodes`` random peers every ``gossipInterval``; a push/pull with one
random peer every ``pushPullInterval`` (scaled past 32 nodes).  Deliberate
differences: a packet to a known node gets a CRC when its protocol max is
>= 5 whatever its name (Go finds the node only when it is named by its IP),
and left nodes are reaped like dead ones.
"""

import heapq
import math
import random
from dataclasses import dataclass, field
from typing import Any

from raftmux.memberlist.config import META_MAX_SIZE
from raftmux.memberlist.messages import (
    Ack,
    Alive,
    Dead,
    DecodeError,
    ErrResp,
    IndirectPing,
    MessageType,
    Nack,
    NodeStateType,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    UserMessage,
    UserStream,
    addCrc,
    compressMessage,
    decodePacketMessage,
    ipFromBytes,
    ipToBytes,
    joinHostPort,
    makeCompound,
    splitHostPort,
    stripCrc,
)
from raftmux.memberlist.queue import NamedBroadcast, TransmitLimitedQueue
from raftmux.memberlist.suspicion import Suspicion, suspicionTimeout

COMPOUND_HEADER_OVERHEAD = 2
COMPOUND_OVERHEAD = 2
USER_MSG_OVERHEAD = 1
PUSH_PULL_SCALE_THRESHOLD = 32


# -- outputs --------------------------------------------------------------------------


@dataclass
class SendPacket:
    address: str
    data: bytes


@dataclass
class OpenStream:
    streamId: int
    address: str
    data: bytes
    timeout: float


@dataclass
class StreamReply:
    data: bytes


@dataclass
class StreamResult:
    streamId: int
    error: str | None = None


@dataclass
class NodeJoined:
    node: "Node"


@dataclass
class NodeLeft:
    node: "Node"


@dataclass
class NodeUpdated:
    node: "Node"


@dataclass
class BroadcastDone:
    tag: str


# -- nodes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A snapshot of one member as this node sees it."""

    name: str
    addr: str
    port: int
    meta: bytes
    state: NodeStateType
    incarnation: int
    pmin: int = 0
    pmax: int = 0
    pcur: int = 0
    dmin: int = 0
    dmax: int = 0
    dcur: int = 0
    #: when this member last entered its state (the core's clock; -inf: never);
    #: not part of equality, so snapshots compare as before
    stateChange: float = field(default=float("-inf"), compare=False)

    @property
    def address(self):
        return joinHostPort(self.addr, self.port)


class _NodeState:
    __slots__ = ("name", "addr", "port", "meta", "incarnation", "state", "stateChange", "vsn")

    def __init__(self, name, addr, port, meta, vsn):
        self.name = name
        self.addr = addr
        self.port = port
        self.meta = meta
        self.incarnation = 0
        self.state = NodeStateType.DEAD
        # Go's zero time: a node added by an alive message that then loses
        # (incarnation 0) is dead since forever, never gossiped to, reaped first
        self.stateChange = float("-inf")
        self.vsn = vsn

    @property
    def address(self):
        return joinHostPort(self.addr, self.port)

    @property
    def pmax(self):
        return self.vsn[1] if len(self.vsn) >= 6 else 0

    def deadOrLeft(self):
        return self.state in (NodeStateType.DEAD, NodeStateType.LEFT)

    def snapshot(self):
        pmin, pmax, pcur, dmin, dmax, dcur = self.vsn[:6] if len(self.vsn) >= 6 else (0,) * 6
        return Node(self.name, self.addr, self.port, self.meta, NodeStateType(self.state),
                    self.incarnation, pmin, pmax, pcur, dmin, dmax, dcur,
                    stateChange=self.stateChange)


class _Timer:
    __slots__ = ("when", "fn", "args", "cancelled")

    def __init__(self, when, fn, args):
        self.when = when
        self.fn = fn
        self.args = args
        self.cancelled = False

    def cancel(self):
        self.cancelled = True


class _Probe:
    __slots__ = ("node", "seqNo", "ping", "deadline", "done", "nacks", "expectedNacks",
                 "fallback", "fallbackOk", "timers")

    def __init__(self, node, seqNo, ping, deadline):
        self.node = node
        self.seqNo = seqNo
        self.ping = ping
        self.deadline = deadline
        self.done = False
        self.nacks = 0
        self.expectedNacks = 0
        self.fallback = None
        self.fallbackOk = False
        self.timers = []


class _AckHandler:
    __slots__ = ("expires", "onAck", "onNack")

    def __init__(self, expires, onAck, onNack=None):
        self.expires = expires
        self.onAck = onAck
        self.onNack = onNack


def pushPullScale(interval, n):
    if n <= PUSH_PULL_SCALE_THRESHOLD:
        return interval
    multiplier = math.ceil(math.log2(n) - math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1.0
    return multiplier * interval


class Awareness:
    """Lifeguard's local health score: 0 is healthy; timeouts scale by score + 1."""

    def __init__(self, maximum):
        self.maximum = maximum
        self.score = 0

    def applyDelta(self, delta):
        self.score = min(max(self.score + delta, 0), self.maximum - 1)

    def scaleTimeout(self, timeout):
        return timeout * (self.score + 1)


# -- the state machine ------------------------------------------------------------------


class MemberlistCore:
    def __init__(self, config, advertiseAddr, advertisePort, delegate=None, rng=None, log=None):
        self.config = config
        self.name = config.name
        self.advertiseAddr = advertiseAddr
        self.advertisePort = advertisePort
        self.delegate = delegate
        self.rng = rng if rng is not None else random.Random()
        self._logFn = log
        self._out = []
        self._timers = []
        self._timerSeq = 0
        self._nodes = []
        self._nodeMap = {}
        self._suspicions = {}
        self._ackHandlers = {}
        self._seqNo = 0
        self._incarnation = 0
        self._streamSeq = 0
        self._streams = {}
        self._probeIndex = 0
        self._probe = None
        self._probeMissed = False
        self._left = False
        self._started = False
        self._stopped = False
        self.awareness = Awareness(config.awarenessMaxMultiplier)
        self.broadcasts = TransmitLimitedQueue(self.estNumNodes, config.retransmitMult)

    # -- plumbing --------------------------------------------------------------

    def _flush(self):
        out, self._out = self._out, []
        return out

    def _emit(self, output):
        self._out.append(output)

    def _log(self, level, text):
        if self._logFn is not None:
            self._logFn(level, text)

    def _callAt(self, when, fn, *args):
        timer = _Timer(when, fn, args)
        self._timerSeq += 1
        heapq.heappush(self._timers, (when, self._timerSeq, timer))
        return timer

    def nextDeadline(self):
        """When ``tick`` must next be called, or None."""
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        return timers[0][0] if timers else None

    def tick(self, now):
        """Run every timer due at ``now``."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, timer = heapq.heappop(timers)
            if not timer.cancelled and not self._stopped:
                timer.fn(now, *timer.args)
        return self._flush()

    # -- lifecycle --------------------------------------------------------------

    def start(self, now):
        """Mark ourselves alive and start the probe, gossip and push/pull timers."""
        if self._started:
            return []
        self._started = True
        self._aliveNode(Alive(incarnation=self._nextIncarnation(), node=self.name,
                              addr=ipToBytes(self.advertiseAddr), port=self.advertisePort,
                              meta=self._nodeMeta(), vsn=self.config.vsn()), now, bootstrap=True)
        c = self.config
        if c.probeInterval > 0:
            self._callAt(now + self.rng.random() * c.probeInterval, self._probeTick)
        if c.gossipInterval > 0 and c.gossipNodes > 0:
            self._callAt(now + self.rng.random() * c.gossipInterval, self._gossipTick)
        if c.pushPullInterval > 0:
            self._callAt(now + self.rng.random() * c.pushPullInterval, self._pushPullTick)
        return self._flush()

    def stop(self):
        """Stop all timers; later inputs are ignored (memberlist's Shutdown)."""
        self._stopped = True
        self._timers = []
        self._ackHandlers.clear()
        return []

    def _nodeMeta(self):
        if self.delegate is None:
            return b""
        meta = bytes(self.delegate.nodeMeta(META_MAX_SIZE) or b"")
        if len(meta) > META_MAX_SIZE:
            raise ValueError("Node meta data provided is longer than the limit")
        return meta

    # -- queries ----------------------------------------------------------------

    def estNumNodes(self):
        return len(self._nodes)

    def members(self):
        """Snapshots of members that are alive or suspect (Go's Members)."""
        return [n.snapshot() for n in self._nodes if not n.deadOrLeft()]

    def allNodes(self):
        """Snapshots of every known node, dead and left ones included."""
        return [n.snapshot() for n in self._nodes]

    def numMembers(self):
        return sum(1 for n in self._nodes if not n.deadOrLeft())

    def localNode(self):
        return self._nodeMap[self.name].snapshot()

    def node(self, name):
        state = self._nodeMap.get(name)
        return state.snapshot() if state is not None else None

    def hasLeft(self):
        return self._left

    def healthScore(self):
        return self.awareness.score

    # -- counters -------------------------------------------------------------------

    def _nextSeqNo(self):
        self._seqNo = (self._seqNo + 1) & 0xFFFFFFFF
        return self._seqNo

    def _nextIncarnation(self):
        self._incarnation = (self._incarnation + 1) & 0xFFFFFFFF
        return self._incarnation

    def _skipIncarnation(self, offset):
        self._incarnation = (self._incarnation + offset) & 0xFFFFFFFF
        return self._incarnation

    # -- sending -------------------------------------------------------------------

    def _getBroadcasts(self, overhead, limit):
        toSend = self.broadcasts.getBroadcasts(overhead, limit)
        if self.delegate is not None:
            used = sum(len(m) + overhead for m in toSend)
            avail = limit - used
            if avail > overhead + USER_MSG_OVERHEAD:
                for msg in self.delegate.getBroadcasts(overhead + USER_MSG_OVERHEAD, avail) or ():
                    toSend.append(bytes((MessageType.USER,)) + bytes(msg))
        return toSend[:254]

    def _sendMsg(self, address, msg, node=None):
        """encodeAndSendMsg: piggyback queued broadcasts on ``msg``."""
        avail = self.config.udpBufferSize - len(msg) - COMPOUND_HEADER_OVERHEAD
        extra = self._getBroadcasts(COMPOUND_OVERHEAD, avail)
        if extra:
            msg = makeCompound([msg] + extra)
        self._rawSendPacket(address, msg, node)

    def _rawSendPacket(self, address, msg, node=None):
        if self.config.enableCompression:
            compressed = compressMessage(msg)
            if len(compressed) < len(msg):
                msg = compressed
        if node is None:
            node = self._nodeByAddress(address)
        if node is not None and node.pmax >= 5:
            msg = addCrc(msg)
        self._emit(SendPacket(address, msg))

    def _nodeByAddress(self, address):
        for n in self._nodes:
            if n.address == address:
                return n
        return None

    def _encodeStream(self, message):
        data = message.encode()
        if self.config.enableCompression:
            data = compressMessage(data)
        return data

    def _openStream(self, address, message, kind, context):
        self._streamSeq += 1
        streamId = self._streamSeq
        self._streams[streamId] = (kind, context)
        timeout = self.config.tcpTimeout
        if kind == "fallback":
            timeout = context[1]
        self._emit(OpenStream(streamId, address, self._encodeStream(message), timeout))
        return streamId

    def _broadcast(self, node, message, tag=None):
        onFinished = None
        if tag is not None:
            def onFinished():
                self._emit(BroadcastDone(tag))
        self.broadcasts.queueBroadcast(NamedBroadcast(node, message.encode(), onFinished))

    # -- user requests -------------------------------------------------------------

    def join(self, address, now):
        """
        Push/pull (join) with ``address`` (``host:port``, an IP host): an
        ``OpenStream`` now, a ``StreamResult`` with its id later.
        Returns ``(streamId, outputs)``.
        """
        streamId = self._openStream(address, self._localState(join=True), "pushpull", True)
        return streamId, self._flush()

    def sendBestEffort(self, address, data):
        """A user message in one packet (Go's SendBestEffort / SendToAddress)."""
        self._rawSendPacket(address, UserMessage(data).encode())
        return self._flush()

    def reliableMessage(self, data):
        """The stream bytes of a user message sent reliably (Go's SendReliable)."""
        return self._encodeStream(UserStream(data))

    def errorReply(self, text):
        """The stream bytes of an errMsg, Go's answer to a stream it could not read."""
        return self._encodeStream(ErrResp(error=text))

    def updateNode(self, now):
        """Re-read the node meta, bump our incarnation and gossip it; BroadcastDone('update')."""
        me = self._nodeMap[self.name]
        alive = Alive(incarnation=self._nextIncarnation(), node=self.name,
                      addr=ipToBytes(me.addr), port=me.port, meta=self._nodeMeta(),
                      vsn=self.config.vsn())
        self._aliveNode(alive, now, bootstrap=True, tag="update")
        if not self._anyAlive():
            self._emit(BroadcastDone("update"))
        return self._flush()

    def leave(self, now):
        """Broadcast our own death (as left); BroadcastDone('leave') once it is out."""
        if not self._left:
            self._left = True
            me = self._nodeMap.get(self.name)
            if me is not None:
                self._deadNode(Dead(incarnation=me.incarnation, node=self.name,
                                    fromNode=self.name), now)
                if not self._anyAlive():
                    self._emit(BroadcastDone("leave"))
        else:
            self._emit(BroadcastDone("leave"))
        return self._flush()

    def _anyAlive(self):
        return any(not n.deadOrLeft() and n.name != self.name for n in self._nodes)

    # -- packets in -----------------------------------------------------------------

    def packetReceived(self, data, fromAddress, now):
        if self._stopped or not data:
            return []
        if data[0] == MessageType.ENCRYPT:
            self._log("warn", "encrypted packet from %s: encryption is not supported" % (
                fromAddress,))
            return []
        try:
            data = stripCrc(data)
            messages = decodePacketMessage(data)
        except DecodeError as e:
            self._log("warn", "bad packet from %s: %s" % (fromAddress, e))
            return []
        for msgType, msg in messages:
            if isinstance(msg, DecodeError):
                self._log("warn", "bad message (type %s) from %s: %s" % (msgType, fromAddress, msg))
                continue
            handler = self._packetHandlers.get(msgType)
            if handler is not None:
                handler(self, msg, fromAddress, now)
        return self._flush()

    def _handlePing(self, p, fromAddress, now):
        if p.node and p.node != self.name:
            self._log("warn", "got ping for unexpected node %r from %s" % (p.node, fromAddress))
            return
        address = self._replyAddress(p.sourceAddr, p.sourcePort, fromAddress)
        if address is not None:
            self._sendMsg(address, Ack(seqNo=p.seqNo).encode())

    def _replyAddress(self, sourceAddr, sourcePort, fromAddress):
        if sourceAddr and sourcePort:
            host = ipFromBytes(sourceAddr)
            if host:
                return joinHostPort(host, sourcePort)
        return fromAddress

    def _handleIndirectPing(self, ind, fromAddress, now):
        if self.config.protocolVersion < 2 or ind.port == 0:
            ind.port = self.advertisePort
        target = ipFromBytes(ind.target)
        if not target:
            self._log("warn", "indirect ping with a bad target from %s" % (fromAddress,))
            return
        localSeq = self._nextSeqNo()
        ping = Ping(seqNo=localSeq, node=ind.node, sourceAddr=ipToBytes(self.advertiseAddr),
                    sourcePort=self.advertisePort, sourceNode=self.name)
        indAddress = self._replyAddress(ind.sourceAddr, ind.sourcePort, fromAddress)
        nackTimer: list[Any] = []

        def onAck(now):
            for t in nackTimer:
                t.cancel()
            self._sendMsg(indAddress, Ack(seqNo=ind.seqNo).encode())

        timeout = self.config.probeTimeout
        self._ackHandlers[localSeq] = _AckHandler(now + timeout, onAck)
        self._callAt(now + timeout, self._reapAck, localSeq)
        self._sendMsg(joinHostPort(target, ind.port), ping.encode())
        if ind.nack:
            def sendNack(now):
                self._sendMsg(indAddress, Nack(seqNo=ind.seqNo).encode())
            nackTimer.append(self._callAt(now + timeout, sendNack))

    def _reapAck(self, now, seqNo):
        handler = self._ackHandlers.get(seqNo)
        if handler is not None and handler.expires <= now:
            del self._ackHandlers[seqNo]

    def _handleAck(self, ack, fromAddress, now):
        handler = self._ackHandlers.pop(ack.seqNo, None)
        if handler is not None:
            handler.onAck(now)

    def _handleNack(self, nack, fromAddress, now):
        handler = self._ackHandlers.get(nack.seqNo)
        if handler is not None and handler.onNack is not None:
            handler.onNack(now)

    def _handleSuspect(self, s, fromAddress, now):
        self._suspectNode(s, now)

    def _handleAlive(self, a, fromAddress, now):
        if self.config.protocolVersion < 2 or a.port == 0:
            a.port = self.advertisePort
        self._aliveNode(a, now)

    def _handleDead(self, d, fromAddress, now):
        self._deadNode(d, now)

    def _handleUser(self, m, fromAddress, now):
        if self.delegate is not None:
            self.delegate.notifyMsg(m.data)

    _packetHandlers = {
        MessageType.PING: _handlePing,
        MessageType.INDIRECT_PING: _handleIndirectPing,
        MessageType.ACK: _handleAck,
        MessageType.NACK: _handleNack,
        MessageType.SUSPECT: _handleSuspect,
        MessageType.ALIVE: _handleAlive,
        MessageType.DEAD: _handleDead,
        MessageType.USER: _handleUser,
    }

    # -- streams ---------------------------------------------------------------------

    def streamReceived(self, message, fromAddress, now):
        """
        A whole message a peer sent on a stream it opened.  A push/pull is
        answered (``StreamReply``) with our state before theirs is merged,
        as Go does; a TCP ping is answered with an ack.
        """
        if self._stopped:
            return []
        if isinstance(message, PushPull):
            self._emit(StreamReply(self._encodeStream(self._localState(message.join))))
            error = self._mergeRemoteState(message, now)
            if error:
                self._log("warn", "push/pull merge with %s failed: %s" % (fromAddress, error))
        elif isinstance(message, UserStream):
            if self.delegate is not None and message.data:
                self.delegate.notifyMsg(message.data)
        elif isinstance(message, Ping):
            if message.node and message.node != self.name:
                self._log("warn", "got stream ping for unexpected node %r" % (message.node,))
            else:
                self._emit(StreamReply(self._encodeStream(Ack(seqNo=message.seqNo))))
        else:
            self._log("warn", "unexpected stream message %r from %s" % (
                type(message).__name__, fromAddress))
        return self._flush()

    def streamReplied(self, streamId, message, now):
        """The answer to a stream we opened (``OpenStream``)."""
        entry = self._streams.pop(streamId, None)
        if entry is None:
            return []
        kind, context = entry
        error = None
        if isinstance(message, ErrResp):
            error = "remote error: %s" % (message.error,)
        elif kind == "pushpull":
            if not isinstance(message, PushPull):
                error = "expected a push/pull answer, got %s" % (type(message).__name__,)
            elif not self._stopped:
                error = self._mergeRemoteState(message, now, join=context)
        elif kind == "fallback":
            probe, _ = context
            if not isinstance(message, Ack):
                error = "expected an ack, got %s" % (type(message).__name__,)
            elif message.seqNo != probe.seqNo:
                error = "sequence number from ack (%d) doesn't match ping (%d)" % (
                    message.seqNo, probe.seqNo)
            else:
                probe.fallbackOk = True
        self._emit(StreamResult(streamId, error))
        return self._flush()

    def streamFailed(self, streamId, reason, now):
        if self._streams.pop(streamId, None) is None:
            return []
        self._emit(StreamResult(streamId, str(reason)))
        return self._flush()

    def _localState(self, join):
        nodes = [PushNodeState(name=n.name, addr=ipToBytes(n.addr), port=n.port, meta=n.meta,
                               incarnation=n.incarnation, state=int(n.state), vsn=bytes(n.vsn))
                 for n in self._nodes]
        userState = b""
        if self.delegate is not None:
            userState = bytes(self.delegate.localState(join) or b"")
        return PushPull(join=join, nodes=nodes, userState=userState)

    def _mergeRemoteState(self, message, now, join=None):
        join = message.join if join is None else join
        for r in message.nodes:
            if self.config.protocolVersion < 2 or r.port == 0:
                r.port = self.advertisePort
        error = self._verifyProtocol(message.nodes)
        if error:
            return error
        for r in message.nodes:
            if r.state == NodeStateType.ALIVE:
                self._aliveNode(Alive(incarnation=r.incarnation, node=r.name, addr=r.addr,
                                      port=r.port, meta=r.meta, vsn=r.vsn), now)
            elif r.state == NodeStateType.LEFT:
                self._deadNode(Dead(incarnation=r.incarnation, node=r.name, fromNode=r.name), now)
            elif r.state in (NodeStateType.DEAD, NodeStateType.SUSPECT):
                # a node the peer thinks dead we only suspect, as Go does
                self._suspectNode(Suspect(incarnation=r.incarnation, node=r.name,
                                          fromNode=self.name), now)
        if message.userState and self.delegate is not None:
            self.delegate.mergeRemoteState(message.userState, join)
        return None

    def _verifyProtocol(self, remote):
        maxpmin = maxdmin = 0
        minpmax = mindmax = 255
        vsns = [r.vsn for r in remote if r.state == NodeStateType.ALIVE and r.vsn]
        vsns += [bytes(n.vsn) for n in self._nodes if n.state == NodeStateType.ALIVE]
        for v in vsns:
            if len(v) < 6:
                return "a node sent a short version vector"
            maxpmin, minpmax = max(maxpmin, v[0]), min(minpmax, v[1])
            maxdmin, mindmax = max(maxdmin, v[3]), min(mindmax, v[4])
        everyone = [(r.name, r.vsn) for r in remote] + [(n.name, bytes(n.vsn)) for n in self._nodes]
        for name, v in everyone:
            pcur, dcur = (v[2], v[5]) if len(v) >= 6 else (0, 0)
            if not maxpmin <= pcur <= minpmax:
                return "Node '%s' protocol version (%d) is incompatible: [%d, %d]" % (
                    name, pcur, maxpmin, minpmax)
            if not maxdmin <= dcur <= mindmax:
                return "Node '%s' delegate protocol version (%d) is incompatible: [%d, %d]" % (
                    name, dcur, maxdmin, mindmax)
        return None

    # -- state changes -----------------------------------------------------------------

    def _refute(self, me, accusedInc, now):
        inc = self._nextIncarnation()
        if accusedInc >= inc:
            inc = self._skipIncarnation(accusedInc - inc + 1)
        me.incarnation = inc
        self.awareness.applyDelta(1)
        self._broadcast(me.name, Alive(incarnation=inc, node=me.name, addr=ipToBytes(me.addr),
                                       port=me.port, meta=me.meta, vsn=bytes(me.vsn)))

    def _aliveNode(self, a, now, bootstrap=False, tag=None):
        if self._left and a.node == self.name:
            return
        vsn = bytes(a.vsn)
        if vsn and len(vsn) < 6:
            self._log("warn", "ignoring alive for %r: short version vector" % (a.node,))
            return
        if vsn and (vsn[0] == 0 or vsn[1] == 0 or vsn[0] > vsn[1]):
            self._log("warn", "ignoring alive for %r: bad protocol versions" % (a.node,))
            return
        addr = ipFromBytes(a.addr)
        if not addr:
            self._log("warn", "ignoring alive for %r: bad address" % (a.node,))
            return
        state = self._nodeMap.get(a.node)
        updatesNode = False
        if state is None:
            state = _NodeState(a.node, addr, a.port, bytes(a.meta), vsn)
            self._nodeMap[a.node] = state
            n = len(self._nodes)
            offset = self.rng.randrange(n) if n else 0
            self._nodes.append(state)
            self._nodes[offset], self._nodes[n] = self._nodes[n], self._nodes[offset]
        elif state.addr != addr or state.port != a.port:
            canReclaim = (self.config.deadNodeReclaimTime > 0
                          and now - state.stateChange > self.config.deadNodeReclaimTime)
            if state.state == NodeStateType.LEFT or (state.state == NodeStateType.DEAD
                                                     and canReclaim):
                updatesNode = True
            else:
                self._log("warn", "conflicting address for %s: mine %s, theirs %s" % (
                    a.node, state.address, joinHostPort(addr, a.port)))
                return
        isLocal = state.name == self.name
        if a.incarnation <= state.incarnation and not isLocal and not updatesNode:
            return
        if a.incarnation < state.incarnation and isLocal:
            return
        self._clearSuspicion(a.node)
        oldState, oldMeta = state.state, state.meta
        if not bootstrap and isLocal:
            if (a.incarnation == state.incarnation and bytes(a.meta) == state.meta
                    and vsn == bytes(state.vsn)):
                return
            self._refute(state, a.incarnation, now)
            self._log("warn", "refuting an alive message for ourselves")
        else:
            self._broadcast(a.node, a, tag)
            if vsn:
                state.vsn = vsn
            state.incarnation = a.incarnation
            state.meta = bytes(a.meta)
            state.addr = addr
            state.port = a.port
            if state.state != NodeStateType.ALIVE:
                state.state = NodeStateType.ALIVE
                state.stateChange = now
        if oldState in (NodeStateType.DEAD, NodeStateType.LEFT):
            self._emit(NodeJoined(state.snapshot()))
        elif oldMeta != state.meta:
            self._emit(NodeUpdated(state.snapshot()))

    def _clearSuspicion(self, name):
        entry = self._suspicions.pop(name, None)
        if entry is not None:
            entry[2].cancel()

    def _suspectNode(self, s, now):
        state = self._nodeMap.get(s.node)
        if state is None or s.incarnation < state.incarnation:
            return
        entry = self._suspicions.get(s.node)
        if entry is not None:
            suspicion, changeTime, timer = entry
            if suspicion.confirm(s.fromNode, now):
                self._broadcast(s.node, s)
                if suspicion.deadline < timer.when:
                    timer.cancel()
                    newTimer = self._callAt(suspicion.deadline, self._suspicionTimeout,
                                            s.node, changeTime)
                    self._suspicions[s.node] = (suspicion, changeTime, newTimer)
            return
        if state.state != NodeStateType.ALIVE:
            return
        if state.name == self.name:
            self._refute(state, s.incarnation, now)
            self._log("warn", "refuting a suspect message (from: %s)" % (s.fromNode,))
            return
        self._broadcast(s.node, s)
        state.incarnation = s.incarnation
        state.state = NodeStateType.SUSPECT
        state.stateChange = now
        c = self.config
        k = c.suspicionMult - 2
        n = self.estNumNodes()
        if n - 2 < k:
            k = 0
        minimum = suspicionTimeout(c.suspicionMult, n, c.probeInterval)
        maximum = c.suspicionMaxTimeoutMult * minimum
        suspicion = Suspicion(s.fromNode, k, minimum, maximum, now)
        timer = self._callAt(suspicion.deadline, self._suspicionTimeout, s.node, now)
        self._suspicions[s.node] = (suspicion, now, timer)

    def _suspicionTimeout(self, now, name, changeTime):
        entry = self._suspicions.get(name)
        state = self._nodeMap.get(name)
        if (state is not None and state.state == NodeStateType.SUSPECT
                and state.stateChange == changeTime):
            confirmations = entry[0].n if entry is not None else 0
            self._log("info", "marking %s as failed, suspect timeout reached (%d peer "
                              "confirmations)" % (name, confirmations))
            self._deadNode(Dead(incarnation=state.incarnation, node=name, fromNode=self.name),
                           now)

    def _deadNode(self, d, now):
        state = self._nodeMap.get(d.node)
        if state is None or d.incarnation < state.incarnation:
            return
        self._clearSuspicion(d.node)
        if state.deadOrLeft():
            return
        if state.name == self.name:
            if not self._left:
                self._refute(state, d.incarnation, now)
                self._log("warn", "refuting a dead message (from: %s)" % (d.fromNode,))
                return
            self._broadcast(d.node, d, tag="leave")
        else:
            self._broadcast(d.node, d)
        state.incarnation = d.incarnation
        state.state = NodeStateType.LEFT if d.node == d.fromNode else NodeStateType.DEAD
        state.stateChange = now
        self._emit(NodeLeft(state.snapshot()))

    # -- probing -------------------------------------------------------------------------

    def _probeTick(self, now):
        self._callAt(now + self.config.probeInterval, self._probeTick)
        if self._probe is not None:
            self._probeMissed = True
            return
        self._probeNext(now)

    def _probeNext(self, now):
        numCheck = 0
        while numCheck < len(self._nodes):
            if self._probeIndex >= len(self._nodes):
                self._resetNodes(now)
                self._probeIndex = 0
                numCheck += 1
                continue
            node = self._nodes[self._probeIndex]
            self._probeIndex += 1
            if node.name == self.name or node.deadOrLeft():
                numCheck += 1
                continue
            self._startProbe(node, now)
            return

    def _resetNodes(self, now):
        keep = []
        for n in self._nodes:
            if (n.deadOrLeft() and n.name != self.name
                    and now - n.stateChange > self.config.gossipToTheDeadTime):
                del self._nodeMap[n.name]
                self._clearSuspicion(n.name)
            else:
                keep.append(n)
        self.rng.shuffle(keep)
        self._nodes = keep

    def _startProbe(self, node, now):
        c = self.config
        interval = self.awareness.scaleTimeout(c.probeInterval)
        seqNo = self._nextSeqNo()
        ping = Ping(seqNo=seqNo, node=node.name, sourceAddr=ipToBytes(self.advertiseAddr),
                    sourcePort=self.advertisePort, sourceNode=self.name)
        probe = _Probe(node, seqNo, ping, now + interval)
        self._probe = probe
        self._ackHandlers[seqNo] = _AckHandler(
            probe.deadline, lambda now: self._probeAcked(probe, now),
            lambda now: self._probeNacked(probe))
        if node.state == NodeStateType.ALIVE:
            self._sendMsg(node.address, ping.encode(), node)
        else:
            suspect = Suspect(incarnation=node.incarnation, node=node.name, fromNode=self.name)
            self._rawSendPacket(node.address, makeCompound([ping.encode(), suspect.encode()]),
                                node)
        probe.timers.append(self._callAt(now + c.probeTimeout, self._probeTimedOut, probe))
        probe.timers.append(self._callAt(probe.deadline, self._probeDeadline, probe))

    def _probeAcked(self, probe, now):
        if not probe.done:
            self._finishProbe(probe, -1, now)

    def _probeNacked(self, probe):
        probe.nacks += 1

    def _probeTimedOut(self, now, probe):
        """No direct ack within probeTimeout: indirect pings, and a TCP ping."""
        if probe.done:
            return
        node = probe.node
        candidates = [n for n in self._nodes if n.name not in (self.name, node.name)
                      and n.state == NodeStateType.ALIVE]
        peers = self._kRandom(self.config.indirectChecks, candidates)
        for peer in peers:
            nack = peer.pmax >= 4
            if nack:
                probe.expectedNacks += 1
            ind = IndirectPing(seqNo=probe.seqNo, target=ipToBytes(node.addr), port=node.port,
                               node=node.name, nack=nack,
                               sourceAddr=ipToBytes(self.advertiseAddr),
                               sourcePort=self.advertisePort, sourceNode=self.name)
            self._sendMsg(peer.address, ind.encode(), peer)
        if not self.config.disableTcpPings and node.pmax >= 3:
            remaining = probe.deadline - now
            if remaining > 0:
                probe.fallback = self._openStream(node.address, probe.ping, "fallback",
                                                  (probe, remaining))

    def _probeDeadline(self, now, probe):
        if probe.done:
            return
        if probe.fallbackOk:
            self._log("warn", "was able to connect to %s but other probes failed, network "
                              "may be misconfigured" % (probe.node.name,))
            self._finishProbe(probe, -1, now)
            return
        if probe.expectedNacks > 0:
            delta = max(0, probe.expectedNacks - probe.nacks)
        else:
            delta = 1
        self._finishProbe(probe, delta, now)
        node = probe.node
        self._log("info", "suspect %s has failed, no acks received" % (node.name,))
        self._suspectNode(Suspect(incarnation=node.incarnation, node=node.name,
                                  fromNode=self.name), now)

    def _finishProbe(self, probe, awarenessDelta, now):
        probe.done = True
        for t in probe.timers:
            t.cancel()
        self._ackHandlers.pop(probe.seqNo, None)
        if probe.fallback is not None:
            self._streams.pop(probe.fallback, None)
        self.awareness.applyDelta(awarenessDelta)
        if self._probe is probe:
            self._probe = None
            if self._probeMissed:
                self._probeMissed = False
                self._probeNext(now)

    def _kRandom(self, k, nodes):
        """Up to ``k`` distinct random picks (Go's kRandomNodes over a filtered list)."""
        if len(nodes) <= k:
            picked = list(nodes)
            self.rng.shuffle(picked)
            return picked
        return self.rng.sample(nodes, k)

    # -- gossip and push/pull ------------------------------------------------------------

    def _gossipTick(self, now):
        c = self.config
        self._callAt(now + c.gossipInterval, self._gossipTick)

        def eligible(n):
            if n.name == self.name:
                return False
            if n.state in (NodeStateType.ALIVE, NodeStateType.SUSPECT):
                return True
            if n.state == NodeStateType.DEAD:
                return now - n.stateChange <= c.gossipToTheDeadTime
            return False
        peers = self._kRandom(c.gossipNodes, [n for n in self._nodes if eligible(n)])
        avail = c.udpBufferSize - COMPOUND_HEADER_OVERHEAD
        for node in peers:
            msgs = self._getBroadcasts(COMPOUND_OVERHEAD, avail)
            if not msgs:
                return
            msg = msgs[0] if len(msgs) == 1 else makeCompound(msgs)
            self._rawSendPacket(node.address, msg, node)

    def _pushPullTick(self, now):
        c = self.config
        self._callAt(now + pushPullScale(c.pushPullInterval, self.estNumNodes()),
                     self._pushPullTick)
        peers = self._kRandom(1, [n for n in self._nodes if n.name != self.name
                                  and n.state == NodeStateType.ALIVE])
        if peers:
            self._openStream(peers[0].address, self._localState(False), "pushpull", False)


def parseJoinAddress(address, defaultPort):
    """``[name/]host[:port]`` -> ``(host, port)`` as Go's resolveAddr splits it."""
    if "/" in address:
        name, _, address = address.partition("/")
        if not name:
            raise ValueError("empty node name provided")
    if address.startswith("["):
        if "]:" in address:
            return splitHostPort(address)
        return address.strip("[]"), defaultPort
    if address.count(":") == 1:
        return splitHostPort(address)
    return address.strip("[]"), defaultPort
