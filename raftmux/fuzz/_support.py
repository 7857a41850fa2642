"""
Helpers shared by the fuzz targets: cutting an input into the pieces a
transport would deliver, and checks that raise ``InvariantBroken``.
"""

from raftmux.fuzz import InvariantBroken


def pieces(data, control):
    """
    ``data`` cut into the pieces a socket might deliver, the cuts chosen by
    one ``control`` byte: 0 delivers it whole, 1 a byte at a time, others
    cut at sizes cycling through small primes scaled by the byte, so one
    input explores many chunkings deterministically.
    """
    if control == 0 or not data:
        return [data] if data else []
    if control == 1:
        return [data[i:i + 1] for i in range(len(data))]
    sizes = (control % 7 + 1, control % 13 + 2, control % 31 + 3, control)
    out = []
    pos = 0
    i = 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        out.append(data[pos:pos + size])
        pos += size
        i += 1
    return out


def split(data):
    """``(control, rest)``: the first byte picks the chunking of the rest."""
    if not data:
        return 0, b""
    return data[0], data[1:]


def check(condition, message, *args):
    if not condition:
        raise InvariantBroken(message % args if args else message)


class Budget:
    """Counts the steps a target's loop takes, so a state machine that stops progressing is found."""

    def __init__(self, limit):
        self.limit = limit
        self.used = 0

    def step(self):
        self.used += 1
        if self.used > self.limit:
            raise InvariantBroken("no progress after %d steps" % (self.limit,))


class LogFailures:
    """
    Collect log events that carry a failure (``log.failure`` and Twisted's
    unhandled errors): inside a Twisted shell an exception is caught and
    logged rather than raised, so the target checks this list instead.
    Used as a context manager around the code under test.
    """

    def __init__(self):
        self.failures = []

    def __call__(self, event):
        if "log_failure" in event or event.get("isError"):
            self.failures.append(event)

    def __enter__(self):
        from twisted.logger import globalLogPublisher
        globalLogPublisher.addObserver(self)
        return self

    def __exit__(self, *exc):
        from twisted.logger import globalLogPublisher
        globalLogPublisher.removeObserver(self)
        if exc[0] is None and self.failures:
            from twisted.logger import formatEvent
            event = self.failures[0]
            failure = event.get("log_failure")
            detail = failure.getTraceback() if failure is not None else formatEvent(event)
            raise InvariantBroken("an error was logged: %s\n%s" % (formatEvent(event), detail))
        return False


def runClock(clock, seconds, limit=2000):
    """
    ``clock.advance(seconds)`` (a ``task.Clock``), running at most ``limit``
    delayed calls: code that reschedules itself with ``callLater(0)`` for
    ever (Twisted's HTTP/2 server does, for a stream whose peer gave it a
    zero window) would make ``advance`` loop without end.  Returns False
    when the limit stopped it.
    """
    clock.rightNow += seconds
    ran = 0
    while clock.calls:
        clock.calls.sort(key=lambda call: call.getTime())
        call = clock.calls[0]
        if call.getTime() > clock.rightNow:
            return True
        if ran >= limit:
            return False
        clock.calls.pop(0)
        call.called = 1
        call.func(*call.args, **call.kw)
        ran += 1
    return True
