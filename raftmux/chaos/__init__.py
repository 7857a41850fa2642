# -*- test-case-name: raftmux.test.test_chaos_checker -*-
"""
Jepsen-style chaos runs: ``python -m raftmux.chaos`` puts a cluster's
members in network namespaces, runs a read/write/compare-and-set workload
while faults come and go, and checks the history for linearizability.
See ``docs/chaos.md``.

- ``raftmux.chaos.checker``: the linearizability checker (sans-IO)
- ``raftmux.chaos.history``: operations, nemesis events, the history file
- ``raftmux.chaos.net``: the namespaces, bridge, veths and iptables rules
- ``raftmux.chaos.relay``: the user-space relay that delays peer traffic
- ``raftmux.chaos.nemesis``: the fault schedule and its execution
- ``raftmux.chaos.workload``: the concurrent clients
- ``raftmux.chaos.targets``: raftmux and etcd clusters, and their clients
- ``raftmux.chaos.report``: the summary table, JSON and plots
"""

from raftmux.chaos.checker import check
from raftmux.chaos.history import History, NemesisEvent, Op

__all__ = ["check", "History", "NemesisEvent", "Op"]
