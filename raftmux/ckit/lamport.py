# -*- test-case-name: raftmux.test.test_ckit_messages -*-
"""
ckit's Lamport clock: a uint64 that ``tick`` advances by one and
``observe`` moves past any time seen in a peer's message, so a newer state
message always carries a larger time than anything its sender had seen.
Arithmetic wraps at 2**64 as Go's ``uint64`` does (a peer announcing the
largest time moves us to 0, exactly as a Go ckit node would).
"""

MASK64 = (1 << 64) - 1


class LamportClock:
    def __init__(self, time=0):
        self._time = time & MASK64

    def now(self):
        """The current time, unchanged."""
        return self._time

    def tick(self):
        """Advance by one and return the new time."""
        self._time = (self._time + 1) & MASK64
        return self._time

    def observe(self, time):
        """A peer's ``time`` was seen: move past it unless we are already ahead."""
        if time < self._time:
            return
        self._time = (time + 1) & MASK64
