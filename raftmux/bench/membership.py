"""
Membership benchmarks (memberlist's SWIM with ckit's layer), each beside
what memberlist's default LAN configuration promises on paper:

- ``converge-memory`` / ``converge-http2``: seconds from nine members
  joining a tenth (all at once) until all ten list all ten, in one process
  over an in-memory transport, and as ten processes over ckit's HTTP/2
  transport on loopback.
- ``detect-memory`` / ``detect-http2``: seconds from one member vanishing
  (in memory: cut off; processes: SIGKILL) until all nine others have
  dropped it (memberlist marked it dead).
- ``cpu-memory`` / ``cpu-http2``: milliseconds of CPU per member per second
  at steady state (ten members, nothing changing), as a process measures
  it (user + system).  No paper figure.

The paper figures (``paperBounds``), from memberlist's formulas with LAN
defaults (probe interval T = 1 s, suspicion multiplier 4, max-timeout
multiplier 6, gossip every 0.2 s to 3 members) for n = 10:

* converge: a joiner's push/pull makes the seed know it at once; its
  alive message then spreads epidemically, ``ceil(log(n) / log(1 +
  gossipNodes))`` gossip rounds = 2 x 0.2 s = 0.4 s (the 30 s push/pull is
  the backstop).
* detect: each of the n-1 survivors probes the n-1 others round-robin, so
  the first probe of the dead one comes after ``(n-1) T / n`` = 0.9 s on
  average (at worst ``(n-1) T`` = 9 s); the probe fails at the end of its
  interval (+T); suspicion lasts ``4 x max(1, log10 n) x T`` = 4 s once
  ``4 - 2`` = 2 other members confirm (24 s without confirmations); then
  the dead message spreads (0.4 s): expected 6.3 s, bound 34.4 s.

    python -m raftmux.bench.membership child memory|http2 <window> <repeats>

runs one side and prints its figures as JSON.
"""

import json
import math
import subprocess
import sys
import time

from raftmux.bench._harness import Result, median

MODULE = "raftmux.bench.membership"
MEMBERS = 10


def paperBounds(n=MEMBERS, probeInterval=1.0, suspicionMult=4, suspicionMaxTimeoutMult=6,
                gossipInterval=0.2, gossipNodes=3):
    """memberlist's promises for ``n`` members, in seconds (see the module doc)."""
    spread = math.ceil(math.log(n) / math.log(1 + gossipNodes)) * gossipInterval
    minimum = suspicionMult * max(1.0, math.log10(n)) * probeInterval
    maximum = suspicionMaxTimeoutMult * minimum
    firstProbe = (n - 1) * probeInterval / n
    return {
        "converge": spread,
        "detectExpected": firstProbe + probeInterval + minimum + spread,
        "detectBound": (n - 1) * probeInterval + probeInterval + maximum + spread,
        "suspicionMin": minimum,
        "suspicionMax": maximum,
        "firstProbe": firstProbe,
    }


def run(options):
    return results(options)


def results(options):
    """The rows (for ``python -m raftmux.bench membership``, or gossip's table)."""
    window = 3.0 if options.quick else 10.0
    repeats = 1 if options.quick else 3
    paper = paperBounds()
    rows = []
    for mode in ("memory", "http2"):
        figures = measure(mode, window, repeats)
        where = ("10 members in one process, in-memory transport" if mode == "memory"
                 else "10 processes over ckit's HTTP/2 transport on loopback")
        rows.append(Result("converge-" + mode, "s", median(figures["converge"]),
                           paper["converge"], higherIsBetter=False,
                           notes="%s; join all at once -> all list 10; paper: ceil(log 10 / "
                                 "log 4) gossip rounds x 0.2 s; runs %s"
                                 % (where, _fmt(figures["converge"]))))
        rows.append(Result("detect-" + mode, "s", median(figures["detect"]),
                           paper["detectExpected"], higherIsBetter=False,
                           notes="%s; one vanishes -> all 9 drop it; paper expected 0.9 "
                                 "(first probe) + 1 (probe) + 4 (suspicion, 2 confirmations) "
                                 "+ 0.4 (gossip) s, bound %.1f s (24 s suspicion unconfirmed); "
                                 "runs %s" % (where, paper["detectBound"],
                                              _fmt(figures["detect"]))))
        rows.append(Result("cpu-" + mode, "ms CPU/member/s", median(figures["cpu"]),
                           notes="%s; steady state over %.0f s, user+system" % (where, window)))
    return rows


def _fmt(values):
    return "[" + ", ".join("%.2f" % v for v in values) + "]"


def measure(mode, window, repeats):
    out = subprocess.run([sys.executable, "-m", MODULE, "child", mode, str(window),
                          str(repeats)], capture_output=True, text=True, timeout=900)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise RuntimeError("membership %s failed: %s" % (mode, out.stderr[-3000:]))
    return json.loads(lines[-1])


# -- the children ------------------------------------------------------------------------


async def _waitFor(reactor, predicate, limit, step=0.005):
    from twisted.internet import task
    deadline = reactor.seconds() + limit
    while not predicate():
        if reactor.seconds() > deadline:
            raise RuntimeError("gave up after %.0f s" % (limit,))
        await task.deferLater(reactor, step)
    return reactor.seconds()


async def memoryRun(reactor, window):
    from twisted.internet import defer

    from raftmux.ckit import CkitNode, ckitConfig
    from raftmux.testing.membership import MemoryNetwork

    net = MemoryNetwork(reactor)
    nodes = []
    for i in range(MEMBERS):
        node = CkitNode(ckitConfig("m%d" % i), net.transport("127.0.0.1:%d" % (7000 + i)),
                        reactor=reactor)
        node.startService()
        await node.whenRunning()
        nodes.append(node)
    start = reactor.seconds()
    await defer.gatherResults([n.start([nodes[0].address]) for n in nodes[1:]])
    end = await _waitFor(reactor, lambda: all(len(n.peers()) == MEMBERS for n in nodes), 60)
    converge = end - start
    cpu0, wall0 = time.process_time(), time.monotonic()
    await _sleep(reactor, window)
    cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0) / MEMBERS * 1000
    victim = nodes[-1]
    start = reactor.seconds()
    net.kill(victim.address)
    end = await _waitFor(reactor, lambda: all(len(n.peers()) == MEMBERS - 1
                                              for n in nodes[:-1]), 120)
    detect = end - start
    victim.memberlist.core.stop()
    for node in nodes[:-1]:
        node.leaveTimeout = 0.5
    await defer.gatherResults([node.stopService() for node in nodes[:-1]])
    return converge, detect, cpu


async def _sleep(reactor, seconds):
    from twisted.internet import task
    await task.deferLater(reactor, seconds)


async def http2Run(reactor, window):
    from raftmux.testing.membership import MemberProcess

    members = [MemberProcess.spawn(reactor, "m%d" % i, timings="lan") for i in range(MEMBERS)]
    try:
        await _waitFor(reactor, lambda: all(m.address for m in members), 60, 0.02)
        seed = members[0].address
        start = reactor.seconds()
        for m in members[1:]:
            m.send("join " + seed)
        await _waitFor(reactor, lambda: all(len(m.peers) == MEMBERS for m in members), 60, 0.02)
        converge = max(_lastChange(m, MEMBERS) for m in members) - start
        cpu0 = sum(m.cpuSeconds() for m in members)
        wall0 = time.monotonic()
        await _sleep(reactor, window)
        cpu = ((sum(m.cpuSeconds() for m in members) - cpu0) / (time.monotonic() - wall0)
               / MEMBERS * 1000)
        victim = members[-1]
        start = reactor.seconds()
        victim.kill()
        await _waitFor(reactor, lambda: all(len(m.peers) == MEMBERS - 1
                                            for m in members[:-1]), 120, 0.02)
        detect = max(_lastChange(m, MEMBERS - 1) for m in members[:-1]) - start
        return converge, detect, cpu
    finally:
        for m in members:
            if not m.ended.called:
                m.kill()


def _lastChange(member, count):
    """When ``member`` first reported ``count`` peers (its latest run of such reports)."""
    at = None
    for event in member.events:
        if event["event"] != "peers":
            continue
        if len(event["peers"]) == count:
            at = event["at"] if at is None else at
        else:
            at = None
    return at


def child(mode, window, repeats):
    from twisted.internet import defer, task

    async def main(reactor):
        figures = {"converge": [], "detect": [], "cpu": []}
        for _ in range(repeats):
            once = memoryRun if mode == "memory" else http2Run
            converge, detect, cpu = await once(reactor, window)
            figures["converge"].append(converge)
            figures["detect"].append(detect)
            figures["cpu"].append(cpu)
        print(json.dumps(figures))
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))


if __name__ == "__main__":
    if sys.argv[1] == "child":
        child(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
