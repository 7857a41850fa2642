"""
raft benchmarks (issue 6, point 7), no I/O, in this process:

- ``step``: MsgApp (one 128-byte entry each, consecutive indexes) stepped
  into a follower ``Raft`` core, replies drained in batches;
- ``follower``: the same through ``RawNode``, with a Ready handled every 16
  messages as a driver would (append to ``MemoryStorage``, take the
  replies, advance);
- ``heartbeat``: MsgHeartbeat with a ReadIndex context into a follower.

The baseline of each is decoding the same messages from their wire bytes
(``Message.FromString``), the least work a receiving member does per message
anyway.  The second half of point 7, the cost of one fsynced append:
``fsync-append``, a ``DiskStorage`` in a temporary directory (see
``fsyncResults``).
"""

import os
import random
import shutil
import tempfile
import time

from raftmux.bench._harness import Result, median
from raftmux.raft.config import Config
from raftmux.raft.core import Raft
from raftmux.raft.diskstorage import measureFsyncAppend
from raftmux.raft.memorystorage import MemoryStorage
from raftmux.raft.rawnode import RawNode
from raftmux.raftpb import Entry, Message, MsgApp, MsgHeartbeat, encode

LEADER, FOLLOWER = 2, 1
PAYLOAD = b"x" * 128


def msgApps(count):
    out = []
    for i in range(count):
        m = Message(type=MsgApp, to=FOLLOWER, term=1, index=i, logTerm=1 if i else 0,
                    commit=i)
        setattr(m, "from", LEADER)
        m.entries.append(Entry(Term=1, Index=i + 1, Data=PAYLOAD))
        out.append(m)
    return out


def heartbeats(count):
    out = []
    for i in range(count):
        m = Message(type=MsgHeartbeat, to=FOLLOWER, term=1, commit=0,
                    context=i.to_bytes(8, "big"))
        setattr(m, "from", LEADER)
        out.append(m)
    return out


def config(storage):
    return Config(id=FOLLOWER, storage=storage, peers=[1, 2, 3], random=random.Random(1))


def followerRaft():
    r = Raft(config(MemoryStorage()))
    r.becomeFollower(1, LEADER)
    return r


def timeStep(msgs):
    """Messages per second through ``Raft.step``."""
    r = followerRaft()
    start = time.perf_counter()
    step = r.step
    for i, m in enumerate(msgs):
        step(m)
        if i & 1023 == 1023:
            r.msgs = []
    elapsed = time.perf_counter() - start
    assert r.raftLog.lastIndex() == len(msgs) or msgs[0].type != MsgApp
    return len(msgs) / elapsed


def timeFollower(msgs, batch=16):
    """Messages per second through ``RawNode`` with Ready handling."""
    storage = MemoryStorage()
    node = RawNode(config(storage))
    node.raft.becomeFollower(1, LEADER)
    sent = 0
    start = time.perf_counter()
    for i, m in enumerate(msgs):
        node.step(m)
        if i % batch == batch - 1 or i == len(msgs) - 1:
            rd = node.ready()
            if rd.hardState is not None:
                storage.setHardState(rd.hardState)
            storage.append(rd.entries)
            sent += len(rd.messages)
            node.advance(rd)
    elapsed = time.perf_counter() - start
    assert sent == len(msgs)
    return len(msgs) / elapsed


def timeDecode(msgs):
    wire = [encode(m) for m in msgs]
    start = time.perf_counter()
    parse = Message.FromString
    for b in wire:
        parse(b)
    return len(wire) / (time.perf_counter() - start)


def fsyncResults(options):
    """
    The cost of one fsynced append of a Ready's entries (issue 6, point 7,
    second half): ``measureFsyncAppend`` (one 100-byte entry per append,
    with fsync) in a temporary directory, against the same appends without
    fsync as the baseline.  Lower is better.
    """
    n = 50 if options.quick else 200
    directory = tempfile.mkdtemp(prefix="raftmux-bench-fsync-")
    try:
        synced = measureFsyncAppend(os.path.join(directory, "sync"), n=n)
        unsynced = measureFsyncAppend(os.path.join(directory, "nosync"), n=n, fsync=False)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return [
        Result("fsync-append", "ms", synced * 1e3, unsynced * 1e3, higherIsBetter=False,
               notes="median of %d DiskStorage appends of one 100 B entry with fsync, "
                     "in %s; baseline: the same appends with fsync=False"
                     % (n, tempfile.gettempdir())),
    ]


def run(options):
    repeats = 1 if options.quick else 3
    count = 20000 if options.quick else 100000
    apps = msgApps(count)
    beats = heartbeats(count)
    decode = median([timeDecode(apps) for _ in range(repeats)])
    step = median([timeStep(msgApps(count)) for _ in range(repeats)])
    follower = median([timeFollower(msgApps(count)) for _ in range(repeats)])
    beat = median([timeStep(beats) for _ in range(repeats)])
    beatDecode = median([timeDecode(beats) for _ in range(repeats)])
    notes = "%d msgs, median of %d; baseline: Message.FromString of the same bytes" % (
        count, repeats)
    results = [
        Result("step", "messages/s", step, decode,
               notes="MsgApp 1x128 B entry into a follower Raft.step; " + notes),
        Result("follower", "messages/s", follower, decode,
               notes="same through RawNode, Ready every 16 msgs into MemoryStorage; " + notes),
        Result("heartbeat", "messages/s", beat, beatDecode,
               notes="MsgHeartbeat with 8-byte context into Raft.step; " + notes),
    ]
    results.extend(fsyncResults(options))
    return results
