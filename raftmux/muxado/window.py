# -*- test-case-name: raftmux.test.test_muxado_window -*-
"""
The receiving half of muxado flow control, for both generations, with
receiver-side window growth.

Neither generation negotiates a window: each peer starts every stream
assuming the other's is the fixed default (v2 256 KiB, v1 64 KiB), and a
sender adds every WNDINC increment to its window without a cap (Go does, in
both generations).  So a receiver may grant more than the default, and
raise its own overrun limit by as much, without the sender knowing.

That pays when the sender is window-bound: one window per round trip is
all a stream can carry, whatever the link could.  It does not when the
stream's own sends also wait for the peer's credit (an echo, a
request/response pipeline): the peer's data we invite would queue ahead of
that credit on the one connection and delay it, so such a stream (whose
sends were cut short by the peer's window since its last credit) keeps its
window.  Like gRPC's BDP estimation, but without pings (muxado has none),
a stream's window is doubled when the peer has used nearly all of it
before our credit came back (``saturated``) while our application kept up
(credit is only given for bytes the application took), or when the peer
has kept the stream busy for ``STREAK`` windows since the window last
grew: a sender learns of our credit only when its reactor next reads, so
on a quiet machine it waits on the window although, seen from here, the
window never looked nearly used (bench muxado bulk: about 0.5x -> median
1.26x of raw TCP).  A paused application never grows its window.  Growth
is bounded per stream (``maxWindow``) and per session (``budget``, shared
by all streams and handed back when a stream ends), so memory stays
bounded: at most initial windows plus the budget.
"""

__all__ = ["ReceiveWindow", "WindowTuner"]

#: windows' worth of data, credited since the window last grew, that grow it
STREAK = 4


class ReceiveWindow:
    """One stream's receive window: what the peer may still send us."""

    __slots__ = ("size", "outstanding", "consumed", "saturated", "carried", "_threshold")

    def __init__(self, size, threshold=None):
        self.size = size                # the peer's credit when we last granted all
        self.outstanding = 0            # received and not yet credited back
        self.consumed = 0               # of those, taken by the application
        self.saturated = False          # the peer came close to the end of its window
        self.carried = 0                # credited since the window last grew
        self._threshold = threshold     # fixed credit batch, or None for size // 4

    def receive(self, length):
        """Account ``length`` arriving bytes; False if they overrun the window."""
        outstanding = self.outstanding + length
        size = self.size
        if outstanding > size:
            return False
        self.outstanding = outstanding
        if outstanding > size - (size >> 3):
            self.saturated = True
        return True

    def consume(self, count, tuner, mayGrow=True):
        """
        The application took ``count`` bytes: the increment to grant now (0
        while less than a batch is owed), grown by ``tuner`` if saturated
        and ``mayGrow``.
        """
        consumed = self.consumed + count
        threshold = self._threshold
        if consumed < (self.size >> 2 if threshold is None else threshold) or consumed <= 0:
            self.consumed = consumed
            return 0
        self.consumed = 0
        self.outstanding -= consumed
        self.carried += consumed
        if self.saturated or self.carried >= STREAK * self.size:
            self.saturated = False
            self.carried = 0
            grow = tuner.grant(self.size) if mayGrow else 0
            if grow:
                self.size += grow
                consumed += grow
        return consumed


class WindowTuner:
    """A session's allowance for growing stream windows past ``initial``."""

    __slots__ = ("initial", "maxWindow", "available", "threshold")

    def __init__(self, initial, maxWindow=None, budget=0, threshold=None):
        self.initial = initial
        self.maxWindow = max(initial, maxWindow or initial)
        self.available = budget
        self.threshold = threshold

    def newWindow(self):
        return ReceiveWindow(self.initial, self.threshold)

    def grant(self, size):
        """How much a saturated window of ``size`` may grow now (doubling at most)."""
        grow = min(size, self.maxWindow - size, self.available)
        if grow <= 0:
            return 0
        self.available -= grow
        return grow

    def release(self, window):
        """A stream ended: its growth goes back to the session's allowance."""
        self.available += window.size - self.initial
