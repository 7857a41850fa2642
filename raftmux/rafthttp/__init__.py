# -*- test-case-name: raftmux.test.test_rafthttp_peer -*-
"""
etcd v3.4's peer transport (rafthttp), for Twisted.

The wire encodings are sans-IO and live in their own modules:

* ``raftmux.rafthttp.codec``: the plain length-prefixed Message framing of
  the ``message`` stream, and the msgappv2 encoding of the ``msgapp``
  stream.
* ``raftmux.rafthttp.snapshot_codec``: the body of ``POST /raft/snapshot``.

The Twisted shells: ``Transport`` (``transport``), its Resources
(``server``, ``version``), stream writers and readers (``stream``), the
pipeline, snapshot sender, prober, peers (``peer``) and URL picking.

The messages themselves are ``raftmux.raftpb``'s.  See ``docs/rafthttp.md``.
"""

from raftmux.rafthttp.headers import MIN_CLUSTER_VERSION, SERVER_VERSION
from raftmux.rafthttp.ids import clusterID, formatID, memberID, parseID
from raftmux.rafthttp.interfaces import SNAPSHOT_FAILURE, SNAPSHOT_FINISH, IRaft
from raftmux.rafthttp.transport import PeerNotFound, Transport, TransportStopped
from raftmux.rafthttp.urlpick import URLPicker
from raftmux.rafthttp.version import Member, MembersResource, VersionResource

__all__ = [
    "Transport", "IRaft", "SNAPSHOT_FINISH", "SNAPSHOT_FAILURE", "PeerNotFound",
    "TransportStopped", "URLPicker", "VersionResource", "MembersResource", "Member",
    "memberID", "clusterID", "formatID", "parseID", "SERVER_VERSION", "MIN_CLUSTER_VERSION",
]
