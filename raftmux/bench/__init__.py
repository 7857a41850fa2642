"""
Benchmarks: ``python -m raftmux.bench <part> [--json]``.

Each part is a module ``raftmux.bench.<part>`` with a ``run(options)``
function returning a list of ``Result``; every result carries the figure
measured and the baseline measured in the same run, so the ratio is
meaningful on whatever machine runs it.  Benchmarks are not tests: nothing
here runs under trial.
"""

from raftmux.bench._harness import Result, median, serverProcess

__all__ = ["Result", "median", "serverProcess"]
