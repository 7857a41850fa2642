# -*- test-case-name: raftmux.test.test_node_cli -*-
"""
A local raftmux cluster: N ``twistd -n raftmux`` processes on loopback,
each with its own data directory, run in the foreground.

    python -m raftmux.cluster [options] [run]       # start, print URLs, wait for health
    python -m raftmux.cluster status                # from another terminal
    python -m raftmux.cluster kill leader           # kill -9 the leader (or a name)
    python -m raftmux.cluster start n2              # start a stopped member again
    python -m raftmux.cluster restart n2            # kill -9, then start
    python -m raftmux.cluster add n4                # add a member (POST /cluster/members)
    python -m raftmux.cluster remove n4             # remove it (DELETE /cluster/members/<id>)
    python -m raftmux.cluster stop                  # stop the cluster (as Ctrl-C does)

Flags after ``--`` go to every member (``-- --snapshot-count 50``).  See
``docs/cluster.md``.

One module per idea:

* ``members``: a member's plan and process record (``Member``,
  ``planMembers``, ``freePort``);
* ``processes``: ``LocalCluster``, the process supervision on a reactor
  (start, kill, stop, the guardian that outlives a killed parent) and the
  cluster-level questions (health, leader, add, remove);
* ``client``: the HTTP client it asks them with (bounded answers);
* ``control``: the control socket, one ``command_<name>`` per command;
* ``supervisor``: the foreground run and those commands;
* ``cli``: the command line.
"""

from raftmux.cluster.cli import main
from raftmux.cluster.members import (
    DEFAULT_BASE_PORT,
    DEFAULT_PORT_STEP,
    ClusterError,
    Member,
    describeExit,
    freePort,
    planMembers,
)
from raftmux.cluster.processes import (
    DEFAULT_TOKEN,
    ETCD,
    STATE_FILE,
    LocalCluster,
    childEnvironment,
    twistdCommand,
)
from raftmux.cluster.supervisor import DEFAULT_DIR

__all__ = ["ClusterError", "DEFAULT_BASE_PORT", "DEFAULT_DIR", "DEFAULT_PORT_STEP",
           "DEFAULT_TOKEN", "ETCD", "LocalCluster", "Member", "STATE_FILE",
           "childEnvironment", "describeExit", "freePort", "main", "planMembers",
           "twistdCommand"]
