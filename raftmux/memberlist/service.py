# -*- test-case-name: raftmux.test.test_memberlist_service -*-
"""
``Memberlist``: the Twisted shell around ``MemberlistCore``, an
``IService``.

It owns the clock (one ``callLater`` at the core's next deadline), carries
the core's outputs to the transport (packets; streams: dial, write, read one
message with ``StreamDecoder``, answer the core), reads streams peers open
(every one bounded by ``tcpTimeout`` and ``maxStreamBytes``; a stream it
cannot read is answered with memberlist's errMsg, as Go answers it), and
calls the ``IEventDelegate``.  Results are Deferreds: ``join`` fires with
how many addresses were joined, ``leave`` once the leave has been gossiped.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.error import TimeoutError as TwistedTimeoutError
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger

from raftmux.memberlist.config import MemberlistConfig
from raftmux.memberlist.core import (
    BroadcastDone,
    MemberlistCore,
    Node,
    NodeJoined,
    NodeLeft,
    NodeUpdated,
    OpenStream,
    SendPacket,
    StreamReply,
    StreamResult,
    parseJoinAddress,
)
from raftmux.memberlist.delegate import IDelegate, IEventDelegate
from raftmux.memberlist.messages import DecodeError, joinHostPort
from raftmux.memberlist.stream import StreamDecoder
from raftmux.memberlist.transport import IMemberlistTransport, UDPTCPTransport


class JoinError(Exception):
    """No address could be joined; ``.errors`` maps each address to why."""

    def __init__(self, errors):
        Exception.__init__(self, "failed to join any of %s" % (", ".join(
            "%s (%s)" % item for item in errors.items()),))
        self.errors = errors


class StreamError(Exception):
    pass


class _Deadline:
    """A timer for one stream protocol: on expiry, abort its transport (or tell it)."""

    def __init__(self, reactor, timeout, transportGetter, onUnconnected=None):
        self._call = reactor.callLater(timeout, self._expire) if timeout else None
        self._transport = transportGetter
        self._onUnconnected = onUnconnected
        self.expired = False

    def _expire(self):
        self._call = None
        self.expired = True
        transport = self._transport()
        if transport is not None:
            transport.abortConnection()
        elif self._onUnconnected is not None:
            self._onUnconnected()

    def cancel(self):
        if self._call is not None:
            self._call.cancel()
            self._call = None


class _OutgoingStream(Protocol):
    """Write one message, read one back, then close; ``result`` fires with it."""

    transport: Any  # set by makeConnection; used beyond ITransport (producer, abort)

    def __init__(self, reactor, data, timeout, maxBytes, expectReply=True):
        self.data = data
        self.expectReply = expectReply
        self.decoder = StreamDecoder(maxBytes)
        self.result: defer.Deferred[Any] = defer.Deferred()
        self.transport = None
        self.deadline = _Deadline(reactor, timeout, lambda: self.transport,
                                  lambda: self._fail(TwistedTimeoutError("connect timed out")))

    def connectionMade(self):
        if self.result.called:
            self.transport.abortConnection()
            return
        self.transport.write(self.data)
        if not self.expectReply:
            self._finish(None)
            self.transport.loseConnection()

    def dataReceived(self, data):
        if self.result.called:
            return
        try:
            message = self.decoder.feed(data)
        except DecodeError as e:
            self._fail(StreamError(str(e)))
            self.transport.abortConnection()
            return
        if message is not None:
            self._finish(message)
            self.transport.loseConnection()

    def connectionLost(self, reason=connectionDone):
        self.deadline.cancel()
        if not self.result.called:
            if self.deadline.expired:
                self._fail(TwistedTimeoutError("stream timed out"))
            else:
                self._fail(StreamError("stream closed before an answer: %s" % (
                    reason.getErrorMessage(),)))

    def abort(self):
        """Give up: the result fails (if still waiting) and the connection is dropped."""
        self._fail(StreamError("stream abandoned"))
        if self.transport is not None:
            self.transport.abortConnection()

    def _finish(self, message):
        self.deadline.cancel()
        if not self.result.called:
            self.result.callback(message)

    def _fail(self, error):
        self.deadline.cancel()
        if not self.result.called:
            self.result.errback(error)


class _IncomingStream(Protocol):
    """A stream a peer opened: read one message, hand it over, write the answer, close."""

    transport: Any  # set by makeConnection; used beyond ITransport (producer, abort)

    log = Logger()

    def __init__(self, owner, peerAddress, timeout, maxBytes):
        self.owner = owner
        self.peerAddress = peerAddress
        self.decoder = StreamDecoder(maxBytes)
        self.timeout = timeout
        self.done = False

    def connectionMade(self):
        self.deadline = _Deadline(self.owner.reactor, self.timeout, lambda: self.transport)

    def dataReceived(self, data):
        if self.done:
            return
        try:
            message = self.decoder.feed(data)
        except DecodeError as e:
            self.done = True
            self.log.warn("memberlist: failed to receive from {peer}: {e}",
                          peer=self.peerAddress, e=e)
            reply = self.owner.errorReply(str(e))
            if reply:
                self.transport.write(reply)
            self.transport.loseConnection()
            return
        if message is None:
            return
        self.done = True
        reply = self.owner.streamMessage(message, self.peerAddress)
        if reply:
            self.transport.write(reply)
        self.transport.loseConnection()

    def connectionLost(self, reason=connectionDone):
        self.deadline.cancel()
        self.owner.incomingClosed(self)


class Memberlist(Service):
    """
    A cluster member.  Built with a ``MemberlistConfig``, a transport
    (``UDPTCPTransport`` on the config's bind address and port when None),
    an ``IDelegate`` and an ``IEventDelegate`` (both optional).  Start it
    (``startService``, or ``create``) before joining.
    """

    log = Logger()

    def __init__(self, config: MemberlistConfig | None = None,
                 transport: IMemberlistTransport | None = None, delegate: IDelegate | None = None,
                 events: IEventDelegate | None = None, reactor: Any = None,
                 rng: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.config = config if config is not None else MemberlistConfig()
        self.reactor = reactor
        self.transport = transport if transport is not None else UDPTCPTransport(
            reactor, self.config.bindAddr, self.config.bindPort)
        self.delegate = delegate
        self.events = events
        self.rng = rng if rng is not None else random.Random()
        self.core: MemberlistCore | None = None  # the sans-IO core, built at start
        self._timer: Any = None
        self._pending: dict[Any, Any] = {}
        self._waiters: dict[Any, Any] = {}
        self._running: defer.Deferred[Any] = defer.Deferred()
        self._outgoing: set[Any] = set()
        self._incoming: set[Any] = set()

    # -- lifecycle -------------------------------------------------------------

    def startService(self):
        Service.startService(self)
        d = self.transport.start(self)
        d.addCallback(self._bound)
        d.addErrback(self._startFailed)

    def _bound(self, hostPort):
        _, port = hostPort
        ip, advertisePort = self.transport.finalAdvertiseAddr(self.config.advertiseAddr,
                                                              self.config.advertisePort or port)
        self.core = MemberlistCore(self.config, ip, advertisePort, delegate=self.delegate,
                                   rng=self.rng, log=self._coreLog)
        self._dispatch(self.core.start(self.reactor.seconds()))
        self._running.callback(self)

    def _startFailed(self, failure):
        self.log.failure("memberlist: could not start", failure)
        self._running.errback(failure)

    def whenRunning(self) -> defer.Deferred[Memberlist]:
        """A Deferred firing with this member once it listens and is alive."""
        d: defer.Deferred[Any] = defer.Deferred()

        def settle(r: Any) -> Any:
            if not d.called:
                d.callback(r)
            return r
        self._running.addBoth(settle)
        return d

    def stopService(self):
        Service.stopService(self)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self.core is not None:
            self.core.stop()
        for proto in list(self._outgoing):
            proto.abort()
        for proto in list(self._incoming):
            proto.transport.abortConnection()
        return self.transport.stop()

    # -- the public API ------------------------------------------------------------

    @property
    def localNode(self) -> Node:
        return self.core.localNode()

    def members(self) -> list[Node]:
        return self.core.members()

    def numMembers(self) -> int:
        return self.core.numMembers()

    def allNodes(self) -> list[Node]:
        """Every node we know, dead and left ones included (until they are reaped)."""
        return self.core.allNodes()

    def healthScore(self) -> int:
        return self.core.healthScore()

    def join(self, addresses: Iterable[str]) -> defer.Deferred[int]:
        """
        Push/pull with each of ``addresses`` (``[name/]host[:port]``, the
        port defaulting to ours); fires with the number that answered, or
        fails with ``JoinError`` when none did.
        """
        if isinstance(addresses, str):
            addresses = [addresses]
        errors = {}
        waits = []
        for address in addresses:
            d = self._joinOne(address)

            def failed(f, address=address):
                errors[address] = f.getErrorMessage()
                return 0
            waits.append(d.addCallbacks(lambda _: 1, failed))

        def count(results):
            joined = sum(results)
            if joined == 0 and errors:
                raise JoinError(errors)
            return joined
        return defer.gatherResults(waits).addCallback(count)

    @defer.inlineCallbacks
    def _joinOne(self, address):
        host, port = parseJoinAddress(address, self.core.advertisePort)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            host = yield self.reactor.resolve(host)
        streamId, outputs = self.core.join(joinHostPort(host, port), self.reactor.seconds())
        d = self._waiters[streamId] = defer.Deferred()
        self._dispatch(outputs)
        yield d

    def leave(self, timeout: float) -> defer.Deferred[Any]:
        """Gossip that we leave; fires once sent enough times, or fails after ``timeout``."""
        return self._awaitBroadcast("leave", self.core.leave, timeout)

    def updateNode(self, timeout: float) -> defer.Deferred[Any]:
        """Re-read ``nodeMeta`` and gossip it; fires once sent enough times."""
        return self._awaitBroadcast("update", self.core.updateNode, timeout)

    def _awaitBroadcast(self, tag, method, timeout):
        d: defer.Deferred[Any] = defer.Deferred()
        self._pending.setdefault(tag, []).append(d)
        if timeout:
            d.addTimeout(timeout, self.reactor)
        self._dispatch(method(self.reactor.seconds()))
        return d

    def sendToAddress(self, address: str, data: bytes) -> None:
        """A user message in one packet to ``address`` (``host:port``)."""
        self._dispatch(self.core.sendBestEffort(address, data))

    def sendBestEffort(self, node: Node, data: bytes) -> None:
        """A user message in one packet to ``node`` (a ``Node``)."""
        self.sendToAddress(node.address, data)

    def sendReliable(self, node: Node, data: bytes) -> defer.Deferred[Any]:
        """A user message over a stream to ``node``; fires once written."""
        proto = _OutgoingStream(self.reactor, self.core.reliableMessage(data),
                                self.config.tcpTimeout, self.config.maxStreamBytes,
                                expectReply=False)
        d = self._connect(node.address, self.config.tcpTimeout, proto)
        return d.addCallback(lambda _: proto.result)

    # -- IPacketReceiver ----------------------------------------------------------------

    def packetReceived(self, data, fromAddress, timestamp):
        if self.core is None:
            return
        try:
            outputs = self.core.packetReceived(data, fromAddress, self.reactor.seconds())
        except Exception:
            self.log.failure("memberlist: packet from {peer} broke the core", peer=fromAddress)
            return
        self._dispatch(outputs)

    def streamProtocol(self, peerAddress):
        if not self.running:
            return None
        proto = _IncomingStream(self, peerAddress, self.config.tcpTimeout,
                                self.config.maxStreamBytes)
        self._incoming.add(proto)
        return proto

    def incomingClosed(self, proto):
        self._incoming.discard(proto)

    def streamMessage(self, message, peerAddress):
        """A whole message on a stream a peer opened: the answer's bytes, or None."""
        if self.core is None:
            return None
        try:
            outputs = self.core.streamReceived(message, peerAddress, self.reactor.seconds())
        except Exception:
            self.log.failure("memberlist: stream from {peer} broke the core", peer=peerAddress)
            return None
        replies = [o.data for o in outputs if isinstance(o, StreamReply)]
        self._dispatch([o for o in outputs if not isinstance(o, StreamReply)])
        return replies[0] if replies else None

    def errorReply(self, text):
        return self.core.errorReply(text) if self.core is not None else None

    # -- outputs ----------------------------------------------------------------------

    def _dispatch(self, outputs):
        for out in outputs:
            try:
                self._handle(out)
            except Exception:
                self.log.failure("memberlist: handling {out!r} failed", out=out)
        self._reschedule()

    def _handle(self, out):
        if isinstance(out, SendPacket):
            self.transport.writeTo(out.data, out.address)
        elif isinstance(out, OpenStream):
            self._openStream(out)
        elif isinstance(out, StreamResult):
            waiter = self._waiters.pop(out.streamId, None)
            if out.error is not None:
                self.log.debug("memberlist: stream {id} failed: {error}", id=out.streamId,
                               error=out.error)
            if waiter is not None:
                if out.error is None:
                    waiter.callback(None)
                else:
                    waiter.errback(StreamError(out.error))
        elif isinstance(out, BroadcastDone):
            for d in self._pending.pop(out.tag, []):
                if not d.called:
                    d.callback(None)
        elif self.events is not None:
            if isinstance(out, NodeJoined):
                self.events.notifyJoin(out.node)
            elif isinstance(out, NodeLeft):
                self.events.notifyLeave(out.node)
            elif isinstance(out, NodeUpdated):
                self.events.notifyUpdate(out.node)

    def _openStream(self, out):
        proto = _OutgoingStream(self.reactor, out.data, out.timeout, self.config.maxStreamBytes)
        d = self._connect(out.address, out.timeout, proto)
        d.addCallback(lambda _: proto.result)

        def replied(message):
            if self.core is not None and self.running:
                self._dispatch(self.core.streamReplied(out.streamId, message,
                                                       self.reactor.seconds()))

        def failed(f):
            if self.core is not None and self.running:
                self._dispatch(self.core.streamFailed(out.streamId, f.getErrorMessage(),
                                                      self.reactor.seconds()))
        d.addCallbacks(replied, failed)

    def _connect(self, address, timeout, proto):
        self._outgoing.add(proto)
        d = self.transport.connectStream(address, timeout, proto)
        d.addCallback(lambda _: proto)

        def forget(result):
            self._outgoing.discard(proto)
            return result
        proto.result.addBoth(forget)

        def connectFailed(f):
            self._outgoing.discard(proto)
            proto.abort()
            proto.result.addErrback(lambda _: None)
            return f
        d.addErrback(connectFailed)
        return d

    def _reschedule(self):
        if self.core is None or not self.running:
            return
        deadline = self.core.nextDeadline()
        if deadline is None:
            return
        delay = max(0.0, deadline - self.reactor.seconds())
        if self._timer is not None and self._timer.active():
            if abs(self._timer.getTime() - (self.reactor.seconds() + delay)) < 1e-6:
                return
            self._timer.cancel()
        self._timer = self.reactor.callLater(delay, self._tick)

    def _tick(self):
        self._timer = None
        if self.core is None or not self.running:
            return
        try:
            outputs = self.core.tick(self.reactor.seconds())
        except Exception:
            # periodic timers re-arm before they work, so the core keeps ticking
            self.log.failure("memberlist: a timer broke the core")
            outputs = []
        self._dispatch(outputs)

    def _coreLog(self, level, text):
        method = {"info": self.log.info, "warn": self.log.warn}.get(level, self.log.debug)
        method("memberlist {name}: {text}", name=self.config.name, text=text)


def create(config: MemberlistConfig | None, transport: IMemberlistTransport | None = None,
           delegate: IDelegate | None = None, events: IEventDelegate | None = None,
           reactor: Any = None) -> defer.Deferred[Memberlist]:
    """Go's ``memberlist.Create``: a started ``Memberlist``, as a Deferred."""
    member = Memberlist(config, transport=transport, delegate=delegate, events=events,
                        reactor=reactor)
    member.startService()
    return member.whenRunning()
