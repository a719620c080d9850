"""`vigil otel export RUN|--all` and `vigil otel follow`: runs as OpenTelemetry traces."""

from __future__ import annotations

import argparse
import sys

from kernel.errors import VigilError

from .commands import _open

__all__ = ["cmd_otel"]


async def cmd_otel(args: argparse.Namespace) -> int:
    if args.otel_command == "export":
        return await _export(args)
    return await _follow(args)


def _sender(args: argparse.Namespace):
    from kernel.otel.export import OtlpSender, default_endpoint

    if args.timeout <= 0:
        raise VigilError("--timeout must be more than 0 seconds")
    endpoint = args.endpoint or default_endpoint()
    if not endpoint.startswith(("http://", "https://")):
        raise VigilError(f"--endpoint {endpoint!r} is not an http:// or https:// URL")
    return OtlpSender(endpoint, timeout=args.timeout)


async def _export(args: argparse.Namespace) -> int:
    from kernel.otel.export import all_run_ids, export_runs

    if bool(args.run) == bool(args.all):
        raise VigilError("name one RUN, or --all")
    sender = _sender(args)
    try:
        async with await _open(args) as store:
            ids = all_run_ids(store) if args.all else [await store.resolve(args.run)]
            runs, spans = await export_runs(store, ids, sender.send)
    finally:
        sender.close()
    print(f"exported {spans} spans from {runs} run{'s' if runs != 1 else ''} to {sender.url}", file=sys.stderr)
    return 0


async def _follow(args: argparse.Namespace) -> int:
    from kernel.otel.follow import Cursor, Follower

    sender = _sender(args)
    cursor = Cursor(args.cursor)
    try:
        async with await _open(args) as store:
            print(f"following {store.where} to {sender.url}", file=sys.stderr, flush=True)
            await Follower(store, sender.send, cursor).run(start=0 if args.from_start else None)
    finally:
        sender.close()
    return 0
