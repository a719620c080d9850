"""Prove a run's log: gap-free seqs, every row decodes, the replayed state hashes match, the hash
chain follows from the rows (kernel/chain.py) and, given a public key, the run's seals hold."""

from __future__ import annotations

from typing import Any

import msgspec

from .chain import ChainCheck
from .codec import Corrupt, Record, Unknown, canonical_hash
from .engine.runview import ENDS, after_end_problem, resolution_problem
from .events import InterruptRaised, InterruptResolved, StepCompleted
from .projection import RunInfo, advance, new_row
from .errors import PatchError
from .state import fold

__all__ = ["Problem", "Verifier", "verify_run"]

_decode_state = msgspec.msgpack.Decoder(dict[str, Any]).decode


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    seq: int
    message: str


class Verifier:
    """Fed a run's records in seq order, page by page; collects every problem it sees."""

    def __init__(self, run_id: str, snapshots: dict[int, tuple[bytes, str]]) -> None:
        self.run_id = run_id
        self.problems: list[Problem] = []
        self.state: dict[str, Any] = {}
        self.next_seq = 1
        self.steps_checked = 0
        self._snapshots = snapshots
        self._row = new_row(run_id, 0)  # the runs projection, re-derived from the log
        self._interrupt_ops: list[tuple] = []
        self._interrupts: dict[str, list] = {}  # id -> [raised, resolved | None]
        self._terminal: Any = None
        self.chain: ChainCheck | None = None  # the chain pass, once made
        self.sealed_to = 0  # the highest seq a good seal covers (verify with a key)

    def _bad(self, seq: int, message: str) -> None:
        self.problems.append(Problem(run_id=self.run_id, seq=seq, message=message))

    def feed(self, records: list[Record]) -> None:
        for rec in records:
            if rec.seq != self.next_seq:
                self._bad(self.next_seq, f"gap: seq {self.next_seq}..{rec.seq - 1} missing")
            self.next_seq = rec.seq + 1
            event = rec.event
            if isinstance(event, Corrupt):
                self._bad(rec.seq, f"corrupt {event.type} row ({event.error})")
            elif isinstance(event, Unknown):
                self._bad(rec.seq, f"unknown event type {event.type!r}; cannot replay past it")
            else:
                self._check_decisions(rec.seq, event)
                advance(self._row, event, rec.seq, rec.ts_ns, self._interrupt_ops)
                try:
                    fold(self.state, event)
                except PatchError as exc:
                    self._bad(rec.seq, f"patch does not apply: {exc}")
                if isinstance(event, StepCompleted) and event.state_hash:
                    self.steps_checked += 1
                    actual = canonical_hash(self.state)
                    if actual != event.state_hash:
                        self._bad(
                            rec.seq,
                            f"state hash mismatch at step {event.step_id}: recorded "
                            f"{event.state_hash[:12]}, replay gives {actual[:12]}",
                        )
            if rec.seq in self._snapshots:
                self._check_snapshot(rec.seq)

    def _check_decisions(self, seq: int, event: Any) -> None:
        """The checks a driver makes before it acts on the log: a resolution names a raised
        interrupt, carries its payload hash and is its only one; nothing follows the end."""
        if self._terminal is not None:
            self._bad(seq, after_end_problem(event, self._terminal))
        elif isinstance(event, InterruptRaised):
            self._interrupts[event.interrupt_id] = [event, None]
        elif isinstance(event, InterruptResolved):
            entry = self._interrupts.get(event.interrupt_id)
            problem = resolution_problem(event, entry)
            if problem is not None:
                self._bad(seq, problem)
            else:
                entry[1] = event
        elif isinstance(event, ENDS):
            self._terminal = event

    def _check_snapshot(self, seq: int) -> None:
        blob, digest = self._snapshots[seq]
        try:
            stored = _decode_state(blob)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self._bad(seq, "snapshot does not decode (it is skipped when reading)")
            return
        if canonical_hash(stored) != digest:
            self._bad(seq, "snapshot does not match its hash (it is skipped when reading)")
        elif digest != canonical_hash(self.state):
            self._bad(seq, "snapshot differs from the replayed state")

    def finish(self, info: RunInfo) -> list[Problem]:
        for field in ("status", "pending", "graph"):
            stored, derived = getattr(info, field), self._row[field]
            if stored != derived:
                self._bad(
                    self.next_seq - 1,
                    f"the runs table says {field} {stored!r}, the log gives {derived!r}",
                )
        return self.problems


async def verify_run(
    store: Any, run_id: str, *, page: int = 5000, key: Any = None, listed: tuple[int, bytes] | None = None,
) -> Verifier:
    """Verify one run; the returned Verifier holds `problems` and `steps_checked`. With `key` (an
    ed25519 public key, kernel/seals.py) the run's seals by that key are checked too; `listed` is
    the (seq, chain) a signed manifest (kernel/manifest.py) holds for the run."""
    info = await store.run(run_id)
    verifier = Verifier(run_id, await store.snapshot_rows(run_id))
    lo = 1
    while True:
        batch = await store.events(run_id, lo, limit=page)
        verifier.feed(batch)
        if len(batch) < page:
            break
        lo = batch[-1].seq + 1
    verifier.finish(info)
    seals = await store.seals(run_id) if key is not None else []
    # A pass of its own over (seq, time, type, body, chain): the records above are decoded
    # events, and the chain is over the stored bytes.
    chain = verifier.chain = ChainCheck(run_id, {s[0] for s in seals} | ({listed[0]} if listed else set()))
    lo = 1
    while rows := await store.chain_rows(run_id, lo, page):
        chain.feed(rows)
        if len(rows) < page:
            break
        lo = rows[-1][0] + 1
    if chain.first_break is not None:
        seq, why = chain.first_break
        verifier._bad(seq, f"hash chain breaks at seq {seq}: {why}")
    if key is not None:
        from .seals import seal_problems

        problems, verifier.sealed_to = seal_problems(run_id, seals, chain, key)
        for seq, message in problems:
            verifier._bad(seq, message)
    if listed is not None:
        seq, sealed = listed
        if seq > chain.last_seq:
            verifier._bad(seq, f"the manifest lists it sealed at seq {seq}, but the run now ends at seq {chain.last_seq} (events were removed)")
        elif chain.at.get(seq) != sealed:
            verifier._bad(seq, f"the hash chain no longer reaches the hash the manifest holds for seq {seq} (a row up to it was rewritten)")
    return verifier
