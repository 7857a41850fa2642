# -*- test-case-name: raftmux.test.test_ckit_node -*-
"""
Transports for membership tests and benchmarks, both ``IMemberlistTransport``:

* ``MemoryNetwork`` / ``MemoryTransport``: members in one process, packets
  and streams delivered by ``reactor.callLater`` (any reactor, a
  ``task.Clock`` included), with partitions and killed members.  No bytes
  are lost unless the network says so; streams are in-memory pipes.
* ``PartitionTransport``: wraps any transport (``CkitTransport`` over real
  HTTP/2, say) and drops what it would send to addresses cut off with
  ``cut``; ``heal`` undoes it.  Give every member one and cut both ways for
  a symmetric partition (packets arriving over HTTP/2 name the sender's
  ephemeral port, so a receiver cannot filter them by member address).
* ``MemberProcess``: a ckit member in its own process
  (``python -m raftmux.ckit.runner``) over HTTP/2, for kill -9.
"""

import json
import os
import sys
from typing import Any

from twisted.internet import defer
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.interfaces import ITransport
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from raftmux.memberlist.messages import splitHostPort
from raftmux.memberlist.transport import IMemberlistTransport
from raftmux.testing.procstat import cpuSeconds


class _Address:
    def __init__(self, address):
        self.host, self.port = splitHostPort(address)
        self.type = "TCP"


@implementer(ITransport)
class _PipeEnd:
    """One end of an in-memory stream: writes reach the other end a moment later."""

    def __init__(self, reactor, latency, local, remote):
        self.reactor = reactor
        self.latency = latency
        self.local = local
        self.remote = remote
        self.other = None
        self.protocol = None
        self.disconnected = False
        self.disconnecting = False

    def write(self, data):
        if not self.disconnected and not self.disconnecting and data:
            self.reactor.callLater(self.latency, self.other._deliver, bytes(data))

    def writeSequence(self, seq):
        self.write(b"".join(seq))

    def _deliver(self, data):
        if not self.disconnected:
            self.protocol.dataReceived(data)

    def loseConnection(self):
        if not self.disconnected and not self.disconnecting:
            self.disconnecting = True
            # after the bytes already written
            self.reactor.callLater(self.latency, self._close)

    abortConnection = loseConnection

    def _close(self):
        for end in (self, self.other):
            if not end.disconnected:
                end.disconnected = True
                end.protocol.connectionLost(Failure(ConnectionDone()))

    def getPeer(self):
        return _Address(self.remote)

    def getHost(self):
        return _Address(self.local)


class MemoryNetwork:
    def __init__(self, reactor, latency=0.0):
        self.reactor = reactor
        self.latency = latency
        self.transports = {}
        self._cut = set()
        self._dead = set()

    def transport(self, address):
        """A new member's transport at ``address`` (``ip:port``)."""
        return MemoryTransport(self, address)

    def cut(self, groupA, groupB):
        """Nothing passes between any address of ``groupA`` and any of ``groupB``."""
        for a in groupA:
            for b in groupB:
                self._cut.add(frozenset((a, b)))

    def heal(self):
        self._cut.clear()

    def kill(self, address):
        """The member at ``address`` vanishes (kill -9): nothing reaches it or leaves it."""
        self._dead.add(address)

    def reachable(self, src, dst):
        if src in self._dead or dst in self._dead or frozenset((src, dst)) in self._cut:
            return False
        transport = self.transports.get(dst)
        return transport is not None and transport.receiver is not None

    def deliver(self, src, dst, data):
        if self.reachable(src, dst):
            self.transports[dst].receiver.packetReceived(data, src, self.reactor.seconds())

    def connect(self, src, dst, protocol):
        if not self.reachable(src, dst):
            return defer.fail(ConnectionRefusedError(dst))
        server = self.transports[dst].receiver.streamProtocol(src)
        if server is None:
            return defer.fail(ConnectionRefusedError(dst))
        clientEnd = _PipeEnd(self.reactor, self.latency, src, dst)
        serverEnd = _PipeEnd(self.reactor, self.latency, dst, src)
        clientEnd.other, serverEnd.other = serverEnd, clientEnd
        clientEnd.protocol, serverEnd.protocol = protocol, server
        server.makeConnection(serverEnd)
        protocol.makeConnection(clientEnd)
        return defer.succeed(protocol)


@implementer(IMemberlistTransport)
class MemoryTransport:
    def __init__(self, network, address):
        self.network = network
        self.address = address
        self.receiver = None

    def start(self, receiver):
        self.receiver = receiver
        self.network.transports[self.address] = self
        return defer.succeed(splitHostPort(self.address))

    def finalAdvertiseAddr(self, ip, port):
        host, bound = splitHostPort(self.address)
        return ip or host, port or bound

    def writeTo(self, data, address):
        self.network.reactor.callLater(self.network.latency, self.network.deliver,
                                       self.address, address, bytes(data))

    def connectStream(self, address, timeout, protocol):
        return self.network.connect(self.address, address, protocol)

    def stop(self):
        self.receiver = None
        return defer.succeed(None)


@implementer(IMemberlistTransport)
class PartitionTransport:
    """``inner`` with outgoing packets and streams to cut-off addresses dropped."""

    def __init__(self, inner):
        self.inner = inner
        self._cut = set()
        self.dropped = 0

    def cut(self, addresses):
        self._cut.update(addresses)

    def heal(self):
        self._cut.clear()

    def start(self, receiver):
        return self.inner.start(receiver)

    def finalAdvertiseAddr(self, ip, port):
        return self.inner.finalAdvertiseAddr(ip, port)

    def writeTo(self, data, address):
        if address in self._cut:
            self.dropped += 1
            return
        self.inner.writeTo(data, address)

    def connectStream(self, address, timeout, protocol):
        if address in self._cut:
            self.dropped += 1
            return defer.fail(ConnectionRefusedError(address))
        return self.inner.connectStream(address, timeout, protocol)

    def stop(self):
        return self.inner.stop()


class MemberProcess(ProcessProtocol):
    """
    A ``python -m raftmux.ckit.runner`` child: its JSON events in
    ``events`` (each with ``"at"``, our reactor time of arrival), the
    latest ``peers`` / ``members`` it reported, commands with ``send``.
    Start it with ``MemberProcess.spawn(reactor, name, ...)``.
    """

    def __init__(self, reactor, name):
        self.reactor = reactor
        self.name = name
        self.events = []
        self.address = None
        self.pid = None
        self.peers = []
        self.members = {}
        self.stderr = b""
        self.ended: defer.Deferred[Any] = defer.Deferred()
        self._buffer = b""

    @classmethod
    def spawn(cls, reactor, name, join=(), timings="fast", rejoin=0.0, env=None):
        member = cls(reactor, name)
        args = [sys.executable, "-m", "raftmux.ckit.runner", "--name", name,
                "--timings", timings, "--rejoin", str(rejoin)]
        for address in join:
            args += ["--join", address]
        reactor.spawnProcess(member, sys.executable, args,
                             env=env if env is not None else dict(os.environ))
        return member

    def outReceived(self, data):
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            event = json.loads(line)
            event["at"] = self.reactor.seconds()
            self.events.append(event)
            if event["event"] == "listening":
                self.address, self.pid = event["address"], event["pid"]
            elif event["event"] == "peers":
                self.peers, self.members = event["peers"], event["members"]

    def errReceived(self, data):
        self.stderr = (self.stderr + data)[-20000:]

    def processEnded(self, reason):
        if not self.ended.called:
            self.ended.callback(reason.value.exitCode)

    def send(self, line):
        self.transport.write(line.encode("utf-8") + b"\n")

    def kill(self):
        """kill -9."""
        self.transport.signalProcess("KILL")

    def peerNames(self):
        return sorted(p["name"] for p in self.peers)

    def cpuSeconds(self):
        """User + system CPU time the process has used (Linux /proc), seconds."""
        return cpuSeconds(self.pid)
