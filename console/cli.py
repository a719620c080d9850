"""The `vigil` command line: a stable contract that tests and users script against.

Errors are one line on stderr. Exit codes: 0 ok, 1 a check failed (verify, a state with
unreadable rows), 2 bad input or an error. Textual is imported only by commands that open the UI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Sequence

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigil",
        description="Watch, steer and audit LLM agent runs from a terminal.",
        epilog="exit codes: 0 ok, 1 a check failed, 2 bad input or an error",
    )
    parser.add_argument(
        "--db",
        default=os.environ.get("VIGIL_DB"),
        help="the event log (env VIGIL_DB; default ~/.local/share/vigil/vigil.db)",
    )
    parser.add_argument(
        "--workflows",
        default=os.environ.get("VIGIL_WORKFLOWS"),
        help="MODULE[,MODULE] registering your graphs (env VIGIL_WORKFLOWS)",
    )
    parser.add_argument("--theme", help="colour theme for the console")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="record demo runs into the log")
    p.add_argument("--headless", action="store_true", help="no UI; print a summary")
    p.add_argument("--runs", type=int, default=1, help="how many demo runs (default 1)")

    p = sub.add_parser("runs", help="list runs, newest first")
    p.add_argument("--status", help="running, waiting, completed, failed, cancelled, diverged")
    p.add_argument("--graph", help="only runs of this graph")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50; 0 = all)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = sub.add_parser("events", help="a run's events in order")
    p.add_argument("run", help="run id or a unique prefix of one")
    p.add_argument("--from", dest="from_seq", type=int, default=1, metavar="SEQ")
    p.add_argument("--to", dest="to_seq", type=int, metavar="SEQ")
    p.add_argument("--type", action="append", help="only events of this type (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = sub.add_parser("state", help="a run's state as of a seq (default: the last)")
    p.add_argument("run")
    p.add_argument("--at", type=int, metavar="SEQ")
    p.add_argument("--json", action="store_true", help="one JSON object")

    p = sub.add_parser("verify", help="re-fold runs and check hashes, gaps and rows")
    p.add_argument("run", nargs="?", help="one run (default: every run)")

    p = sub.add_parser("export", help="a run as JSON lines")
    p.add_argument("run")
    p.add_argument("--format", choices=["jsonl"], default="jsonl")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (default stdout)")

    p = sub.add_parser("import", help="load an export into this database")
    p.add_argument("file", help="a file written by `vigil export`, or - for stdin")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 0
    from kernel.errors import VigilError

    from . import commands

    handler = getattr(commands, f"cmd_{args.command}")
    try:
        return asyncio.run(handler(args)) or 0
    except VigilError as exc:
        return _fail(str(exc))
    except BrokenPipeError:
        # `vigil events RUN | head`: the reader went away; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


def _fail(message: str) -> int:
    print(f"vigil: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
