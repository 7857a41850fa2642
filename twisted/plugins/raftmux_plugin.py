"""
The ``twistd raftmux`` plugin.

This module must stay import-light: twistd imports every plugin module to list
them, before it installs the reactor the user asked for.  ``ServiceMaker``
imports ``raftmux.tap`` only when ``twistd raftmux`` actually runs.
"""

from twisted.application.service import ServiceMaker

raftmux = ServiceMaker(
    "raftmux",
    "raftmux.tap",
    "A raftmux node: raft, gossip, muxado and HTTP on one port.",
    "raftmux",
)
