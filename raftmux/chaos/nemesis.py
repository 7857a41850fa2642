# -*- test-case-name: raftmux.test.test_chaos_parts -*-
"""
Faults, Jepsen's "nemesis": a schedule drawn from a seed (``plan``, pure),
and its execution against the namespaces and the members (``Nemesis``).

==================  =========================================================
kind                what it does
==================  =========================================================
partition-halves    the members split in two at random, a majority and a
                    minority, which cannot reach each other
partition-leader    the current leader alone on one side
partition-bridge    two halves that cannot reach each other and one member
                    in the middle that reaches both (Jepsen's "bridge")
kill                kill -9 of one member (the leader half of the time),
                    restarted from its data directory when the fault ends
pause               SIGSTOP of one member (the leader half of the time),
                    SIGCONT when the fault ends
loss                every packet between members dropped with probability
                    10-30% (iptables ``statistic``)
delay               every byte between members held 50-200 ms (plus up to
                    half that again at random) by the relay
==================  =========================================================

Partitions and loss are iptables rules on INPUT inside each member's
namespace (see ``raftmux.chaos.net``); clients are never cut off, so the
workload keeps asking every member.  One fault at a time, each followed by
a quiet spell, and the run ends with a quiet spell so the cluster can
recover before the workload stops.
"""

import shutil
import signal
from typing import Any

from twisted.internet import defer, protocol
from twisted.logger import Logger

from raftmux.chaos.history import NemesisEvent

__all__ = ["KINDS", "Fault", "plan", "Nemesis", "partitionCuts", "runCommand"]

KINDS = ("partition-halves", "partition-leader", "partition-bridge", "kill", "pause", "loss",
         "delay")
LEADER = "leader"

_log = Logger()


class Fault:
    """
    One planned fault: ``kind`` from ``start`` for ``duration`` seconds.
    ``node`` (a member's name or ``"leader"``), ``order`` (a shuffled
    member list for partitions) and ``amount`` (loss probability or delay
    milliseconds) are drawn at plan time, so a seed fixes them.
    """

    def __init__(self, kind, start, duration, node=None, order=None, amount=None):
        self.kind = kind
        self.start = start
        self.duration = duration
        self.node = node
        self.order = order
        self.amount = amount

    def asJSON(self):
        return {"kind": self.kind, "start": round(self.start, 3),
                "duration": round(self.duration, 3), "node": self.node, "order": self.order,
                "amount": self.amount}

    def __repr__(self):
        return "<Fault %s at %.1f for %.1f %s>" % (self.kind, self.start, self.duration,
                                                    self.node or self.amount or "")


def plan(rng, names, duration, kinds=KINDS, warmup=2.0, length=(3.0, 6.0), quiet=(2.0, 4.0),
         final=3.0):
    """
    The faults of a run of ``duration`` seconds, drawn from ``rng``: none
    in the first ``warmup`` seconds nor the last ``final`` seconds, each
    ``length`` long, with a ``quiet`` spell after each.
    """
    faults: list[Any] = []
    kinds = list(kinds)
    if not kinds:
        return faults
    t = warmup
    end = duration - final
    while t + length[0] <= end:
        kind = rng.choice(kinds)
        span = min(rng.uniform(*length), end - t)
        order = list(names)
        rng.shuffle(order)
        node = amount = None
        if kind in ("kill", "pause"):
            node = LEADER if rng.random() < 0.5 else rng.choice(names)
        elif kind == "loss":
            amount = rng.choice((0.1, 0.2, 0.3))
        elif kind == "delay":
            amount = rng.choice((50, 100, 200))
        faults.append(Fault(kind, t, span, node, order, amount))
        t += span + rng.uniform(*quiet)
    return faults


def partitionCuts(kind, order, leader=None):
    """
    The pairs of members that cannot reach each other, and the sides (for
    the record), for a partition ``kind`` over the shuffled ``order``.
    """
    n = len(order)
    if kind == "partition-leader":
        lead = leader if leader in order else order[0]
        sides = [[lead], [m for m in order if m != lead]]
        return {tuple(sorted((lead, m))) for m in order if m != lead}, sides
    if kind == "partition-halves":
        minority, majority = order[:n // 2], order[n // 2:]
        return {tuple(sorted((a, b))) for a in minority for b in majority}, [minority, majority]
    if kind == "partition-bridge":
        left = order[:(n - 1) // 2]
        bridge = order[(n - 1) // 2:(n - 1) // 2 + 1]
        right = order[(n - 1) // 2 + 1:]
        return {tuple(sorted((a, b))) for a in left for b in right}, [left, bridge, right]
    raise ValueError("not a partition: %r" % (kind,))


class _Command(protocol.ProcessProtocol):

    transport: Any  # set by makeConnection; used beyond ITransport (producer, abort)
    def __init__(self, input):
        self.input = input
        self.output = []
        self.done: defer.Deferred[Any] = defer.Deferred()

    def connectionMade(self):
        if self.input:
            self.transport.write(self.input.encode())
        self.transport.closeStdin()

    def outReceived(self, data):
        self.output.append(data)

    errReceived = outReceived

    def processEnded(self, reason):
        code = getattr(reason.value, "exitCode", 0) or 0
        self.done.callback((code, b"".join(self.output).decode("utf-8", "replace")))


def runCommand(reactor, argv, input=None):
    """Run ``argv`` without blocking the reactor: ``(exit code, output)``."""
    command = _Command(input)
    executable = shutil.which(argv[0]) or argv[0]
    reactor.spawnProcess(command, executable, list(argv), env=None)
    return command.done


class Nemesis:
    """
    Executes faults.  ``network``: the ``Network``; ``target``: the
    ``Target``; ``relay``: a ``RelayProcess`` (None: no delay fault);
    ``history``: where start and stop events are recorded; ``clock()``:
    seconds since the run began; ``rng`` picks a member when the leader is
    unknown; ``run(argv, input)``: runs a command, a Deferred of ``(exit
    code, output)`` (``runCommand`` on the reactor by default).
    """

    def __init__(self, reactor, network, target, relay, history, clock, rng, run=None):
        self.reactor = reactor
        self.run = run or (lambda argv, input=None: runCommand(reactor, argv, input))
        self.network = network
        self.target = target
        self.relay = relay
        self.history = history
        self.clock = clock
        self.rng = rng
        self.active = []
        self.paused = set()
        self.killed = set()
        self.partitioned = False
        self.lossy = False
        self.delayed = False
        self.errors = []

    async def execute(self, faults, stopped=lambda: False):
        """Each fault at its time; returns when the last one is healed."""
        for fault in faults:
            if stopped():
                break
            wait = fault.start - self.clock()
            if wait > 0:
                await self._sleep(wait)
            if stopped():
                break
            detail = await self._guard(fault, self.begin(fault))
            if detail is None:
                continue
            self.history.addEvent(NemesisEvent(fault.kind, "start", self.clock(), detail))
            end = fault.start + fault.duration
            while not stopped() and self.clock() < end:
                await self._sleep(min(0.25, max(0.0, end - self.clock())))
            await self._guard(fault, self.end(fault, detail))
            self.history.addEvent(NemesisEvent(fault.kind, "stop", self.clock()))

    async def _guard(self, fault, coroutine):
        try:
            return await coroutine
        except Exception as e:
            _log.failure("nemesis {kind} failed", kind=fault.kind)
            self.errors.append("%s: %s" % (fault.kind, e))
            return None

    async def _resolve(self, node):
        if node != LEADER:
            return node
        leader = await self.target.leader()
        return leader or self.rng.choice(self.network.names)

    async def begin(self, fault):
        """Start ``fault``; returns the detail to record."""
        kind = fault.kind
        if kind.startswith("partition-"):
            leader = await self.target.leader() if kind == "partition-leader" else None
            cuts, sides = partitionCuts(kind, fault.order, leader)
            await self._apply(self.network.partitionScripts(cuts))
            self.partitioned = True
            return {"sides": sides}
        if kind == "kill":
            name = await self._resolve(fault.node)
            self.killed.add(name)
            await self.target.kill(name)
            return {"node": name, "leader": fault.node == LEADER}
        if kind == "pause":
            name = await self._resolve(fault.node)
            self.paused.add(name)
            self.target.signal(name, signal.SIGSTOP)
            return {"node": name, "leader": fault.node == LEADER}
        if kind == "loss":
            await self._apply(self.network.lossScripts(fault.amount))
            self.lossy = True
            return {"probability": fault.amount}
        if kind == "delay":
            if self.relay is None:
                raise RuntimeError("no relay: delay is not available")
            await self.relay.setDelay(fault.amount, fault.amount / 2.0)
            self.delayed = True
            return {"ms": fault.amount, "jitter_ms": fault.amount / 2.0}
        raise ValueError("unknown fault %r" % (kind,))

    async def end(self, fault, detail):
        kind = fault.kind
        if kind.startswith("partition-"):
            await self._apply(self.network.partitionScripts(()))
            self.partitioned = False
        elif kind == "kill":
            self.killed.discard(detail["node"])
            self.target.restart(detail["node"])
        elif kind == "pause":
            self.paused.discard(detail["node"])
            self.target.signal(detail["node"], signal.SIGCONT)
        elif kind == "loss":
            await self._apply(self.network.lossScripts(0))
            self.lossy = False
        elif kind == "delay":
            await self.relay.setDelay(0, 0)
            self.delayed = False

    async def healAll(self):
        """Undo whatever is still in force (used when a run is cut short)."""
        for name in list(self.paused):
            self.target.signal(name, signal.SIGCONT)
        self.paused.clear()
        if self.partitioned:
            await self._apply(self.network.partitionScripts(()))
            self.partitioned = False
        if self.lossy:
            await self._apply(self.network.lossScripts(0))
            self.lossy = False
        if self.delayed and self.relay is not None:
            await self.relay.setDelay(0, 0)
            self.delayed = False

    async def _apply(self, scripts):
        results = await defer.gatherResults([
            self.run(self.network.restoreCommand(ns), script)
            for ns, script in scripts.items()])
        for (code, output), ns in zip(results, scripts, strict=True):
            if code != 0:
                raise RuntimeError("iptables-restore in %s: %s" % (ns, output.strip()))

    def _sleep(self, seconds):
        d: defer.Deferred[Any] = defer.Deferred()
        self.reactor.callLater(seconds, d.callback, None)
        return d
