# -*- test-case-name: raftmux.test.test_ckit_chash -*-
"""
ckit's sharders (its ``shard`` package): which peers own a key.

A ``Sharder`` is given the cluster's peers (``setPeers``, which a
``CkitNode`` calls on every membership or state change, before observers
hear of it) and answers ``lookup(key, numOwners, op)``:

* ``Op.READ``: owners among participants and terminating peers;
* ``Op.READ_WRITE``: owners among participants only;

viewers never own anything.  Peers come back with their latest address
and flags.  A hash is rebuilt only when the set of names eligible for it
changes (a viewer joining, an address or a write-only change leaves the
read ring alone), as ckit does since 2025.
"""

from enum import IntEnum

from raftmux.ckit.chash import Multiprobe, Rendezvous, Ring, stringKey
from raftmux.ckit.peer import PeerState


class Op(IntEnum):
    READ = 0
    READ_WRITE = 1

    def __str__(self):
        return {Op.READ: "Read", Op.READ_WRITE: "ReadWrite"}[self]


class Sharder:
    """Two hashes of one algorithm: one over read owners, one over write owners."""

    def __init__(self, hashFactory):
        self._read = hashFactory()
        self._readWrite = hashFactory()
        self._peers = {}
        self._readNames = None
        self._readWriteNames = None

    def setPeers(self, peers):
        eligible = {}
        readNames, readWriteNames = [], []
        for p in sorted(peers, key=lambda p: p.name):
            if p.state == PeerState.PARTICIPANT:
                readNames.append(p.name)
                readWriteNames.append(p.name)
                eligible[p.name] = p
            elif p.state == PeerState.TERMINATING:
                readNames.append(p.name)
                eligible[p.name] = p
        self._peers = eligible
        if readNames != self._readNames:
            self._read.setNodes(readNames)
            self._readNames = readNames
        if readWriteNames != self._readWriteNames:
            self._readWrite.setNodes(readWriteNames)
            self._readWriteNames = readWriteNames

    def peers(self):
        """The non-viewer peers in use, by name."""
        return [self._peers[name] for name in sorted(self._peers)]

    def lookup(self, key, numOwners, op=Op.READ_WRITE):
        """``numOwners`` peers for ``key`` (an int, or a str hashed with ``stringKey``)."""
        if isinstance(key, (str, bytes)):
            key = stringKey(key)
        if op == Op.READ:
            names = self._read.get(key, numOwners)
        elif op == Op.READ_WRITE:
            names = self._readWrite.get(key, numOwners)
        else:
            raise ValueError("unknown op %s" % (op,))
        return [self._peers[name] for name in names]


def ring(numTokens=256):
    """A ring sharder (256 or 512 tokens per node distribute well)."""
    return Sharder(lambda: Ring(numTokens))


def rendezvous():
    """Highest-random-weight: the best balance, O(N) per lookup."""
    return Sharder(Rendezvous)


def multiprobe():
    """Multi-probe consistent hashing: one token per node, 21 probes per lookup."""
    return Sharder(Multiprobe)
