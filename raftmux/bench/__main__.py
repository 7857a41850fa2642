"""``python -m raftmux.bench <part> [--json]``: run one part's benchmarks."""

import argparse
import importlib
import pkgutil
import sys

import raftmux.bench
from raftmux.bench._harness import formatJSON, formatTable


def parts():
    return sorted(m.name for m in pkgutil.iter_modules(raftmux.bench.__path__)
                  if not m.name.startswith("_"))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m raftmux.bench",
                                     description="raftmux benchmarks (not tests)")
    parser.add_argument("part", choices=parts())
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="shorter runs, rougher figures")
    options = parser.parse_args(argv)
    module = importlib.import_module("raftmux.bench." + options.part)
    results = module.run(options)
    # A part whose results do not fit the value/baseline table prints its own.
    table = getattr(module, "formatTable", formatTable)
    print(formatJSON(options.part, results) if options.json else table(options.part, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
