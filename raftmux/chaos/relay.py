# -*- test-case-name: raftmux.test.test_chaos_parts -*-
"""
A TCP relay that can delay what it carries: ``tc netem`` done in user
space, because this machine's kernel has no netem.

    python -m raftmux.chaos.relay LISTEN=TARGET ... [--source FROM=BIND ...]

Each ``LISTEN`` (``ip:port``) accepts connections and relays them to
``TARGET``; the onward connection is made from the address ``--source``
maps the caller's address to (so the far side, and its iptables rules,
can tell who is speaking).  Commands on standard input, one per line:
``delay MS [JITTER_MS]`` (every byte is held that long, plus a uniform
random jitter, order kept) and ``stats``; each is answered with one line.
End of input stops the relay, so it never outlives the harness that
started it.

``DelayLine`` is the sans-IO part: bytes and the time in, due bytes out.
"""

import random
import sys
from typing import Any

from twisted.internet import defer, protocol
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

__all__ = ["DelayLine", "Relay", "RelayControl", "RelayProcess", "main"]

_log = Logger()

HIGH_WATER = 1024 * 1024
LOW_WATER = 256 * 1024


class DelayLine:
    """
    Chunks of bytes each due ``delay`` (+ up to ``jitter``) seconds after
    they arrived, never before an earlier chunk.  ``random`` is a
    ``random.Random``-like source for the jitter.
    """

    def __init__(self, rng=None):
        self.delay = 0.0
        self.jitter = 0.0
        self.rng = rng or random.Random()
        self.queue = []
        self.pending = 0
        self._last = 0.0

    def push(self, now, data):
        """Queue ``data``; returns its due time."""
        due = now + self.delay + (self.rng.random() * self.jitter if self.jitter else 0.0)
        due = max(due, self._last)
        self._last = due
        self.queue.append((due, data))
        self.pending += len(data)
        return due

    def pop(self, now):
        """The bytes due by ``now`` (joined), and the next due time or None."""
        out = []
        while self.queue and self.queue[0][0] <= now:
            _, data = self.queue.pop(0)
            self.pending -= len(data)
            out.append(data)
        return b"".join(out), (self.queue[0][0] if self.queue else None)

    @property
    def immediate(self):
        """Nothing held and no delay: bytes may go straight through."""
        return not self.queue and self.delay == 0 and self.jitter == 0


@implementer(IPushProducer)
class _Pipe:
    """
    One direction of a relayed connection: from ``source`` (a transport)
    to ``sink`` (a transport), through a ``DelayLine``.  The source is
    paused while too much is held here or while the sink's buffer is full.
    """

    def __init__(self, relay, source, sink):
        self.relay = relay
        self.source = source
        self.sink = sink
        self.line = DelayLine(relay.rng)
        relay.configure(self.line)
        self.timer = None
        self._sinkFull = False
        self._paused = False
        self._closing = False
        sink.registerProducer(self, True)

    def received(self, data):
        reactor = self.relay.reactor
        if self.line.immediate:
            self.sink.write(data)
            return
        due = self.line.push(reactor.seconds(), data)
        self._schedule(due)
        self._update()

    def _schedule(self, due):
        if due is None or self.timer is not None:
            return
        reactor = self.relay.reactor
        self.timer = reactor.callLater(max(0.0, due - reactor.seconds()), self._flush)

    def _flush(self):
        self.timer = None
        data, due = self.line.pop(self.relay.reactor.seconds())
        if data:
            self.sink.write(data)
        self._schedule(due)
        self._update()
        if due is None and self._closing:
            self.sink.loseConnection()

    def _update(self):
        paused = self._sinkFull or self.line.pending > HIGH_WATER or (
            self._paused and self.line.pending > LOW_WATER)
        if paused != self._paused:
            self._paused = paused
            (self.source.pauseProducing if paused else self.source.resumeProducing)()

    # IPushProducer, for the sink's transport
    def pauseProducing(self):
        self._sinkFull = True
        self._update()

    def resumeProducing(self):
        self._sinkFull = False
        self._update()

    def stopProducing(self):
        self.close()
        self.source.loseConnection()

    def close(self):
        """The source ended: end the sink once everything held is delivered."""
        self._closing = True
        self.relay.forget(self.line)
        if not self.line.queue:
            self.sink.loseConnection()


class _Inbound(protocol.Protocol):
    """A connection accepted by the relay; the outbound side is dialed on connect."""

    transport: Any  # set by makeConnection; used beyond ITransport (producer, abort)

    def __init__(self, relay, target):
        self.relay = relay
        self.target = target
        self.outbound = None
        self.toTarget = None

    def connectionMade(self):
        self.transport.pauseProducing()
        peer = self.transport.getPeer().host
        bind = self.relay.sources.get(peer)
        host, port = self.target
        self.relay.reactor.connectTCP(host, port, _OutboundFactory(self), timeout=5,
                                      bindAddress=(bind, 0) if bind else None)
        self.relay.connections += 1

    def outboundReady(self, outbound):
        self.outbound = outbound
        self.toTarget = _Pipe(self.relay, self.transport, outbound.transport)
        outbound.fromTarget = _Pipe(self.relay, outbound.transport, self.transport)
        self.transport.resumeProducing()

    def dataReceived(self, data):
        if self.toTarget is not None:
            self.toTarget.received(data)

    def connectionLost(self, reason=connectionDone):
        if self.toTarget is not None:
            self.toTarget.close()


class _OutboundFactory(protocol.ClientFactory):
    """Dials the target for one inbound connection; a failed dial closes it."""

    noisy = False

    def __init__(self, inbound):
        self.inbound = inbound

    def buildProtocol(self, addr):
        outbound = _Outbound()
        outbound.factory = self
        return outbound

    def clientConnectionFailed(self, connector, reason):
        self.inbound.transport.loseConnection()


class _Outbound(protocol.Protocol):
    fromTarget = None

    def connectionMade(self):
        self.factory.inbound.outboundReady(self)

    def dataReceived(self, data):
        if self.fromTarget is not None:
            self.fromTarget.received(data)

    def connectionLost(self, reason=connectionDone):
        if self.fromTarget is not None:
            self.fromTarget.close()


class _InboundFactory(protocol.Factory):
    noisy = False

    def __init__(self, relay, target):
        self.relay = relay
        self.target = target

    def buildProtocol(self, addr):
        return _Inbound(self.relay, self.target)


class Relay:
    """
    The relay's state: ``routes`` ``{(ip, port): (ip, port)}``, ``sources``
    ``{caller ip: bind ip}``, the current delay and jitter (seconds).
    """

    def __init__(self, reactor, routes, sources, rng=None):
        self.reactor = reactor
        self.routes = dict(routes)
        self.sources = dict(sources)
        self.rng = rng or random.Random()
        self.delay = 0.0
        self.jitter = 0.0
        self.lines = set()
        self.connections = 0
        self.ports = []

    def configure(self, line):
        line.delay, line.jitter = self.delay, self.jitter
        self.lines.add(line)

    def forget(self, line):
        self.lines.discard(line)

    def setDelay(self, delay, jitter=0.0):
        """Applies to bytes arriving from now on, on every connection."""
        self.delay, self.jitter = delay, jitter
        for line in self.lines:
            line.delay, line.jitter = delay, jitter

    def listen(self):
        for (host, port), target in self.routes.items():
            self.ports.append(self.reactor.listenTCP(port, _InboundFactory(self, target),
                                                     interface=host))


class RelayControl(LineReceiver):
    delimiter = b"\n"

    def __init__(self, relay):
        self.relay = relay

    def lineReceived(self, line):
        words = line.decode("ascii", "replace").split()
        try:
            if words and words[0] == "delay":
                ms = float(words[1])
                jitter = float(words[2]) if len(words) > 2 else 0.0
                self.relay.setDelay(ms / 1000.0, jitter / 1000.0)
                self.sendLine(b"ok delay %g %g" % (ms, jitter))
            elif words and words[0] == "stats":
                self.sendLine(b"ok connections %d" % (self.relay.connections,))
            else:
                self.sendLine(b"error unknown command")
        except (IndexError, ValueError):
            self.sendLine(b"error bad arguments")

    def connectionLost(self, reason=connectionDone):
        from twisted.internet import reactor
        if reactor.running:
            reactor.stop()


def _address(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv=None):
    import argparse

    from twisted.internet import reactor, stdio

    p = argparse.ArgumentParser(prog="python -m raftmux.chaos.relay")
    p.add_argument("routes", nargs="+", metavar="LISTEN=TARGET")
    p.add_argument("--source", action="append", default=[], metavar="FROM=BIND")
    args = p.parse_args(argv)
    routes = {}
    for item in args.routes:
        listen, _, target = item.partition("=")
        routes[_address(listen)] = _address(target)
    sources = dict(item.split("=", 1) for item in args.source)
    relay = Relay(reactor, routes, sources)
    relay.listen()
    control = RelayControl(relay)
    stdio.StandardIO(control)
    control.sendLine(b"ready")
    reactor.run()


if __name__ == "__main__":
    sys.exit(main())


class RelayProcess(protocol.ProcessProtocol):
    """
    The harness's handle on a relay running as a child process: ``start``
    fires once it listens, ``setDelay`` once it applied a delay, ``stop``
    once it exited (closing its standard input stops it).
    """

    transport: Any  # set by makeConnection; used beyond ITransport (producer, abort)

    def __init__(self, reactor, argv, env=None):
        self.reactor = reactor
        self.argv = list(argv)
        self.env = env
        self.lines = []
        self._buffer = b""
        self._ready: defer.Deferred[Any] = defer.Deferred()
        self._answers = []
        self._ended: defer.Deferred[Any] = defer.Deferred()
        self.exited = False

    @classmethod
    def forNetwork(cls, reactor, network, peerPort=2380, env=None):
        """The relay of ``network``: each member's relay address to its peer port."""
        routes = ["%s:%d=%s:%d" % (network.relayIP(n), peerPort, network.memberIP(n), peerPort)
                  for n in network.names]
        sources = ["--source=%s=%s" % (network.memberIP(n), network.relayIP(n))
                   for n in network.names]
        argv = network.inNamespace(None, [sys.executable, "-m", "raftmux.chaos.relay"]
                                   + routes + sources)
        return cls(reactor, argv, env)

    def start(self, timeout=30.0):
        self.reactor.spawnProcess(self, self.argv[0], self.argv, env=self.env,
                                  childFDs={0: "w", 1: "r", 2: "r"})
        self._ready.addTimeout(timeout, self.reactor)
        return self._ready

    def outReceived(self, data):
        self._buffer += data
        while b"\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n", 1)
            line = raw.strip().decode("utf-8", "replace")
            self.lines.append(line)
            if line == "ready" and not self._ready.called:
                self._ready.callback(None)
            elif (line.startswith("ok") or line.startswith("error")) and self._answers:
                self._answers.pop(0).callback(line)

    def errReceived(self, data):
        self.lines.extend(data.decode("utf-8", "replace").splitlines())

    def setDelay(self, ms, jitter=0):
        """Fires with the relay's answer line; fails if it refused."""
        d: defer.Deferred[Any] = defer.Deferred()
        self._answers.append(d)
        self.transport.write(b"delay %g %g\n" % (ms, jitter))

        def check(line):
            if not line.startswith("ok"):
                raise RuntimeError("relay: %s" % (line,))
            return line
        return d.addCallback(check)

    def processEnded(self, reason):
        self.exited = True
        if not self._ready.called:
            self._ready.errback(RuntimeError("the relay exited: %s" % (
                "\n".join(self.lines[-10:]),)))
        for d in self._answers:
            d.errback(RuntimeError("the relay exited"))
        self._answers = []
        self._ended.callback(None)

    def stop(self):
        if self.exited:
            return defer.succeed(None)
        try:
            self.transport.closeStdin()
        except Exception:
            pass
        timer = self.reactor.callLater(5, self._kill)
        return self._ended.addBoth(lambda r: timer.cancel() if timer.active() else None)

    def _kill(self):
        try:
            self.transport.signalProcess("KILL")
        except Exception:
            pass
