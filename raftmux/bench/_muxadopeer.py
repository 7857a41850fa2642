"""
The two sides of the muxado benchmarks, each run as its own process:

    python -m raftmux.bench._muxadopeer server raw|muxado|mirror
    python -m raftmux.bench._muxadopeer client <test> raw|muxado <port> [args]

A server prints its port on its first line; a client prints one JSON line
with its figures.  ``raw`` is plain Twisted TCP, the baseline.
"""

import os
import resource
import sys
import time

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from zope.interface import implementer

from raftmux._quiet import QuietFactory
from raftmux.bench._harness import runAndReport
from raftmux.muxado import MuxadoConfig, MuxadoServerFactory, connectSession
from raftmux.testing.muxadomirror import mirrorServerFactory

# Benchmarks run with Go's defaults; RAFTMUX_BENCH_WINDOW overrides the window
# on both sides, to see how much of a figure is the window's doing.
CONFIG = MuxadoConfig(
    maxWindowSize=int(os.environ.get("RAFTMUX_BENCH_WINDOW", 0x40000)),
    windowUpdateThreshold=int(os.environ.get("RAFTMUX_BENCH_THRESHOLD", 0)) or None)

CHUNK = b"x" * 65536


@implementer(IHalfCloseableProtocol)
class Server(protocol.Protocol):
    """A stream's server side: 4-byte messages are echoed, bulk is counted."""

    def connectionMade(self):
        self.count = 0
        self.small = None

    def dataReceived(self, data):
        if self.small is None:
            self.small = data.startswith(b"ping")
        if self.small:
            self.transport.write(data)
        else:
            self.count += len(data)

    def readConnectionLost(self):
        if not self.small:
            self.transport.write(b"%d\n" % (self.count,))
        self.transport.loseConnection()

    def writeConnectionLost(self):
        pass


def serve(mode):
    streamFactory = QuietFactory.forProtocol(Server)
    if mode == "mirror":
        # What the Go v1 test peer's client expects of a server (either generation).
        factory = mirrorServerFactory()
    elif mode == "raw":
        factory = streamFactory
    else:
        factory = MuxadoServerFactory(streamFactory, CONFIG)
    d = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)

    def ready(port):
        print(port.getHost().port, flush=True)
    d.addCallback(ready)
    reactor.run()


@implementer(IPushProducer, IHalfCloseableProtocol)
class BulkWriter(protocol.Protocol):
    """Write ``total`` bytes as fast as the transport takes them, then half-close."""

    def __init__(self, total, done):
        self.total = total
        self.done = done
        self.paused = False
        self.reply = b""

    def connectionMade(self):
        self.sent = 0
        self.transport.registerProducer(self, True)
        if not self.paused:       # registering may pause us at once
            self.resumeProducing()

    def resumeProducing(self):
        self.paused = False
        while not self.paused and self.sent < self.total:
            self.transport.write(CHUNK)
            self.sent += len(CHUNK)
        if self.sent >= self.total and self.transport is not None:
            self.transport.unregisterProducer()
            self.transport.loseWriteConnection()

    def pauseProducing(self):
        self.paused = True

    def stopProducing(self):
        self.paused = True

    def dataReceived(self, data):
        self.reply += data

    def readConnectionLost(self):
        self.transport.loseConnection()

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason):
        if not self.done.called:
            self.done.callback(self.reply)


class PingOnce(protocol.Protocol):
    def __init__(self, done):
        self.done = done
        self.got = b""

    def connectionMade(self):
        self.transport.write(b"ping")

    def dataReceived(self, data):
        self.got += data
        if len(self.got) >= 4:
            self.transport.loseConnection()

    def connectionLost(self, reason):
        if not self.done.called:
            self.done.callback(self.got)


class PingPong(PingOnce):
    """``count`` 4-byte echoes one after another on one connection."""

    def __init__(self, count, done):
        super().__init__(done)
        self.left = count

    def connectionLost(self, reason):
        if not self.done.called:
            self.done.errback(reason)

    def dataReceived(self, data):
        self.got += data
        while len(self.got) >= 4 and self.left:
            if self.got[:4] != b"ping":
                self.transport.abortConnection()
                self.done.errback(RuntimeError("bad echo %r" % (self.got[:4],)))
                return
            self.got = self.got[4:]
            self.left -= 1
            if self.left:
                self.transport.write(b"ping")
            else:
                self.transport.loseConnection()
                self.done.callback(None)


def _opener(mode, port):
    """A function that returns a Deferred connecting a protocol: new TCP or new stream."""
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    if mode == "raw":
        def connect(proto):
            return endpoint.connect(QuietFactory.forProtocol(lambda: proto))
        return defer.succeed(connect)
    return connectSession(endpoint, config=CONFIG).addCallback(lambda session: session.openStream)


@defer.inlineCallbacks
def bulk(mode, port, total):
    connect = yield _opener(mode, port)
    done = defer.Deferred()
    start = time.perf_counter()
    yield connect(BulkWriter(total, done))
    reply = yield done
    elapsed = time.perf_counter() - start
    if int(reply.strip() or 0) != total:
        raise RuntimeError("server counted %r of %d bytes" % (reply, total))
    return {"bytesPerSecond": total / elapsed, "seconds": elapsed}


@defer.inlineCallbacks
def openEcho(mode, port, count):
    connect = yield _opener(mode, port)
    start = time.perf_counter()
    for _ in range(count):
        done = defer.Deferred()
        yield connect(PingOnce(done))
        got = yield done
        if got != b"ping":
            raise RuntimeError("bad echo %r" % (got,))
    elapsed = time.perf_counter() - start
    return {"perSecond": count / elapsed, "seconds": elapsed}


@defer.inlineCallbacks
def pingPong(mode, port, count):
    """4-byte echoes, one after another, on one connection opened beforehand."""
    connect = yield _opener(mode, port)
    done = defer.Deferred()
    start = time.perf_counter()
    yield connect(PingPong(count, done))
    yield done
    elapsed = time.perf_counter() - start
    return {"perSecond": count / elapsed, "seconds": elapsed}


@defer.inlineCallbacks
def concurrent(mode, port, streams, each):
    connect = yield _opener(mode, port)
    start = time.perf_counter()
    waits = []
    for _ in range(streams):
        done = defer.Deferred()
        yield connect(BulkWriter(each, done))
        waits.append(done)
    replies = yield defer.gatherResults(waits)
    elapsed = time.perf_counter() - start
    bad = [r for r in replies if int(r.strip() or 0) != each]
    if bad:
        raise RuntimeError("%d streams incomplete" % (len(bad),))
    return {"seconds": elapsed, "bytesPerSecond": streams * each / elapsed}


def client(test, mode, port, *args):
    tests = {"bulk": bulk, "open": openEcho, "pingpong": pingPong, "concurrent": concurrent}
    def rss():
        return {"clientMaxRSSKiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    return runAndReport(lambda: tests[test](mode, int(port), *map(int, args)), rss)


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "server":
        serve(sys.argv[2])
    else:
        sys.exit(client(*sys.argv[2:]))
