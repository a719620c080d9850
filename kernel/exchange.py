"""Export a run as JSON lines and import it elsewhere with byte-identical event bodies.

A line is {"run_id", "seq", "ts_ns", "type", "step_id", "crc", "event": {...}} for an event this
version decodes, or carries "body_b64" (and "error") instead of "event" for an unknown or
corrupt row, so an export never loses or repairs anything. JSON has no NaN or infinity (they
would come back as null), so an event holding one carries its exact body in "body_b64" beside
the readable "event", and import loads that body.

Import refuses a file that does not hold each run's events from seq 1 without a gap or a repeat.

Tamper evidence (kernel/chain.py, kernel/seals.py): each line carries its row's hash chain
("chain", hex), and the line of a sealed seq its seals ("seals": chain, key id, time, signature).
Import stores the chain values and seals exactly as exported, so an imported run verifies with
the same chain (and `vigil verify --key` checks the same seals), and a break is never laundered
into a fresh chain: it stays at its seq. Import also recomputes every run's chain from the bodies
it stores and flags (through `warn`) each run whose chain breaks, or whose events no longer reach
a sealed hash: an event edited after export (its crc fixed) or a log already broken where it was
exported; `vigil verify` on the new log names the same seq. An export made before the chain
existed (no "chain") is chained afresh by the writer.
"""

from __future__ import annotations

import base64
import re
import zlib
from typing import Any, AsyncIterator, Callable, Iterable, Iterator

import msgspec

from .chain import GENESIS, link
from .artifactio import ImportedArtifacts, export_artifact_lines
from .codec import Corrupt, Unknown, decode, encode, to_builtins
from .engine.runview import ENDS, after_end_problem, resolution_problem
from .errors import ImportConflict, ImportFailed, NotFound
from .events import Event, InterruptRaised, InterruptResolved
from .redact import redact

__all__ = ["ExportLine", "export_lines", "import_lines"]

_json = msgspec.json.Encoder()
# A msgpack float64 (0xcb) whose exponent bits are all ones: NaN or +-infinity. A match inside a
# string is harmless: that line just carries its exact body too.
_NON_FINITE = re.compile(rb"\xcb[\x7f\xff][\xf0-\xff]")


class SealLine(msgspec.Struct, kw_only=True):
    chain: str  # hex
    key_id: str
    sealed_ns: int
    signature: str  # base64


class ExportLine(msgspec.Struct, kw_only=True, omit_defaults=True):
    run_id: str
    seq: int
    ts_ns: int
    type: str
    crc: int
    step_id: str | None = None
    event: Any = None
    body_b64: str | None = None
    error: str | None = None
    chain: str | None = None  # hex; absent in exports made before the chain existed
    seals: list[SealLine] | None = None


async def export_lines(store: Any, run_id: str, *, page: int = 2000) -> AsyncIterator[bytes]:
    seals: dict[int, list[SealLine]] = {}
    for seq, chain, kid, sealed_ns, signature in await store.seals(run_id):
        seals.setdefault(seq, []).append(SealLine(
            chain=chain.hex(), key_id=kid, sealed_ns=sealed_ns, signature=base64.b64encode(signature).decode()
        ))
    async for line in export_artifact_lines(store, run_id):  # first: import stores them first
        yield line
    lo = 1
    while True:
        rows = await store.raw_rows(run_id, lo, page)
        # The stored chain, as it is (a broken one is exported broken, and import refuses it).
        chains = {r[0]: r[4] for r in await store.chain_rows(run_id, lo, page)} if rows else {}
        for seq, ts_ns, type_, step_id, body, crc in rows:
            line = ExportLine(run_id=run_id, seq=seq, ts_ns=ts_ns, type=type_, crc=crc, step_id=step_id)
            chain = chains.get(seq)
            if chain is not None:
                line.chain = chain.hex()
            line.seals = seals.get(seq)
            event = decode(type_, body, crc)
            if isinstance(event, (Unknown, Corrupt)):
                line.body_b64 = base64.b64encode(body).decode()
                line.error = event.error if isinstance(event, Corrupt) else "unknown type"
            else:
                line.event = to_builtins(event)
                if _NON_FINITE.search(body):
                    line.body_b64 = base64.b64encode(body).decode()
            yield _json.encode(line)
        if len(rows) < page:
            return
        lo = rows[-1][0] + 1


def _parse(lines: Iterable[bytes]) -> Iterator[tuple[int, ExportLine, tuple, Any]]:
    """(line number, line, row, event) per line; raises ImportFailed naming the line."""
    decoder = msgspec.json.Decoder(ExportLine)
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            line = decoder.decode(raw)
            for name, top in (("seq", 2**63), ("ts_ns", 2**63), ("crc", 2**32)):
                if not 0 <= getattr(line, name) < top:
                    raise ImportFailed(f"line {n}: {name} {getattr(line, name)} is out of range (0 to {top - 1})")
            if line.body_b64 is not None:
                body = base64.b64decode(line.body_b64, validate=True)
                event = None
                if line.error is None:  # an event exported with its exact body (NaN, infinity)
                    event = decode(line.type, body, line.crc)
                    if isinstance(event, (Unknown, Corrupt)):
                        error = event.error if isinstance(event, Corrupt) else "unknown type"
                        raise ImportFailed(f"line {n} (seq {line.seq}): its body does not load ({error})")
            else:
                event = msgspec.convert(line.event, Event)
                body, crc = encode(event)
                if crc != line.crc and redact(event) is not event:
                    # Importing it as exported would write the secret; redacted, it is another event.
                    raise ImportFailed(
                        f"line {n} (seq {line.seq}): holds what looks like a secret, which vigil "
                        "does not write; `vigil verify --secrets` on the source log names it"
                    )
                if crc != line.crc or type(event).__name__ != line.type:
                    raise ImportFailed(
                        f"line {n} (seq {line.seq}): the re-encoded event differs from the "
                        "exported one"
                    )
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise ImportFailed(f"line {n}: not a vigil export line ({exc})") from None
        try:
            if line.chain is not None and len(bytes.fromhex(line.chain)) != 32:
                raise ValueError
            for s in line.seals or ():
                base64.b64decode(s.signature, validate=True)
                if len(bytes.fromhex(s.chain)) != 32 or not 0 <= s.sealed_ns < 2**63:
                    raise ValueError
        except ValueError:
            raise ImportFailed(f"line {n} (seq {line.seq}): a chain or seal that does not decode") from None
        if line.body_b64 is not None and zlib.crc32(body) != line.crc and line.error is None:
            raise ImportFailed(f"line {n} (seq {line.seq}): body does not match its crc")
        row = (line.run_id, line.seq, line.ts_ns, line.type, line.step_id, body, line.crc)
        yield n, line, row, event


def _decision_problem(folded: tuple[dict[str, list], list], event: Any) -> str | None:
    """What a driver would refuse to act on: a forged or repeated resolution, an event after
    the run's end. Unknown and corrupt rows (event None) are carried as they are."""
    interrupts, terminal = folded
    if event is None:
        return None
    if terminal[0] is not None:
        return after_end_problem(event, terminal[0])
    if isinstance(event, InterruptRaised):
        interrupts[event.interrupt_id] = [event, None]
    elif isinstance(event, InterruptResolved):
        entry = interrupts.get(event.interrupt_id)
        problem = resolution_problem(event, entry)
        if problem is not None:
            return problem
        entry[1] = event
    elif isinstance(event, ENDS):
        terminal[0] = event
    return None


async def import_lines(
    store: Any, read_lines: Any, *, chunk: int = 2000, warn: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Load an export. `read_lines()` returns a fresh iterable of the file's lines (read twice:
    once to validate everything, once to append, so a bad line writes nothing). `warn(message)`
    hears of each run whose hash chain breaks (it is imported as it is).
    Returns {run_id: events imported}."""
    artifacts = ImportedArtifacts()
    file_lines, read_lines = read_lines, artifacts.events_only(read_lines)  # kernel/artifactio.py
    counts: dict[str, int] = {}
    decisions: dict[str, tuple[dict[str, list], list]] = {}  # run -> (interrupts, [terminal])
    chains: dict[str, bytes] = {}  # run -> the chain recomputed up to its last line read
    broken: dict[str, str] = {}  # run -> its first chain problem
    for n, line, row, event in _parse(read_lines()):
        want = counts.get(line.run_id, 0) + 1
        if line.seq != want:
            what = f"seq {want} is missing" if line.seq > want else f"seq {line.seq} comes twice or out of order"
            raise ImportFailed(f"line {n}: run {line.run_id}: {what} (the line has seq {line.seq}); nothing imported")
        if line.run_id not in counts:
            try:
                await store.run(line.run_id)
            except NotFound:
                counts[line.run_id] = 0
            else:
                raise ImportConflict(f"run {line.run_id} already exists in {store.where}")
        counts[line.run_id] += 1
        problem = _decision_problem(decisions.setdefault(line.run_id, ({}, [None])), event)
        if problem is not None:
            raise ImportFailed(f"run {line.run_id} seq {line.seq}: {problem}; nothing was imported")
        chains[line.run_id], problem = _check_chain(line, row, chains.get(line.run_id, GENESIS))
        if problem is not None:
            broken.setdefault(line.run_id, problem)
        artifacts.saw(line.run_id, line.seq, event)
    await artifacts.check(store)
    await artifacts.store_all(store, file_lines)

    last: dict[str, int] = {}
    pending: dict[str, tuple[list, list]] = {}

    async def flush(run_id: str) -> None:
        rows, events = pending.pop(run_id)
        last[run_id] = await store.append_rows(
            run_id, rows, events, expected_seq=last.get(run_id, 0)
        )

    sealed: list[tuple] = []
    for _, line, row, event in _parse(read_lines()):
        rows, events = pending.setdefault(line.run_id, ([], []))
        rows.append(row + (bytes.fromhex(line.chain),) if line.chain is not None else row)
        events.append(event)
        for s in line.seals or ():
            sealed.append((line.run_id, line.seq, bytes.fromhex(s.chain), s.key_id, s.sealed_ns,
                           base64.b64decode(s.signature)))
        if len(rows) >= chunk:
            await flush(line.run_id)
    for run_id in list(pending):
        await flush(run_id)
    for seal in sealed:
        await store.add_seal(*seal)
    for run_id, problem in broken.items():
        if warn is not None:
            warn(f"run {run_id}: {problem}; imported as it is (`vigil verify` names it)")
    return counts


def _check_chain(line: ExportLine, row: tuple, prev: bytes) -> tuple[bytes, str | None]:
    """The chain of this line's row recomputed from what will be stored, and what is wrong with
    the line's exported chain or seals, if anything (the file or its source was edited)."""
    chain = link(prev, row[0], row[1], row[2], row[3], row[5])
    if line.chain is not None and line.chain != chain.hex():
        return chain, (
            f"its hash chain breaks at seq {line.seq} (an event edited after export, or a log "
            "already broken where it was exported)"
        )
    for s in line.seals or ():
        if s.chain != chain.hex():
            return chain, f"its events no longer reach the hash sealed at seq {line.seq} by key {s.key_id}"
    return chain, None
