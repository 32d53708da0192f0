"""`python -m global_kv.cli ...` runs the `global-kv` command (what LocalCluster starts)."""

import sys

from ._main import main

sys.exit(main())
