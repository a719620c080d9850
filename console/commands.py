"""The CLI's commands over the event log; each takes parsed args and returns an exit code."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from kernel.log import target_of
from kernel.codec import to_builtins
from kernel.errors import NotFound, VigilError
from kernel.events import ERROR_CATEGORIES, EVENT_TYPES
from kernel.projection import STATUSES
from kernel.exchange import export_lines, import_lines
from kernel.store import Store
from kernel.verify import verify_run

from .format import RUN_HEADER, event_line, owner_text, record_json, run_line

_json = msgspec.json.Encoder()


def _db_path(args: argparse.Namespace) -> Path | str:
    """The log `--db` names: a SQLite path, or a PostgreSQL URL."""
    return target_of(args.db)


async def _open(args: argparse.Namespace, *, readonly: bool = True) -> Store:
    path = _db_path(args)
    if readonly and isinstance(path, Path) and not path.exists():
        raise NotFound(f"no database at {path} (`vigil demo` makes one; --db or VIGIL_DB picks another)")
    return await Store.open(path, readonly=readonly)


def _out(line: str | bytes) -> None:
    if isinstance(line, bytes):
        sys.stdout.buffer.write(line + b"\n")
    else:
        sys.stdout.write(line + "\n")


async def cmd_runs(args: argparse.Namespace) -> int:
    if args.status is not None and args.status not in STATUSES:
        raise VigilError(f"--status {args.status!r} is not a status (one of {', '.join(STATUSES)})")
    category = args.error_category
    if category is not None and category not in ERROR_CATEGORIES:
        raise VigilError(f"--error-category {category!r} is not a category (one of {', '.join(ERROR_CATEGORIES)})")
    async with await _open(args) as store:
        page, offset, shown = 500, 0, 0
        limit = args.limit if args.limit > 0 else None
        if not args.json:
            _out(RUN_HEADER)
        now = time.time_ns()
        while limit is None or shown < limit:
            take = page if limit is None else min(page, limit - shown)
            runs = await store.runs(
                status=args.status, graph=args.graph, limit=take, offset=offset, error_category=category,
            )
            for run in runs:
                if args.json:
                    row = to_builtins(run)
                    del row["seen_ns"]  # when it was read, not part of the run
                    _out(_json.encode({**row, "owner_state": owner_text(run)}))
                else:
                    _out(run_line(run, now))
            shown += len(runs)
            offset += len(runs)
            if len(runs) < take:
                break
    return 0


async def cmd_events(args: argparse.Namespace) -> int:
    # `--type Note,RunFailed` or `--type Note --type RunFailed`: the same filter.
    # Matched whatever the case (`--type note` means Note): the names differ by more than case.
    canonical = {t.lower(): t for t in EVENT_TYPES}
    given = [t.strip() for value in args.type or () for t in value.split(",")]
    unknown = [t for t in given if t.lower() not in canonical]
    if unknown:
        raise VigilError(f"--type {unknown[0]!r} is not an event type (one of {', '.join(EVENT_TYPES)})")
    types = [canonical[t.lower()] for t in given] or None
    async with await _open(args) as store:
        run_id = await store.resolve(args.run)
        async for record in store.iter_events(run_id, args.from_seq, args.to_seq, types=types):
            _out(_json.encode(record_json(record)) if args.json else event_line(record))
    return 0


async def cmd_state(args: argparse.Namespace) -> int:
    async with await _open(args) as store:
        run_id = await store.resolve(args.run)
        if args.at is not None:
            last = (await store.run(run_id)).last_seq
            if not 1 <= args.at <= last:
                raise VigilError(f"run {run_id} has no seq {args.at} (it has 1..{last})")
        view = await store.state_at(run_id, args.at)
    if args.json:
        _out(_json.encode({"run_id": run_id, "seq": view.seq, "state": to_builtins(view.state),
                           "problems": [{"seq": s, "message": m} for s, m in view.problems]}))
    else:
        _out(f"# run {run_id} as of seq {view.seq}")
        _out(msgspec.json.format(_json.encode(to_builtins(view.state)), indent=2).decode())
    for seq, message in view.problems:
        print(f"vigil: seq {seq}: {message}; the state above skips it", file=sys.stderr)
    return 1 if view.problems else 0


async def cmd_verify(args: argparse.Namespace) -> int:
    """Every check, with --key the seals too (one loop: a copy of it for --key once skipped the
    artifacts)."""
    key = getattr(args, "key", None)
    if args.secrets and key:
        raise VigilError("--key and --secrets are separate checks; run them one at a time")
    if args.secrets:
        return await _verify_secrets(args)
    manifest_path = getattr(args, "manifest", None)
    if manifest_path and not key:
        raise VigilError("--manifest needs --key PUBLIC (the manifest's signature is checked with it)")
    public, kid, listed = None, None, {}
    if key:
        from kernel.seals import key_id, load_public

        public = load_public(key)
        kid = key_id(public)
    if manifest_path:
        from kernel.manifest import load

        listed = {e.run_id: (e.seq, bytes.fromhex(e.chain)) for e in load(manifest_path, public, kid).runs}
    bad = missing = 0
    async with await _open(args) as store:
        if args.run:
            run_ids = [await store.resolve(args.run)]
        else:
            run_ids = [r.run_id for r in await store.runs(limit=1_000_000_000)]
            # A run the manifest lists and the log no longer has: deleted, seals and all.
            present = set(run_ids)
            for run_id, (seq, _) in sorted(listed.items()):
                if run_id not in present:
                    _out(f"run {run_id} seq {seq}: the manifest lists it sealed, but it is not in the log (deleted)")
                    missing += 1
        bad = missing
        for run_id in run_ids:
            started = time.perf_counter()
            result = await verify_run(store, run_id, key=public, listed=listed.get(run_id))
            for p in result.problems:
                _out(f"run {p.run_id} seq {p.seq}: {p.message}")
            if result.problems:
                bad += 1
                continue
            elapsed = time.perf_counter() - started
            if public is None:
                _out(f"run {run_id}: ok ({result.next_seq - 1} events, "
                     f"{result.steps_checked} state hashes, {elapsed:.2f}s)")
                continue
            last = result.chain.last_seq
            tail = "" if result.sealed_to == last else f"; seq {result.sealed_to + 1}..{last} not sealed yet"
            _out(f"run {run_id}: ok ({last} events, {result.steps_checked} state hashes, "
                 f"sealed to seq {result.sealed_to} by key {kid}{tail}, {elapsed:.2f}s)")
        broken = await _verify_artifacts(store, run_ids if args.run else None)
    if bad:
        print(f"vigil: {bad} of {len(run_ids) + missing} runs failed verification", file=sys.stderr)
    return 1 if bad or broken else 0


async def _verify_artifacts(store: Store, run_ids: list[str] | None) -> int:
    """Re-hash the artifacts (kernel/artifactio.py); prints each problem, returns how many."""
    from kernel.artifactio import verify_artifacts

    problems = await verify_artifacts(store, run_ids)
    for problem in problems:
        _out(problem)
    if problems:
        print(f"vigil: {len(problems)} artifact problem(s)", file=sys.stderr)
    return len(problems)


async def _verify_secrets(args: argparse.Namespace) -> int:
    from kernel.artifactio import scan_artifact_secrets

    async with await _open(args) as store:
        run_id = await store.resolve(args.run) if args.run else None
        found, rows = await store.scan_secrets(run_id)
        in_artifacts, artifacts = await scan_artifact_secrets(store, [run_id] if run_id else None)
    for f in found:
        _out(f"run {f.run_id} {f.where}: looks like a secret ({f.kind})")
    for _, line in in_artifacts:
        _out(line)
    if found or in_artifacts:
        runs = len({f.run_id for f in found} | {rid for rid, _ in in_artifacts if rid})
        print(f"vigil: {len(found) + len(in_artifacts)} things that look like secrets in {runs} run(s)", file=sys.stderr)
        return 1
    _out(f"no secrets found ({rows} rows and {artifacts} artifact(s) looked at)")
    return 0


async def cmd_export(args: argparse.Namespace) -> int:
    async with await _open(args) as store:
        run_id = await store.resolve(args.run)
        if not args.output:
            async for line in export_lines(store, run_id):
                _out(line)
            return 0
        target = Path(args.output)
        # Written beside the target and renamed, so a failed export never leaves half a file.
        fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                async for line in export_lines(store, run_id):
                    f.write(line + b"\n")
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
    return 0


async def cmd_import(args: argparse.Namespace) -> int:
    source = args.file
    spool = None
    if source == "-":
        # The import reads its input twice (validate, then write), so stdin is spooled first.
        spool = tempfile.TemporaryFile()
        for chunk in iter(lambda: sys.stdin.buffer.read(1 << 20), b""):
            spool.write(chunk)
    elif not os.path.exists(source):
        raise NotFound(f"no file {source}")

    def read_lines():
        if spool is not None:
            spool.seek(0)
            yield from iter(spool.readline, b"")
            return
        with open(source, "rb") as f:
            yield from f

    nothing = f"{'stdin' if source == '-' else source} has no runs to import"
    try:
        if not any(line.strip() for line in read_lines()):
            # Refused before the log is opened for writing: no new, empty database is left behind
            # (an existing one is still opened, so that a log vigil cannot read says so first).
            path = _db_path(args)
            if not isinstance(path, Path) or path.exists():
                async with await _open(args):
                    pass
            raise VigilError(nothing)
        path = _db_path(args)
        created = isinstance(path, Path) and not path.exists()
        try:
            async with await _open(args, readonly=False) as store:
                counts = await import_lines(store, read_lines, warn=lambda m: print(f"vigil: {m}", file=sys.stderr))
            if not counts:
                raise VigilError(nothing)
        except BaseException:
            if created:  # a refused import leaves no new, empty log behind (one it did not make stays)
                for suffix in ("", "-wal", "-shm", "-journal"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
            raise
    finally:
        if spool is not None:
            spool.close()
    for run_id, n in counts.items():
        _out(f"imported run {run_id} ({n} events)")
    return 0


async def cmd_copy(args: argparse.Namespace) -> int:
    from kernel.copylog import copy_log, verify_copy
    from kernel.log import target_of

    source, target = target_of(args.source or args.db), target_of(args.target)
    if str(source) == str(target):
        raise VigilError("--from and --to name the same log")
    if isinstance(source, Path) and not source.exists():
        raise NotFound(f"no database at {source}")

    def progress(report) -> None:
        print(f"copying: {report.runs} runs, {report.events:,} events, {report.seconds:.0f}s", file=sys.stderr)

    async with await Store.open(source, readonly=True) as src, await Store.open(target) as dst:
        report = await copy_log(src, dst, progress=progress)
        problems = await verify_copy(src, dst)
    for note in report.broken:  # kernel/copylog.py: carried as they are, named here
        print(f"vigil: {note}", file=sys.stderr)
    for problem in problems:
        print(f"vigil: {problem}", file=sys.stderr)
    if problems:
        print(f"vigil: the copy differs from {src.where} in {len(problems)} place(s)", file=sys.stderr)
        return 1
    print(f"copied {report.runs} runs, {report.events} events, {report.artifacts} artifacts to {dst.where} in {report.seconds:.1f}s; "
          "verified identical, row by row")
    return 0
