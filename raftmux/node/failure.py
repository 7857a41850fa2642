# -*- test-case-name: raftmux.test.test_tap -*-
"""
What a process does when its node cannot start: ``RaftNode(...,
onStartFailure=exitOnStartFailure())`` stops the reactor and ends the
process with status 1, so that a supervisor (systemd, a container runtime)
sees a failed start instead of a process left running with a dead node.
``twistd raftmux`` does this; a ``.tac`` file or an application composing
``RaftNode`` itself passes the hook (``docs/examples/raftmux.tac``).
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = ["exitOnStartFailure"]

log = Logger()


def _exitWithFailure():
    """
    End the process with status 1 once twistd has finished its own
    shutdown (pidfile removed, logs flushed).  twistd itself always exits
    0 after a ``reactor.stop()``.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed stream: nothing left to flush
            pass
    os._exit(1)


def exitOnStartFailure(reactor: Any = None, exit: bool = True) -> Callable[[Failure], None]:
    """
    An ``onStartFailure`` hook: log the reason, stop ``reactor`` (once it
    runs: a failure found while twistd starts the services comes before
    ``reactor.run()``), and with ``exit`` make the process's status 1.
    """
    if reactor is None:
        from twisted.internet import reactor

    def stop():
        if reactor.running:
            reactor.stop()

    def failed(failure):
        log.critical("raftmux: stopping: {why}", why=failure.getErrorMessage())
        reactor.callWhenRunning(stop)
        if exit:
            atexit.register(_exitWithFailure)
    return failed
