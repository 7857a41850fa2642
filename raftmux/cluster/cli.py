# -*- test-case-name: raftmux.test.test_node_cli -*-
"""
``python -m raftmux.cluster``: run a local cluster in the foreground, or
control the one running in ``--dir`` (see ``docs/cluster.md``).
"""

import argparse
import json
import os
import shutil
import signal
import sys
import time
from typing import Any

from twisted.internet import defer

from raftmux.cluster.control import ask, socketPath
from raftmux.cluster.members import (
    DEFAULT_BASE_PORT,
    DEFAULT_PORT_STEP,
    ClusterError,
    Member,
    planMembers,
)
from raftmux.cluster.processes import DEFAULT_TOKEN, ETCD, STATE_FILE, LocalCluster
from raftmux.cluster.supervisor import DEFAULT_DIR, Supervisor, stopReactor

__all__ = ["COMMANDS", "main"]

COMMANDS = ("run", "start", "stop", "status", "kill", "restart", "add", "remove", "leader")


def describeGossip(gossip):
    """A member's gossip state for ``status``: ``alive 12s`` (for 12 s), ``dead 3s``, ``-``."""
    if not gossip:
        return "-"
    text = gossip["state"]
    ago = gossip.get("lastChangeAgo")
    if ago is not None:
        text += " %ds" % (max(0, int(ago)),)
    if gossip.get("reaped"):
        text += " (forgotten)"
    return text


def formatStatus(answer):
    rows = [("NAME", "PID", "STATE", "HEALTHY", "LEADER", "CLIENT URL", "PEER URL", "GOSSIP")]
    for m in answer["members"]:
        rows.append((m["name"] + (" (etcd)" if m["kind"] == "etcd" else ""),
                     str(m["pid"] or "-"), m["state"], "yes" if m["healthy"] else "no",
                     "*" if m["name"] == answer.get("leader") else "",
                     m["clientURL"], "same" if m["peerURL"] == m["clientURL"] else m["peerURL"],
                     "-" if m["kind"] == "etcd" else describeGossip(m.get("gossip"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    if answer.get("gossipFrom"):
        lines.append("(gossip as %s sees it)" % (answer["gossipFrom"],))
    return "\n".join(lines)


def parser():
    p = argparse.ArgumentParser(
        prog="python -m raftmux.cluster",
        description="Run a local raftmux cluster (twistd -n raftmux processes) in the "
                    "foreground, or control the one running in --dir.",
        epilog="Flags after -- go to every raftmux member, e.g. "
               "-- --snapshot-count 50 --heartbeat-interval 50 --election-timeout 500. "
               "See docs/cluster.md.")
    p.add_argument("command", nargs="?", default="run", choices=COMMANDS,
                   help="run (default; 'start' with no NAME too): start the cluster in the "
                        "foreground; status; kill NAME|leader; start NAME; restart NAME; "
                        "add NAME; remove NAME; leader; stop")
    p.add_argument("name", nargs="?", help="a member's name, or 'leader'")
    p.add_argument("--size", type=int, default=3, help="members of a new cluster (3)")
    p.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT,
                   help="member i's client port is BASE+i*STEP, its peer port one more "
                        "(12379/12380, 22379/22380, 32379/32380, as the Procfile)")
    p.add_argument("--port-step", type=int, default=DEFAULT_PORT_STEP)
    p.add_argument("--ports", choices=("auto",), help="auto: ports the kernel picks")
    p.add_argument("--one-port", action="store_true",
                   help="each member serves clients and peers on one port")
    p.add_argument("--dir", default=DEFAULT_DIR,
                   help="data directories, logs and cluster.json (./%s)" % (DEFAULT_DIR,))
    p.add_argument("--token", default=DEFAULT_TOKEN, help="--initial-cluster-token")
    p.add_argument("--etcd", default="", metavar="NAMES",
                   help="comma-separated members to run as etcd (%s) instead" % (ETCD,))
    p.add_argument("--clean", action="store_true",
                   help="delete --dir first (a new cluster, not a restart)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for the members to be healthy (30)")
    p.add_argument("--follow", action="store_true",
                   help="copy every member's log lines to stdout, prefixed with its name")
    p.add_argument("--signal", default="KILL", help="kill: the signal (KILL)")
    return p


def signalNumber(text):
    text = text.upper()
    if text.isdigit():
        return int(text)
    try:
        return int(getattr(signal, text if text.startswith("SIG") else "SIG" + text))
    except AttributeError:
        raise ClusterError("unknown signal %r" % (text,)) from None


def loadOrPlan(args, memberFlags):
    """The cluster in ``--dir``: the saved layout when there is one, else a new plan."""
    directory = os.path.abspath(args.dir)
    state = None
    path = os.path.join(directory, STATE_FILE)
    if args.clean and os.path.isdir(directory):
        shutil.rmtree(directory)
    if os.path.exists(path):
        with open(path) as f:
            state = json.load(f)
    if state is not None:
        members = [Member.fromJSON(m) for m in state["members"]]
        return members, state.get("token", args.token), memberFlags or state.get("flags", []), \
            True
    etcd = [n for n in args.etcd.split(",") if n]
    members = planMembers(args.size, "auto" if args.ports == "auto" else args.base_port,
                          args.one_port, args.port_step, etcd=etcd)
    unknown = set(etcd) - {m.name for m in members}
    if unknown:
        raise ClusterError("--etcd names no member: %s" % (", ".join(sorted(unknown)),))
    return members, args.token, memberFlags, False


def run(args, memberFlags, out):
    from twisted.internet import reactor

    try:
        ask(args.dir, {"cmd": "status"}, timeout=5)
    except ClusterError:
        pass
    else:
        raise ClusterError("a cluster is already running in %s" % (args.dir,))
    members, token, flags, resumed = loadOrPlan(args, memberFlags)
    os.makedirs(args.dir, exist_ok=True)

    def echo(name, line):
        out.write("%-4s | %s\n" % (name, line))
        out.flush()

    supervisor: Any = None
    cluster = LocalCluster(args.dir, members, token=token, flags=flags,
                           echo=echo if args.follow else None,
                           onExit=lambda m, pid, e: supervisor.memberExited(m, pid, e))
    supervisor = Supervisor(cluster, out, timeout=args.timeout, directoryFlag=args.dir)
    if resumed:
        supervisor.say("raftmux cluster: restarting the cluster saved in %s "
                       "(--clean for a new one)" % (cluster.directory,))

    def started():
        d = defer.ensureDeferred(supervisor.run())

        def failed(f):
            supervisor.say("raftmux cluster: %s" % (f.getErrorMessage(),))
            supervisor.exitCode = 1
            stopReactor(reactor)
        d.addErrback(failed)

    # A shell starting us in the background leaves SIGINT ignored, and then
    # Twisted installs no handler for it; the members, spawned with default
    # dispositions, would stop on a Ctrl-C sent to the group while we stay.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    reactor.callWhenRunning(started)
    reactor.addSystemEventTrigger("before", "shutdown",
                                  lambda: defer.ensureDeferred(supervisor.shutdown()))
    reactor.run()
    return supervisor.exitCode


def waitGone(directory, timeout=30.0):
    """Until the supervisor of ``directory`` stops answering (bounded)."""
    path = socketPath(directory)
    deadline = time.monotonic() + timeout
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)


def main(argv=None, out=None):
    out = out or sys.stdout
    argv = list(sys.argv[1:] if argv is None else argv)
    memberFlags = []
    if "--" in argv:
        cut = argv.index("--")
        argv, memberFlags = argv[:cut], argv[cut + 1:]
    args = parser().parse_args(argv)
    try:
        if args.command == "run" or (args.command == "start" and not args.name):
            return run(args, memberFlags, out)
        if args.command == "status":
            out.write(formatStatus(ask(args.dir, {"cmd": "status"})) + "\n")
            return 0
        if args.command == "leader":
            answer = ask(args.dir, {"cmd": "status"})
            if not answer.get("leader"):
                raise ClusterError("no leader right now")
            out.write(answer["leader"] + "\n")
            return 0
        if args.command == "stop":
            ask(args.dir, {"cmd": "stop"})
            waitGone(args.dir)
            out.write("stopped\n")
            return 0
        if not args.name:
            raise ClusterError("%s needs a member's name" % (args.command,))
        request = {"cmd": args.command, "name": args.name}
        if args.command == "kill":
            request["signal"] = signalNumber(args.signal)
        answer = ask(args.dir, request)
        if args.command == "kill":
            out.write("killed %s (%s)\n" % (answer["name"], answer["exit"]))
        elif args.command == "add":
            out.write("added %s (member %s) at %s, pid %d\n" % (
                answer["name"], answer["id"], answer["clientURL"], answer["pid"]))
        elif args.command == "remove":
            out.write("removed %s (member %s)\n" % (answer["name"], answer["id"]))
        else:
            out.write("%s %s (pid %d), healthy\n" % (
                {"start": "started", "restart": "restarted"}[args.command],
                answer["name"], answer["pid"]))
        return 0
    except ClusterError as e:
        sys.stderr.write("python -m raftmux.cluster: %s\n" % (e,))
        return 1
