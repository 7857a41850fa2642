# -*- test-case-name: raftmux.test.test_node -*-
"""
Keeping who we talk to in step with the member table: every member the
table gains or changes becomes (or updates) a peer of the rafthttp
``Transport`` and the ``PeerDialer``; a removed one leaves both; a
restored snapshot brings both in line with its table.
"""

from twisted.logger import Logger

from raftmux.rafthttp import formatID

__all__ = ["PeerSync"]


class PeerSync:
    """``localID``'s peers in ``dialer`` and ``transport``."""

    log = Logger()

    def __init__(self, localID, dialer, transport):
        self.localID = localID
        self.dialer = dialer
        self.transport = transport

    def memberChanged(self, member):
        """``member`` (a ``rafthttp.Member``) was added, promoted or updated."""
        if member.id == self.localID or not member.peerURLs:
            return
        self.dialer.setPeer(member.id, member.peerURLs)
        if self.transport.hasPeer(member.id):
            self.transport.updatePeer(member.id, member.peerURLs)
        else:
            self.transport.addPeer(member.id, member.peerURLs)

    def memberRemoved(self, memberID):
        self.dialer.removePeer(memberID)
        if memberID != self.localID and self.transport.hasPeer(memberID):
            self.transport.removePeer(memberID)

    def restored(self, table):
        """The whole table was replaced (a snapshot)."""
        for id in self.transport.peerIDs():
            if id not in table:
                self.transport.removePeer(id)
                self.dialer.removePeer(id)
        for id in table.ids():
            self.memberChanged(table.get(id))
        self.log.debug("raftmux: peers now {peers}",
                       peers=",".join(formatID(i) for i in table.ids()))
