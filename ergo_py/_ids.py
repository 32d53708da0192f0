"""The identifiers' old private home, kept for the runtime modules that still import it.

The code lives in the public, trio-free `ergo_py.ids`; this module only re-exports it,
so `ergo_py._ids.PID is ergo_py.ids.PID`. New code imports `ergo_py.ids`.
"""

from .ids import PID as PID
from .ids import ProcessID as ProcessID
from .ids import Ref as Ref
from .ids import validate_node_name as validate_node_name
