"""The errors of the `global-kv` command, each with the exit code it ends the command with.

Every failure a user can cause (bad arguments, unknown node, wrong cookie, no
quorum) is one of these, so `main` prints one line and exits with its code; a
traceback means a bug in this package, never bad input.
"""

from __future__ import annotations

from .._errors import GlobalKVError

__all__ = [
    "EXIT_CONNECT",
    "EXIT_OK",
    "EXIT_OUTCOME",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "CLIError",
    "ClusterUnavailable",
    "ConnectError",
    "NodeStartError",
    "OutcomeError",
    "UsageError",
]

EXIT_OK = 0
EXIT_OUTCOME = 1  # the operation ran and said no: not found, CAS failed, lock held, node failed
EXIT_USAGE = 2  # malformed arguments or settings
EXIT_CONNECT = 3  # no node could be reached or authenticated (unknown node, wrong cookie)
EXIT_UNAVAILABLE = 4  # nodes reached, but no quorum/leader answered in time


class CLIError(GlobalKVError):
    """Root of the command's errors; `exit_code` is what `global-kv` exits with."""

    exit_code = EXIT_OUTCOME


class UsageError(CLIError, ValueError):
    """An argument or environment setting is malformed; the message names it."""

    exit_code = EXIT_USAGE


class OutcomeError(CLIError):
    """The operation was carried out and its answer is no (e.g. the key does not exist)."""

    exit_code = EXIT_OUTCOME


class ConnectError(CLIError):
    """None of the given nodes could be reached and authenticated; `problems` says why per node."""

    exit_code = EXIT_CONNECT

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        detail = "; ".join(f"{node}: {why}" for node, why in problems.items())
        super().__init__(f"cannot reach the cluster: {detail}")


class ClusterUnavailable(CLIError):
    """Nodes answered the connection but no leader/quorum answered the request in time."""

    exit_code = EXIT_UNAVAILABLE


class NodeStartError(CLIError):
    """A node process did not become ready; `log_tail` is the end of its log."""

    def __init__(self, node: str, detail: str, log_tail: str = "") -> None:
        self.node = node
        self.detail = detail
        self.log_tail = log_tail
        last = log_tail.strip().splitlines()[-1] if log_tail.strip() else ""
        super().__init__(f"node {node} did not start: {detail}" + (f" (last log line: {last})" if last else ""))
