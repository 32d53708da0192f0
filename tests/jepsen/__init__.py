"""A Jepsen-style fault-injection suite against real multi-process global_kv clusters.

Run a soak with `python -m tests.jepsen --minutes 10 --seed 1`; the CI-sized run is
`tests/jepsen/test_jepsen.py`. Nothing here may leave a process or a temp directory behind.
"""

from ._checks import Anomaly as Anomaly
from ._run import JepsenConfig as JepsenConfig
from ._run import JepsenReport as JepsenReport
from ._run import run_jepsen as run_jepsen
