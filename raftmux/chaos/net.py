# -*- test-case-name: raftmux.test.test_chaos_parts -*-
"""
The chaos run's network: network namespaces that it creates and removes
itself, all named with one prefix (``rmxc-`` by default) so that stale
ones from a run that was killed can be found and removed.

::

    root namespace            rmxc-hub                      rmxc-n1 ... rmxc-nN
    rmxc-host 10.77.0.254 ── vhost ┐                     ┌── eth0 10.77.0.11 ...
    (the harness: clients)         br0 10.77.0.101..10N ─┤   (one member each)
                                   (the delay relay)     └── eth0 10.77.0.1N

Members listen on their own address (``10.77.0.1i``); their peer URLs
name the relay's address for them (``10.77.0.10i``), so all traffic
between members goes through the relay in ``rmxc-hub``, which can delay
it, and which connects onward from the sender's relay address.  A packet
from member i to member j therefore arrives at j from ``10.77.0.1i`` or
``10.77.0.10i``: a partition drops both, on INPUT inside each member's
namespace.  The harness's clients (from ``10.77.0.254``) are never cut.

Everything here is sans-IO: methods return argv lists (and
``iptables-restore`` scripts); ``Network.setUp`` and ``tearDown`` run them
with ``subprocess`` because they happen before and after the reactor.
"""

import os
import shutil
import subprocess
import time

__all__ = ["PREFIX", "SUBNET", "NetworkError", "Network", "restoreScript", "requirements"]

PREFIX = "rmxc"
SUBNET = "10.77.0"
PARTITION_CHAIN = "RMXC-PART"
LOSS_CHAIN = "RMXC-LOSS"


class NetworkError(Exception):
    """A command that sets up the network failed (the message has its output)."""


def requirements():
    """
    Why this machine cannot run chaos, or None when it can: root, and
    ``ip``, ``iptables`` and ``iptables-restore`` on the PATH.
    """
    if os.geteuid() != 0:
        return "must run as root (it creates network namespaces and iptables rules)"
    missing = [tool for tool in ("ip", "iptables", "iptables-restore") if not shutil.which(tool)]
    if missing:
        return "needs %s on the PATH" % (", ".join(missing),)
    return None


def restoreScript(chain, rules):
    """An ``iptables-restore --noflush`` script that replaces ``chain``'s rules."""
    lines = ["*filter", "-F %s" % (chain,)]
    lines.extend("-A %s %s" % (chain, rule) for rule in rules)
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


class Network:
    """
    The plan of one run's namespaces for members ``names`` (``n1``...).
    ``run(argv, input=None)`` executes one command and returns
    ``(returncode, output)``; the default uses ``subprocess``.
    """

    def __init__(self, names, prefix=PREFIX, subnet=SUBNET, run=None):
        if len(names) > 80:
            raise ValueError("at most 80 members")
        self.names = list(names)
        self.prefix = prefix
        self.subnet = subnet
        self.hub = prefix + "-hub"
        self.hostLink = prefix + "-host"
        self.hostIP = "%s.254" % (subnet,)
        self.run = run or _run
        self.created = False

    # -- addresses ----------------------------------------------------------------

    def namespace(self, name):
        return "%s-%s" % (self.prefix, name)

    def _index(self, name):
        return self.names.index(name) + 1

    def memberIP(self, name):
        return "%s.%d" % (self.subnet, 10 + self._index(name))

    def relayIP(self, name):
        return "%s.%d" % (self.subnet, 100 + self._index(name))

    def ours(self, namespaces):
        """The names in ``namespaces`` (``ip netns list`` output) that are ours."""
        found = []
        for line in namespaces.splitlines():
            name = line.split(" ", 1)[0].strip()
            if name.startswith(self.prefix + "-"):
                found.append(name)
        return found

    # -- plans ----------------------------------------------------------------------

    def setUpCommands(self):
        """Every command that builds the network, in order."""
        hub, ip = self.hub, ["ip"]
        cmds = [ip + ["netns", "add", hub],
                ip + ["-n", hub, "link", "set", "lo", "up"],
                ip + ["-n", hub, "link", "add", "br0", "type", "bridge"],
                ip + ["-n", hub, "link", "set", "br0", "up"]]
        for name in self.names:
            ns = self.namespace(name)
            i = self._index(name)
            cmds += [
                ip + ["netns", "add", ns],
                ip + ["-n", ns, "link", "set", "lo", "up"],
                ip + ["link", "add", "v%d" % (i,), "netns", hub, "type", "veth",
                      "peer", "name", "eth0", "netns", ns],
                ip + ["-n", hub, "link", "set", "v%d" % (i,), "master", "br0", "up"],
                ip + ["-n", ns, "addr", "add", self.memberIP(name) + "/24", "dev", "eth0"],
                ip + ["-n", ns, "link", "set", "eth0", "up"],
                ip + ["-n", hub, "addr", "add", self.relayIP(name) + "/24", "dev", "br0"],
                ["ip", "netns", "exec", ns, "iptables", "-N", PARTITION_CHAIN],
                ["ip", "netns", "exec", ns, "iptables", "-N", LOSS_CHAIN],
                ["ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-j", PARTITION_CHAIN],
                ["ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-j", LOSS_CHAIN],
            ]
        cmds += [ip + ["link", "add", self.hostLink, "type", "veth", "peer", "name", "vhost",
                       "netns", hub],
                 ip + ["addr", "add", self.hostIP + "/24", "dev", self.hostLink],
                 ip + ["link", "set", self.hostLink, "up"],
                 ip + ["-n", hub, "link", "set", "vhost", "master", "br0", "up"]]
        return cmds

    def partitionScripts(self, cuts):
        """
        ``{namespace: iptables-restore script}`` that cuts each unordered
        pair of member names in ``cuts`` (and heals every other pair).
        """
        scripts = {}
        for name in self.names:
            rules = []
            for a, b in sorted(cuts):
                other = b if a == name else a if b == name else None
                if other is None:
                    continue
                rules.append("-s %s -j DROP" % (self.memberIP(other),))
                rules.append("-s %s -j DROP" % (self.relayIP(other),))
            scripts[self.namespace(name)] = restoreScript(PARTITION_CHAIN, rules)
        return scripts

    def lossScripts(self, probability):
        """Drop that share of the packets from other members (not from clients)."""
        scripts = {}
        for name in self.names:
            rules = []
            if probability > 0:
                for other in self.names:
                    if other == name:
                        continue
                    for ip in (self.memberIP(other), self.relayIP(other)):
                        rules.append("-s %s -m statistic --mode random --probability %.4f "
                                     "-j DROP" % (ip, probability))
            scripts[self.namespace(name)] = restoreScript(LOSS_CHAIN, rules)
        return scripts

    def restoreCommand(self, namespace):
        return ["ip", "netns", "exec", namespace, "iptables-restore", "--noflush"]

    def inNamespace(self, name, argv):
        """``argv`` run inside member ``name``'s namespace (or the hub's for None)."""
        ns = self.hub if name is None else self.namespace(name)
        return [shutil.which("ip") or "ip", "netns", "exec", ns] + list(argv)

    # -- doing it (before and after the reactor) ---------------------------------------

    def _must(self, argv, input=None):
        code, output = self.run(argv, input)
        if code != 0:
            raise NetworkError("%s: exit %d: %s" % (" ".join(argv), code, output.strip()))
        return output

    def existing(self):
        """Our namespaces that exist now (from any run)."""
        code, output = self.run(["ip", "netns", "list"], None)
        return self.ours(output) if code == 0 else []

    def clean(self):
        """
        Remove every namespace with our prefix and our root-namespace link,
        killing what still runs inside them first.  Returns the namespaces
        removed.  Safe to call when there is nothing to remove.
        """
        found = self.existing()
        for ns in found:
            code, pids = self.run(["ip", "netns", "pids", ns], None)
            for pid in pids.split() if code == 0 else ():
                try:
                    os.kill(int(pid), 9)
                except (OSError, ValueError):
                    pass
        self.run(["ip", "link", "del", self.hostLink], None)
        for ns in found:
            self.run(["ip", "netns", "del", ns], None)
        # Namespaces are torn down by the kernel a moment later: wait (bounded).
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            code, _ = self.run(["ip", "link", "show", self.hostLink], None)
            if code != 0 and not self.existing():
                break
            time.sleep(0.05)
        self.created = False
        return found

    def conflicts(self):
        """Why our subnet cannot be used here (a route to it exists), or None."""
        code, output = self.run(["ip", "-4", "route", "show", "%s.0/24" % (self.subnet,)],
                                None)
        if code == 0 and output.strip():
            return "the root namespace already routes %s.0/24: %s" % (
                self.subnet, output.strip())
        return None

    def setUp(self):
        """Build the network (after removing stale namespaces of ours)."""
        self.clean()
        conflict = self.conflicts()
        if conflict:
            raise NetworkError(conflict)
        self.created = True
        try:
            for argv in self.setUpCommands():
                self._must(argv)
        except BaseException:
            self.clean()
            raise

    def tearDown(self):
        return self.clean()


def _run(argv, input=None):
    try:
        done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, str(e)
    return done.returncode, done.stdout + done.stderr
