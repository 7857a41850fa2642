# -*- test-case-name: raftmux.test.test_conventions -*-
"""
Files of raftmux's source tree that are not part of the installed package
(README.md, docs/, the Procfile, setup.py).  Tests that read them skip,
saying why, when raftmux runs from an installed wheel.
"""

import os

from twisted.trial.unittest import SkipTest

import raftmux

__all__ = ["ROOT", "repositoryFile"]

#: The directory holding the ``raftmux`` package: the repository root in a
#: source checkout, ``site-packages`` in an installed one.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(raftmux.__file__)))


def repositoryFile(*path):
    """
    The absolute path of ``path`` (parts relative to the repository root),
    or ``SkipTest`` when it is not there: raftmux is installed, not checked
    out.
    """
    full = os.path.join(ROOT, *path)
    if not os.path.exists(full):
        raise SkipTest("%s is a file of raftmux's repository, not of the installed package"
                       % ("/".join(path),))
    return full
