# -*- test-case-name: raftmux.test.test_etcd_kv -*-
"""
etcd's request ID generator (``pkg/idutil``): the low 16 bits of the
member ID in the top 16 bits, then 40 bits of Unix milliseconds at start
and an 8-bit counter that carries into them.  IDs from different members
cannot collide, and a restarted member starts past the IDs it gave
before (unless it restarts within the same millisecond count window).

etcd uses these for every proposal's ``header.ID`` and, masked to 63 bits,
for the IDs of leases granted without one.
"""

__all__ = ["IDGenerator"]

_TS_BITS = 40
_COUNT_BITS = 8
_SUFFIX_BITS = _TS_BITS + _COUNT_BITS
_SUFFIX_MASK = (1 << _SUFFIX_BITS) - 1


class IDGenerator:
    """``next()`` gives etcd's next request ID; ``nextLeaseID()`` a lease ID."""

    def __init__(self, memberID, nowSeconds):
        self._prefix = (memberID & 0xFFFF) << _SUFFIX_BITS
        millis = int(nowSeconds * 1000)
        self._suffix = (millis & ((1 << _TS_BITS) - 1)) << _COUNT_BITS

    def next(self):
        self._suffix += 1
        return self._prefix | (self._suffix & _SUFFIX_MASK)

    def nextLeaseID(self):
        """A non-zero positive int64, as etcd's LeaseGrant picks one."""
        while True:
            leaseID = self.next() & ((1 << 63) - 1)
            if leaseID:
                return leaseID
