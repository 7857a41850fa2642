# -*- test-case-name: raftmux.test.test_log -*-
"""
Logging helpers.  Everyday logging uses ``twisted.logger``; per-stream and
per-frame debug lines go through txaio loggers, whose disabled levels are
no-ops (about 0.2 us a call against ~5 us for a filtered twisted.logger
event).  ``twistd raftmux --log-level`` sets both: txaio's global level,
and a ``FilteringLogObserver`` in front of the observer twistd logs to, so
every line below the level (Twisted's own included) is dropped.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import IO, Any

import txaio
from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogObserver,
    LegacyLogObserverWrapper,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    textFileLogObserver,
)

txaio.use_twisted()

LEVELS = ("critical", "error", "warn", "info", "debug", "trace")
# etcd 3.4's --log-level names that are not ours: both end a Go program,
# and they are the most severe levels it has.
ETCD_LEVELS = {"panic": "critical", "fatal": "critical"}
LOGGERS = ("capnslog", "zap")

_TWISTED = {
    "critical": LogLevel.critical,
    "error": LogLevel.error,
    "warn": LogLevel.warn,
    "info": LogLevel.info,
    "debug": LogLevel.debug,
    "trace": LogLevel.debug,
}


def hotLogger(namespace: str) -> Any:
    """A level-gated logger for hot paths; its ``debug`` is free when disabled."""
    return txaio.make_logger()  # type: ignore[attr-defined]


def canonicalLevel(level: str) -> str:
    """One of ``LEVELS`` for ours or etcd's level names; ``ValueError`` for others."""
    level = ETCD_LEVELS.get(level, level)
    if level not in LEVELS:
        raise ValueError("log level must be one of %s" % (
            ", ".join(LEVELS + tuple(ETCD_LEVELS)),))
    return level


def setLogLevel(level: str) -> None:
    """Set the level of every hot-path logger (``txaio``'s global level)."""
    txaio.set_global_log_level(canonicalLevel(level))  # type: ignore[attr-defined]


def levelFilter(level: str, observer: ILogObserver) -> FilteringLogObserver:
    """
    ``observer`` given only the events at ``level`` or above (``trace``
    lets everything through, as ``debug`` does: twisted.logger has no finer
    level).
    """
    predicate = LogLevelFilterPredicate(defaultLogLevel=_TWISTED[canonicalLevel(level)])
    return FilteringLogObserver(observer, [predicate])


def _zapLine(event: Mapping[str, Any]) -> str:
    """One event as one JSON object on one line, with the fields zap's JSON lines have."""
    level = event.get("log_level")
    record = {
        "level": level.name if level is not None else "info",
        "ts": datetime.fromtimestamp(event.get("log_time") or 0, timezone.utc)
        .isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "logger": event.get("log_namespace", ""),
        "msg": formatEvent(dict(event)),
    }
    failure = event.get("log_failure")
    if failure is not None:
        record["error"] = failure.getTraceback()
    return json.dumps(record, ensure_ascii=False) + "\n"


def fileObserver(outFile: IO[Any], logger: str = "capnslog") -> ILogObserver:
    """
    Text lines (``--logger capnslog``, etcd 3.4's default) or one JSON object
    per line (``--logger zap``) written to ``outFile``.
    """
    if logger not in LOGGERS:
        raise ValueError("--logger must be one of %s" % (", ".join(LOGGERS),))
    if logger == "zap":
        return FileLogObserver(outFile, _zapLine)
    return textFileLogObserver(outFile)


def twistdObserver(serverOptions: Mapping[str, Any], level: str,
                   logger: str = "capnslog") -> ILogObserver:
    """
    The observer twistd would log to for its own options (``--syslog``,
    ``--logfile``, ``-n``: the choices of twistd's Unix logger, SIGUSR1
    rotation of a log file included), in ``logger``'s format, behind
    ``levelFilter(level, ...)``.
    """
    if serverOptions.get("syslog"):
        from twisted.python import syslog

        emit = syslog.SyslogObserver(serverOptions.get("prefix") or "twisted").emit
        inner: ILogObserver = LegacyLogObserverWrapper(emit)  # type: ignore[arg-type]
        return levelFilter(level, inner)
    logfile = serverOptions.get("logfile") or ""
    nodaemon = serverOptions.get("nodaemon")
    if logfile == "-":
        if not nodaemon:
            sys.exit("Daemons cannot log to stdout, exiting!")
        outFile: IO[Any] = sys.stdout
    elif nodaemon and not logfile:
        outFile = sys.stdout
    else:
        from twisted.python.logfile import LogFile

        rotating = LogFile.fromFullPath(logfile or "twistd.log")
        if not signal.getsignal(signal.SIGUSR1):
            def rotate(signum: int, frame: Any) -> None:
                from twisted.internet import reactor

                reactor.callFromThread(rotating.rotate)  # type: ignore[attr-defined]

            signal.signal(signal.SIGUSR1, rotate)
        outFile = rotating
    return levelFilter(level, fileObserver(outFile, logger))


class RateLimitedLog:
    """
    Lines about refused or misbehaving connections, rate-limited per cause
    so that a flood costs a few lines, not one per connection: in each
    ``interval`` seconds the first ``burst`` lines of a cause go out as
    they come, the rest are only counted, and the first line of the cause
    after the interval (or ``flush()``, at shutdown) says how many were left
    out.  ``now`` is a monotonic clock in seconds (tests pass their own).
    """

    def __init__(self, logger, burst=10, interval=60.0, now=None):
        import time

        self.logger = logger
        self.burst = burst
        self.interval = interval
        self._now = now or time.monotonic
        self._causes = {}  # cause -> [window start, lines this window, left out, level]

    def emit(self, level, cause, format, **kwargs):
        """Log ``format`` at ``level`` unless ``cause`` is over its burst; True if logged."""
        now = self._now()
        state = self._causes.get(cause)
        if state is None or now - state[0] >= self.interval:
            if state is not None:
                self._summarize(cause, state, now)
            state = self._causes[cause] = [now, 0, 0, level]
        state[1] += 1
        if state[1] <= self.burst:
            self.logger.emit(level, format, **kwargs)
            return True
        state[2] += 1
        return False

    def flush(self):
        """Say how many lines are still left out, for every cause."""
        now = self._now()
        for cause, state in list(self._causes.items()):
            self._summarize(cause, state, now)
        self._causes.clear()

    def _summarize(self, cause, state, now):
        if state[2]:
            self.logger.emit(state[3], "{cause}: {count} more like this not logged in the last "
                             "{seconds:.0f} s", cause=cause, count=state[2],
                             seconds=now - state[0])
