# -*- test-case-name: raftmux.test.test_ckit_core -*-
"""
ckit's node logic as a sans-IO memberlist delegate: ``CkitCore``.

memberlist calls it (it provides ``IDelegate`` and ``IEventDelegate``), and
it keeps what ckit's ``Node`` keeps: the peers (every member memberlist
reports alive, with the ckit state last heard for it), a state message per
node name, a Lamport clock and a queue of state broadcasts that piggyback
on memberlist's packets.  Nothing here knows reactors or sockets; the
Twisted shell (``raftmux.ckit.node.CkitNode``) wires it to a ``Memberlist``
and turns ``onPeersChanged`` into observer notifications.

The rules, as ckit has them:

* ``changeState(to)``: only viewer -> participant -> terminating; the new
  state is stamped with a clock tick, recorded as if received, and queued
  as a broadcast named by our name (a newer one replaces a queued older
  one); ``onDone`` runs when memberlist has sent it enough times.
* A state message (broadcast or push/pull entry) first moves our clock past
  its time.  It is ignored unless newer than what we hold for that node.
  A newer message about *us* (an earlier life of this node) is replaced by
  our real state at a fresh tick; so is one with our current time but
  another state (ckit refutes that too).  New information is re-broadcast.
* Push/pull: our state lists every current peer (viewer at time 0 when we
  never heard from it); merging drops held states of nodes that neither
  side knows any more.
* Membership: join and update (re)insert a peer with its last known state;
  leave (dead or left) removes it.  After every change the peers are
  sorted by name, given to the sharder, then to ``onPeersChanged``.
"""

import json

from zope.interface import implementer

from raftmux.ckit.lamport import LamportClock
from raftmux.ckit.messages import (
    LocalState,
    MessageError,
    StateMessage,
    decodeMessage,
    viewerAtZero,
)
from raftmux.ckit.peer import Peer, PeerState, stateName
from raftmux.memberlist.config import META_MAX_SIZE
from raftmux.memberlist.delegate import IDelegate, IEventDelegate
from raftmux.memberlist.queue import NamedBroadcast, TransmitLimitedQueue

#: a cause of bad input is logged this many times, then every WARN_EVERY-th time
WARN_FIRST = 5
WARN_EVERY = 1000

VALID_TRANSITIONS = frozenset({(PeerState.VIEWER, PeerState.PARTICIPANT),
                               (PeerState.PARTICIPANT, PeerState.TERMINATING)})


class StateTransitionError(ValueError):
    def __init__(self, fromState, toState):
        ValueError.__init__(self, "invalid transition from %s to %s" % (
            stateName(fromState), stateName(toState)))
        self.fromState = fromState
        self.toState = toState


@implementer(IDelegate, IEventDelegate)
class CkitCore:
    """
    ``name`` is this node's memberlist name.  ``onPeersChanged(peers)`` is
    called synchronously with the sorted peer list after every change;
    ``sharder`` (``raftmux.ckit.shard.Sharder``) is updated just before.
    ``nodeMeta()`` gives the bytes memberlist announces for us (ckit sends
    none; ``raftmux.ckit.cluster`` puts the raft member's identity there).
    ``log(level, text)`` receives what ckit logs.
    """

    def __init__(self, name, onPeersChanged=None, sharder=None, retransmitMult=4,
                 nodeMeta=None, log=None):
        self.name = name
        self.clock = LamportClock()
        self.currentState = PeerState.VIEWER
        self._onPeersChanged = onPeersChanged
        self._sharder = sharder
        self._nodeMeta = nodeMeta
        self._log = log
        self._peerStates = {}
        self._peers = {}
        self._peerCache = []
        self.broadcasts = TransmitLimitedQueue(lambda: len(self._peerCache), retransmitMult)
        #: ckit's cluster_node_gossip_received_events_total / _broadcasts_total, by event
        self.receivedEvents = dict.fromkeys(
            ("state_change", "unknown_message", "get_local_state", "merge_remote_state",
             "node_join", "node_leave", "node_update"), 0)
        self.broadcastEvents = {"state_change": 0}
        self._warned = {}

    def _say(self, level, text):
        if self._log is not None:
            self._log(level, text)

    def _warnLimited(self, cause, text):
        """A peer's bad input: the first few of a cause, then every 1,000th with the count."""
        count = self._warned[cause] = self._warned.get(cause, 0) + 1
        if count <= WARN_FIRST:
            self._say("warn", text)
        elif count % WARN_EVERY == 0:
            self._say("warn", "%s (%d so far)" % (text, count))

    # -- queries --------------------------------------------------------------------

    def peers(self):
        """Every peer (any state), sorted by name; this node included once memberlist has it."""
        return list(self._peerCache)

    def peer(self, name):
        return self._peers.get(name)

    def stateOf(self, name):
        """The ``StateMessage`` held for ``name``, or None."""
        return self._peerStates.get(name)

    # -- our own state ---------------------------------------------------------------

    def changeState(self, to, onDone=None):
        """
        Move to ``to`` and queue its broadcast.  Returns True when there is
        another peer to tell (the caller may wait for ``onDone``), False
        when we are alone.  Raises ``StateTransitionError``.
        """
        to = PeerState(to)
        if (self.currentState, to) not in VALID_TRANSITIONS:
            raise StateTransitionError(self.currentState, to)
        self._say("debug", "changing node state from %s to %s" % (self.currentState, to))
        self.currentState = to
        message = StateMessage(self.name, to, self.clock.tick())
        # recorded as if received, so our own entry follows the same rules
        self._handleState(message)
        self.broadcasts.queueBroadcast(NamedBroadcast(self.name, message.encode(), onDone))
        return len(self._peers) > 1

    def _handleState(self, message):
        """ckit's handleStateMessage: ``(message to keep and re-broadcast, isNew)``."""
        self.clock.observe(message.time)
        current = self._peerStates.get(message.nodeName)
        message, isNew = self._judge(message, current)
        if not isNew:
            return current, False
        self._peerStates[message.nodeName] = message
        if self._updatePeerState(message):
            self._peersChanged()
        return message, True

    def _judge(self, message, current):
        if message.nodeName == self.name:
            conflicting = (current is not None and message.time == current.time
                           and message.newState != current.newState)
            if current is not None and message.time <= current.time and not conflicting:
                return message, False
            # an earlier life of ours (or a forged twin): answer with the truth
            self._say("debug", "got stale message about self: %s" % (message,))
            return StateMessage(self.name, self.currentState, self.clock.tick()), True
        if current is not None and message.time <= current.time:
            return message, False
        return message, True

    def _updatePeerState(self, message):
        peer = self._peers.get(message.nodeName)
        if peer is None or peer.state == message.newState:
            return False
        self._peers[peer.name] = Peer(peer.name, peer.addr, peer.isSelf, message.newState)
        return True

    def _queue(self, message):
        self.broadcasts.queueBroadcast(NamedBroadcast(message.nodeName, message.encode()))
        self.broadcastEvents["state_change"] += 1

    # -- IDelegate -------------------------------------------------------------------

    def nodeMeta(self, limit):
        if self._nodeMeta is None:
            return b""
        return self._nodeMeta()

    def notifyMsg(self, data):
        try:
            message = decodeMessage(data)
        except MessageError as e:
            self.receivedEvents["unknown_message"] += 1
            self._warnLimited("message", "failed to parse gossip message: %s" % (e,))
            return
        self.receivedEvents["state_change"] += 1
        kept, isNew = self._handleState(message)
        if isNew:
            self._queue(kept)

    def getBroadcasts(self, overhead, limit):
        return self.broadcasts.getBroadcasts(overhead, limit)

    def localState(self, join):
        self.receivedEvents["get_local_state"] += 1
        states = tuple(self._peerStates.get(name) or viewerAtZero(name)
                       for name in sorted(self._peers))
        return LocalState(self.clock.now(), states).encode()

    def mergeRemoteState(self, data, join):
        try:
            remote = LocalState.decode(data)
        except MessageError as e:
            self._warnLimited("state", "failed to decode remote state (join=%s): %s"
                              % (join, e))
            return
        self.receivedEvents["merge_remote_state"] += 1
        self.clock.observe(remote.currentTime)
        changed = False
        fresh = []
        remoteNames = set()
        for message in remote.nodeStates:
            remoteNames.add(message.nodeName)
            message, isNew = self._judge(message, self._peerStates.get(message.nodeName))
            if not isNew:
                continue
            self._peerStates[message.nodeName] = message
            changed = self._updatePeerState(message) or changed
            fresh.append(message)
        for name in list(self._peerStates):
            if name not in self._peers and name not in remoteNames:
                self._say("debug", "deleting stale reference to node %s" % (name,))
                del self._peerStates[name]
        if changed:
            self._peersChanged()
        for message in fresh:
            self._queue(message)

    # -- IEventDelegate ------------------------------------------------------------------

    def notifyJoin(self, node):
        self.receivedEvents["node_join"] += 1
        self._setPeer(node)

    def notifyUpdate(self, node):
        self.receivedEvents["node_update"] += 1
        self._setPeer(node)

    def notifyLeave(self, node):
        self.receivedEvents["node_leave"] += 1
        if self._peers.pop(node.name, None) is not None:
            self._peersChanged()

    def _setPeer(self, node):
        held = self._peerStates.get(node.name)
        state = held.newState if held is not None else PeerState.VIEWER
        peer = Peer(node.name, node.address, node.name == self.name, state)
        if self._peers.get(node.name) != peer:
            self._peers[node.name] = peer
            self._peersChanged()

    def _peersChanged(self):
        self._peerCache = [self._peers[name] for name in sorted(self._peers)]
        if self._sharder is not None:
            self._sharder.setPeers(self._peerCache)
        if self._onPeersChanged is not None:
            self._onPeersChanged(list(self._peerCache))


def encodeMeta(fields):
    """Compact JSON for node metadata (``raftmux.ckit.cluster``); ValueError past 512 bytes."""
    data = json.dumps(fields, separators=(",", ":"), sort_keys=True).encode("utf-8")
    if len(data) > META_MAX_SIZE:
        raise ValueError("node metadata is %d bytes, more than memberlist's %d"
                         % (len(data), META_MAX_SIZE))
    return data
