"""The Global application: GlobalActor (the replicated KV service) and its config.

Its client protocol (the requests it serves) is `global_kv.protocol`.
"""

from ._actor import GlobalActor as GlobalActor
from ._application import GLOBAL_NAME as GLOBAL_NAME
from ._application import Application as Application
from ._config import READ_CONSISTENCIES as READ_CONSISTENCIES
from ._config import GlobalConfig as GlobalConfig
from ._config import GlobalConfigError as GlobalConfigError
