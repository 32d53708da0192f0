"""What the link protocol costs per control: CBOR encode and decode of the hot messages.

Every remote call crosses the wire as a `Call` control and comes back as a `Reply`; each
is encoded once by its sender and decoded once by its receiver (`encode_control`,
`decode_frame`, with the registered payload types of global_kv). Replication sends
`AppendEntries` inside a `RaftEnvelope` in a `Send`. This benchmark times those
functions alone, in one process, so the protocol's share of a request's CPU can be
told apart from the scheduler's and the state machine's (the cluster benchmark's
"CPU µs/op" column). Decoding is timed on frames of 10 controls, as links coalesce.

    python benchmarks/bench_codec.py [--number 20000] [--json benchmarks/results/codec.json]
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _report import write_report

import global_kv  # noqa: F401 - registers the payload types
from ergo_py.ids import PID, ProcessID, Ref
from ergo_py.net import Call, Reply, Send
from ergo_py.net._protocol import build_frame, decode_frame, encode_control
from global_kv.leader._wire import RaftEnvelope
from global_kv.protocol import GetRequest, PutRequest, SessionTag
from global_kv.raft import AppendEntries, Entry

ROOT = Path(__file__).resolve().parent.parent
CLIENT, SERVER = "client@bench", "server@bench"
PER_FRAME = 10
ENTRIES = 16


def _controls() -> list[tuple[str, Any, str, str, int]]:
    """(name, control, sender node, receiver node, items it carries)."""
    caller, ref = PID(CLIENT, 5, 1), Ref(CLIENT, 1, 77)
    target = ProcessID("global", SERVER)
    entries = tuple(Entry(1000 + i, 3, data=b"c" * 150) for i in range(ENTRIES))
    append = AppendEntries(3, f"global@{SERVER}", f"global@{CLIENT}", 999, 3, entries, 990)
    return [
        ("Call GetRequest", Call(caller, target, ref, GetRequest(b"key-000123", "follower")), CLIENT, SERVER, 1),
        (
            "Call PutRequest, 100-byte value",
            Call(caller, target, ref, PutRequest(b"key-000123", b"v" * 100, SessionTag("c1", 7, 6))),
            CLIENT,
            SERVER,
            1,
        ),
        ("Reply, 100-byte value", Reply(caller, ref, True, b"v" * 100), SERVER, CLIENT, 1),
        (
            f"Send AppendEntries, {ENTRIES} entries",
            Send(PID(SERVER, 3, 1), ProcessID("global", CLIENT), RaftEnvelope("c", append)),
            SERVER,
            CLIENT,
            ENTRIES,
        ),
    ]


def _best(fn: Callable[[], object], number: int) -> float:
    """Seconds per call: the best of three runs (the least disturbed by the host)."""
    return min(timeit.repeat(fn, number=number, repeat=3)) / number


def run(number: int) -> list[dict[str, Any]]:
    rows = []
    for name, control, sender, receiver, items in _controls():
        data = encode_control(control)
        frame = build_frame([data] * PER_FRAME)
        encode_s = _best(lambda c=control: encode_control(c), number)
        decode_s = (
            _best(
                lambda f=frame, s=sender, r=receiver: decode_frame(f, sender_node=s, receiver_node=r),
                max(1, number // PER_FRAME),
            )
            / PER_FRAME
        )
        rows.append(
            {
                "control": name,
                "bytes": len(data),
                "encode_us": round(encode_s * 1e6, 2),
                "decode_us": round(decode_s * 1e6, 2),
                "items": items,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--number", type=int, default=20000, help="calls per timing run (default 20000)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "codec.json"))
    args = parser.parse_args(argv)
    rows = run(args.number)
    print("| control | bytes | encode µs | decode µs | per item (encode / decode) |\n|---|---:|---:|---:|---|")
    for r in rows:
        per = f"{r['encode_us'] / r['items']:.2f} / {r['decode_us'] / r['items']:.2f}" if r["items"] > 1 else ""
        print(f"| {r['control']} | {r['bytes']} | {r['encode_us']} | {r['decode_us']} | {per} |")
    call_reply = sum(
        r["encode_us"] + r["decode_us"] for r in rows if r["control"] in ("Call GetRequest", "Reply, 100-byte value")
    )
    print(f"\na get's round trip (Call + Reply, each encoded and decoded once): {call_reply:.1f} µs")
    write_report(args.json, rows)


if __name__ == "__main__":
    main()
