"""
Coverage-guided fuzzing of every decoder, beside the hypothesis tests.

``python -m raftmux.fuzz <target> --seconds N`` runs one target under
atheris (libFuzzer for Python; ``pip install raftmux[fuzz]``), ``--list``
names the targets and their invariants, ``--reproduce FILE`` runs one
input through a target without atheris (how a crash becomes a test).

A target is a function of one ``bytes`` argument that exercises a decoder
and checks its invariant: it raises ``InvariantBroken`` when the code under
test misbehaves in a way that is not an exception of its own (a wrong round
trip, a buffer past its bound), and lets any unexpected exception escape.
Either is a crash to libFuzzer.  The protocol's own error type (what the
decoder is documented to raise for bad input) is caught by the target.

Targets live in the area modules (``raftmux.fuzz.muxado``, ``.sniff``,
...), registered with ``@target``; ``AREAS`` lists them.  A new area is one more module with
``@target`` functions and one more name in ``AREAS``.  Each target's seed
inputs are files under ``corpus/<target>/`` beside this module, written by
``python -m raftmux.fuzz --write-seeds`` from the target's ``seeds()``;
inputs a run found to crash go to ``regressions/<target>/`` and are replayed
by ``raftmux.test.test_fuzz``.
"""

import importlib
import os

__all__ = ["AREAS", "InvariantBroken", "Target", "target", "targets", "lookup",
           "corpusDirectory", "regressionDirectory", "seedFiles", "regressionFiles",
           "inputFiles", "loadAll"]

#: The modules holding targets, in ``--list`` order.
AREAS = (
    "raftmux.fuzz.muxado",
    "raftmux.fuzz.sniff",
    "raftmux.fuzz.rafthttp",
    "raftmux.fuzz.gossip",
    "raftmux.fuzz.raft",
    "raftmux.fuzz.memberlist",
    "raftmux.fuzz.mvcc",
    "raftmux.fuzz.node",
    "raftmux.fuzz.http2",
    "raftmux.fuzz.grpc",
)

HERE = os.path.dirname(os.path.abspath(__file__))

_registry = {}


class InvariantBroken(AssertionError):
    """The code under test broke the target's invariant (not an exception of its own)."""


class Target:
    """
    One fuzz target: ``name``, the function run on each input, the
    ``invariant`` it checks (one sentence, shown by ``--list``), a
    ``seeds()`` callable giving a few valid inputs, and ``maxLen``, the
    longest input libFuzzer should try.
    """

    def __init__(self, name, function, invariant, seeds, area, maxLen=4096):
        self.name = name
        self.function = function
        self.invariant = invariant
        self.seeds = seeds
        self.area = area
        self.maxLen = maxLen

    def __call__(self, data):
        return self.function(data)

    def __repr__(self):
        return "<Target %s>" % (self.name,)


def target(name, invariant, seeds=lambda: [], maxLen=4096):
    """Register the decorated ``function(data)`` as the fuzz target ``name``."""
    def register(function):
        if name in _registry:
            raise ValueError("fuzz target %r is defined twice" % (name,))
        _registry[name] = Target(name, function, " ".join(invariant.split()), seeds,
                                 function.__module__, maxLen)
        return function
    return register


def loadAll():
    """Import every area module (which registers its targets)."""
    for area in AREAS:
        importlib.import_module(area)


def targets():
    """Every target, in area order, then in the order each area defines them."""
    loadAll()
    return list(_registry.values())


def lookup(name):
    """The target called ``name``; ``KeyError`` if there is none."""
    loadAll()
    return _registry[name]


def corpusDirectory(name):
    return os.path.join(HERE, "corpus", name)


def regressionDirectory(name):
    return os.path.join(HERE, "regressions", name)


def inputFiles(directory):
    """The input files in ``directory`` (paths, sorted); none if it does not exist."""
    if not os.path.isdir(directory):
        return []
    return sorted(os.path.join(directory, f) for f in os.listdir(directory)
                  if not f.startswith("."))


def seedFiles(name):
    """The seed files of target ``name`` (paths)."""
    return inputFiles(corpusDirectory(name))


def regressionFiles(name):
    """The crash inputs kept for target ``name`` (paths)."""
    return inputFiles(regressionDirectory(name))
