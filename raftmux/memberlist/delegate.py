# -*- test-case-name: raftmux.test.test_memberlist_core -*-
"""
The hooks a memberlist user implements, as memberlist's ``Delegate`` and
``EventDelegate``.  ``IDelegate`` methods are called synchronously from the
protocol (their answers go on the wire at once); ``IEventDelegate`` methods
are called by the Twisted shell for each membership change, in order.
"""

from zope.interface import Interface


class IDelegate(Interface):
    def nodeMeta(limit):
        """Bytes (at most ``limit``, 512) that describe this node, sent in alive messages."""

    def notifyMsg(data):
        """A user message arrived (a packet, a piggybacked broadcast, or a reliable send)."""

    def getBroadcasts(overhead, limit):
        """
        User broadcasts to piggyback on a packet: a list of bytes, each costing
        ``overhead`` plus its length, all within ``limit``.  A
        ``TransmitLimitedQueue`` answers this.
        """

    def localState(join):
        """Bytes of user state sent in a push/pull (``join`` is True when joining)."""

    def mergeRemoteState(data, join):
        """The user state a peer sent in a push/pull."""


class IEventDelegate(Interface):
    def notifyJoin(node):
        """``node`` (a ``Node`` snapshot) joined, or came back to life."""

    def notifyLeave(node):
        """``node`` is dead (failed) or left (``node.state`` says which)."""

    def notifyUpdate(node):
        """``node``'s metadata changed."""
