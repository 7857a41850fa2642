"""``python -m raftmux.cluster``: see ``raftmux.cluster.cli``."""

import sys

from raftmux.cluster.cli import main

sys.exit(main())
