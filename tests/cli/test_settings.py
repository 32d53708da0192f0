"""BOOTSTRAP parsing, node settings from flags and environment, and one-line usage errors."""

from __future__ import annotations

import argparse

import pytest

from ergo_py import ProcessID
from global_kv.cli import EXIT_USAGE, Peer, UsageError, format_bootstrap, main, parse_bootstrap
from global_kv.cli._main import build_parser
from global_kv.cli._settings import node_settings


def test_bare_names_dial_the_seed_port_on_their_host_and_urls_are_kept() -> None:
    peers = parse_bootstrap(" global1@global1, g2@host2=ws://10.0.0.2:16000 ,g3@h3=wss://h3:443")
    assert peers == [
        Peer("global1@global1", "ws://global1:15001"),
        Peer("g2@host2", "ws://10.0.0.2:16000"),
        Peer("g3@h3", "wss://h3:443"),
    ]
    assert parse_bootstrap(format_bootstrap(peers)) == peers


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("nohost", "invalid node name"),
        ("a@b,a@b", "listed twice"),
        ("a@b=http://b:1", "expected ws://"),
        ("a@b=ws://b", "expected ws://"),
        ("a@b=ws://b:1/path", "only scheme"),
        ("a@b=ws://b:99999", "bad address"),
    ],
)
def test_malformed_bootstrap_is_refused_naming_the_entry(text: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        parse_bootstrap(text)


def node_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["node", *argv])


def test_settings_come_from_the_seed_environment_variables() -> None:
    env = {
        "NODE_NAME": "global1@global1",
        "CLUSTER_ID": "docker-cluster",
        "BOOTSTRAP": "global1@global1,global2@global2,global3@global3",
        "DATA_DIR": "/data",
        "ERGO_COOKIE": "s3cret",
        "METRICS": "0.0.0.0:9100",
        "READ_CONSISTENCY": "read_index",
        "LOG_LEVEL": "warning",
    }
    s = node_settings(node_args(), env)
    assert s.name == "global1@global1" and s.cookie == "s3cret"
    assert s.listen == ("0.0.0.0", 15001)  # a hostname in BOOTSTRAP: listen on every interface
    assert s.metrics == ("0.0.0.0", 9100)
    assert s.config.cluster_id == "docker-cluster"
    assert s.config.storage_type == "leveldb" and s.config.data_dir == "/data"  # durable by default with a data dir
    assert s.config.read_consistency == "read_index" and s.config.log_level == "WARNING"
    assert tuple(s.config.bootstrap) == tuple(ProcessID("global", f"global{i}@global{i}") for i in (1, 2, 3))
    assert s.node_options().routes == {"global2@global2": "ws://global2:15001", "global3@global3": "ws://global3:15001"}
    assert s.is_member


def test_flags_win_over_the_environment_and_set_reaches_any_config_field() -> None:
    env = {"NODE_NAME": "x@y", "COOKIE": "env", "ERGO_COOKIE": "ignored", "STORAGE": "lmdb"}
    args = node_args(
        "--name",
        "n1@localhost",
        "--bootstrap",
        "n1@localhost=ws://127.0.0.1:7001,n2@localhost=ws://127.0.0.1:7002",
        "--storage",
        "memory",
        "--set",
        "heartbeat_interval=20",
        "--set",
        "compress_values=yes",
    )
    s = node_settings(args, env)
    assert s.name == "n1@localhost" and s.cookie == "env"  # COOKIE before ERGO_COOKIE
    assert s.listen == ("127.0.0.1", 7001)  # this node's own BOOTSTRAP address
    assert s.config.storage_type == "memory"
    assert s.config.heartbeat_interval == 20 and s.config.compress_values is True


def test_no_bootstrap_is_a_cluster_of_one_and_a_node_outside_bootstrap_is_not_a_member() -> None:
    alone = node_settings(node_args("--name", "solo@localhost", "--listen", "127.0.0.1:7100"), {"COOKIE": "c"})
    assert [p.node for p in alone.bootstrap] == ["solo@localhost"] and alone.is_member
    spare = node_settings(
        node_args("--name", "n4@localhost", "--bootstrap", "n1@localhost=ws://127.0.0.1:7001", "--listen", ":7004"),
        {"COOKIE": "c"},
    )
    assert not spare.is_member and spare.listen == ("0.0.0.0", 7004)


@pytest.mark.parametrize(
    ("argv", "env", "fragment"),
    [
        ((), {"COOKIE": "c"}, "no node name"),
        (("--name", "n@h"), {}, "no cookie"),
        (("--name", "n@h", "--listen", "nope"), {"COOKIE": "c"}, "LISTEN"),
        (("--name", "n@h", "--storage", "lmdb"), {"COOKIE": "c"}, "needs a data_dir"),
        (("--name", "n@h", "--set", "bootstrap=x"), {"COOKIE": "c"}, "own flag"),
        (("--name", "n@h", "--set", "heartbeat_interval=fast"), {"COOKIE": "c"}, "expected a int"),
        (("--name", "n@h", "--read-consistency", "eventual"), {"COOKIE": "c"}, "read_consistency"),
    ],
)
def test_bad_node_settings_are_usage_errors(argv: tuple[str, ...], env: dict[str, str], fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        node_settings(node_args(*argv), env)


@pytest.mark.parametrize(
    "argv",
    [
        ["ctl", "frobnicate"],
        ["ctl", "--cluster", "a@b=ws://127.0.0.1:1", "cas", "k", "--new", "v"],  # --old/--absent missing
        ["ctl", "--timeout", "soon", "status"],
        ["ctl", "--cluster", "not-a-node", "status"],
        ["ctl", "--cluster", "a@b=ws://127.0.0.1:1", "unlock", "k", "not-a-token"],
        ["node", "--name", "n1@localhost", "--set", "nope=1"],
        ["bogus"],
    ],
)
def test_malformed_arguments_exit_2_with_one_line_and_no_traceback(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv, env={"COOKIE": "c"}) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("global-kv") and "Traceback" not in captured.err


def test_ctl_with_no_live_node_exits_3_naming_why(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(
        ["ctl", "--cluster", f"n1@localhost=ws://127.0.0.1:{port}", "--timeout", "2", "get", "k"], env={"COOKIE": "c"}
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and len(err) == 1
    assert "n1@localhost" in err[0] and "unreachable" in err[0]
