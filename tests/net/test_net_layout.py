"""The shape of the package: sans-IO modules stay sans-IO, and the public API is exported."""

from __future__ import annotations

import ast
from pathlib import Path

from ergo_py import net

PACKAGE = Path(net.__file__).resolve().parent
ROOT = PACKAGE.parent.parent
SANS_IO = ["_errors", "_registry", "_codec", "_protocol", "_handshake"]
FORBIDDEN = {"trio", "trio_websocket", "socket", "ssl", "time", "asyncio", "select", "selectors", "threading"}


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the modules `path` imports (relative imports resolved within ergo_py)."""
    tree = ast.parse(path.read_text())
    base = "ergo_py.net" if path.parent == PACKAGE else "ergo_py"
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names.add(node.module or "")
            else:
                parts = base.split(".")[: len(base.split(".")) - (node.level - 1)]
                names.add(".".join(parts + ([node.module] if node.module else [])))
    return names


def module_path(name: str) -> Path | None:
    if not name.startswith("ergo_py."):
        return None
    return ROOT.joinpath(*name.split(".")).with_suffix(".py")


def assert_sans_io_closure(start: list[str]) -> set[str]:
    """Walk what `start` imports, however deep: no I/O, and within ergo_py only sans-IO modules."""
    todo = list(start)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_path(name)
        assert path is not None and path.exists(), name
        for imported in imported_modules(path):
            assert imported.split(".")[0] not in FORBIDDEN, f"{name} imports {imported}"
            if imported.startswith("ergo_py."):
                assert imported in {f"ergo_py.net.{m}" for m in SANS_IO} | {
                    "ergo_py.ids",
                    "ergo_py._messages",
                    "ergo_py._errors",
                }, f"{name} imports {imported}, which is not sans-IO"
                todo.append(imported)
    return seen


def test_sans_io_modules_import_no_io_even_indirectly() -> None:
    assert "ergo_py.ids" in assert_sans_io_closure([f"ergo_py.net.{m}" for m in SANS_IO])


def test_the_public_ids_and_wire_modules_import_no_io_even_indirectly() -> None:
    """What a client protocol imports from ergo_py: identifiers, registration, the codec."""
    seen = assert_sans_io_closure(["ergo_py.ids", "ergo_py.wire"])
    assert {"ergo_py.net._registry", "ergo_py.net._codec"} <= seen


def test_public_api_is_exported_from_private_modules() -> None:
    expected = {
        "Network",
        "NetworkHandlers",
        "NetworkStatistics",
        "register_type",
        "encode",
        "decode",
        "Send",
        "Call",
        "Reply",
        "Monitor",
        "Demonitor",
        "Link",
        "Unlink",
        "Exit",
        "Down",
        "Control",
        "HandshakeError",
        "NoConnection",
        "MessageTooLarge",
        "EncodeError",
        "DecodeError",
        "RegistrationError",
        "RemoteError",
        "FramingError",
        "COOKIE_ENV",
        "resolve_cookie",
        "DEFAULT_MAX_MESSAGE_SIZE",
    }
    exported = set(net.__all__)  # imported on first use (PEP 562), so not in vars(net) yet
    assert expected <= exported <= set(dir(net))
    assert all(getattr(net, name) is not None for name in exported)
    for path in PACKAGE.glob("*.py"):
        assert path.name == "__init__.py" or path.name.startswith("_"), f"{path.name} should be private"
    init = ast.parse((PACKAGE / "__init__.py").read_text())
    for node in ast.walk(init):
        if isinstance(node, ast.ImportFrom) and node.level:
            assert all(alias.asname == alias.name for alias in node.names)  # `Name as Name` only


def test_errors_share_the_ergo_root() -> None:
    from ergo_py._errors import ErgoError

    for name in [
        "HandshakeError",
        "NoConnection",
        "MessageTooLarge",
        "EncodeError",
        "DecodeError",
        "RegistrationError",
        "RemoteError",
        "FramingError",
    ]:
        assert issubclass(getattr(net, name), ErgoError), name
    from ergo_py import NoConnection

    assert net.NoConnection is NoConnection  # one class for the node and the network
