# -*- test-case-name: raftmux.test.test_streamtransport -*-
"""
The stream-transport base against a scripted host: every mechanism the
multiplexers share (window-limited sending and its queue, producers, read
pause and credit, half-close, connectionLost after the call, holding a
stream's first bytes), checked once here, without any framing.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from raftmux.streamtransport import HIGH_WATER, IStreamHost, StreamTransport


@implementer(IStreamHost)
class Host:
    """Frames nothing: records what a multiplexer would have been asked to do."""

    def __init__(self, window=1000):
        self.window = window
        self.sent = []
        self.credited = 0
        self.calls = []
        self.writable = True
        self.waiting = set()
        self.soon = []
        self.gone = []

    def sendStreamData(self, stream, data):
        n = min(self.window, len(data))
        self.window -= n
        if n:
            self.sent.append(bytes(data[:n]))
        return n

    def creditStream(self, stream, count):
        self.credited += count

    def endStream(self, stream):
        self.calls.append("end")
        return False

    def closeStream(self, stream):
        self.calls.append("close")

    def resetStream(self, stream):
        self.calls.append("reset")

    def flush(self):
        pass

    def isWritable(self):
        return self.writable

    def setWaiting(self, stream, waiting):
        (self.waiting.add if waiting else self.waiting.discard)(stream)

    def streamGone(self, stream):
        self.gone.append(stream)

    def callSoon(self, f, *args):
        self.soon.append((f, args))

    def runSoon(self):
        soon, self.soon = self.soon, []
        for f, args in soon:
            f(*args)

    def getPeer(self):
        return "peer"

    def getHost(self):
        return "host"

    def grant(self, stream, n):
        self.window += n
        stream.windowOpened()


class Recorder(Protocol):
    def __init__(self):
        self.data = b""
        self.reason = None

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        self.reason = reason


@implementer(IHalfCloseableProtocol)
class HalfRecorder(Recorder):
    readLost = writeLost = False

    def readConnectionLost(self):
        self.readLost = True

    def writeConnectionLost(self):
        self.writeLost = True


@implementer(IPushProducer)
class Push:
    def __init__(self):
        self.events = []

    def pauseProducing(self):
        self.events.append("pause")

    def resumeProducing(self):
        self.events.append("resume")

    def stopProducing(self):
        self.events.append("stop")


def attached(protocol=None, window=1000):
    host = Host(window)
    stream = StreamTransport(host, 1)
    protocol = protocol or Recorder()
    stream.attach(protocol)
    return host, stream, protocol


class SendTests(SynchronousTestCase):
    def test_hostIsAnIStreamHost(self):
        verifyObject(IStreamHost, Host())

    def test_writeWithinWindowGoesAtOnce(self):
        host, stream, _ = attached()
        stream.write(b"abc")
        self.assertEqual(host.sent, [b"abc"])
        self.assertEqual(stream.pendingBytes, 0)

    def test_restWaitsForWindowInOrder(self):
        host, stream, _ = attached(window=4)
        stream.write(b"abcdef")
        stream.write(b"gh")
        self.assertEqual((host.sent, stream.pendingBytes), ([b"abcd"], 4))
        self.assertIn(stream, host.waiting)
        host.grant(stream, 100)
        self.assertEqual(b"".join(host.sent), b"abcdefgh")
        self.assertNotIn(stream, host.waiting)

    def test_queuesWhileTheTransportPushesBack(self):
        host, stream, _ = attached()
        host.writable = False
        stream.write(b"x")
        self.assertEqual((host.sent, stream.pendingBytes), ([], 1))
        host.writable = True
        stream.windowOpened()
        self.assertEqual(host.sent, [b"x"])

    def test_emptyAndClosedWritesAreDropped(self):
        host, stream, _ = attached()
        stream.write(b"")
        stream.loseWriteConnection()
        stream.write(b"late")
        self.assertEqual(host.sent, [])
        self.assertFalse(stream.writeOpen)

    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.binary(min_size=1, max_size=300), max_size=20),
           st.lists(st.integers(0, 400), max_size=30))
    def test_bytesArriveWholeAndInOrder(self, writes, grants):
        host, stream, _ = attached(window=0)
        for data in writes:
            stream.write(data)
        for n in grants:
            host.grant(stream, n)
        host.grant(stream, sum(map(len, writes)))
        self.assertEqual(b"".join(host.sent), b"".join(writes))
        self.assertEqual(stream.pendingBytes, 0)


class ProducerTests(SynchronousTestCase):
    def test_pushProducerPausedAtHighWaterAndResumed(self):
        host, stream, _ = attached(window=0)
        producer = Push()
        stream.registerProducer(producer, True)
        stream.write(b"x" * HIGH_WATER)
        self.assertEqual(producer.events, ["pause"])
        host.grant(stream, HIGH_WATER)
        self.assertEqual(producer.events, ["pause", "resume"])

    def test_pushProducerPausedWithTheTransport(self):
        host, stream, _ = attached()
        producer = Push()
        stream.registerProducer(producer, True)
        host.writable = False
        stream.writabilityChanged()
        host.writable = True
        stream.windowOpened()
        self.assertEqual(producer.events, ["pause", "resume"])

    def test_pullProducerDrivenInBoundedBursts(self):
        host, stream, _ = attached(window=10 ** 9)

        class Pull:
            calls = 0

            def resumeProducing(self):
                self.calls += 1
                stream.write(b"p")

            def stopProducing(self):
                pass
        producer = Pull()
        stream.registerProducer(producer, False)
        self.assertEqual(producer.calls, 64)   # one burst, then yield to the reactor
        host.runSoon()
        self.assertEqual(producer.calls, 128)

    def test_secondProducerRefused(self):
        _, stream, _ = attached()
        stream.registerProducer(Push(), True)
        self.assertRaises(RuntimeError, stream.registerProducer, Push(), True)

    def test_producerStoppedWhenTheStreamIsLost(self):
        _, stream, _ = attached()
        producer = Push()
        stream.registerProducer(producer, True)
        stream.streamLost(Failure(ConnectionDone()))
        self.assertEqual(producer.events, ["stop"])


class ReceiveTests(SynchronousTestCase):
    def test_deliveredBytesAreCredited(self):
        host, stream, protocol = attached()
        stream.dataReceived(b"abc", credit=5)
        self.assertEqual((protocol.data, host.credited), (b"abc", 5))

    def test_pausedStreamKeepsBytesUncredited(self):
        host, stream, protocol = attached()
        stream.pauseProducing()
        stream.dataReceived(b"abc")
        stream.readEnded()
        self.assertEqual((protocol.data, host.credited, stream.bufferedBytes), (b"", 0, 3))
        stream.resumeProducing()
        self.assertEqual((protocol.data, host.credited), (b"abc", 3))
        host.runSoon()
        protocol.reason.trap(ConnectionDone)  # FIN after the bytes: not half-closeable

    def test_bytesBeforeAttachWait(self):
        host = Host()
        stream = StreamTransport(host, 1)
        stream.dataReceived(b"early")
        self.assertEqual(host.credited, 0)
        protocol = Recorder()
        stream.attach(protocol)
        self.assertEqual((protocol.data, host.credited), (b"early", 5))

    def test_holdKeepsTheFirstBytesForTheHost(self):
        host, stream, protocol = attached()
        stream.hold()
        stream.dataReceived(b"\x00\x00\x00\x07rest")
        self.assertEqual(stream.receivedSoFar(), b"\x00\x00\x00\x07rest")
        stream.consumeReceived(4)
        stream.release()
        stream.resumeProducing()
        stream.pauseProducing()
        stream.resumeProducing()
        self.assertEqual(host.credited, 8)
        self.assertEqual(protocol.data, b"rest")

    def test_lostBeforeAttachStillTold(self):
        host = Host()
        stream = StreamTransport(host, 1)
        stream.streamLost(Failure(ConnectionDone()))
        protocol = Recorder()
        stream.attach(protocol)
        protocol.reason.trap(ConnectionDone)


class CloseTests(SynchronousTestCase):
    def test_loseConnectionAfterQueuedBytes(self):
        host, stream, protocol = attached(window=2)
        stream.write(b"abcd")
        stream.loseConnection()
        self.assertEqual(host.calls, [])
        host.grant(stream, 2)
        self.assertEqual((b"".join(host.sent), host.calls), (b"abcd", ["close"]))
        self.assertIsNone(protocol.reason)   # told after the call, as TCP does
        host.runSoon()
        protocol.reason.trap(ConnectionDone)
        self.assertEqual(host.gone, [stream])

    def test_halfCloseBothWays(self):
        host, stream, protocol = attached(HalfRecorder())
        stream.loseWriteConnection()
        self.assertEqual(host.calls, ["end"])
        self.assertTrue(protocol.writeLost)
        stream.readEnded()
        self.assertTrue(protocol.readLost)
        host.runSoon()
        protocol.reason.trap(ConnectionDone)

    def test_abortResets(self):
        host, stream, protocol = attached(window=0)
        stream.write(b"dropped")
        stream.abortConnection()
        self.assertEqual(host.calls, ["reset"])
        self.assertEqual(stream.pendingBytes, 0)
        host.runSoon()
        protocol.reason.trap(ConnectionAborted)

    def test_peerWillNotRead(self):
        host, stream, protocol = attached(HalfRecorder())
        stream.peerWillNotRead()
        stream.write(b"nobody reads this")
        self.assertEqual((host.sent, stream.pendingBytes), ([], 0))
        self.assertTrue(protocol.writeLost)

    def test_closeAfterTheStreamIsGoneSetsDisconnecting(self):
        """
        Found by fuzzing (node-port): a stream already gone (here reset)
        when its protocol answers a bad request and closes; LineReceiver
        then checks ``disconnecting`` to stop handling the rest of the bytes
        it was given, and twisted.web's HTTPChannel went on to a request it
        had never parsed (AttributeError).  Closing a gone stream, or one
        already half-closed for writing, sets ``disconnecting``.
        """
        host, stream, protocol = attached()
        stream.abortConnection()
        self.assertFalse(stream.disconnecting)
        stream.loseConnection()
        self.assertTrue(stream.disconnecting)

        host, stream, protocol = attached(HalfRecorder())
        stream.loseWriteConnection()
        self.assertFalse(stream.disconnecting)
        stream.loseConnection()
        self.assertTrue(stream.disconnecting)

    def test_addresses(self):
        _, stream, _ = attached()
        self.assertEqual((stream.getPeer(), stream.getHost()), ("peer", "host"))
