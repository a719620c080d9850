"""The per-run hash chain: every event row carries a sha256 over the previous row's chain and its
own bytes, so a row rewritten in place (even with a valid crc) breaks the chain at its seq.

Canonical definition (version 1; every backend, import and copy compute exactly this):

    GENESIS   = sha256(b"vigil chain v1")                       # the "previous" of seq 1
    chain(n)  = sha256( chain(n-1)                               # 32 bytes
                      || u32be(len(run_id)) || run_id            # UTF-8
                      || i64be(seq) || i64be(ts_ns)
                      || u32be(len(type))   || type              # UTF-8, the events.type column
                      || body )                                  # the stored msgpack bytes

Every field before `body` has a fixed size or a length prefix, so no two different rows hash the
same bytes. `step_id` and `crc` are left out: both are derived from the body (a copy of one of
its fields, a checksum of it), so they prove nothing the body does not. `ts_ns` is in: the time
an event was recorded is part of what an audit reads.

What the chain proves alone: that the rows of a run are the ones that were appended, unless
someone rewrote the chain too (anyone who can write the database can). A signed seal over a
run's head (kernel/seals.py) closes that: the signer's key is not on the box.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Iterable

__all__ = ["GENESIS", "link", "Backfill", "ChainCheck"]

GENESIS = hashlib.sha256(b"vigil chain v1").digest()

_sha256 = hashlib.sha256
_u32 = struct.Struct(">I").pack
_seq_ts_len = struct.Struct(">qqI").pack


def link(prev: bytes, run_id: str, seq: int, ts_ns: int, type_: str, body: bytes) -> bytes:
    """The chain of one row, given the chain of the row before it (GENESIS for seq 1)."""
    rid = run_id.encode()
    typ = type_.encode()
    try:
        # One buffer and one sha256 call: the writer links every appended row on its thread,
        # and a hash object fed in three updates cost a quarter more (1.1 us against 0.87).
        return _sha256(
            b"".join((prev, _u32(len(rid)), rid, _seq_ts_len(seq, ts_ns, len(typ)), typ, body))
        ).digest()
    except struct.error:
        # What SQLite and PostgreSQL say of such a value too: the writers fail this one group
        # for it (OverflowError is "refused"), not the store.
        raise OverflowError(f"seq {seq} or ts_ns {ts_ns} is too large for an 8-byte integer") from None


class Backfill:
    """Chains rows that have none (a migration), one keyset page at a time, in (run_id, seq)
    order: `key` is where the next page starts, `page(rows)` the (chain, pos) updates of one page
    of (pos, run_id, seq, ts_ns, type, body) rows. The same for both backends' migrations."""

    def __init__(self) -> None:
        self.key: tuple = ("", 0)
        self._prev = GENESIS

    def page(self, rows: list[tuple]) -> list[tuple[bytes, int]]:
        updates = []
        for pos, run_id, seq, ts_ns, type_, body in rows:
            if run_id != self.key[0]:
                self._prev = GENESIS
            self._prev = link(self._prev, run_id, seq, ts_ns, type_, bytes(body))
            updates.append((self._prev, pos))
            self.key = (run_id, seq)
        return updates


class ChainCheck:
    """Fed a run's rows `(seq, ts_ns, type, body, chain)` in seq order, page by page: recomputes
    the chain from the bodies and keeps the first seq where the stored one differs. `at` holds
    the recomputed chain at the seqs asked for (where seals were made), so a seal is checked
    against what the bodies give now, not against the stored column an editor could rewrite."""

    def __init__(self, run_id: str, want: Iterable[int] = ()) -> None:
        self.run_id = run_id
        self.first_break: tuple[int, str] | None = None  # (seq, why)
        self.head = GENESIS
        self.last_seq = 0
        self.rows = 0
        self.at: dict[int, bytes] = {}
        self._want = set(want)

    def feed(self, rows: Iterable[tuple]) -> None:
        for seq, ts_ns, type_, body, stored in rows:
            self.head = link(self.head, self.run_id, seq, ts_ns, type_, body)
            self.last_seq = seq
            self.rows += 1
            if seq in self._want:
                self.at[seq] = self.head
            if self.first_break is None and stored != self.head:
                why = (
                    "the row has no chain" if stored is None
                    else "the stored chain does not follow from the rows up to here "
                    "(a row was rewritten or removed)"
                )
                self.first_break = (seq, why)
