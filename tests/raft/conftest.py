from __future__ import annotations

import sys
from pathlib import Path

# The harness module sits beside this file; pytest does not put test directories on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
