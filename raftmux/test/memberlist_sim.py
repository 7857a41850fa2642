# -*- test-case-name: raftmux.test.test_memberlist_core -*-
"""
A deterministic in-memory network for ``MemberlistCore`` simulations: a fake
clock, per-packet latency, injectable loss and partitions, killed nodes.
Packets and streams travel as bytes through the real codecs (stream bytes
through ``StreamDecoder``), so a simulation also exercises the wire format.
"""

import heapq
import random

from zope.interface import implementer

from raftmux.memberlist.core import (
    BroadcastDone,
    MemberlistCore,
    NodeJoined,
    NodeLeft,
    NodeUpdated,
    OpenStream,
    SendPacket,
    StreamReply,
    StreamResult,
)
from raftmux.memberlist.delegate import IDelegate
from raftmux.memberlist.queue import SimpleBroadcast, TransmitLimitedQueue
from raftmux.memberlist.stream import StreamDecoder


@implementer(IDelegate)
class RecordingDelegate:
    """Meta, user broadcasts through a TransmitLimitedQueue, and what arrived."""

    def __init__(self, meta=b"", numNodes=lambda: 1, retransmitMult=3):
        self.meta = meta
        #: re-queue every new user message, as serf does with its own broadcasts
        self.rebroadcast = False
        self.received = []
        self.merged = []
        self.localStateValue = b""
        self.queue = TransmitLimitedQueue(numNodes, retransmitMult)

    def nodeMeta(self, limit):
        return self.meta

    def notifyMsg(self, data):
        if self.rebroadcast and bytes(data) not in self.received:
            self.queue.queueBroadcast(SimpleBroadcast(data))
        self.received.append(bytes(data))

    def getBroadcasts(self, overhead, limit):
        return self.queue.getBroadcasts(overhead, limit)

    def localState(self, join):
        return self.localStateValue

    def mergeRemoteState(self, data, join):
        self.merged.append((bytes(data), join))


class SimNode:
    def __init__(self, net, core, delegate):
        self.net = net
        self.core = core
        self.delegate = delegate
        self.address = "%s:%d" % (core.advertiseAddr, core.advertisePort)
        self.alive = True
        self.events = []
        self.results = {}
        self.done = []

    def handle(self, outputs):
        for out in outputs:
            if isinstance(out, SendPacket):
                self.net.sendPacket(self, out)
            elif isinstance(out, OpenStream):
                self.net.openStream(self, out)
            elif isinstance(out, StreamResult):
                self.results[out.streamId] = out.error
            elif isinstance(out, (NodeJoined, NodeLeft, NodeUpdated)):
                self.events.append((self.net.now, out))
            elif isinstance(out, BroadcastDone):
                self.done.append((self.net.now, out.tag))
            elif isinstance(out, StreamReply):
                raise AssertionError("a reply outside a stream")

    def view(self, name):
        """Our state for ``name`` (None when unknown)."""
        node = self.core.node(name)
        return node.state if node is not None else None


class SimNetwork:
    def __init__(self, seed=0, latency=0.002, loss=0.0):
        self.rng = random.Random(seed)
        self.now = 0.0
        self.latency = latency
        self.loss = loss
        self.nodes = {}
        self.byName = {}
        self.blocked = set()
        self._queue = []
        self._seq = 0
        self.packets = 0

    def add(self, config, meta=b"", port=None):
        port = port or 7000 + len(self.nodes)
        delegate = RecordingDelegate(meta)
        core = MemberlistCore(config, "127.0.0.1", port, delegate=delegate,
                              rng=random.Random(self.rng.random()))
        delegate.queue.numNodes = core.estNumNodes
        node = SimNode(self, core, delegate)
        self.nodes[node.address] = node
        self.byName[config.name] = node
        node.handle(core.start(self.now))
        return node

    def join(self, node, other):
        streamId, outputs = node.core.join(other.address, self.now)
        node.handle(outputs)
        return streamId

    def kill(self, node):
        node.alive = False
        node.core.stop()

    def partition(self, a, b):
        self.blocked.add(frozenset((a.address, b.address)))

    def heal(self):
        self.blocked.clear()

    def reachable(self, src, dstAddress):
        dst = self.nodes.get(dstAddress)
        return (dst is not None and dst.alive and src.alive
                and frozenset((src.address, dstAddress)) not in self.blocked)

    def _at(self, when, fn, *args):
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, fn, args))

    def sendPacket(self, src, out):
        self.packets += 1
        if self.loss and self.rng.random() < self.loss:
            return
        self._at(self.now + self.latency, self._deliver, src, out.address, out.data)

    def _deliver(self, src, address, data):
        if self.reachable(src, address):
            dst = self.nodes[address]
            dst.handle(dst.core.packetReceived(data, src.address, self.now))

    def openStream(self, src, out):
        if not self.reachable(src, out.address):
            # refused at once when the peer is down, timed out when cut off
            dst = self.nodes.get(out.address)
            delay = self.latency if dst is None or not dst.alive else out.timeout
            self._at(self.now + delay, self._streamFailed, src, out.streamId)
            return
        self._at(self.now + self.latency, self._streamArrives, src, out)

    def _streamFailed(self, src, streamId):
        if src.alive:
            src.handle(src.core.streamFailed(streamId, "connection failed", self.now))

    def _streamArrives(self, src, out):
        if not self.reachable(src, out.address):
            return self._streamFailed(src, out.streamId)
        dst = self.nodes[out.address]
        message = StreamDecoder().feed(out.data)
        outputs = dst.core.streamReceived(message, src.address, self.now)
        replies = [o for o in outputs if isinstance(o, StreamReply)]
        dst.handle([o for o in outputs if not isinstance(o, StreamReply)])
        if replies:
            self._at(self.now + self.latency, self._streamReply, src, out.streamId,
                     replies[0].data)
        else:
            self._at(self.now + self.latency, self._streamFailed, src, out.streamId)

    def _streamReply(self, src, streamId, data):
        if src.alive:
            src.handle(src.core.streamReplied(streamId, StreamDecoder().feed(data), self.now))

    def step(self):
        """Advance to the next event (a delivery or a node's timer); False when idle."""
        candidates = []
        if self._queue:
            candidates.append(self._queue[0][0])
        for node in self.nodes.values():
            if node.alive:
                deadline = node.core.nextDeadline()
                if deadline is not None:
                    candidates.append(deadline)
        if not candidates:
            return False
        self.now = max(self.now, min(candidates))
        while self._queue and self._queue[0][0] <= self.now:
            _, _, fn, args = heapq.heappop(self._queue)
            fn(*args)
        for node in list(self.nodes.values()):
            if node.alive:
                deadline = node.core.nextDeadline()
                if deadline is not None and deadline <= self.now:
                    node.handle(node.core.tick(self.now))
        return True

    def runUntil(self, predicate, limit):
        """Step until ``predicate()`` or ``limit`` simulated seconds pass; the predicate's value."""
        end = self.now + limit
        steps = 0
        while not predicate():
            if self.now > end or not self.step():
                return predicate()
            steps += 1
            if steps > 2000000:
                raise AssertionError("simulation did not settle")
        return True

    def runFor(self, seconds):
        end = self.now + seconds
        self.runUntil(lambda: self.now >= end, seconds + 1)
