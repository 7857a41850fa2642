# -*- test-case-name: raftmux.test.test_ckit_processes -*-
"""
One ckit member as a process, for tests and benchmarks that need real
processes (kill -9) over ckit's HTTP/2 transport:

    python -m raftmux.ckit.runner --name n1 [--listen 127.0.0.1:0]
        [--join 127.0.0.1:7946 ...] [--timings lan|fast] [--rejoin SECONDS]

It prints JSON lines on stdout: ``{"event": "listening", "address": ...}``
once it serves, then ``{"event": "peers", "peers": [ckit peers],
"members": {name: "alive"|"suspect"|"dead"|"left"}, "t": unix time}``
whenever its ckit peer list changes.  It reads commands on stdin, one a
line: ``join ADDRESS...``, ``state participant|terminating``, ``leave``
(gossip the leave, then exit).  End of stdin also leaves.
"""

import argparse
import json
import os
import sys
import time

from twisted.internet import defer, stdio, task
from twisted.internet.endpoints import serverFromString
from twisted.protocols.basic import LineReceiver

from raftmux.ckit.node import CkitNode, ckitConfig
from raftmux.ckit.peer import parseStateName
from raftmux.memberlist.ckittransport import CkitTransport
from raftmux.memberlist.messages import NodeStateType, splitHostPort

#: short timings for tests: probe 0.2 s, suspicion 3 x 0.2 s
FAST = dict(probeInterval=0.2, probeTimeout=0.1, gossipInterval=0.05, suspicionMult=3,
            pushPullInterval=5.0, tcpTimeout=2.0)


def memberStates(node):
    return {n.name: NodeStateType(n.state).name.lower() for n in node.memberlist.allNodes()}


class Commands(LineReceiver):
    """stdin commands in, JSON events out (through stdio's own transport, never sys.stdout)."""

    delimiter = b"\n"

    def __init__(self):
        self.node = None
        self.done = defer.Deferred()

    def emit(self, event, **fields):
        fields["event"] = event
        self.transport.write(json.dumps(fields).encode("utf-8") + b"\n")

    def lineReceived(self, line):
        emit = self.emit
        words = line.decode("utf-8", "replace").split()
        if not words:
            return
        command, args = words[0], words[1:]
        if command == "join":
            self.node.start(args).addCallbacks(
                lambda count: emit("joined", count=count),
                lambda f: emit("error", command="join", error=f.getErrorMessage()))
        elif command == "state":
            self.node.changeState(parseStateName(args[0])).addCallbacks(
                lambda _: emit("stateChanged", state=args[0]),
                lambda f: emit("error", command="state", error=f.getErrorMessage()))
        elif command == "leave":
            self.leave()
        else:
            emit("error", command=command, error="unknown command")

    def connectionLost(self, reason):
        self.leave()

    def leave(self):
        if not self.done.called:
            self.node.stopService().addBoth(lambda _: self.done.callback(None)
                                            if not self.done.called else None)


async def main(reactor, argv):
    parser = argparse.ArgumentParser(prog="python -m raftmux.ckit.runner")
    parser.add_argument("--name", required=True)
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--join", action="append", default=[])
    parser.add_argument("--timings", choices=("lan", "fast"), default="lan")
    parser.add_argument("--rejoin", type=float, default=0.0)
    options = parser.parse_args(argv)
    host, port = splitHostPort(options.listen)
    endpoint = serverFromString(reactor, "tcp:%d:interface=%s" % (port, host))
    transport = CkitTransport(reactor, options.listen, endpoint=endpoint)
    commands = Commands()
    stdio.StandardIO(commands, reactor=reactor)
    emit = commands.emit
    overrides = FAST if options.timings == "fast" else {}
    node = CkitNode(ckitConfig(options.name, **overrides), transport, reactor=reactor,
                    rejoinInterval=options.rejoin)
    node.observe(lambda peers: emit("peers", t=time.time(), members=memberStates(node),
                                    peers=[p.toJSON() for p in peers]) or True)
    commands.node = node
    node.startService()
    await node.whenRunning()
    emit("listening", name=options.name, address=node.address, pid=os.getpid())
    if options.join:
        try:
            emit("joined", count=await node.start(options.join))
        except Exception as e:
            emit("error", command="join", error=str(e))
    await commands.done
    # let the last packets of the leave reach the wire
    await task.deferLater(reactor, 0.1)


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, sys.argv[1:])))
