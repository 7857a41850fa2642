"""
A child process's CPU time from Linux ``/proc``, for the tests' and the
benchmarks' measurements of the processes they start.
"""

import os

__all__ = ["cpuSeconds"]


def cpuSeconds(pid):
    """
    User + system CPU seconds process ``pid`` has used so far (all its
    threads).  Raises ``OSError`` where ``/proc`` has no such process.
    """
    with open("/proc/%d/stat" % (pid,)) as f:
        # After the command name, which may hold spaces and parentheses.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
