"""Applications: dependencies start first, env, stop, and the three modes."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import ergo_py as e
from ergo_py import PID, Ref

STARTED: list[str] = []


class Worker(e.Actor):
    async def init(self, tag: str) -> None:
        STARTED.append(tag)

    async def handle_message(self, from_: PID | None, message: Any) -> None:
        if message == "crash":
            raise RuntimeError("worker crashed")

    async def handle_call(self, from_: PID, ref: Ref, request: Any) -> Any:
        return self.env(request, "unset")


def app(name: str, mode: e.Mode = e.Mode.TEMPORARY, depends: tuple[str, ...] = (), **env: Any) -> e.Application:
    class App(e.Application):
        def load(self) -> e.ApplicationSpec:
            return e.ApplicationSpec(
                name=name,
                children=[e.ChildSpec(f"{name}_worker", Worker, (name,))],
                mode=mode,
                depends=depends,
                env=dict(env),
                intensity=0,
            )

    return App()


@pytest.fixture(autouse=True)
def clear() -> None:
    STARTED.clear()


async def test_dependencies_start_first_and_env_is_visible() -> None:
    async with e.start_node("t@localhost") as node:
        node.application_load(app("base"))
        await node.application_start(app("web", depends=("base",), port=8080))
        assert STARTED == ["base", "web"]
        assert await node.call("web_worker", "port") == 8080
        assert await node.call("base_worker", "port") == "unset"
        info = node.applications()
        assert info["web"]["running"] and info["base"]["running"]
        await node.application_stop("web")
        assert node.whereis("web_worker") is None
        assert node.whereis("base_worker") is not None


async def test_missing_dependency_is_a_clear_error() -> None:
    async with e.start_node("t@localhost") as node:
        with pytest.raises(e.ApplicationError, match="depends on 'nope'"):
            await node.application_start(app("web", depends=("nope",)))
        with pytest.raises(e.ApplicationError, match="not running"):
            await node.application_stop("web")


async def test_temporary_app_termination_leaves_node_running() -> None:
    async with e.start_node("t@localhost") as node:
        await node.application_start(app("tmp"))
        node.send("tmp_worker", "crash")  # intensity 0: the app's supervisor gives up
        await trio.testing.wait_all_tasks_blocked()
        assert not node.applications()["tmp"]["running"]
        assert node.is_running and node.stop_reason is None


@pytest.mark.parametrize("mode", [e.Mode.PERMANENT, e.Mode.TRANSIENT])
async def test_permanent_and_transient_abnormal_termination_stop_the_node(mode: e.Mode) -> None:
    reached_end = False
    async with e.start_node("t@localhost") as node:
        await node.application_start(app("other"))
        await node.application_start(app("core", mode))
        node.send("core_worker", "crash")
        await trio.sleep(5)  # cancelled: the node stops
        reached_end = True
    assert not reached_end
    assert node.stop_reason == e.SHUTDOWN
    assert node.processes() == []


async def test_stopping_a_permanent_app_deliberately_does_not_stop_the_node() -> None:
    async with e.start_node("t@localhost") as node:
        await node.application_start(app("core", e.Mode.PERMANENT))
        await node.application_stop("core")
        await trio.testing.wait_all_tasks_blocked()
        assert node.stop_reason is None
