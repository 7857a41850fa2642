# -*- test-case-name: raftmux.test.test_memberlist_core -*-
"""
``TransmitLimitedQueue``: broadcasts waiting to piggyback on packets, each
sent at most ``retransmitMult * ceil(log10(n + 1))`` times (memberlist's
``queue.go`` semantics).

Fewest transmissions go first, then the largest message, then the newest;
``getBroadcasts(overhead, limit)`` fills a packet greedily in that order.
A new broadcast replaces a queued one with the same ``name()`` (memberlist's
own alive/suspect/dead messages are named by node), or those it
``invalidates()`` when it has no name and is not unique.  ``finished()`` is
called once a broadcast leaves the queue, sent out or replaced.
"""

import math

from zope.interface import Interface, implementer


class IBroadcast(Interface):
    def invalidates(other):
        """True when this broadcast makes queued ``other`` pointless."""

    def message():
        """The bytes to send."""

    def finished():
        """Called once when the broadcast is dropped: sent enough times or replaced."""


class INamedBroadcast(IBroadcast):
    def name():
        """A key: a new broadcast with the same name replaces the queued one (no scan)."""


class IUniqueBroadcast(IBroadcast):
    """Marker: never invalidates or is invalidated by another (no scan)."""


@implementer(IBroadcast)
class SimpleBroadcast:
    """A broadcast of fixed bytes, invalidating nothing, with an optional callback."""

    def __init__(self, data, onFinished=None):
        self._data = bytes(data)
        self._onFinished = onFinished

    def invalidates(self, other):
        return False

    def message(self):
        return self._data

    def finished(self):
        if self._onFinished is not None:
            callback, self._onFinished = self._onFinished, None
            callback()


@implementer(INamedBroadcast)
class NamedBroadcast(SimpleBroadcast):
    def __init__(self, name, data, onFinished=None):
        SimpleBroadcast.__init__(self, data, onFinished)
        self._name = name

    def name(self):
        return self._name

    def invalidates(self, other):
        return INamedBroadcast.providedBy(other) and other.name() == self._name


def retransmitLimit(retransmitMult, n):
    """memberlist's retransmitLimit: ``mult * ceil(log10(n + 1))``."""
    return retransmitMult * int(math.ceil(math.log10(n + 1)))


class _Entry:
    __slots__ = ("transmits", "length", "id", "broadcast", "name")

    def __init__(self, transmits, length, id, broadcast, name):
        self.transmits = transmits
        self.length = length
        self.id = id
        self.broadcast = broadcast
        self.name = name

    def key(self):
        return (self.transmits, -self.length, -self.id)


class TransmitLimitedQueue:
    """
    ``numNodes`` is a callable giving the cluster size estimate the
    retransmit limit scales with.
    """

    def __init__(self, numNodes, retransmitMult):
        self.numNodes = numNodes
        self.retransmitMult = retransmitMult
        self._entries = []
        self._byName = {}
        self._idGen = 0

    def queueBroadcast(self, broadcast, initialTransmits=0):
        self._idGen += 1
        name = broadcast.name() if INamedBroadcast.providedBy(broadcast) else None
        entry = _Entry(initialTransmits, len(broadcast.message()), self._idGen, broadcast, name)
        if name is not None:
            old = self._byName.get(name)
            if old is not None:
                self._remove(old)
                old.broadcast.finished()
        elif not IUniqueBroadcast.providedBy(broadcast):
            for cur in list(self._entries):
                other = cur.broadcast
                if INamedBroadcast.providedBy(other) or IUniqueBroadcast.providedBy(other):
                    continue
                if broadcast.invalidates(other):
                    self._remove(cur)
                    other.finished()
        self._entries.append(entry)
        if name is not None:
            self._byName[name] = entry

    def _remove(self, entry):
        self._entries.remove(entry)
        if entry.name is not None and self._byName.get(entry.name) is entry:
            del self._byName[entry.name]  # type: ignore[union-attr]
        if not self._entries:
            self._idGen = 0

    def getBroadcasts(self, overhead, limit):
        """Messages for one packet: each costs ``overhead`` plus its length, within ``limit``."""
        if not self._entries:
            return []
        transmitLimit = retransmitLimit(self.retransmitMult, self.numNodes())
        used = 0
        toSend = []
        finished = []
        for entry in sorted(self._entries, key=_Entry.key):
            free = limit - used - overhead
            if free <= 0:
                break
            if entry.length > free:
                continue
            used += overhead + entry.length
            toSend.append(entry.broadcast.message())
            if entry.transmits + 1 >= transmitLimit:
                self._remove(entry)
                finished.append(entry.broadcast)
            else:
                entry.transmits += 1
        for broadcast in finished:
            broadcast.finished()
        return toSend

    def numQueued(self):
        return len(self._entries)

    def reset(self):
        entries, self._entries = self._entries, []
        self._byName = {}
        self._idGen = 0
        for entry in entries:
            entry.broadcast.finished()

    def prune(self, maxRetain):
        """Drop the most transmitted (then smallest, oldest) broadcasts beyond ``maxRetain``."""
        while len(self._entries) > maxRetain:
            entry = max(self._entries, key=_Entry.key)
            self._remove(entry)
            entry.broadcast.finished()
