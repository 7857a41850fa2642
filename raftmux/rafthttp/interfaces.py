# -*- test-case-name: raftmux.test.test_rafthttp_peer -*-
"""
What a ``Transport`` needs from the raft it carries (etcd's ``Raft``
interface, spec 6), and what the raft side needs from a transport (etcd's
``Transporter``, the part a raft driver uses).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import Interface

from raftmux.raftpb import Message

__all__ = ["IRaft", "ITransporter", "SNAPSHOT_FINISH", "SNAPSHOT_FAILURE"]

# raft.SnapshotStatus values.
SNAPSHOT_FINISH = 1
SNAPSHOT_FAILURE = 2


class IRaft(Interface):
    """The raft node behind a ``Transport``."""

    def process(message: Message) -> Deferred[Any] | None:
        """
        Deliver one incoming ``raftpb.Message``.  Return a Deferred (or
        None, meaning accepted at once); a failure means "not accepted"
        (POST /raft answers 500).  Messages of one peer and one kind
        (proposals, the rest) are processed one after another.
        """

    def isIDRemoved(id: int) -> bool:
        """Whether member ``id`` was removed from the cluster (stream dials get 410)."""

    def reportUnreachable(id: int) -> None:
        """A message to ``id`` could not be sent."""

    def reportSnapshot(id: int, status: int) -> None:
        """A snapshot send to ``id`` ended: ``SNAPSHOT_FINISH`` or ``SNAPSHOT_FAILURE``."""


class ITransporter(Interface):
    """The messages-out side a raft driver sends through (``Transport``)."""

    def send(messages: Iterable[Message]) -> None:
        """Send each ``raftpb.Message`` to its ``to`` (unknown ones are dropped)."""

    def sendSnapshot(message: Message, databaseFile: str | None) -> Deferred[bool]:
        """
        Send a MsgSnap with the database in ``databaseFile``; a Deferred
        firing True/False (the outcome is also reported to
        ``IRaft.reportSnapshot``).
        """

    def hasPeer(id: int) -> bool:
        """Is member ``id`` one of the peers this transport talks to?"""

    def removePeer(id: int) -> None:
        """Stop talking to peer ``id`` (which ``hasPeer`` said is one)."""
