# -*- test-case-name: raftmux.test.test_rafthttp_peer -*-
"""
A peer's status (spec 5): one per peer, shared by its readers, writers,
pipeline and snapshot sender.
"""

from twisted.logger import Logger

__all__ = ["PeerStatus"]


class PeerStatus:
    """
    ``activate()`` on any success, ``deactivate(reason)`` on a failure;
    ``since`` is the clock time it became active, or None while inactive.
    """

    log = Logger()

    def __init__(self, localID, peerID, clock):
        self.localID = localID
        self.peerID = peerID
        self.clock = clock
        self.active = False
        self.since = None

    def activate(self):
        if not self.active:
            self.log.info("peer {peer:x} became active", peer=self.peerID)
            self.active = True
            self.since = self.clock.seconds()

    def deactivate(self, reason):
        if self.active:
            self.log.warn("peer {peer:x} became inactive (message send to peer failed): "
                          "{reason}", peer=self.peerID, reason=reason)
            self.active = False
            self.since = None
