"""Scripted interaction tests in the style of etcd-io/raft's `testdata/*.txt`.

Each file in `testdata/` is a sequence of blocks: a command line, `----`, and the
expected output, separated by blank lines; `#` lines are comments. The trace shows every
message delivered, so a script reads like the protocol it checks. To regenerate the
expected output after an intended change, run with RAFT_SCRIPTS_REWRITE=1 and review the
diff like code.

Commands: cluster <ids..> [pre_vote] [check_quorum] [lease]; campaign <id>;
propose <id> <data>; tick <id|all> [n]; isolate <id>; heal; stabilize; status;
read <id> <context>; transfer <from> <to>; compact <id>.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from raft_harness import Cluster, config

from global_kv._errors import GlobalKVError
from global_kv.raft import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryType,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    Role,
    TimeoutNow,
)

DATA = Path(__file__).resolve().parent / "testdata"
REWRITE = os.environ.get("RAFT_SCRIPTS_REWRITE") == "1"


def _ent(e: Entry) -> str:
    kind = {EntryType.NOOP: " noop", EntryType.CONF_CHANGE: " conf"}.get(e.type, "")
    data = f" {e.data.decode()}" if e.type == EntryType.NORMAL else ""
    return f"{e.index}/{e.term}{kind}{data}"


def describe(m: Message) -> str:
    head = f"{m.src}->{m.dst} "
    if isinstance(m, AppendEntries):
        ents = ", ".join(_ent(e) for e in m.entries)
        return f"{head}App term={m.term} prev={m.prev_index}/{m.prev_term} [{ents}] commit={m.commit}"
    if isinstance(m, AppendEntriesResponse):
        if m.reject:
            return f"{head}AppResp term={m.term} reject index={m.index} hint={m.hint_index}/{m.hint_term}"
        return f"{head}AppResp term={m.term} index={m.index}"
    if isinstance(m, Heartbeat):
        return f"{head}Heartbeat term={m.term} commit={m.commit} round={m.read_seq}"
    if isinstance(m, HeartbeatResponse):
        return f"{head}HeartbeatResp term={m.term} round={m.read_seq}"
    if isinstance(m, RequestVote):
        kind = "PreVote" if m.pre_vote else "Vote"
        extra = " transfer" if m.transfer else ""
        return f"{head}{kind} term={m.term} last={m.last_index}/{m.last_term}{extra}"
    if isinstance(m, RequestVoteResponse):
        kind = "PreVoteResp" if m.pre_vote else "VoteResp"
        return f"{head}{kind} term={m.term} {'granted' if m.granted else 'rejected'}"
    if isinstance(m, InstallSnapshot):
        done = " done" if m.done else ""
        return f"{head}Snap term={m.term} index={m.index}/{m.snapshot_term} offset={m.offset} len={len(m.data)}{done}"
    if isinstance(m, InstallSnapshotResponse):
        return f"{head}SnapResp term={m.term} index={m.index} offset={m.offset}"
    if isinstance(m, TimeoutNow):
        return f"{head}TimeoutNow term={m.term}"
    if isinstance(m, ReadIndexRequest):
        return f"{head}ReadIndex term={m.term} ctx={m.context.decode()}"
    if isinstance(m, ReadIndexResponse):
        return f"{head}ReadIndexResp term={m.term} ctx={m.context.decode()} index={m.index}"
    raise AssertionError(f"unknown message {m!r}")


class Script:
    def __init__(self) -> None:
        self.c: Cluster | None = None

    def run(self, line: str) -> list[str]:
        cmd, *args = line.split()
        try:
            return getattr(self, "do_" + cmd.replace("-", "_"))(*args)  # type: ignore[no-any-return]
        except GlobalKVError as exc:
            return [f"error: {type(exc).__name__}: {exc}"]

    @property
    def cluster(self) -> Cluster:
        assert self.c is not None, "no cluster yet"
        return self.c

    def do_cluster(self, *args: str) -> list[str]:
        ids = [a for a in args if a not in ("pre_vote", "check_quorum", "lease")]
        cfg = config(
            pre_vote="pre_vote" in args,
            check_quorum="check_quorum" in args or "lease" in args,
            lease_reads="lease" in args,
            snapshot_chunk_size=16,
        )
        self.c = Cluster(ids, cfg)
        self.c.flush()
        self.c.queue.clear()
        return ["ok"]

    def do_campaign(self, node: str) -> list[str]:
        self.cluster.nodes[node].campaign()
        return self.do_stabilize()

    def do_propose(self, node: str, data: str) -> list[str]:
        index = self.cluster.nodes[node].propose(data.encode())
        return [f"index {index}"] + self.do_stabilize()

    def do_tick(self, who: str, n: str = "1") -> list[str]:
        c = self.cluster
        out: list[str] = []
        for _ in range(int(n)):
            for i in c.nodes if who == "all" else [who]:
                c.nodes[i].tick()
            out += self.do_stabilize()
        return out

    def do_isolate(self, node: str) -> list[str]:
        self.cluster.isolate(node)
        return ["ok"]

    def do_heal(self) -> list[str]:
        self.cluster.heal()
        return ["ok"]

    def do_stabilize(self) -> list[str]:
        c = self.cluster
        out = []
        c.flush()
        while c.queue:
            m = c.queue.popleft()
            if (m.src, m.dst) in c.blocked:
                continue
            out.append(describe(m))
            c.nodes[m.dst].step(m)
            c.flush()
        return out

    def do_status(self) -> list[str]:
        out = []
        for i, n in self.cluster.nodes.items():
            lead = f" leader={n.leader}" if n.role is not Role.LEADER and n.leader else ""
            out.append(
                f"{i}: {n.role.value} term={n.term}{lead} commit={n.commit_index} "
                f"applied={n.applied_index} last={n.last_index} first={n.first_index}"
            )
        return out

    def do_read(self, node: str, ctx: str) -> list[str]:
        c = self.cluster
        before = len(c.reads[node])
        c.nodes[node].read_index(ctx.encode())
        out = self.do_stabilize()
        return out + [f"read {r.context.decode()} at index {r.index}" for r in c.reads[node][before:]]

    def do_transfer(self, node: str, to: str) -> list[str]:
        self.cluster.nodes[node].transfer_leadership(to)
        return self.do_stabilize()

    def do_compact(self, node: str) -> list[str]:
        n = self.cluster.nodes[node]
        meta = n.compact(
            n.applied_index,
            f"state machine of {node} at index {n.applied_index}.".encode(),
        )
        return [f"snapshot {meta.index}/{meta.term} voters={','.join(meta.conf.voters)}"]


def _parse(text: str) -> list[tuple[str, list[str]] | str]:
    """Blocks (command, expected lines) and, between them, comment and blank lines."""
    items: list[tuple[str, list[str]] | str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            items.append(line)
            i += 1
            continue
        assert i + 1 < len(lines) and lines[i + 1] == "----", f"expected ---- after {line!r}"
        i += 2
        out = []
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        items.append((line, out))
    return items


@pytest.mark.parametrize("path", sorted(DATA.glob("*.txt")), ids=lambda p: p.stem)
def test_script(path: Path) -> None:
    script = Script()
    rendered = []
    for item in _parse(path.read_text()):
        if isinstance(item, str):
            rendered.append(item)
            continue
        cmd, expected = item
        got = script.run(cmd)
        rendered += [cmd, "----", *got]
        if not REWRITE:
            assert got == expected, (
                f"{path.name}: {cmd}\n--- expected\n" + "\n".join(expected) + "\n--- got\n" + "\n".join(got)
            )
    if REWRITE:
        path.write_text("\n".join(rendered) + "\n")
