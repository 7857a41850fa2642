# -*- test-case-name: raftmux.test.test_ckit_node -*-
"""
``CkitNode``: grafana/ckit's ``Node`` for Twisted, an ``IService``.

A ``Memberlist`` (SWIM membership, on whatever ``IMemberlistTransport`` it
is given: ``raftmux.memberlist.CkitTransport`` is ckit's HTTP/2 one) with a
``CkitCore`` as its delegate: peer states (viewer, participant,
terminating) gossiped with a Lamport clock, observers told when the peer
list changes, and an optional sharder kept in step.

* ``start(addresses)`` joins (ckit's ``Start``; may be called again);
  ``setJoinAddresses`` replaces the addresses the rejoin loop tries.
* ``changeState(to, timeout=None)`` fires once the change has been
  gossiped enough times (at once when we are alone); it fails with
  ``StateTransitionError`` for anything but viewer -> participant ->
  terminating.
* ``peers()`` (sorted by name), ``currentState``, ``lookup(key, n, op)``.
* ``observe(observer)``: ``observer(peers)`` (or ``.notifyPeersChanged``)
  is called soon after a change, from the reactor, with the latest peer
  list only (intermediate ones are skipped, an unchanged list is not
  repeated); returning False unregisters it.  ``ParticipantObserver``
  forwards only when the set of participants changed.
* ``rejoinInterval``: every so often, join the start addresses again and
  every member we hold dead, which heals a partition once its two sides
  have given up on each other (memberlist alone never talks to the dead
  again; ckit leaves this to its user, Alloy rejoins every minute).
* ``stopService`` leaves (``leaveTimeout``, ckit's 5 s) and shuts down.
"""

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger

from raftmux.ckit.core import CkitCore, StateTransitionError
from raftmux.ckit.peer import PeerState
from raftmux.ckit.shard import Op
from raftmux.memberlist.config import MemberlistConfig
from raftmux.memberlist.messages import NodeStateType
from raftmux.memberlist.service import Memberlist

#: memberlist's UDPBufferSize under ckit: packets ride HTTP/2, not UDP datagrams
CKIT_PACKET_SIZE = 10 * 1024 * 1024


def ckitConfig(name, **overrides):
    """
    memberlist's DefaultLANConfig as ckit adjusts it for its HTTP/2
    transport: no TCP fallback pings (a stream per probe is not worth it),
    10 MiB packets.  Probe timings stay LAN's (1 s, 0.5 s); ckit's newest
    release lengthens them (pass ``probeInterval=5.0, probeTimeout=2.0``).
    """
    values = dict(name=name, disableTcpPings=True, udpBufferSize=CKIT_PACKET_SIZE)
    values.update(overrides)
    return MemberlistConfig.lan(**values)


class ParticipantObserver:
    """Forward to ``observer`` only when the participants (names, addresses) changed."""

    def __init__(self, observer):
        self._next = _callable(observer)
        self._last = None

    def __call__(self, peers):
        participants = [p for p in peers if p.state == PeerState.PARTICIPANT]
        if participants == self._last:
            return True
        self._last = participants
        return self._next(peers)


def _callable(observer):
    notify = getattr(observer, "notifyPeersChanged", None)
    return notify if notify is not None else observer


class CkitNode(Service):
    log = Logger()

    def __init__(self, config, transport, reactor=None, sharder=None, nodeMeta=None,
                 rejoinInterval=0.0, leaveTimeout=5.0, rng=None):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.config = config
        self.sharder = sharder
        self.rejoinInterval = rejoinInterval
        self.leaveTimeout = leaveTimeout
        self.core = CkitCore(config.name, onPeersChanged=self._peersChanged, sharder=sharder,
                             retransmitMult=config.retransmitMult, nodeMeta=nodeMeta,
                             log=self._coreLog)
        self.memberlist = Memberlist(config, transport=transport, delegate=self.core,
                                     events=self.core, reactor=reactor, rng=rng)
        self._observers = []
        self._latest = None
        self._notified = None
        self._notifyCall = None
        self._joinAddresses = []
        self._rejoin = None

    @property
    def name(self):
        return self.config.name

    @property
    def address(self):
        """Our advertised ``host:port`` (once running)."""
        return self.memberlist.localNode.address

    @property
    def currentState(self):
        return self.core.currentState

    # -- lifecycle -------------------------------------------------------------------

    def startService(self):
        Service.startService(self)
        self.memberlist.startService()
        if self.rejoinInterval:
            self._rejoin = task.LoopingCall(self._rejoinNow)
            self._rejoin.clock = self.reactor
            d = self.memberlist.whenRunning()
            d.addCallback(lambda _: self._rejoin.start(self.rejoinInterval, now=False)
                          if self.running and not self._rejoin.running else None)
            d.addErrback(lambda f: None)  # memberlist logged why it could not start

    def whenRunning(self):
        """Fires with this node once memberlist listens and has declared us alive."""
        return self.memberlist.whenRunning().addCallback(lambda _: self)

    def start(self, addresses=()):
        """Join ``addresses`` (``host:port``); fires with how many answered (ckit's Start)."""
        addresses = [addresses] if isinstance(addresses, str) else list(addresses)
        for address in addresses:
            if address not in self._joinAddresses:
                self._joinAddresses.append(address)
        if self.memberlist.core is None:
            return defer.fail(RuntimeError("start the service (and wait for whenRunning) "
                                           "before joining"))
        if not addresses:
            return defer.succeed(0)
        return self.memberlist.join(addresses)

    def setJoinAddresses(self, addresses):
        """Replace the addresses the rejoin loop tries (``start`` adds to them)."""
        self._joinAddresses = list(dict.fromkeys(addresses))

    def _rejoinNow(self):
        targets = list(self._joinAddresses)
        for node in self.memberlist.allNodes():
            if node.state == NodeStateType.DEAD and node.address not in targets:
                targets.append(node.address)
        if not targets or not self.running:
            return
        mine = self.address
        targets = [t for t in targets if t != mine]
        if targets:
            self.memberlist.join(targets).addErrback(
                lambda f: self.log.debug("ckit {name}: rejoin failed: {why}", name=self.name,
                                         why=f.getErrorMessage()))

    @defer.inlineCallbacks
    def stopService(self):
        """Leave (gossip our departure, up to ``leaveTimeout``), then stop."""
        Service.stopService(self)
        if self._rejoin is not None and self._rejoin.running:
            self._rejoin.stop()
        if self._notifyCall is not None and self._notifyCall.active():
            self._notifyCall.cancel()
        self._notifyCall = None
        if self.memberlist.core is not None and self.memberlist.running:
            try:
                yield self.memberlist.leave(self.leaveTimeout)
            except Exception as e:
                self.log.warn("ckit {name}: failed to broadcast leave message to cluster: {e}",
                              name=self.name, e=e)
        yield self.memberlist.stopService()

    # -- state ------------------------------------------------------------------------

    def changeState(self, to, timeout=None):
        """
        Move to ``to``; fires once the change has been gossiped enough times
        (or at once without peers).  ``timeout`` stops the waiting, not the
        gossip (ckit's context).  Fails with ``StateTransitionError``.
        """
        done = defer.Deferred()

        def sent():
            if not done.called:
                done.callback(None)
        try:
            hasPeers = self.core.changeState(to, sent)
        except StateTransitionError:
            return defer.fail()
        if not hasPeers and not done.called:
            done.callback(None)
        if timeout is not None and not done.called:
            done.addTimeout(timeout, self.reactor)
        return done

    def peers(self):
        return self.core.peers()

    def lookup(self, key, numOwners, op=None):
        """The sharder's owners of ``key`` (needs a ``sharder``)."""
        if self.sharder is None:
            raise RuntimeError("this node has no sharder")
        return self.sharder.lookup(key, numOwners, Op.READ_WRITE if op is None else op)

    # -- observers ---------------------------------------------------------------------

    def observe(self, observer):
        """Register ``observer`` (a callable or an object with ``notifyPeersChanged``)."""
        self._observers.append(_callable(observer))

    def _peersChanged(self, peers):
        self._latest = peers
        if self._notifyCall is None and self.running:
            self._notifyCall = self.reactor.callLater(0, self._notify)

    def _notify(self):
        self._notifyCall = None
        peers = self._latest
        if peers == self._notified:
            return
        self._notified = peers
        dropped = []
        for observer in list(self._observers):
            try:
                again = observer(list(peers))
            except Exception:
                self.log.failure("ckit {name}: an observer raised", name=self.name)
                again = True
            if again is False:
                dropped.append(observer)
        # observers registered meanwhile stay (they hear of the next change)
        self._observers = [o for o in self._observers
                           if not any(o is d for d in dropped)]

    def _coreLog(self, level, text):
        method = {"info": self.log.info, "warn": self.log.warn}.get(level, self.log.debug)
        method("ckit {name}: {text}", name=self.name, text=text)
