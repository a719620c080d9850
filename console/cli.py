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


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line too (the usage itself is one `--help` away)."""

    def error(self, message: str):
        self.exit(2, f"vigil: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vigil",
        description="Watch, steer and audit LLM agent runs from a terminal.",
        epilog="exit codes: 0 ok, 1 a check failed, 2 bad input or an error",
    )
    parser.add_argument("--version", action="version", version=f"vigil {_version()}")
    _global_options(parser, suppress=False)
    # The global options are accepted after the command too (`vigil demo --theme vigil-light`).
    common = _Parser(add_help=False)
    _global_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser = _with_parents(sub.add_parser, common)

    p = sub.add_parser("demo", help="start the demo runs (approvals left to you)")
    p.add_argument("--headless", action="store_true", help="no UI; run to the end or to the interrupts, print a summary")
    p.add_argument("--runs", type=_int64, default=1, help="how many runs of each demo graph (default 1)")
    p.add_argument("--approve", choices=["all", "none", "reject"], default="none",
                   help="headless: approve every approval, leave them (default), or reject them")

    p = sub.add_parser("graphs", help="the registered graphs, with which tools need approval")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = sub.add_parser("run", help="start a run of a graph")
    p.add_argument("graph")
    p.add_argument("--input", metavar="JSON", help="the run's input")
    p.add_argument("--label", type=_label, action="append", metavar="KEY=VALUE")
    p.add_argument("--headless", action="store_true", help="no UI; stay attached until the run ends")
    p.add_argument("--queue", action="store_true", help="hand the run to a `vigil worker` and return at once")

    p = sub.add_parser("worker", help="own and drive runs headless until SIGTERM (systemd, tmux)")
    p.add_argument("--graphs", metavar="NAME[,NAME]", help="only runs of these graphs (default: every registered graph)")
    p.add_argument("--concurrency", type=int, default=16, metavar="N", help="runs driven at once (default 16)")
    p.add_argument("--grace", type=float, default=30.0, metavar="S",
                   help="on SIGTERM, how long the steps in progress may take to finish (default 30)")
    p.add_argument("--lease", type=float, default=15.0, metavar="S",
                   help="if this worker dies, how long until a worker on another host may adopt its runs (default 15)")

    p = sub.add_parser("resume", help="adopt runs whose owner died and drive them until they end or wait")
    p.add_argument("run", nargs="?")

    for verb, text in (("approve", "approve (or answer) a pending interrupt"),
                       ("reject", "reject a pending interrupt (fails an in-doubt effect)")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("run")
        p.add_argument("--interrupt", metavar="ID", help="the interrupt you saw (required unless --hash names it, or a terminal asks)")
        p.add_argument("--hash", metavar="HASH", help="its payload hash (a prefix will do): refused if the payload changed")
        p.add_argument("--reason", metavar="TEXT", help="why (sent back to the agent on reject)")
        if verb == "approve":
            p.add_argument("--edit", metavar="JSON", help="run the tool with these arguments instead")
            p.add_argument("--answer", metavar="VALUE", help="the answer to an input (or in-doubt) interrupt")
            p.add_argument("--always", action="store_true", help="approve this tool for the rest of the run")
        p.add_argument("--wait", type=float, default=15.0, metavar="S", help="how long to wait for the owner")

    p = sub.add_parser("cancel", help="cancel a run")
    p.add_argument("run")
    p.add_argument("--reason", metavar="TEXT")
    p.add_argument("--wait", type=float, default=15.0, metavar="S", help="how long to wait for the owner")

    p = sub.add_parser("pause", help="stop a run at its next step boundary (the step under way finishes)")
    p.add_argument("run")
    p.add_argument("--reason", metavar="TEXT")
    p.add_argument("--wait", type=float, default=15.0, metavar="S", help="how long to wait for the owner")

    p = sub.add_parser("unpause", help="let a paused run go on")
    p.add_argument("run")
    p.add_argument("--wait", type=float, default=15.0, metavar="S", help="how long to wait for the owner")

    p = sub.add_parser("fork", help="a new run from a run's state at a seq")
    p.add_argument("run")
    p.add_argument("--at", type=_int64, required=True, metavar="SEQ")

    p = sub.add_parser("runs", help="list runs, newest first")
    p.add_argument("--status", help="running, waiting, paused, completed, failed, cancelled, diverged")
    p.add_argument("--graph", help="only runs of this graph")
    p.add_argument("--error-category", metavar="C",
                   help="only failed runs whose failure was of this category: rate_limit, transport, "
                        "tool, policy, timeout, internal")
    p.add_argument("--limit", type=_int64, default=50, help="at most this many (default 50; 0 = all)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = sub.add_parser("events", help="a run's events in order")
    p.add_argument("run", help="run id or a unique prefix of one")
    p.add_argument("--from", dest="from_seq", type=_int64, default=1, metavar="SEQ")
    p.add_argument("--to", dest="to_seq", type=_int64, metavar="SEQ")
    p.add_argument("--type", action="append", metavar="TYPE[,TYPE]",
                   help="only events of these types, e.g. Note,RunFailed (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = sub.add_parser("state", help="a run's state as of a seq (default: the last)")
    p.add_argument("run")
    p.add_argument("--at", type=_int64, metavar="SEQ")
    p.add_argument("--json", action="store_true", help="one JSON object")

    p = sub.add_parser("verify", help="re-fold runs and check hashes, gaps and rows")
    p.add_argument("run", nargs="?", help="one run (default: every run)")
    p.add_argument("--secrets", action="store_true",
                   help="instead, look for anything that looks like a secret in events, runs rows, signals")
    from .chaincmds import add_parsers as add_chain_parsers  # keygen, seal, verify --key

    add_chain_parsers(sub, p)

    p = sub.add_parser("export", help="a run as JSON lines")
    p.add_argument("run")
    p.add_argument("--format", choices=["jsonl"], default="jsonl")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (default stdout)")

    p = sub.add_parser("import", help="load an export into this database")
    p.add_argument("file", help="a file written by `vigil export`, or - for stdin")

    p = sub.add_parser("otel", help="runs as OpenTelemetry traces over OTLP/HTTP (GenAI conventions)")
    otel = p.add_subparsers(dest="otel_command", metavar="COMMAND", required=True)
    otel.add_parser = _with_parents(otel.add_parser, common)
    for verb, text in (("export", "send runs from the log, after the fact (same ids every time)"),
                       ("follow", "send spans live as the log grows, until stopped")):
        q = otel.add_parser(verb, help=text)
        if verb == "export":
            q.add_argument("run", nargs="?", help="run id or a unique prefix of one")
            q.add_argument("--all", action="store_true", help="every run in the log")
        else:
            q.add_argument("--cursor", metavar="FILE",
                           help="where the position sent through is kept, to resume after a restart without loss")
            q.add_argument("--from-start", action="store_true",
                           help="with no cursor yet, send the whole log first (default: only what comes next)")
        q.add_argument("--endpoint", metavar="URL",
                       help="OTLP/HTTP base URL (env OTEL_EXPORTER_OTLP_ENDPOINT; default http://127.0.0.1:4318)")
        q.add_argument("--timeout", type=float, default=10.0, metavar="S", help="per request (default 10)")
    p = sub.add_parser("serve", help="the console in a browser (textual-serve), behind a printed access link")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=_port, default=8000, metavar="N", help="port to listen on (default 8000)")

    p = sub.add_parser("copy", help="copy every run to another log (SQLite <-> PostgreSQL), then verify it")
    p.add_argument("--from", dest="source", metavar="LOG", help="sqlite:PATH, a path or a postgresql:// URL (default: --db)")
    p.add_argument("--to", dest="target", metavar="LOG", required=True, help="sqlite:PATH, a path or a postgresql:// URL")

    from .artifactcmds import add_parser as add_artifact_parser
    from .replaycmd import add_parser as add_replay

    add_artifact_parser(sub)
    add_replay(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vigil-console")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    def default(value):
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--db",
        default=default(os.environ.get("VIGIL_DB")),
        help="the event log: a SQLite file or a postgresql:// URL (env VIGIL_DB; default ~/.local/share/vigil/vigil.db)",
    )
    parser.add_argument(
        "--workflows",
        default=default(os.environ.get("VIGIL_WORKFLOWS")),
        help="MODULE[,MODULE] registering your graphs (env VIGIL_WORKFLOWS)",
    )
    parser.add_argument("--theme", default=default(None), help="colour theme for the console")


def _with_parents(add_parser, common):
    def add(name, **kw):
        return add_parser(name, parents=[common], **kw)

    return add


def _int64(text: str) -> int:
    """An integer SQLite can hold (a seq, a limit); whether it makes sense is the command's call."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if not -(2**63) <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{text} is out of range (a 64-bit integer)")
    return value


def _port(text: str) -> int:
    # 0 ("any free port") is refused too: the link is printed with the port asked for.
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return int(text)


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            # Bytes that are not UTF-8 (or a lone surrogate) cannot name a run or go in the log.
            return _fail(f"argument {ascii(arg)} is not valid UTF-8")
    args = build_parser().parse_args(argv)
    from kernel.errors import VigilError

    opens_ui = args.command is None or (
        args.command in ("demo", "run") and not args.headless and not getattr(args, "queue", False)
    )
    if opens_ui:
        try:
            return _console(args)
        except VigilError as exc:
            return _fail(str(exc))

    if args.command == "serve":
        try:
            from .serve import serve  # aiohttp runs its own event loop
        except ImportError as exc:
            return _fail(f"serve needs textual-serve ({exc.name} is missing): pip install 'vigil-console[serve]'")
        try:
            return serve(args)
        except VigilError as exc:
            return _fail(str(exc))
        except OSError as exc:  # the port is taken, the address is not ours
            return _fail(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}")

    handler = _handler(args.command)
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


# Commands whose handler lives in a module of its own (imported only when the command runs);
# every other `cmd_<command>` is in commands.py.
_OWN_MODULE = {"otel": "otelcmds", "keygen": "chaincmds", "seal": "chaincmds",
               "artifact": "artifactcmds", "replay": "replaycmd", "graphs": "graphscmd",
               "run": "drivecmds", "demo": "drivecmds", "resume": "drivecmds", "fork": "drivecmds",
               "approve": "steercmds", "reject": "steercmds", "cancel": "steercmds",
               "pause": "steercmds", "unpause": "steercmds", "worker": "workercmd"}


def _handler(command: str):
    import importlib

    from . import commands

    if command in _OWN_MODULE:
        return getattr(importlib.import_module(f".{_OWN_MODULE[command]}", __package__), f"cmd_{command}")
    return getattr(commands, f"cmd_{command}")


def _console(args: argparse.Namespace) -> int:
    """Open the Textual console (the only path that imports Textual)."""
    import json

    from kernel.errors import VigilError
    from .workflows import default_registry

    from .app import VigilApp

    registry = default_registry(args.workflows)
    start = None
    if args.command == "run":
        registry.get(args.graph)
        try:
            from kernel.demos import samples

            start = (args.graph, json.loads(args.input) if args.input else samples().get(args.graph))
        except RecursionError:
            raise VigilError("--input is not valid JSON: it is nested too deeply") from None
        except ValueError as exc:
            raise VigilError(f"--input is not valid JSON: {exc}") from None
    from kernel.log import target_of

    db = target_of(args.db)
    # Under `vigil serve` stdout is a pipe to textual-serve, which names the driver that speaks it.
    if not sys.stdout.isatty() and not os.environ.get("TEXTUAL_DRIVER"):
        raise VigilError("the console needs a terminal; use --headless, or a command like `vigil runs`")
    VigilApp(db, registry, theme=args.theme, demo=args.command == "demo", start=start).run()
    return 0


def _fail(message: str) -> int:
    print(f"vigil: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
