"""The nemesis: a fault schedule drawn from a seed, and its execution against a LocalCluster.

Faults: kill -9 of a random node or of the leader then restart; SIGSTOP/SIGCONT of a
node (longer than the election timeout, or longer than the lock TTL); kill -9 or
SIGSTOP of a lock owner's OS process; network partitions between the nodes (through
the proxy mesh of `_proxy`, planned in `_partition`); membership changes (a follower,
the leader, or a member replaced via the spare, removed and added again: `_membership`).
The schedule (kinds, targets' roles, durations, gaps) depends only on the seed; which node is "the leader" is
resolved at run time and logged. Every fault heals itself before the next starts, and `heal` undoes
anything left (also on cancellation). It must never touch processes it did not start.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

import ergo_py
from global_kv import GlobalKVError
from global_kv.cli import LocalCluster
from global_kv.client import open_client

from ._membership import MEMBER_KINDS, Membership
from ._partition import PARTITION_KINDS, hold_partition, partition_duration, plan_partition
from ._proxy import ProxyMesh
from ._record import Hold, Recorder
from ._workload import LOCK_KEY

__all__ = ["FAULT_KINDS", "Fault", "FaultEvent", "Nemesis", "make_schedule"]

FAULT_KINDS = (
    "kill-leader",
    "kill-random",
    "pause-leader",
    "pause-random",
    "pause-long",
    "owner-kill",
    "owner-pause",
    *PARTITION_KINDS,
    *MEMBER_KINDS,
)
OWNER_SCRIPT = Path(__file__).resolve().parent / "owner_process.py"


@dataclass(frozen=True)
class Fault:
    """One scheduled fault: `kind`, how long it lasts, the quiet gap before it, a target pick."""

    kind: str
    duration: float
    gap: float
    pick: int

    def __str__(self) -> str:
        return f"{self.kind}(for {self.duration:.2f} s after {self.gap:.2f} s quiet, pick {self.pick})"


@dataclass
class FaultEvent:
    """What a fault actually did: when, to whom, and how it went."""

    fault: Fault
    start: float
    target: str = ""
    end: float | None = None
    note: str = ""

    def describe(self, t0: float = 0.0) -> str:
        """One line, times in seconds since `t0` (the start of the workload)."""
        end = f"{self.end - t0:.2f}" if self.end is not None else "?"
        return f"t={self.start - t0:.2f}..{end} {self.fault.kind} {self.target} {self.note}".rstrip()


def make_schedule(
    seed: int, seconds: float, ttl: float, election_timeout: float = 0.3, fault_kinds: Sequence[str] = FAULT_KINDS
) -> list[Fault]:
    """Faults filling `seconds`, every kind of `fault_kinds` once per shuffled round (so short runs cover all)."""
    unknown = set(fault_kinds) - set(FAULT_KINDS)
    if unknown or not fault_kinds:
        raise ValueError(f"fault kinds must be a non-empty subset of {FAULT_KINDS}, got {sorted(unknown)}")
    rng = random.Random(seed)
    faults: list[Fault] = []
    total = 0.0
    while True:
        kinds = list(fault_kinds)
        rng.shuffle(kinds)
        for kind in kinds:
            if kind.startswith("kill"):
                duration = rng.uniform(0.5, 3.0)
            elif kind == "pause-long":
                duration = rng.uniform(ttl + 0.5, ttl + 2.0)  # past the lock TTL
            elif kind.startswith("pause"):
                duration = rng.uniform(3 * election_timeout, 2.0)  # past the election timeout
            elif kind == "owner-pause":
                duration = rng.uniform(ttl + 0.5, ttl + 2.0)
            elif kind.startswith("partition"):
                duration = partition_duration(kind, rng, ttl, election_timeout)
            elif kind.startswith("member"):
                duration = rng.uniform(1.0, 4.0)  # how long the node stays out (see _membership)
            else:
                duration = rng.uniform(0.2, 1.0)
            gap = rng.uniform(1.0, 3.0)
            if total + gap + duration + 1.5 > seconds:
                return faults
            faults.append(Fault(kind, duration, gap, rng.randrange(1 << 30)))
            total += gap + duration + 1.5  # ~ restart or owner start-up; the run's deadline cuts the rest


@dataclass
class Nemesis:
    cluster: LocalCluster
    node: ergo_py.Node
    rec: Recorder
    ttl: float
    events: list[FaultEvent] = field(default_factory=list)
    owners: list[trio.Process] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)  # nodes found dead that no fault killed
    starved: list[str] = field(default_factory=list)  # owners passed over while waiting in line
    mesh: ProxyMesh | None = None  # the proxy the nodes dial each other through (None: no partitions)
    stale_leaders: list[str] = field(default_factory=list)  # minority nodes still leading at a cut's end
    membership: Membership | None = None  # created by the first membership fault

    async def leader(self, timeout: float = 10.0) -> int | None:
        with trio.move_on_after(timeout):
            while True:
                for name, st in (await self.cluster.statuses(self.node, timeout=0.5)).items():
                    if st is not None and st.is_leader:
                        return self.cluster.index_of(name)
                await trio.sleep(0.1)
        return None

    async def _leaders(self) -> set[str]:
        statuses = await self.cluster.statuses(self.node, timeout=0.5)
        return {name for name, st in statuses.items() if st is not None and st.is_leader}

    async def run(self, schedule: list[Fault]) -> None:
        for fault in schedule:
            await trio.sleep(fault.gap)
            event = FaultEvent(fault, trio.current_time())
            self.events.append(event)
            try:
                await self._inject(fault, event)
            except GlobalKVError as exc:  # e.g. CLIError: the target died on its own meanwhile
                event.note += f" failed: {exc!r}"
            finally:
                event.end = trio.current_time()
                await self.heal()

    async def _target(self, fault: Fault, event: FaultEvent) -> int:
        members = [n.index for n in self.cluster.members if n.running]
        if "leader" in fault.kind:
            i = await self.leader()
            if i is not None:
                return i
            event.note = "(no leader found: random node)"
        return members[fault.pick % len(members)]

    async def _inject(self, fault: Fault, event: FaultEvent) -> None:
        if fault.kind.startswith("kill"):
            i = await self._target(fault, event)
            event.target = self.cluster.nodes[i].name
            await self.cluster.kill(i)
            await trio.sleep(fault.duration)
            await self.cluster.start_node(i)
        elif fault.kind.startswith("pause"):
            i = await self._target(fault, event)
            event.target = self.cluster.nodes[i].name
            self.cluster.pause(i)
            try:
                await trio.sleep(fault.duration)
            finally:
                self.cluster.resume(i)
        elif fault.kind.startswith("partition"):
            i = await self._target(fault, event)
            running = [n.name for n in self.cluster.members if n.running]
            plan = plan_partition(fault.kind, running, self.cluster.nodes[i].name, fault.pick)
            event.target = str(plan)
            stale = await hold_partition(self.mesh, plan, fault.duration, self._leaders)
            if stale:
                self.stale_leaders.append(f"{event.describe()}: {stale} still said they led at the end of the cut")
        elif fault.kind.startswith("member"):
            if self.membership is None:
                self.membership = Membership(self.cluster, self.node)
            leader = await self.leader()
            await self.membership.inject(fault.kind, fault.duration, fault.pick, leader, event)
        else:
            await self._owner_fault(fault, event)

    async def _owner_fault(self, fault: Fault, event: FaultEvent) -> None:
        """Start an owner process, let it take the lock, then kill -9 or SIGSTOP it."""
        routes = [f"{n.name}={n.url}" for n in self.cluster.members]
        env = dict(os.environ, ERGO_COOKIE=self.cluster.cookie, PYTHONPATH=os.pathsep.join(sys.path))
        proc = await trio.lowlevel.open_process(
            [sys.executable, str(OWNER_SCRIPT), LOCK_KEY, str(self.ttl), *routes],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.owners.append(proc)
        assert proc.stdin is not None and proc.stdout is not None
        lines = _Lines(proc.stdout)
        name = f"owner{len(self.events)}"
        event.target = f"{name} pid {proc.pid}"
        try:
            with trio.fail_after(20):
                ready = await lines.next()
            if ready != "READY":
                event.note = f"owner did not start: {ready!r}"
                return
            invoke = trio.current_time()
            await proc.stdin.send_all(b"LOCK\n")
            with trio.move_on_after(20):
                reply = await lines.next()
            if not reply.startswith("TOKEN "):
                # Waiters are served in order: others being granted the lock meanwhile is starvation.
                others = [h.holder for h in self.rec.holds if h.start > invoke]
                event.note = f"owner got no lock: {reply[:100]!r}; {len(others)} grants to others while it waited"
                if others:
                    self.starved.append(
                        f"{name}: {len(others)} grants to others during its "
                        f"{trio.current_time() - invoke:.1f} s wait ({reply[:100]})"
                    )
                return
            hold = Hold(name, int(reply.split()[1]), self.ttl, invoke, trio.current_time())
            self.rec.holds.append(hold)
            self.rec.counter.increment(name, hold.token)
            event.note = f"token {hold.token}"
            if fault.kind == "owner-kill":
                presence = f"presence/{name}"
                await proc.stdin.send_all(f"LEASE {presence}\n".encode())
                with trio.move_on_after(10):
                    leased = await lines.next()
                await trio.sleep(fault.duration)
                proc.send_signal(signal.SIGKILL)
                hold.end, hold.how_ended = trio.current_time(), "killed"
                if leased.startswith("LEASED "):
                    gone = await self._presence_gone(presence, timeout=15)
                    self.rec.presences.append((presence, gone))
                    event.note += f", its lease-bound key gone {gone:.2f} s after kill -9" if gone is not None else ""
                return
            proc.send_signal(signal.SIGSTOP)
            await trio.sleep(fault.duration)
            proc.send_signal(signal.SIGCONT)
            # The zombie: it wakes up after its lease ran out and writes with its old token.
            accepted = self.rec.counter.increment(name, hold.token)
            hold.end, hold.how_ended = trio.current_time(), "zombie"
            await proc.stdin.send_all(b"UNLOCK\n")
            with trio.move_on_after(10):
                reply = await lines.next()
            event.note += f", zombie write {'accepted' if accepted else 'rejected'}, unlock: {reply[:60]!r}"
        finally:
            await _reap(proc)

    async def _presence_gone(self, key: str, timeout: float) -> float | None:
        """Seconds until `key` reads as absent (None: still there after `timeout`)."""
        start = trio.current_time()
        with trio.move_on_after(timeout):
            async with open_client(self.node, self.cluster.names, timeout=2, consistency="linearizable") as c:
                while True:
                    try:
                        if await c.get(key) is None:
                            return trio.current_time() - start
                    except GlobalKVError:
                        pass
                    await trio.sleep(0.05)
        return None

    async def heal(self) -> None:
        """Heal every partition, resume every paused node, start every stopped member, reap every owner."""
        with trio.CancelScope(shield=True):
            if self.mesh is not None:
                self.mesh.heal()
            for n in self.cluster.members:
                if n.paused:
                    self.cluster.resume(n.index)
            for n in self.cluster.members:
                if not n.running:
                    code = n.process.returncode if n.process is not None else None
                    if code != -signal.SIGKILL:
                        self.crashes.append(f"{n.name} exited with code {code}:\n{n.log_tail(20)}")
                    try:
                        await self.cluster.start_node(n.index)
                    except GlobalKVError as exc:  # NodeStartError: reported by the convergence check too
                        self.events.append(
                            FaultEvent(Fault("heal-failed", 0, 0, 0), trio.current_time(), n.name, note=repr(exc))
                        )
            for proc in self.owners:
                await _reap(proc)
            if self.membership is not None:
                undone = await self.membership.restore()  # every original member back in, the spare out
                if undone and self.events:  # the membership fault that did not finish
                    self.events[-1].note += f" [healed: {undone}]"


class _Lines:
    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def next(self) -> str:
        while b"\n" not in self.buffer:
            chunk = await self.stream.receive_some(4096)
            if not chunk:
                return ""
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode(errors="replace").strip()


async def _reap(proc: trio.Process) -> None:
    with trio.CancelScope(shield=True):
        if proc.returncode is None:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGKILL)
        await proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                await stream.aclose()
