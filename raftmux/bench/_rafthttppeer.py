"""
The two sides of the rafthttp benchmarks, each its own process:

    python -m raftmux.bench._rafthttppeer sender <mode> <count>
    python -m raftmux.bench._rafthttppeer receiver <mode> <count> <senderPort>

The sender prints its port, then reads the receiver's port from stdin.  The
receiver prints its port first and one JSON line with its figures last.
Modes: ``msgapp`` (MsgApp, one 128-byte entry, msgappv2 stream),
``message`` (the same MsgApp on the message stream), ``pipeline`` (POST
/raft, 4 in flight), ``raw`` (msgappv2 records over plain Twisted TCP).
"""

import json
import sys
import time

from twisted.internet import protocol, reactor
from twisted.web.server import Site
from zope.interface import implementer

from raftmux import raftpb
from raftmux._quiet import QuietClientFactory, QuietFactory
from raftmux.rafthttp import IRaft, Transport
from raftmux.rafthttp.codec import MsgAppV2Decoder, MsgAppV2Encoder
from raftmux.rafthttp.stream import MESSAGE, MSGAPP

SENDER, RECEIVER = 1, 2


def msgApp(i):
    return raftpb.Message(type=raftpb.MsgApp, to=RECEIVER, term=2, logTerm=2, index=i,
                          commit=i, entries=[raftpb.Entry(Term=2, Index=i + 1, Data=b"x" * 128)],
                          **{"from": SENDER})


@implementer(IRaft)
class Counter:
    def __init__(self, count, done):
        self.count = count
        self.seen = 0
        self.started = None
        self.done = done

    def process(self, message):
        if message.type == raftpb.MsgApp:
            self.seen += 1
            if self.seen == 1:
                self.started = time.perf_counter()
            elif self.seen == self.count:
                self.done(self.seen - 1, time.perf_counter() - self.started)

    def isIDRemoved(self, id):
        return False

    def reportUnreachable(self, id):
        pass

    def reportSnapshot(self, id, status):
        pass


def _transport(id, raft):
    site = Site(None)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    url = "http://127.0.0.1:%d" % (port.getHost().port,)
    t = Transport(id, 0xBE, [url], raft, reactor=reactor, probing=False)
    site.resource = t.resource()
    return t, port.getHost().port


class RawSender(protocol.Protocol):
    def connectionMade(self):
        self.encoder = MsgAppV2Encoder()
        self.index = 0
        self.transport.registerProducer(self, True)
        self.paused = False
        self.resumeProducing()

    def resumeProducing(self):
        self.paused = False
        while not self.paused and self.index < self.factory.count:
            # (the last batch may be short)
            batch = self.factory.messages[self.index:self.index + 256]
            parts = [self.encoder.encode(m) for m in batch]
            self.index += 256
            self.transport.write(b"".join(parts))

    def pauseProducing(self):
        self.paused = True

    def stopProducing(self):
        pass


class RawReceiver(protocol.Protocol):
    def connectionMade(self):
        self.decoder = MsgAppV2Decoder(RECEIVER, SENDER)

    def dataReceived(self, data):
        for m in self.decoder.receiveData(data):
            self.factory.raft.process(m)


def sender(mode, count):
    # Built up front: the figure is the transport's, not protobuf construction's.
    messages = [msgApp(i) for i in range(count)]
    if mode == "raw":
        factory = QuietFactory.forProtocol(RawSender)
        factory.count = count
        factory.messages = messages
        print(reactor.listenTCP(0, factory, interface="127.0.0.1").getHost().port, flush=True)
        reactor.run()
        return
    raft = Counter(count, lambda *a: None)
    t, port = _transport(SENDER, raft)
    print(port, flush=True)
    receiverPort = int(sys.stdin.readline())
    t.addPeer(RECEIVER, ["http://127.0.0.1:%d" % (receiverPort,)])
    peer = t.peer(RECEIVER)
    kind = MSGAPP if mode == "msgapp" else MESSAGE
    state = {"next": 0}

    def pump():
        writer = peer.writers[kind]
        if mode == "pipeline":
            pipeline = peer.pipeline
            while (state["next"] < count and
                   pipeline.pending < 64):
                pipeline.send(messages[state["next"]])
                state["next"] += 1
        elif writer.working and (mode != "message" or not peer.writers[MSGAPP].working):
            room = writer.queueSize - writer.queued
            batch = messages[state["next"]:state["next"] + room]
            state["next"] += len(batch)
            t.send(batch)
        if state["next"] < count:
            reactor.callLater(0 if state["next"] else 0.01, pump)

    pump()
    reactor.run()


def receiver(mode, count, senderPort):
    def done(n, seconds):
        print(json.dumps({"messages": n, "seconds": seconds, "perSecond": n / seconds}),
              flush=True)
        reactor.stop()

    def timeout():
        print(json.dumps({"error": "timed out after %d of %d" % (raft.seen, count)}), flush=True)
        reactor.stop()

    raft = Counter(count, done)
    reactor.callLater(120, timeout)
    if mode == "raw":
        factory = QuietClientFactory.forProtocol(RawReceiver)
        factory.raft = raft
        print(0, flush=True)
        reactor.connectTCP("127.0.0.1", senderPort, factory)
        reactor.run()
        return
    t, port = _transport(RECEIVER, raft)
    print(port, flush=True)
    t.addPeer(SENDER, ["http://127.0.0.1:%d" % (senderPort,)])
    if mode == "message":
        # Refuse nothing, but never dial msgapp: MsgApp then takes the message stream.
        t.peer(SENDER).readers[MSGAPP].stop()
    reactor.run()


if __name__ == "__main__":
    role, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if role == "sender":
        sender(mode, count)
    else:
        receiver(mode, count, int(sys.argv[4]))
