# -*- test-case-name: raftmux.test.test_gopeer -*-
"""
``raftmux.testing.gopeer``: Go test peers are built once, offline, from the
source that ships in the package, and anything missing is a skip with a reason.
"""

import os
import unittest

from twisted.trial.unittest import SynchronousTestCase

from raftmux.testing import gopeer

HELLO = """package main

import "fmt"

func main() { fmt.Println("%s") }
"""


class GoPeerBuildTests(SynchronousTestCase):

    def setUp(self):
        self.cache = os.path.abspath(self.mktemp())
        self.patch(os, "environ", dict(os.environ, RAFTMUX_GOPEER_CACHE=self.cache))

    def program(self, text, name="main.go"):
        source = os.path.abspath(self.mktemp())
        os.makedirs(source)
        with open(os.path.join(source, name), "w") as f:
            f.write(text)
        return source

    def requireGo(self):
        if not gopeer.goAvailable():
            raise unittest.SkipTest("no Go toolchain on PATH")

    def test_noGoIsASkip(self):
        self.patch(gopeer, "_which", lambda name: None)
        self.assertFalse(gopeer.goAvailable())
        e = self.assertRaises(unittest.SkipTest, gopeer.buildGoProgram, "hello",
                              self.program(HELLO % "hi"))
        self.assertIn("no Go toolchain", str(e))

    def test_missingSourceIsASkip(self):
        e = self.assertRaises(unittest.SkipTest, gopeer.buildGoProgram, "nothing",
                              "test/go/no-such-program")
        self.assertIn("not shipped", str(e))

    def test_missingLibraryIsASkip(self):
        self.patch(gopeer, "_which", lambda name: "/usr/bin/go")
        source = self.program('package main\n\nimport (\n\t"fmt"\n\t"example.invalid/lib"\n)\n')
        e = self.assertRaises(unittest.SkipTest, gopeer.buildGoProgram, "needy", source)
        self.assertIn("example.invalid/lib", str(e))

    def test_thirdPartyImportsFound(self):
        source = self.program('package main\n\nimport x "github.com/a/b"\n'
                              'import (\n\t"os"\n\tfoo "golang.org/x/net/http2"\n)\n')
        self.assertEqual(gopeer.thirdPartyImports(source, ["main.go"]),
                         ["github.com/a/b", "golang.org/x/net/http2"])

    def test_sourceDirectoryInsideThePackage(self):
        import raftmux
        root = os.path.dirname(os.path.abspath(raftmux.__file__))
        for given in ["test/go/muxado1peer", "raftmux/test/go/muxado1peer"]:
            self.assertEqual(gopeer.sourceDirectory(given),
                             os.path.join(root, "test", "go", "muxado1peer"))
        self.assertIn("main.go", gopeer.goSources(gopeer.sourceDirectory("test/go/muxado1peer")))

    def test_buildsOnceAndKeysOnTheSource(self):
        self.requireGo()
        source = self.program(HELLO % "one")
        first = gopeer.buildGoProgram("hello", source)
        self.assertTrue(os.access(first, os.X_OK))
        self.assertTrue(first.startswith(self.cache))
        mtime = os.stat(first).st_mtime_ns
        self.assertEqual(gopeer.buildGoProgram("hello", source), first)
        self.assertEqual(os.stat(first).st_mtime_ns, mtime)
        other = gopeer.buildGoProgram("hello", self.program(HELLO % "two"))
        self.assertNotEqual(other, first)

    def test_buildFailureIsAnError(self):
        self.requireGo()
        e = self.assertRaises(RuntimeError, gopeer.buildGoProgram, "broken",
                              self.program("package main\n\nfunc main() { nope() }\n"))
        self.assertIn("nope", str(e))
