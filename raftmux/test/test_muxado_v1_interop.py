# -*- test-case-name: raftmux.test.test_muxado_v1_interop -*-
"""
raftmux's muxado v1 sessions against the real Go v1 peer (Debian's
``golang-github-inconshreveable-muxado-dev``, built offline with our program
in ``raftmux/test/go/muxado1peer``), both ways round, over loopback TCP.

The Go client's scenarios run against ``raftmux.testing.muxadomirror`` (a
server that answers as the Go server role does); our client runs the same
checks against the Go server.  Everything skips, with the reason, where Go
or the Debian source is missing; CI installs both.
"""

import hashlib
import json
import os
from struct import Struct

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.error import ProcessDone
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from raftmux.muxado import (
    ErrorCode,
    MuxadoConfig,
    SessionClosed,
    StreamRefused,
    StreamReset,
    connectSession,
)
from raftmux.rafthttp.testing import waitFor as pollUntil
from raftmux.testing.gopeer import buildMuxado1Peer
from raftmux.testing.muxadomirror import GREETING, mirrorServerFactory

_typeAndPriority = Struct(">II")


class GoPeer(ProcessProtocol):
    """The Go program's JSON lines, as they come; ``exited`` fires with the exit code."""

    def __init__(self):
        self.lines = []
        self._waiters = []
        self._buf = b""
        self.stderr = b""
        self.exited = defer.Deferred()

    def outReceived(self, data):
        self._buf += data
        while b"\n" in self._buf:
            raw, self._buf = self._buf.split(b"\n", 1)
            line = json.loads(raw)
            self.lines.append(line)
            for test, d in list(self._waiters):
                if test(line):
                    self._waiters.remove((test, d))
                    d.callback(line)

    def errReceived(self, data):
        self.stderr = (self.stderr + data)[-8192:]

    def lineWhere(self, test):
        for line in self.lines:
            if test(line):
                return defer.succeed(line)
        d = defer.Deferred()
        self._waiters.append((test, d))
        return d

    def processEnded(self, reason):
        code = 0 if reason.check(ProcessDone) else reason.value.exitCode
        self.exited.callback(code)


class GoV1Tests(TestCase):
    timeout = 120

    def setUp(self):
        self.binary = buildMuxado1Peer()

    def spawn(self, *args):
        peer = GoPeer()
        process = reactor.spawnProcess(peer, self.binary, [self.binary] + list(args),
                                       env=dict(os.environ))

        def stop():
            if process.pid is not None:
                process.signalProcess("KILL")
            return peer.exited
        self.addCleanup(lambda: peer.exited.called or stop())
        return peer

    @defer.inlineCallbacks
    def goServer(self, *flags):
        peer = self.spawn("-serve", *flags)
        line = yield peer.lineWhere(lambda line: "listening" in line)
        return peer, line["listening"]

    @defer.inlineCallbacks
    def ourServer(self, config=None):
        factory = mirrorServerFactory(config)
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)

        def closeSessions():
            for session in list(factory.sessions):
                session.transport.abortConnection()
        self.addCleanup(closeSessions)
        return factory, port.getHost().port

    @defer.inlineCallbacks
    def goClient(self, port, scenario, *flags):
        """Run one Go client scenario against 127.0.0.1:port; its result line."""
        peer = self.spawn("-dial", "127.0.0.1:%d" % port, "-scenario", scenario, *flags)
        code = yield peer.exited
        result = peer.lines[-1] if peer.lines else {}
        self.assertTrue(result.get("ok") and code == 0,
                        "Go %s scenario failed (exit %s): %r %s" % (
                            scenario, code, result, peer.stderr.decode(errors="replace")))
        return result

    @defer.inlineCallbacks
    def ourClient(self, port, config=None, streamFactory=None):
        config = config or MuxadoConfig(version=1)
        session = yield connectSession(TCP4ClientEndpoint(reactor, "127.0.0.1", port),
                                       streamFactory, config)

        def close():
            if session.transport is not None and session.transport.connected:
                session.transport.abortConnection()
            return session.whenClosed()
        self.addCleanup(close)
        return session

    # -- the Go client against our server ------------------------------------------

    @defer.inlineCallbacks
    def test_goClientScenarios(self):
        """Echo x1000, 100 concurrent, half-close, RST, typed streams, accepting ours."""
        _, port = yield self.ourServer()
        echo = yield self.goClient(port, "echo", "-n", "1000")
        self.assertEqual(echo["n"], 1000)
        concurrent = yield self.goClient(port, "concurrent", "-n", "100")
        self.assertEqual(concurrent["echoed"], 100)
        yield self.goClient(port, "halfclose")
        rst = yield self.goClient(port, "rst")
        self.assertEqual((rst["extensionRst"], rst["closedStreamRst"]), (4, 4))
        typed = yield self.goClient(port, "typed")
        self.assertEqual(len(typed["cases"]), 5)
        accepted = yield self.goClient(port, "accept", "-n", "3", "-type", "9",
                                       "-priority", "4")
        self.assertEqual(accepted["accepted"], 3)

    @defer.inlineCallbacks
    def test_goClientBulk64MiB(self):
        """64 MiB each way on one stream, windows respected both ways."""
        _, port = yield self.ourServer()
        result = yield self.goClient(port, "bulk", "-size", str(64 * 1024 * 1024))
        self.assertEqual(result.get("received"), 64 * 1024 * 1024)

    @defer.inlineCallbacks
    def test_goClientSeesOurGoAway(self):
        """Our GOAWAY (a correct frame): Go can open no more, its earlier stream goes on."""
        _, port = yield self.ourServer()
        result = yield self.goClient(port, "goaway")
        self.assertTrue(result["remoteGoneAway"])
        self.assertTrue(result["existingStreamWorks"])

    # -- our client against the Go server ------------------------------------------

    @defer.inlineCallbacks
    def test_ourClientEchoesAThousandStreams(self):
        _, port = yield self.goServer()
        session = yield self.ourClient(port)
        for i in range(1000):
            reader = Reader()
            yield session.openStream(reader)
            reader.transport.write(b"%04d" % i)
            reader.transport.loseWriteConnection()
            self.assertEqual((yield reader.done), b"%04d" % i)

    @defer.inlineCallbacks
    def test_ourClientConcurrentAndHalfClose(self):
        _, port = yield self.goServer()
        session = yield self.ourClient(port)
        readers = [Reader() for _ in range(100)]
        for i, reader in enumerate(readers):
            yield session.openStream(reader)
            reader.transport.write(b"stream %d " % i * 200)
            reader.transport.loseWriteConnection()
        got = yield defer.gatherResults([r.done for r in readers])
        self.assertEqual(got, [b"stream %d " % i * 200 for i in range(100)])

    @defer.inlineCallbacks
    def test_ourClientBulk64MiB(self):
        _, port = yield self.goServer()
        session = yield self.ourClient(port)
        size = 64 * 1024 * 1024
        reader = Reader(keep=False)
        yield session.openStream(reader)
        block = bytes(range(256)) * 256
        sender = BlockSender(reader.transport, block, size // len(block))
        reader.transport.registerProducer(sender, False)
        total = yield reader.done
        self.assertEqual(total, size)
        self.assertEqual(reader.digest.digest(), sender.digest.digest())

    @defer.inlineCallbacks
    def test_ourClientTypedStreamsAndServerOpened(self):
        _, port = yield self.goServer()
        opened = []
        session = yield self.ourClient(port, streamFactory=Factory.forProtocol(
            lambda: Collector(opened)))
        reader = Reader()
        yield session.openStream(reader, streamType=0x1234, priority=7)
        reader.transport.write(b"typed")
        reader.transport.loseWriteConnection()
        got = yield reader.done
        self.assertEqual(got[:8], _typeAndPriority.pack(0x1234, 7))
        self.assertEqual(got[8:], b"typed")
        # The Go server opens typed streams to us (OPEN n type priority).
        ctl = Reader()
        yield session.openStream(ctl)
        ctl.transport.write(b"OPEN 2 77 3\n")
        yield waitFor(lambda: len(opened) == 2 and all(c.data.startswith(GREETING)
                                                         for c in opened))
        self.assertEqual([(c.transport.streamType, c.transport.priority) for c in opened],
                         [(77, 3), (77, 3)])

    @defer.inlineCallbacks
    def test_resetsBothWays(self):
        _, port = yield self.goServer()
        session = yield self.ourClient(port)
        # Go resets: it closed the stream, our next DATA gets RST StreamClosed.
        reader = Reader()
        yield session.openStream(reader)
        reader.transport.write(b"RST\n")
        yield waitFor(lambda: reader.data == b"OK\n")
        for _ in range(50):
            if reader.reason is not None:
                break
            reader.transport.write(b"data")
            yield sleep(0.02)
        reader.reason.trap(StreamReset)
        self.assertEqual(reader.reason.value.code, ErrorCode.STREAM_CLOSED)
        # We reset: the Go server's session sees RST Cancel (v1 code 7).
        goServer, port = yield self.goServer()
        session = yield self.ourClient(port)
        victim = Reader()
        yield session.openStream(victim)
        victim.transport.write(b"x")
        yield waitFor(lambda: victim.data == b"x")
        victim.transport.abortConnection()
        session.close()
        end = yield goServer.lineWhere(lambda line: line.get("event") == "session-end")
        self.assertEqual(end["rstReceived"], {"7": 1})

    @defer.inlineCallbacks
    def test_goAwaysFromGo(self):
        """Go's public GoAway (its short frame) is acted on at once; Close ends the session."""
        _, port = yield self.goServer()
        session = yield self.ourClient(port)
        early = Reader()
        yield session.openStream(early)
        early.transport.write(b"ping")
        yield waitFor(lambda: early.data == b"ping")
        ctl = Reader()
        yield session.openStream(ctl)
        ctl.transport.write(b"GOAWAY 0 bye\n")
        for _ in range(100):
            if not session.isOpen:
                break
            yield sleep(0.02)
        self.assertFalse(session.isOpen)
        yield self.assertFailure(session.openStream(Reader()), StreamRefused)
        early.transport.write(b"pong")  # a stream below the last stream ID goes on
        yield waitFor(lambda: early.data == b"pingpong")
        # Close(): Go's GOAWAY then the transport; our session ends cleanly.
        _, port = yield self.goServer()
        session = yield self.ourClient(port)
        ctl = Reader()
        yield session.openStream(ctl)
        ctl.transport.write(b"CLOSE\n")
        closed = yield session.whenClosed()
        self.assertIsInstance(closed, SessionClosed)
        self.assertEqual(closed.remoteCode, ErrorCode.NO_ERROR)

    # -- heartbeats ---------------------------------------------------------------

    @defer.inlineCallbacks
    def test_idleSessionsKeptAliveThirtySeconds(self):
        """Both ways at once: Go's heartbeat to us and ours to Go, 30 s of idleness."""
        _, ourPort = yield self.ourServer()
        _, goPort = yield self.goServer()
        beats = []
        session = yield self.ourClient(goPort, MuxadoConfig(
            version=1, onHeartbeat=lambda rtt, timedOut: beats.append(timedOut)))
        goIdle = self.goClient(ourPort, "idle", "-seconds", "30")
        yield sleep(30)
        self.assertTrue(session.isOpen)
        reader = Reader()
        yield session.openStream(reader)
        reader.transport.write(b"still here")
        reader.transport.loseWriteConnection()
        self.assertEqual((yield reader.done), b"still here")
        self.assertGreaterEqual(len(beats), 8)
        self.assertNotIn(True, beats)
        yield goIdle

    @defer.inlineCallbacks
    def test_peerThatStopsEchoingIsDropped(self):
        _, port = yield self.goServer("-noheartbeat-echo")
        session = yield self.ourClient(port, MuxadoConfig(
            version=1, heartbeatInterval=0.5, heartbeatTolerance=1.0))
        closed = yield session.whenClosed()
        self.assertEqual(closed.localCode, ErrorCode.HEARTBEAT_TIMEOUT)


# -- helpers --------------------------------------------------------------------------


@implementer(IHalfCloseableProtocol)
class Reader(Protocol):
    """Reads to the peer's FIN; ``done`` fires with the bytes (or their count)."""

    def __init__(self, keep=True):
        self.keep = keep
        self.data = b""
        self.count = 0
        self.digest = hashlib.md5()
        self.reason = None
        self.done = defer.Deferred()

    def dataReceived(self, data):
        self.count += len(data)
        self.digest.update(data)
        if self.keep:
            self.data += data

    def readConnectionLost(self):
        if not self.done.called:
            self.done.callback(self.data if self.keep else self.count)

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason):
        self.reason = reason
        if not self.done.called:
            self.done.errback(reason)
            self.done.addErrback(lambda _: None)


class Collector(Protocol):
    def __init__(self, into):
        self.data = b""
        into.append(self)

    def dataReceived(self, data):
        self.data += data
        if data.endswith(GREETING):
            self.transport.write(b"echo me")


class BlockSender:
    """A pull producer writing ``count`` blocks, then half-closing."""

    def __init__(self, transport, block, count):
        self.transport = transport
        self.block = block
        self.left = count
        self.digest = hashlib.md5()

    def resumeProducing(self):
        if self.left == 0:
            return
        self.left -= 1
        self.digest.update(self.block)
        self.transport.write(self.block)
        if self.left == 0:
            self.transport.unregisterProducer()
            self.transport.loseWriteConnection()

    def stopProducing(self):
        self.left = 0


def sleep(seconds):
    return deferLater(reactor, seconds, lambda: None)


def waitFor(condition, timeout=20):
    """Poll ``condition`` on the reactor, a bounded number of times."""
    return defer.ensureDeferred(pollUntil(reactor, condition, timeout=timeout))
