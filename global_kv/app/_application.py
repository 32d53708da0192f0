"""The Global application: a supervised `GlobalActor` registered as `global`."""

from __future__ import annotations

import ergo_py

from ._actor import GlobalActor
from ._config import GlobalConfig

__all__ = ["Application", "GLOBAL_NAME"]

GLOBAL_NAME = "global"


class Application(ergo_py.Application):
    """Start with `await node.application_start(Application(GlobalConfig(...)))`."""

    def __init__(self, config: GlobalConfig | None = None, mode: ergo_py.Mode = ergo_py.Mode.TEMPORARY) -> None:
        self.config = config or GlobalConfig()
        self.mode = mode

    def load(self) -> ergo_py.ApplicationSpec:
        return ergo_py.ApplicationSpec(
            name=GLOBAL_NAME,
            children=[ergo_py.ChildSpec(GLOBAL_NAME, GlobalActor, (self.config,))],
            mode=self.mode,
            intensity=5,
            period=10.0,
            description="Raft-replicated KV store with distributed locks",
        )
