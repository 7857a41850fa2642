"""
One libFuzzer process for one target: ``python -m raftmux.fuzz._run
TARGET [libFuzzer flags and corpus directories]``.  The driver in
``__main__`` starts these (libFuzzer exits the process when it stops), so
a crash ends one child and the driver starts the next.

raftmux (and the h2/hpack libraries the HTTP/2 paths parse with) is
imported inside ``atheris.instrument_imports`` so its branches guide the
fuzzer; the harness code in ``raftmux.fuzz`` is not instrumented, so the
coverage figures are the code under test's.
"""

import sys


def main(argv):
    import atheris

    from raftmux import fuzz

    name = argv[1]
    harness = list(fuzz.AREAS) + ["raftmux.fuzz._support"]
    with atheris.instrument_imports(include=["raftmux", "h2", "hpack"], exclude=harness):
        chosen = fuzz.lookup(name)
    atheris.Setup([argv[0]] + argv[2:], chosen.function)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
