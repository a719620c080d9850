"""`vigil artifact RUN|ID`: print or save one artifact (kernel/artifacts.py), or list a run's;
and what the scrubber shows of an artifact reference and how it opens one in a pager."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from kernel.artifactio import output_ref, run_artifacts
from kernel.artifacts import ArtifactRef, BadArtifactId, check_id
from kernel.errors import NotFound, VigilError
from kernel.events import ArtifactStored

from .commands import _open, _out

__all__ = ["add_parser", "cmd_artifact", "ref_in", "ref_lines", "human_size", "pager_argv", "artifact_at", "page_artifact"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("artifact", help="print or save an artifact (by id, or a run's at a seq); list a run's")
    p.add_argument("ref", metavar="RUN|ID", help="an artifact id (a unique prefix will do), or a run")
    p.add_argument("--seq", type=int, metavar="SEQ", help="with a run: the artifact its event at SEQ references")
    p.add_argument("-o", "--output", metavar="FILE", help="write the bytes here (default stdout)")
    p.add_argument("--info", action="store_true", help="print its id, kind, size and time, not its bytes")


def human_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def ref_in(event: Any) -> ArtifactRef | None:
    """The artifact an event references: an ArtifactStored, or an effect output stored as one."""
    if isinstance(event, ArtifactStored):
        return ArtifactRef(artifact_id=event.artifact_id, kind=event.kind, size=event.size)
    return output_ref(event)


def ref_lines(ref: ArtifactRef, key: str) -> list[str]:
    """The scrubber's lines for a reference (size and kind from the event, no bytes read)."""
    return [
        "── artifact ──",
        f"{ref.artifact_id[:16]}…  {human_size(ref.size)} ({ref.size:,} bytes)  {ref.kind}",
        f"{key}: open it in the pager · vigil artifact {ref.artifact_id[:16]} -o FILE saves it",
        "",
    ]


def pager_argv() -> list[str]:
    """$PAGER (split like a shell would), else less."""
    return shlex.split(os.environ.get("PAGER") or "") or ["less"]


async def artifact_at(store: Any, run_id: str, seq: int) -> ArtifactRef:
    records = await store.events(run_id, seq, seq, limit=1)
    if not records:
        raise NotFound(f"run {run_id} has no seq {seq}")
    ref = ref_in(records[0].event)
    if ref is None:
        raise NotFound(f"run {run_id} seq {seq} ({records[0].type}) references no artifact")
    return ref


async def cmd_artifact(args: argparse.Namespace) -> int:
    async with await _open(args) as store:
        run_id = await _run_or_none(store, args.ref)
        if run_id is not None and args.seq is None and (args.output or args.info):
            # A run alone lists its artifacts; which one to save or describe is not a guess.
            flag = "-o" if args.output else "--info"
            raise VigilError(f"{flag} needs an artifact id or --seq (`vigil artifact {args.ref}` lists the run's)")
        if run_id is not None and args.seq is None:
            found = await run_artifacts(store, run_id)
            for aid, seq in found.items():
                info = await store.artifact_info(aid)
                what = f"{human_size(info.size)}  {info.kind}" if info else "(not in the log)"
                _out(f"{aid}  seq {seq}  {what}")
            if not found:
                print(f"vigil: run {run_id} has no artifacts", file=sys.stderr)
            return 0
        if run_id is not None:
            aid = (await artifact_at(store, run_id, args.seq)).artifact_id
        elif args.seq is not None:
            raise VigilError(f"--seq needs a run, and there is no run {args.ref!r}")
        else:
            try:
                check_id(args.ref)
                aid = await store.resolve_artifact(args.ref)
            except (NotFound, BadArtifactId):
                raise NotFound(f"no run or artifact {args.ref!r}") from None
        info = await store.artifact_info(aid)
        if info is None:
            raise NotFound(f"artifact {aid} is not in {store.where}")
        if args.info:
            _out(f"{aid}  {info.size} bytes  {info.kind}  created_ns {info.created_ns}")
            return 0
        data = await store.get_artifact(aid)
    if not args.output or args.output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0
    _save(Path(args.output), data)
    print(f"saved artifact {aid[:16]}… ({info.size:,} bytes, {info.kind}) to {args.output}", file=sys.stderr)
    return 0


async def _run_or_none(store: Any, text: str) -> str | None:
    try:
        return await store.resolve(text)
    except NotFound:
        return None


def _save(target: Path, data: bytes) -> None:
    # Written beside the target and renamed, so a failed save never leaves half a file.
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".", prefix=f".{target.name}.")
    except OSError as exc:
        raise VigilError(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except OSError as exc:
        os.unlink(tmp)
        raise VigilError(f"cannot write {target}: {exc.strerror or exc}") from None


def pager_text(data: bytes, kind: str) -> bytes:
    """What the pager shows: the bytes, except an effect output stored as msgpack, as JSON."""
    from kernel.artifacts import OUTPUT_KINDS, decode_output

    if kind != OUTPUT_KINDS[1]:
        return data
    import json

    from kernel.codec import to_builtins

    return json.dumps(to_builtins(decode_output(data, kind)), indent=2, ensure_ascii=False, default=str).encode()


async def page_artifact(app: Any, ref: ArtifactRef) -> None:
    """Hand the terminal to $PAGER (else less) on one artifact, written to a private temp file
    (the pager may need to seek; a pipe of 100 MB would also hold up the app while it fills)."""
    import subprocess

    from textual.app import SuspendNotSupported

    argv = pager_argv()
    if shutil.which(argv[0]) is None:
        # Checked before suspending: a suspended console with nothing to run shows a blank screen.
        app.notify(f"cannot run the pager {argv[0]!r}: not found (set $PAGER to one that is); "
                   f"`vigil artifact {ref.artifact_id[:16]}` prints it", severity="error")
        return
    try:
        data = pager_text(await app.store.get_artifact(ref.artifact_id), ref.kind)
    except VigilError as exc:
        app.notify(f"cannot open the artifact: {exc}", severity="error")
        return
    failed: OSError | None = None
    with tempfile.NamedTemporaryFile(prefix=f"vigil-artifact-{ref.artifact_id[:12]}-") as f:
        f.write(data)
        f.flush()
        argv.append(f.name)
        try:
            with app.suspend():
                # Caught in here: App.suspend has no finally, so an error escaping the block
                # would never resume application mode and leave the terminal blank.
                try:
                    subprocess.run(argv, check=False)
                except OSError as exc:
                    failed = exc
        except SuspendNotSupported:
            app.notify(f"cannot hand this terminal to a pager; `vigil artifact {ref.artifact_id[:16]}` prints it",
                       severity="warning")
    if failed is not None:
        app.notify(f"cannot run the pager {argv[0]!r}: {failed.strerror or failed}", severity="error")
