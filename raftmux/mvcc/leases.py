# -*- test-case-name: raftmux.test.test_mvcc_leases -*-
"""
The replicated half of etcd's lessor: which leases exist, their granted
TTL, the last checkpointed remaining TTL, and which keys each one holds.

Time is not here.  Deciding that a lease has expired (and proposing its
revoke), renewing it, and answering TimeToLive's remaining seconds belong
to the leader's timer elsewhere; it reads ``ttl`` and ``remainingTTL``
from here when it takes over (etcd's ``Promote``: a lease then expires
``remainingTTL or ttl`` seconds after the new leader starts counting).
"""

from collections import namedtuple

__all__ = ["MAX_LEASE_TTL", "DEFAULT_MIN_LEASE_TTL", "LeaseInfo", "Lease"]

#: etcd's MaxLeaseTTL (seconds): a larger grant is ErrLeaseTTLTooLarge.
MAX_LEASE_TTL = 9000000000

#: etcd's minimum TTL with default flags: ceil(1.5 * election timeout
#: ticks * heartbeat) = ceil(15 * 100 ms) = 2 s.  A shorter grant is raised.
DEFAULT_MIN_LEASE_TTL = 2


class LeaseInfo(namedtuple("LeaseInfo", "id ttl remainingTTL keys")):
    """
    A lease as read: ``ttl`` granted (after the minimum), ``remainingTTL``
    the last checkpoint (0: none, count from ``ttl``), ``keys`` sorted.
    """

    @property
    def effectiveTTL(self):
        """The seconds a new leader gives the lease (etcd's RemainingTTL())."""
        return self.remainingTTL if self.remainingTTL > 0 else self.ttl


class Lease:
    """One lease's replicated state; ``keys`` is the set of attached keys."""

    __slots__ = ("id", "ttl", "remainingTTL", "keys")

    def __init__(self, id, ttl, remainingTTL=0):
        self.id = id
        self.ttl = ttl
        self.remainingTTL = remainingTTL
        self.keys = set()

    def info(self):
        return LeaseInfo(self.id, self.ttl, self.remainingTTL, sorted(self.keys))
