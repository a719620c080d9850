"""Artifacts across logs: what `vigil export`/`import` carry, what `vigil copy` copies and what
`vigil verify` re-hashes (the hooks in exchange.py, copylog.py and console/commands.py call these).

An export holds a run's artifacts first, one line each, then its events:
`{"artifact_id", "kind", "size", "created_ns", "data_b64"}`. Import checks every artifact line
(its bytes hash to its id, its size) and that every artifact the run's events reference is in
the file or already in the target, before it writes anything.
"""

from __future__ import annotations

import base64
from typing import Any, AsyncIterator, Callable, Iterable, Iterator

import msgspec

from .artifacts import ArtifactMissing, artifact_id, ref_of
from .errors import ImportFailed
from .events import ActionSucceeded, ArtifactStored

__all__ = [
    "ArtifactLine", "run_artifacts", "export_artifact_lines", "ImportedArtifacts",
    "copy_artifacts", "compare_artifacts", "verify_artifacts", "output_ref",
]

_json = msgspec.json.Encoder()
# Field order is the line's key order: an artifact line is known by how it starts.
_START = b'{"artifact_id":'


class ArtifactLine(msgspec.Struct, kw_only=True):
    artifact_id: str
    kind: str
    size: int
    created_ns: int
    data_b64: str


_line = msgspec.json.Decoder(ArtifactLine)


async def run_artifacts(store: Any, run_id: str) -> dict[str, int]:
    """artifact id -> the first seq that references it, for one run (its ArtifactStored events,
    read by type: the run's other events are not decoded)."""
    found: dict[str, int] = {}
    async for record in store.iter_events(run_id, types=["ArtifactStored"]):
        if isinstance(record.event, ArtifactStored):
            found.setdefault(record.event.artifact_id, record.seq)
    return found


async def export_artifact_lines(store: Any, run_id: str) -> AsyncIterator[bytes]:
    """One line per artifact the run references, each loaded alone (never all at once)."""
    for aid in await run_artifacts(store, run_id):
        info = await store.artifact_info(aid)
        if info is None:
            raise ArtifactMissing(f"run {run_id} references artifact {aid}, which is not in {store.where}")
        data = await store.get_artifact(aid)
        yield _json.encode(ArtifactLine(
            artifact_id=aid, kind=info.kind, size=info.size, created_ns=info.created_ns,
            data_b64=base64.b64encode(data).decode(),
        ))


class ImportedArtifacts:
    """The artifact lines of an import file, kept apart from its event lines."""

    def __init__(self) -> None:
        self.in_file: set[str] = set()
        self.referenced: dict[str, tuple[str, int]] = {}  # id -> (run, seq) of its first reference

    def events_only(self, read_lines: Callable[[], Iterable[bytes]]) -> Callable[[], Iterator[bytes]]:
        """`read_lines` with each artifact line checked, then blanked (so line numbers hold)."""
        def read() -> Iterator[bytes]:
            for n, raw in enumerate(read_lines(), 1):
                if raw.lstrip().startswith(_START):
                    self.in_file.add(_checked(n, raw)[0].artifact_id)
                    yield b"\n"
                else:
                    yield raw
        return read

    def saw(self, run_id: str, seq: int, event: Any) -> None:
        if isinstance(event, ArtifactStored):
            self.referenced.setdefault(event.artifact_id, (run_id, seq))

    async def check(self, store: Any) -> None:
        for aid, (run_id, seq) in self.referenced.items():
            if aid not in self.in_file and await store.artifact_info(aid) is None:
                raise ImportFailed(
                    f"run {run_id} seq {seq} references artifact {aid}, which is neither in the file "
                    f"nor in {store.where}; nothing was imported"
                )

    async def store_all(self, store: Any, read_lines: Callable[[], Iterable[bytes]]) -> int:
        """Write the file's artifacts (already checked), one at a time; returns how many."""
        n = 0
        for raw in read_lines():
            if raw.lstrip().startswith(_START):
                line, data = _checked(0, raw)
                await store.put_artifact(data, line.kind, created_ns=line.created_ns)
                n += 1
        return n


def _checked(n: int, raw: bytes) -> tuple[ArtifactLine, bytes]:
    try:
        line = _line.decode(raw)
        data = base64.b64decode(line.data_b64, validate=True)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise ImportFailed(f"line {n}: not a vigil artifact line ({exc})") from None
    if artifact_id(data) != line.artifact_id or len(data) != line.size:
        raise ImportFailed(f"line {n}: artifact {line.artifact_id[:16]}…: its bytes do not match its id and size")
    return line, data


async def copy_artifacts(source: Any, target: Any) -> int:
    """Every artifact of `source` into `target` (one in memory at a time); returns how many."""
    n = 0
    async for info in source.iter_artifacts():
        if await target.artifact_info(info.artifact_id) is None:
            await target.put_artifact(await source.get_artifact(info.artifact_id), info.kind, created_ns=info.created_ns)
        n += 1
    return n


async def compare_artifacts(source: Any, target: Any) -> list[str]:
    """What differs between two logs' artifacts (kind, size, time; the bytes by their hash)."""
    problems = []
    async for info in source.iter_artifacts():
        there = await target.artifact_info(info.artifact_id)
        if there is None:
            problems.append(f"artifact {info.artifact_id}: missing from {target.where}")
        elif there != info:
            problems.append(f"artifact {info.artifact_id}: its kind, size or time differs")
        elif artifact_id(await target.get_artifact(info.artifact_id)) != info.artifact_id:
            problems.append(f"artifact {info.artifact_id}: its bytes differ in {target.where}")
    return problems


async def _referenced(store: Any, run_ids: list[str] | None) -> dict[str, tuple[str, int]]:
    """artifact id -> (the first run, seq) referencing it, over `run_ids` (None: every run)."""
    if run_ids is None:
        run_ids = [r.run_id for r in await store.runs(limit=1_000_000_000)]
    wanted: dict[str, tuple[str, int]] = {}
    for run_id in run_ids:
        for aid, seq in (await run_artifacts(store, run_id)).items():
            wanted.setdefault(aid, (run_id, seq))
    return wanted


async def verify_artifacts(store: Any, run_ids: list[str] | None = None) -> list[str]:
    """Re-hash artifacts and check references. `run_ids` None: every artifact of the log (and
    every run's references); else the artifacts those runs reference. One line per problem."""
    problems: list[str] = []
    wanted = await _referenced(store, run_ids)
    ids = [info.artifact_id async for info in store.iter_artifacts()] if run_ids is None else None
    for aid in (ids if ids is not None else list(wanted)):
        where = f"; referenced by run {wanted[aid][0]} seq {wanted[aid][1]}" if aid in wanted else ""
        try:
            data = await store.get_artifact(aid)
        except ArtifactMissing:
            problems.append(f"run {wanted[aid][0]} seq {wanted[aid][1]}: artifact {aid} is not in the log")
            continue
        actual = artifact_id(data)
        info = await store.artifact_info(aid)
        if actual != aid:
            problems.append(f"artifact {aid}: corrupt, its bytes hash to {actual[:16]}…{where}")
        elif info is not None and info.size != len(data):
            problems.append(f"artifact {aid}: its size says {info.size} bytes, it holds {len(data)}{where}")
    if ids is not None:
        present = set(ids)
        for aid, (run_id, seq) in wanted.items():
            if aid not in present:
                problems.append(f"run {run_id} seq {seq}: artifact {aid} is not in the log")
    return problems


async def scan_artifact_secrets(store: Any, run_ids: list[str] | None = None) -> tuple[list[tuple[str, str]], int]:
    """`vigil verify --secrets` over artifact bytes (stored as given: `ctx.artifact` does not
    redact, they may be a PDF or an image). `run_ids` None: every artifact of the log. Returns
    (run id or "", line) per finding, and how many artifacts were looked at; each artifact is
    loaded alone."""
    from .redact import secrets_in

    wanted = await _referenced(store, run_ids)
    ids = list(wanted) if run_ids is not None else [info.artifact_id async for info in store.iter_artifacts()]
    found: list[tuple[str, str]] = []
    for aid in ids:
        try:
            data = await store.get_artifact(aid)
        except ArtifactMissing:
            continue  # `vigil verify` reports a missing artifact; this scan is about secrets
        run_id, seq = wanted.get(aid, ("", 0))
        where = f"run {run_id} seq {seq} artifact {aid}" if run_id else f"artifact {aid}"
        for _, kind in secrets_in(data):
            found.append((run_id, f"{where}: looks like a secret ({kind})"))
    return found, len(ids)


def output_ref(event: Any):
    """The artifact reference an ActionSucceeded's output is, if it is one (for displays)."""
    return ref_of(event.output) if isinstance(event, ActionSucceeded) else None

