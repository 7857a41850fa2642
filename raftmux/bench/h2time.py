# -*- test-case-name: raftmux.test.test_bench_h2time -*-
"""
How much of a process's CPU goes to h2 itself: every ``H2Connection``
method the shell calls is wrapped with a timer.  Benchmark instrumentation
only (raftmux never imports it), behind the rows that compare h2's own cost
per request with the whole per-request CPU a target allows: where h2 alone
needs more, no work in the shell can meet that target while h2 is the
HTTP/2 engine.

Two ways in:

- ``install()`` in a benchmark's own client process;
- ``python -m raftmux.bench.h2time OUT twistd-args...``: runs ``twistd``
  with the timers installed; each SIGUSR1 appends one JSON line to ``OUT``
  with the process's CPU seconds and the seconds spent inside h2 so far.
"""

import json
import signal
import sys
import time

from h2.connection import H2Connection

#: the ``H2Connection`` methods the shell calls while serving or sending requests
METHODS = ("initiate_connection", "receive_data", "data_to_send", "send_headers",
           "send_data", "end_stream", "reset_stream", "acknowledge_received_data",
           "increment_flow_control_window", "local_flow_control_window", "ping",
           "get_next_available_stream_id", "close_connection", "update_settings")

_spent = [0.0]
_depth = [0]


def _timed(method):
    # perf_counter, not process_time: it costs no system call, and this
    # process does nothing else while inside h2 (time lost to preemption
    # counts too; the rows say so).
    clock = time.perf_counter

    def timed(*args, **kwargs):
        if _depth[0]:
            return method(*args, **kwargs)
        _depth[0] = 1
        start = clock()
        try:
            return method(*args, **kwargs)
        finally:
            _spent[0] += clock() - start
            _depth[0] = 0
    timed.__wrapped__ = method
    return timed


def install():
    """Time every call into ``H2Connection`` from now on (idempotent)."""
    for name in METHODS:
        method = getattr(H2Connection, name)
        if not hasattr(method, "__wrapped__"):
            setattr(H2Connection, name, _timed(method))


def uninstall():
    """Put ``H2Connection``'s own methods back."""
    for name in METHODS:
        method = H2Connection.__dict__.get(name)
        if hasattr(method, "__wrapped__"):
            setattr(H2Connection, name, method.__wrapped__)


def spent():
    """Seconds spent inside h2 since ``install``."""
    return _spent[0]


def snapshot():
    """This process's CPU seconds and those spent inside h2."""
    return {"cpu": time.process_time(), "h2": spent()}


def _serveTwistd(out, args):
    install()

    def dump(signum, frame):
        with open(out, "a") as f:
            f.write(json.dumps(snapshot()) + "\n")
    signal.signal(signal.SIGUSR1, dump)
    from twisted.scripts.twistd import run
    sys.argv = ["twistd"] + args
    run()


if __name__ == "__main__":
    _serveTwistd(sys.argv[1], sys.argv[2:])
