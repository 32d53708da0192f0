"""ergo_py: an Erlang/Ergo-style actor runtime on trio.

Processes with PIDs and names, `send`/`call`, monitors, links, supervisors and
applications, and nodes that talk over authenticated websocket links.

Importing the package loads no module: each name is imported from its module on first
use (PEP 562), so the trio-free `ergo_py.ids` and `ergo_py.wire` can be imported without
the runtime, while `from ergo_py import Node` and `ergo_py.net.X` work as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ergo_py.lazy import lazy_namespace

if TYPE_CHECKING:
    from . import net as net
    from ._actor import NO_REPLY as NO_REPLY
    from ._actor import Actor as Actor
    from ._application import Application as Application
    from ._application import ApplicationError as ApplicationError
    from ._application import ApplicationSpec as ApplicationSpec
    from ._application import Mode as Mode
    from ._errors import CallError as CallError
    from ._errors import CallTimeout as CallTimeout
    from ._errors import ErgoError as ErgoError
    from ._errors import NameTaken as NameTaken
    from ._errors import NoConnection as NoConnection
    from ._errors import NodeNotRunning as NodeNotRunning
    from ._errors import ProcessExited as ProcessExited
    from ._errors import ProcessUnknown as ProcessUnknown
    from ._errors import SpawnError as SpawnError
    from ._messages import KILL as KILL
    from ._messages import NOCONNECTION as NOCONNECTION
    from ._messages import NOPROC as NOPROC
    from ._messages import NORMAL as NORMAL
    from ._messages import SHUTDOWN as SHUTDOWN
    from ._messages import MessageDownNode as MessageDownNode
    from ._messages import MessageDownPID as MessageDownPID
    from ._messages import MessageDownProcessID as MessageDownProcessID
    from ._messages import MessageExitPID as MessageExitPID
    from ._messages import Panic as Panic
    from ._node import Alarm as Alarm
    from ._node import Node as Node
    from ._node import NodeOptions as NodeOptions
    from ._node import ProcessInfo as ProcessInfo
    from ._node import TimerHandle as TimerHandle
    from ._node import start_node as start_node
    from ._supervisor import ChildSpec as ChildSpec
    from ._supervisor import Restart as Restart
    from ._supervisor import StartChild as StartChild
    from ._supervisor import Strategy as Strategy
    from ._supervisor import Supervisor as Supervisor
    from ._supervisor import SupervisorSpec as SupervisorSpec
    from ._supervisor import TerminateChild as TerminateChild
    from ._supervisor import WhichChildren as WhichChildren
    from .ids import PID as PID
    from .ids import ProcessID as ProcessID
    from .ids import Ref as Ref
    from .ids import validate_node_name as validate_node_name
    from .net import register_type as register_type

# Each public name, by the module it lives in: imported on first use.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "._actor": ("NO_REPLY", "Actor"),
    "._application": ("Application", "ApplicationError", "ApplicationSpec", "Mode"),
    "._errors": (
        "CallError",
        "CallTimeout",
        "ErgoError",
        "NameTaken",
        "NoConnection",
        "NodeNotRunning",
        "ProcessExited",
        "ProcessUnknown",
        "SpawnError",
    ),
    "._messages": (
        "KILL",
        "NOCONNECTION",
        "NOPROC",
        "NORMAL",
        "SHUTDOWN",
        "MessageDownNode",
        "MessageDownPID",
        "MessageDownProcessID",
        "MessageExitPID",
        "Panic",
    ),
    "._node": ("Alarm", "Node", "NodeOptions", "ProcessInfo", "TimerHandle", "start_node"),
    "._supervisor": (
        "ChildSpec",
        "Restart",
        "StartChild",
        "Strategy",
        "Supervisor",
        "SupervisorSpec",
        "TerminateChild",
        "WhichChildren",
    ),
    ".ids": ("PID", "ProcessID", "Ref", "validate_node_name"),
    ".net": ("register_type",),
}
_SUBMODULES: tuple[str, ...] = ("net",)

__all__, __getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS, _SUBMODULES)
