# -*- test-case-name: raftmux.test.test_muxado_window -*-
"""Receive windows that grow when the peer is window-bound, within bounds."""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.muxado import connection as ev
from raftmux.muxado.connection import MuxadoConnection
from raftmux.muxado.frames import FrameDecoder, WndInc, encodeData
from raftmux.muxado.v1connection import MuxadoV1Connection
from raftmux.muxado.v1frames import encodeData as v1Data
from raftmux.muxado.v1frames import encodeSyn as v1Syn
from raftmux.muxado.window import STREAK, ReceiveWindow, WindowTuner


class WindowTests(SynchronousTestCase):
    def test_creditInQuarterBatches(self):
        tuner = WindowTuner(1000)
        window = tuner.newWindow()
        self.assertTrue(window.receive(300))
        self.assertEqual(window.consume(200, tuner), 0)
        self.assertEqual(window.consume(100, tuner), 300)
        self.assertEqual(window.outstanding, 0)

    def test_saturatedWindowDoublesOutOfTheBudget(self):
        tuner = WindowTuner(1000, maxWindow=4000, budget=1500)
        window = tuner.newWindow()
        self.assertTrue(window.receive(950))          # the peer used nearly all of it
        self.assertEqual(window.consume(950, tuner), 950 + 1000)
        self.assertEqual((window.size, tuner.available), (2000, 500))
        self.assertTrue(window.receive(1900))
        self.assertEqual(window.consume(1900, tuner), 1900 + 500)   # the budget's rest
        self.assertEqual((window.size, tuner.available), (2500, 0))
        tuner.release(window)
        self.assertEqual(tuner.available, 1500)

    def test_growthStopsAtMaxWindow(self):
        tuner = WindowTuner(1000, maxWindow=1500, budget=10 ** 9)
        window = tuner.newWindow()
        window.receive(1000)
        window.consume(1000, tuner)
        self.assertEqual(window.size, 1500)

    def test_unsaturatedOrUnconsumedNeverGrows(self):
        tuner = WindowTuner(1000, maxWindow=8000, budget=8000)
        window = tuner.newWindow()
        window.receive(500)
        self.assertEqual(window.consume(500, tuner), 500)       # not window-bound
        window.receive(1000)                                      # the app does not read
        self.assertEqual(window.size, 1000)
        self.assertFalse(window.receive(1))                       # and the limit holds

    def test_busyStreamGrowsAfterAStreak(self):
        """
        A peer that never came near the end of the window, but has kept the
        stream busy for STREAK windows while we kept up, gets it doubled;
        nothing grows before that, nor for a stream told not to grow.
        """
        tuner = WindowTuner(1000, maxWindow=8000, budget=8000)
        window = tuner.newWindow()
        for _ in range(STREAK * 4 - 1):
            window.receive(250)
            self.assertEqual(window.consume(250, tuner), 250)
        self.assertEqual(window.size, 1000)
        window.receive(250)
        self.assertEqual(window.consume(250, tuner), 250 + 1000)
        self.assertEqual((window.size, tuner.available), (2000, 7000))
        held = tuner.newWindow()
        for _ in range(STREAK * 8):
            held.receive(250)
            held.consume(250, tuner, mayGrow=False)
        self.assertEqual(held.size, 1000)

    def test_fixedThreshold(self):
        window = ReceiveWindow(1000, threshold=10)
        window.receive(10)
        self.assertEqual(window.consume(10, WindowTuner(1000)), 10)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 3000)), max_size=60),
           st.integers(0, 20000))
    def test_boundsHold(self, steps, budget):
        """Whatever the peer sends and we consume: never past size, budget never overdrawn."""
        tuner = WindowTuner(1000, maxWindow=16000, budget=budget)
        window = tuner.newWindow()
        credit = window.size     # what the peer believes it may send
        pending = 0              # received, not yet consumed
        for sent, consumed in steps:
            sent = min(sent, credit)
            self.assertTrue(window.receive(sent))
            credit -= sent
            pending += sent
            consumed = min(consumed, pending)
            pending -= consumed
            credit += window.consume(consumed, tuner)
            self.assertLessEqual(window.outstanding, window.size)
            self.assertEqual(credit + window.outstanding, window.size)
            self.assertGreaterEqual(tuner.available, 0)
            self.assertLessEqual(window.size, 16000)
        self.assertEqual(window.size - 1000 + tuner.available, budget)


class ConnectionGrowthTests(SynchronousTestCase):
    """Both generations grant past the fixed window once the peer is held back."""

    def credits(self, frames):
        return [f.increment for f in frames if isinstance(f, WndInc)]

    def test_v2(self):
        conn = MuxadoConnection(client=False, window=1000, maxWindow=4000, windowBudget=4000)
        events = conn.receiveData(encodeData(3, b"x" * 950, syn=True))
        self.assertIsInstance(events[0], ev.StreamOpened)
        conn.acknowledgeReceivedData(3, 950)
        self.assertEqual(self.credits(FrameDecoder().receiveData(b"".join(conn.dataToSend()))),
                         [1950])
        # The grown window is the new limit: 1950 more fit, one byte past it does not.
        self.assertEqual([e.__class__ for e in conn.receiveData(encodeData(3, b"y" * 1999))],
                         [ev.DataReceived])
        events = conn.receiveData(encodeData(3, b"z" * 2))
        self.assertEqual([e.__class__ for e in events], [ev.StreamReset])

    def test_v1(self):
        conn = MuxadoV1Connection(client=False, window=1000, maxWindow=4000, windowBudget=4000)
        conn.receiveData(v1Syn(3) + v1Data(3, b"x" * 950))
        conn.acknowledgeReceivedData(3, 950)
        from raftmux.muxado.v1frames import FrameDecoder as V1Decoder
        from raftmux.muxado.v1frames import WndInc as V1WndInc
        increments = [f.increment for f in V1Decoder().receiveData(b"".join(conn.dataToSend()))
                      if isinstance(f, V1WndInc)]
        self.assertEqual(increments, [1950])

    def test_budgetReturnsWhenTheStreamEnds(self):
        conn = MuxadoConnection(client=False, window=1000, maxWindow=4000, windowBudget=1000)
        conn.receiveData(encodeData(3, b"x" * 950, syn=True))
        conn.acknowledgeReceivedData(3, 950)
        conn.resetStream(3)
        conn.receiveData(encodeData(5, b"x" * 950, syn=True))
        conn.dataToSend()
        conn.acknowledgeReceivedData(5, 950)
        self.assertEqual(self.credits(FrameDecoder().receiveData(b"".join(conn.dataToSend()))),
                         [1950])

    def test_echoingStreamKeepsItsWindow(self):
        """A stream whose own sends wait for the peer's credit does not grow its window."""
        conn = MuxadoConnection(client=False, window=1000, maxWindow=4000, windowBudget=4000)
        conn.receiveData(encodeData(3, b"x" * 950, syn=True))
        conn.dataToSend()
        self.assertEqual(conn.sendData(3, b"y" * 1500), 1000)   # cut short by the peer's window
        conn.dataToSend()
        conn.acknowledgeReceivedData(3, 950)
        self.assertEqual(self.credits(FrameDecoder().receiveData(b"".join(conn.dataToSend()))),
                         [950])
        # Once its sends flow again (no new cut), saturation grows it as usual.
        conn.receiveData(encodeData(3, b"x" * 950))
        conn.acknowledgeReceivedData(3, 950)
        self.assertEqual(self.credits(FrameDecoder().receiveData(b"".join(conn.dataToSend()))),
                         [1950])
