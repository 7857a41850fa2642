# -*- test-case-name: raftmux.test.test_ckit_chash -*-
"""
ckit's consistent hashes (its ``internal/chash``), over xxHash64 (XXH64,
seed 0), so a Python and a Go ckit node that see the same peers pick the
same owners for a key.

A key is a ``uint64``: ``stringKey(s)`` is XXH64 of the string's bytes, or
build one from several writes with ``KeyBuilder``.  Each hash has
``setNodes(names)`` and ``get(key, n)`` -> ``n`` distinct names, best
first (``NotEnoughNodes`` when fewer than ``n`` nodes are set; a name
given twice counts once).

* ``Ring(numTokens)``: each node gets ``numTokens`` tokens; token ``t`` is
  XXH64 of the node's name followed by the bytes ``0, 1, ..., t`` (each
  byte is ``t`` truncated to 8 bits: ckit feeds one running digest).  A key
  is owned by the nodes of the next tokens clockwise (ties between equal
  tokens go to the smaller name).
* ``Rendezvous()``: every node scores ``xorshift64*(key ^ XXH64(name))``;
  the lowest scores win (ties: smaller name).
* ``Multiprobe()``: one token per node (XXH64 of its name);
  ``h1 = XXH64(hex(key))``, ``h2 = XXH64(hex(h1))`` (lowercase hex, no
  leading zeros, as Go's ``strconv.AppendUint(.., 16)``); 21 probes
  ``h1 + k * h2`` (mod 2**64) each find their nearest token by plain
  (not circular) distance; the nearest over all probes is the first owner,
  the tokens after it (wrapping) the next ones.
"""

from bisect import bisect_left

import xxhash

MASK64 = (1 << 64) - 1
MULTIPROBE_PROBES = 21
_XORSHIFT_MULTIPLIER = 2685821657736338717


class NotEnoughNodes(ValueError):
    def __init__(self, need, have):
        ValueError.__init__(self, "not enough nodes: need at least %d, have %d" % (need, have))
        self.need = need
        self.have = have


def _bytes(value):
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)


def stringKey(value):
    """The key of a string (or bytes): XXH64 of its bytes."""
    return xxhash.xxh64_intdigest(_bytes(value))


class KeyBuilder:
    """A key from several writes (ckit's ``KeyBuilder``): ``write``, ``key``, ``reset``."""

    def __init__(self):
        self._digest = xxhash.xxh64()

    def write(self, data):
        self._digest.update(_bytes(data))
        return len(data)

    def key(self):
        return self._digest.intdigest()

    def reset(self):
        self._digest.reset()


def xorshiftMult64(x):
    """Vigna's xorshift64* step: ``x ^= x >> 12; x ^= x << 25; x ^= x >> 27; x * M``."""
    x ^= x >> 12
    x ^= (x << 25) & MASK64
    x ^= x >> 27
    return (x * _XORSHIFT_MULTIPLIER) & MASK64


def ringTokens(node, numTokens):
    """The ring's tokens of ``node``: a running XXH64 digest fed one byte per token."""
    digest = xxhash.xxh64(_bytes(node))
    tokens = []
    for t in range(numTokens):
        digest.update(bytes((t & 0xFF,)))
        tokens.append(digest.intdigest())
    return tokens


def secondKey(key):
    """Multiprobe's derived hash: XXH64 of ``key`` in lowercase hex."""
    return xxhash.xxh64_intdigest(format(key, "x").encode("ascii"))


def _check(n, have):
    if n > have:
        raise NotEnoughNodes(n, have)
    if n < 0:
        raise ValueError("negative number of owners")


class Ring:
    def __init__(self, numTokens):
        if numTokens < 1:
            raise ValueError("a ring needs at least one token per node")
        self.numTokens = numTokens
        self._numNodes = 0
        self._tokens = []
        self._owners = []

    def setNodes(self, nodes):
        nodes = set(nodes)
        pairs = sorted((token, node) for node in nodes
                       for token in ringTokens(node, self.numTokens))
        self._tokens = [token for token, _ in pairs]
        self._owners = [node for _, node in pairs]
        self._numNodes = len(nodes)

    def get(self, key, n):
        _check(n, self._numNodes)
        if n == 0:
            return []
        tokens, owners = self._tokens, self._owners
        idx = bisect_left(tokens, key)
        if idx == len(tokens):
            idx = 0
        result, seen = [], set()
        while len(result) < n:
            owner = owners[idx]
            if owner not in seen:
                seen.add(owner)
                result.append(owner)
            idx = (idx + 1) % len(tokens)
        return result


class Rendezvous:
    def __init__(self):
        self._hashes = []

    def setNodes(self, nodes):
        self._hashes = [(stringKey(node), node) for node in sorted(set(nodes))]

    def get(self, key, n):
        _check(n, len(self._hashes))
        if n == 0:
            return []
        scored = sorted((xorshiftMult64(key ^ h), node) for h, node in self._hashes)
        return [node for _, node in scored[:n]]


def _distance(a, b):
    return b - a if a < b else a - b


class Multiprobe:
    def __init__(self):
        self._tokens = []
        self._owners = []

    def setNodes(self, nodes):
        pairs = sorted((stringKey(node), node) for node in set(nodes))
        self._tokens = [token for token, _ in pairs]
        self._owners = [node for _, node in pairs]

    def _closest(self, to):
        tokens = self._tokens
        count = len(tokens)
        found = bisect_left(tokens, to)
        a = count - 1 if found - 1 < 0 else (found - 1) % count
        b = found % count
        return a if _distance(tokens[a], to) <= _distance(tokens[b], to) else b

    def get(self, key, n):
        count = len(self._tokens)
        _check(n, count)
        if n == 0:
            return []
        h1 = secondKey(key)
        h2 = secondKey(h1)
        closestIdx, closestDist = 0, MASK64
        for k in range(MULTIPROBE_PROBES):
            h = (h1 + k * h2) & MASK64
            idx = self._closest(h)
            dist = _distance(self._tokens[idx], h)
            if dist < closestDist:
                closestIdx, closestDist = idx, dist
        return [self._owners[(closestIdx + i) % count] for i in range(n)]
