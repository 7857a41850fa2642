# -*- test-case-name: raftmux.test.test_conventions -*-
"""
The project's conventions, checked over the whole package so that they stay
true as modules are added: every ``test-case-name`` marker names a real test
module, every factory is quiet, the quickstart's snippet runs, the
architecture pictures match their sources.
"""

import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import subprocess
import sys

from twisted.internet.protocol import Factory
from twisted.trial.unittest import SkipTest, SynchronousTestCase

import raftmux
from raftmux.testing.tree import repositoryFile

PACKAGE = os.path.dirname(os.path.abspath(raftmux.__file__))
MARKER = re.compile(r"-\*-\s*test-case-name:\s*(.*?)\s*-\*-")


def sourceFiles():
    """Every ``.py`` file of the package (installed or in the tree), but generated protobuf."""
    for directory, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in sorted(files):
            if name.endswith(".py") and not name.endswith("_pb2.py"):
                yield os.path.join(directory, name)


def moduleName(path):
    relative = os.path.relpath(path, os.path.dirname(PACKAGE))[:-len(".py")]
    parts = relative.split(os.sep)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def markers(path):
    """The module names of the ``test-case-name`` marker in ``path``'s first lines."""
    with open(path, encoding="utf-8") as f:
        head = [f.readline() for _ in range(3)]
    for line in head:
        found = MARKER.search(line)
        if found:
            return [name.strip() for name in found.group(1).split(",") if name.strip()]
    return []


def importableModules():
    """
    Every module of the package but the tests and the ``__main__`` scripts,
    and but those needing an optional extra that is not installed
    (``raftmux[bench]``'s pysyncobj).
    """
    for info in pkgutil.walk_packages([PACKAGE], "raftmux."):
        name = info.name
        if name.startswith("raftmux.test.") or name.rsplit(".", 1)[-1] == "__main__":
            continue
        try:
            yield importlib.import_module(name)
        except ModuleNotFoundError as e:
            if (e.name or "raftmux").startswith("raftmux"):
                raise


class TestCaseNameTests(SynchronousTestCase):
    """``trial --testmodule`` and editors follow these markers: they must lead somewhere."""

    def test_everyMarkerNamesARealTestModule(self):
        wrong = []
        for path in sourceFiles():
            for name in markers(path):
                if not name.startswith("raftmux.test.test_") or \
                        importlib.util.find_spec(name) is None:
                    wrong.append("%s: %s" % (os.path.relpath(path, PACKAGE), name))
        self.assertEqual(wrong, [])

    def test_everyTestModuleNamesItself(self):
        wrong = []
        for path in sourceFiles():
            name = moduleName(path)
            if name.startswith("raftmux.test.test_") and markers(path) != [name]:
                wrong.append("%s: %s" % (name, markers(path)))
        self.assertEqual(wrong, [])

    def test_theCheckSeesAWrongMarker(self):
        """The parser finds a marker that names nothing (the check can fail)."""
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write("# -*- test-case-name: raftmux.test.test_nothing_here -*-\n")
        self.assertEqual(markers(path), ["raftmux.test.test_nothing_here"])
        self.assertIsNone(importlib.util.find_spec("raftmux.test.test_nothing_here"))


class QuietFactoryTests(SynchronousTestCase):
    """No raftmux factory logs "Starting factory" for every port, stream and dial."""

    def test_everyFactoryClassIsQuiet(self):
        noisy = []
        checked = 0
        for module in importableModules():
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ == module.__name__ and issubclass(cls, Factory):
                    checked += 1
                    if cls.noisy:
                        noisy.append("%s.%s" % (cls.__module__, cls.__qualname__))
        self.assertGreater(checked, 5)
        self.assertEqual(noisy, [])

    def test_noLoudForProtocol(self):
        """``Factory.forProtocol`` builds a noisy factory; ``QuietFactory.forProtocol`` does not."""
        loud = re.compile(r"(?<![\w.])(?:protocol\.)?(?:Client|Server)?Factory\.forProtocol\(")
        found = []
        for path in sourceFiles():
            if moduleName(path).startswith("raftmux.test."):
                continue
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    if loud.search(line):
                        found.append("%s:%d" % (os.path.relpath(path, PACKAGE), number))
        self.assertEqual(found, [])


class QuickstartTests(SynchronousTestCase):
    """docs/quickstart.md's composition snippet runs as written (read from the doc itself)."""

    def snippet(self):
        with open(repositoryFile("docs", "quickstart.md"), encoding="utf-8") as f:
            text = f.read()
        section = text[text.index("## Use a part in your own service"):]
        found = re.search(r"```python\n(.*?)```", section, re.S)
        self.assertIsNotNone(found, "no python block in the quickstart's composition section")
        return found.group(1)

    def test_snippetRuns(self):
        from raftmux.cluster import childEnvironment
        path = os.path.abspath(self.mktemp() + ".py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.snippet())
        out = subprocess.run([sys.executable, path], capture_output=True, text=True,
                             timeout=60, env=childEnvironment(),
                             cwd=os.path.dirname(path))
        self.assertEqual((out.returncode, out.stdout), (0, "b'ok'\n"), out.stderr)


class DiagramTests(SynchronousTestCase):
    """docs/*.svg are what graphviz draws from docs/*.dot (``sh docs/diagrams.sh``)."""

    def test_svgsMatchTheirSources(self):
        import shutil
        dot = shutil.which("dot")
        if dot is None:
            raise SkipTest("graphviz's dot is not installed (apt-get install graphviz)")
        version = subprocess.run([dot, "-V"], capture_output=True, text=True).stderr.strip()
        stale = []
        for name in ("architecture", "one-port"):
            source = repositoryFile("docs", name + ".dot")
            with open(repositoryFile("docs", name + ".svg"), encoding="utf-8") as f:
                committed = f.read()
            drawnWith = re.search(r"Generated by graphviz version ([^ ]+)", committed)
            if drawnWith is None or drawnWith.group(1) not in version:
                raise SkipTest("docs/%s.svg was drawn by another graphviz than %s"
                               % (name, version))
            drawn = subprocess.run([dot, "-Tsvg", source], capture_output=True, text=True,
                                   timeout=60, check=True).stdout
            if drawn != committed:
                stale.append(name)
        self.assertEqual(stale, [], "run sh docs/diagrams.sh and commit the pictures")
