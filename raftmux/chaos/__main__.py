# -*- test-case-name: raftmux.test.test_chaos_run -*-
"""
``python -m raftmux.chaos --time SECONDS [--nodes N] [--seed S]
[--reads linearizable|serializable] [--target raftmux|etcd] [--json]``

A Jepsen-style run: N members in network namespaces, a workload of
concurrent clients, faults drawn from the seed, then the linearizability
check.  Exit status: 0 linearizable, 1 not linearizable, 3 unknown (the
checker ran out of budget), 2 this machine cannot run it (not root, no
``ip``/``iptables``, another run in progress), 4 the run itself failed
(the cluster did not start), 130 interrupted.  See ``docs/chaos.md``.
"""

import argparse
import fcntl
import json
import os
import random
import shutil
import signal
import sys
import time

from twisted.internet import defer

from raftmux.chaos.checker import check
from raftmux.chaos.history import History
from raftmux.chaos.nemesis import KINDS, Nemesis, plan
from raftmux.chaos.net import Network, NetworkError, requirements
from raftmux.chaos.report import plot, summarize, table
from raftmux.chaos.targets import TARGETS

__all__ = ["main"]

LOCK = "/run/lock/raftmux-chaos.lock"
EXIT = {"linearizable": 0, "not linearizable": 1, "unknown": 3}


def _parser():
    p = argparse.ArgumentParser(
        prog="python -m raftmux.chaos",
        description="Jepsen-style test: a cluster in network namespaces under faults, "
                    "a read/write/compare-and-set workload, a linearizability check.")
    p.add_argument("--time", type=float, required=True, metavar="SECONDS",
                   help="how long the workload runs (faults stop 3 s before the end)")
    p.add_argument("--nodes", type=int, default=3, help="members (3)")
    p.add_argument("--seed", type=int, default=None,
                   help="draws the faults and the workload (random when not given)")
    p.add_argument("--reads", choices=("linearizable", "serializable"),
                   default="linearizable",
                   help="serializable: local reads, which go stale under a partition")
    p.add_argument("--target", choices=TARGETS, default="raftmux",
                   help="raftmux (twistd raftmux members) or etcd (%s)" % ("/usr/bin/etcd",))
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (its \"valid\" is true or false)")
    p.add_argument("--nemesis", default="all", metavar="KINDS",
                   help="comma-separated fault kinds, 'all' or 'none' (%s)" % (
                       ", ".join(KINDS),))
    p.add_argument("--keys", type=int, default=5, help="keys (registers) the clients share (5)")
    p.add_argument("--clients", type=int, default=None,
                   help="concurrent clients, spread over the members (2 per member)")
    p.add_argument("--op-timeout", type=float, default=2.0,
                   help="seconds before an operation is abandoned as indeterminate (2)")
    p.add_argument("--check-timeout", type=float, default=60.0,
                   help="seconds the checker may search before answering unknown (60)")
    p.add_argument("--out", default=None,
                   help="directory for the history, plots and member logs "
                        "(./chaos-runs/<time>-<target>-seed<S>)")
    p.add_argument("--keep-data", action="store_true",
                   help="keep the members' data directories (logs are always kept)")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait that long for another run on this machine to finish (0)")
    p.add_argument("--cleanup", action="store_true",
                   help="only remove namespaces left by a run that was killed, then exit")
    p.add_argument("--flag", action="append", default=[], metavar="FLAG",
                   help="an extra flag for every member (repeat), e.g. "
                        "--flag=--election-timeout=1000")
    return p


def _kinds(text):
    if text == "all":
        return list(KINDS)
    if text in ("none", ""):
        return []
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise SystemExit("python -m raftmux.chaos: unknown nemesis %s (known: %s)" % (
            ", ".join(unknown), ", ".join(KINDS)))
    return kinds


def _lock(wait=0.0):
    """
    Hold the machine-wide lock for the run (one run at a time: a run
    removes stale namespaces of ours), or None if another run holds it for
    more than ``wait`` seconds.
    """
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    f = open(LOCK, "a")
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except OSError:
            if time.monotonic() >= deadline:
                f.close()
                return None
        time.sleep(0.2)


class _Run:
    """One run on the reactor: relay, cluster, workload and nemesis, then shut down."""

    def __init__(self, reactor, args, network, directory, history, kinds):
        self.reactor = reactor
        self.args = args
        self.network = network
        self.directory = directory
        self.history = history
        self.kinds = kinds
        self.relay = self.target = self.workload = self.nemesis = None
        self.errors = []
        self.failed = None
        self.interrupted = False
        self._shutdown = None
        self.started = None

    def clock(self):
        return self.reactor.seconds() - self.started

    async def go(self):
        from raftmux.chaos.relay import RelayProcess
        from raftmux.chaos.targets import Target
        from raftmux.chaos.workload import Workload
        from raftmux.cluster import childEnvironment

        args = self.args
        seed = args.seed
        self.relay = RelayProcess.forNetwork(self.reactor, self.network, env=childEnvironment())
        await self.relay.start()
        clients = args.clients or 2 * args.nodes
        self.target = Target(self.reactor, self.network, os.path.join(self.directory, "members"),
                             args.target, flags=args.flag, clients=clients)
        why = self.target.available()
        if why:
            raise RuntimeError(why)
        await self.target.start(timeout=60.0)
        faults = plan(random.Random(seed), self.network.names, args.time, self.kinds)
        self.history.header["plan"] = [f.asJSON() for f in faults]
        self.started = self.reactor.seconds()
        names = self.network.names
        self.workload = Workload(
            self.reactor, [(names[i % len(names)], self.target.client(names[i % len(names)]))
                           for i in range(clients)],
            self.history, self.clock, random.Random(seed + 1), keys=args.keys,
            opTimeout=args.op_timeout, serializable=args.reads == "serializable")
        self.nemesis = Nemesis(self.reactor, self.network, self.target, self.relay,
                               self.history, self.clock, random.Random(seed + 2))
        nemesis = defer.ensureDeferred(self.nemesis.execute(
            faults, stopped=lambda: self._shutdown is not None))
        await self.workload.run(until=args.time)
        await nemesis
        self.errors.extend(self.nemesis.errors)

    async def shutdown(self):
        """Undo every fault, stop the members and the relay; safe to call twice."""
        if self._shutdown is None:
            self._shutdown = defer.ensureDeferred(self._stopEverything())
        await self._shutdown

    async def _stopEverything(self):
        if self.workload is not None:
            self.workload.stop()
        if self.nemesis is not None:
            try:
                await self.nemesis.healAll()
            except Exception as e:
                self.errors.append("healing: %s" % (e,))
        if self.target is not None:
            await self.target.stop()
        if self.relay is not None:
            await self.relay.stop()


def _experiment(args, network, directory, history, kinds):
    from twisted.internet import reactor

    run = _Run(reactor, args, network, directory, history, kinds)

    async def main():
        try:
            await run.go()
        except Exception as e:
            if run._shutdown is None:
                run.failed = "%s: %s" % (e.__class__.__name__, e)
        finally:
            await run.shutdown()
            if reactor.running:
                reactor.stop()

    def interrupted():
        if run._shutdown is None:
            run.interrupted = True
        return defer.ensureDeferred(run.shutdown())

    reactor.callWhenRunning(lambda: defer.ensureDeferred(main()))
    reactor.addSystemEventTrigger("before", "shutdown", interrupted)
    reactor.run(installSignalHandlers=True)  # type: ignore[call-arg]
    return run


def _interrupt(signum, frame):
    raise KeyboardInterrupt()


def main(argv=None, out=None):
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    why = requirements()
    if why:
        sys.stderr.write("python -m raftmux.chaos: %s\n" % (why,))
        return 2
    if not 1 <= args.nodes <= 9:
        sys.stderr.write("python -m raftmux.chaos: --nodes must be between 1 and 9\n")
        return 2
    names = ["n%d" % (i + 1,) for i in range(args.nodes)]
    kinds = _kinds(args.nemesis)
    lock = _lock(args.wait)
    if lock is None:
        sys.stderr.write("python -m raftmux.chaos: another chaos run holds %s\n" % (LOCK,))
        return 2
    network = Network(names)
    if args.cleanup:
        removed = network.clean()
        out.write("removed %s\n" % (", ".join(removed) or "nothing"))
        return 0
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 2**31)
    directory = os.path.abspath(args.out or os.path.join(
        "chaos-runs", "%s-%s-seed%d" % (time.strftime("%Y%m%d-%H%M%S"), args.target,
                                         args.seed)))
    os.makedirs(directory, exist_ok=True)
    historyPath = os.path.join(directory, "history.jsonl")
    header = {"target": args.target, "nodes": args.nodes, "seed": args.seed,
              "time": args.time, "reads": args.reads, "nemeses": kinds,
              "keys": args.keys, "op_timeout": args.op_timeout,
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    history = History(historyPath, header=header)
    # SIGTERM before the reactor runs (while the namespaces are made) must
    # still reach the finally below.
    signal.signal(signal.SIGTERM, _interrupt)
    run = None
    try:
        try:
            network.setUp()
        except NetworkError as e:
            sys.stderr.write("python -m raftmux.chaos: cannot build the network: %s\n" % (e,))
            return 2
        run = _experiment(args, network, directory, history, kinds)
    except KeyboardInterrupt:
        pass
    finally:
        history.close()
        network.tearDown()
        if not args.keep_data:
            members = os.path.join(directory, "members")
            for name in names:
                shutil.rmtree(os.path.join(members, name), ignore_errors=True)
    if run is None:
        sys.stderr.write("python -m raftmux.chaos: interrupted before the run began\n")
        return 130
    if run.failed:
        sys.stderr.write("python -m raftmux.chaos: the run failed: %s\n(member logs in %s)\n"
                         % (run.failed, os.path.join(directory, "members")))
        return 4
    result = check(history.ops, seconds=args.check_timeout)
    plots, skipped = plot(history, directory, "(%s, seed %d)" % (args.target, args.seed))
    run_ = dict(header)
    summary = summarize(run_, history, result, {"history": historyPath, "directory": directory},
                        plots, skipped, run.errors)
    summary["interrupted"] = run.interrupted
    summary["plan"] = header.get("plan", [])
    with open(os.path.join(directory, "results.json"), "w") as f:
        json.dump(summary, f, indent=2)
    if args.json:
        out.write(json.dumps(summary) + "\n")
    else:
        out.write(table(summary, result.anomalies))
    out.flush()
    if run.interrupted:
        return 130
    return EXIT[result.verdict]


if __name__ == "__main__":
    sys.exit(main())
