# -*- test-case-name: raftmux.test.test_procstat -*-
"""
A child process's CPU time and memory from Linux ``/proc``, for the tests'
and the benchmarks' measurements of the processes they start.
"""

import os

__all__ = ["cpuSeconds", "statusKiB"]


def cpuSeconds(pid):
    """
    User + system CPU seconds process ``pid`` has used so far (all its
    threads).  Raises ``OSError`` where ``/proc`` has no such process.
    """
    with open("/proc/%d/stat" % (pid,)) as f:
        # After the command name, which may hold spaces and parentheses.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def statusKiB(pid, field):
    """
    A kB figure of ``/proc/<pid>/status`` (``"VmRSS"``, ``"VmHWM"``...), or
    None if the status has no such line.  Raises ``OSError`` where ``/proc``
    has no such process.
    """
    prefix = field + ":"
    with open("/proc/%d/status" % (pid,)) as f:
        for line in f:
            if line.startswith(prefix):
                return int(line.split()[1])
    return None
