# -*- test-case-name: raftmux.test.test_httpbody -*-
"""``raftmux.httpbody``: the one bounded reader of HTTP response bodies."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from raftmux.httpbody import BodyTooLarge, BytesProducer, discardBody, readBody


class _Producer:
    """The body's transport: records ``stopProducing``."""

    def __init__(self):
        self.stopped = 0

    def stopProducing(self):
        self.stopped += 1

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass


class FakeResponse:
    """A response whose body arrives when the test says."""

    def __init__(self):
        self.protocol = None
        self.producer = _Producer()

    def deliverBody(self, protocol):
        self.protocol = protocol
        protocol.makeConnection(self.producer)

    def feed(self, *chunks):
        for chunk in chunks:
            self.protocol.dataReceived(chunk)

    def end(self, reason=None):
        self.protocol.connectionLost(Failure(reason or ResponseDone()))


class ReadBodyTests(SynchronousTestCase):

    def test_wholeBodyUpToTheLimit(self):
        response = FakeResponse()
        d = readBody(response, 10)
        response.feed(b"12345", b"67890")
        self.assertNoResult(d)
        response.end()
        self.assertEqual(self.successResultOf(d), b"1234567890")
        self.assertEqual(response.producer.stopped, 0)

    def test_overTheLimitFailsAtOnce(self):
        """One byte over: ``BodyTooLarge`` now, the connection dropped, nothing kept."""
        response = FakeResponse()
        d = readBody(response, 10)
        response.feed(b"123456", b"78901")
        failure = self.failureResultOf(d, BodyTooLarge)
        self.assertEqual((failure.value.limit, failure.value.received), (10, 11))
        self.assertIn("larger than 10 bytes", str(failure.value))
        self.assertEqual(response.producer.stopped, 1)
        # What follows the drop changes nothing.
        response.feed(b"more")
        response.end(ConnectionLost())
        self.assertEqual(response.protocol.parts, [])

    def test_potentialDataLossIsAnEnd(self):
        response = FakeResponse()
        d = readBody(response, 100)
        response.feed(b"abc")
        response.end(PotentialDataLoss())
        self.assertEqual(self.successResultOf(d), b"abc")

    def test_connectionLostFails(self):
        response = FakeResponse()
        d = readBody(response, 100)
        response.feed(b"abc")
        response.end(ConnectionLost())
        self.failureResultOf(d, ConnectionLost)

    def test_cancelDropsTheConnection(self):
        response = FakeResponse()
        d = readBody(response, 100)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(response.producer.stopped, 1)
        response.end()

    def test_aLimitIsRequired(self):
        for bad in (None, -1):
            self.assertRaises(ValueError, readBody, FakeResponse(), bad)

    def test_discardKeepsNothingAndNeverFails(self):
        response = FakeResponse()
        d = discardBody(response)
        response.feed(b"x" * 100000, b"y" * 100000)
        self.assertEqual(response.protocol.parts, [])
        response.end(ConnectionLost())
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(response.producer.stopped, 0)

    @given(st.lists(st.binary(max_size=50), max_size=20), st.integers(0, 300))
    def test_anyChunking(self, chunks, limit):
        """Bytes up to the limit come back whole; past it, ``BodyTooLarge``."""
        response = FakeResponse()
        d = readBody(response, limit)
        response.feed(*chunks)
        response.end()
        data = b"".join(chunks)
        if len(data) <= limit:
            self.assertEqual(self.successResultOf(d), data)
        else:
            self.failureResultOf(d, BodyTooLarge)


class BytesProducerTests(SynchronousTestCase):

    def test_writesOnce(self):
        written = []

        class Consumer:
            def write(self, data):
                written.append(data)
        producer = BytesProducer(b"body")
        self.assertEqual(producer.length, 4)
        self.successResultOf(producer.startProducing(Consumer()))
        self.assertEqual(written, [b"body"])
