# -*- test-case-name: raftmux.test.test_memberlist_core -*-
"""
The suspicion timer of memberlist (``suspicion.go``, after Lifeguard):
a suspected node is declared dead at ``max`` seconds after the first
suspicion, brought down towards ``min`` as ``k`` independent peers confirm:
``max - log(n + 1) / log(k + 1) * (max - min)``.  Sans-IO: it computes a
deadline; the caller owns the clock and the timer.
"""

import math


def suspicionTimeout(suspicionMult, n, interval):
    """``mult * max(1, log10(max(1, n))) * interval``, kept to the millisecond as Go does."""
    nodeScale = max(1.0, math.log10(max(1.0, float(n))))
    return suspicionMult * int(nodeScale * 1000) * interval / 1000.0


def remainingSuspicionTime(n, k, elapsed, minimum, maximum):
    frac = math.log(n + 1.0) / math.log(k + 1.0)
    raw = maximum - frac * (maximum - minimum)
    timeout = math.floor(1000.0 * raw) / 1000.0
    if timeout < minimum:
        timeout = minimum
    return timeout - elapsed


class Suspicion:
    def __init__(self, fromNode, k, minimum, maximum, now):
        self.k = k
        self.n = 0
        self.minimum = minimum
        self.maximum = maximum
        self.start = now
        self.confirmations = {fromNode}
        self.deadline = now + (maximum if k >= 1 else minimum)

    def confirm(self, fromNode, now):
        """
        Count an independent confirmation; True when it was new (the caller
        then re-gossips it).  The deadline moves earlier, never past ``now``.
        """
        if self.n >= self.k or fromNode in self.confirmations:
            return False
        self.confirmations.add(fromNode)
        self.n += 1
        remaining = remainingSuspicionTime(self.n, self.k, now - self.start,
                                           self.minimum, self.maximum)
        self.deadline = now + max(0.0, remaining)
        return True
