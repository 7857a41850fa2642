# -*- test-case-name: raftmux.test.test_raft_core -*-
"""
How the raft core logs without knowing about any logging system (as h2
takes a logger from its ``H2Configuration``).

``Config(logger=...)`` accepts:

* ``None``: the default, a logger that drops everything (the core is
  quiet unless its owner asks otherwise);
* an object with ``debug``, ``info``, ``warn`` and ``error`` methods, each
  called with one already formatted message string (a stdlib
  ``logging.Logger`` works: its ``warning`` is used when it has no
  ``warn``);
* a plain callable ``logger(level, message)`` where ``level`` is one of
  ``"debug"``, ``"info"``, ``"warn"``, ``"error"``.

The core only logs rare events (leadership, refused messages), so messages
are formatted before the call.
"""

__all__ = ["LEVELS", "NullLogger", "CallableLogger", "asRaftLogger"]

LEVELS = ("debug", "info", "warn", "error")


class NullLogger:
    """Drops every message: the default."""

    def debug(self, message):
        pass

    info = warn = error = debug


class CallableLogger:
    """A ``logger(level, message)`` callable seen as a logger object."""

    def __init__(self, function):
        self.function = function

    def debug(self, message):
        self.function("debug", message)

    def info(self, message):
        self.function("info", message)

    def warn(self, message):
        self.function("warn", message)

    def error(self, message):
        self.function("error", message)


class _StdlibShaped:
    """An object with ``warning`` but no ``warn`` (``logging.Logger``)."""

    def __init__(self, logger):
        self.debug = logger.debug
        self.info = logger.info
        self.warn = logger.warning
        self.error = logger.error


def asRaftLogger(logger):
    """What ``Config.logger`` holds for each accepted form (see the module)."""
    if logger is None:
        return NullLogger()
    if all(callable(getattr(logger, level, None)) for level in LEVELS):
        return logger
    if all(callable(getattr(logger, level, None))
           for level in ("debug", "info", "warning", "error")):
        return _StdlibShaped(logger)
    if callable(logger):
        return CallableLogger(logger)
    raise TypeError("a raft logger is None, an object with debug/info/warn/error "
                    "methods, or a callable(level, message); got %r" % (logger,))
