"""Run the benchmarks and write bench/RESULTS.md.

    .venv/bin/python -m bench.run            # full sizes (about 3 minutes here, plus many_runs, many_runs_pg, console_load)
    .venv/bin/python -m bench.run --quick    # smaller sizes
    .venv/bin/python -m bench.run --only postgres,appends   # some sections (RESULTS.md is not written)
    .venv/bin/python -m bench.run --only many_runs --update  # some sections, their rows put into RESULTS.md
"""

from __future__ import annotations

import argparse
import shutil
import time
from importlib.metadata import version
from pathlib import Path

from . import (console_cases, console_load, livechan_cases, log_cases, many_runs, pg_cases, runtime_cases,
               startup_cases, tail_cases)
from .common import WORK, machine, rss_mb

CASES = [runtime_cases.runtime, log_cases.appends, log_cases.replay_and_state_at, console_cases.console, tail_cases.tail, startup_cases.startup,
         pg_cases.postgres, livechan_cases.livechan, many_runs.many_runs, many_runs.many_runs_pg, console_load.console_load]
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
NOTES = Path(__file__).resolve().parent / "NOTES.md"


def _row(r: dict) -> str:
    ratio = f"{r['ratio']:.2f}x" if r.get("ratio") is not None else "-"
    met = {True: "yes", False: "**no**", None: "-"}[r["ok"]]
    return f"| {r['case']} | {r['setup']} | {r['vigil']} | {r['peer']} | {ratio} | {r['goal']} | {met} |"


def _update(rows: list[dict]) -> None:
    """Put some sections' rows into the table of RESULTS.md, the rest of it as it was."""
    lines = RESULTS.read_text().split("\n")
    # the results table: the rows right under its header (NOTES.md, appended below it, has
    # tables of its own; taking their rows for the table's end appended the notes again each time)
    head = next(i for i, line in enumerate(lines) if line.startswith("| case |"))
    table = []
    for i in range(head + 2, len(lines)):  # past the header and its |---| line
        if not lines[i].startswith("| "):
            break
        table.append(i)
    for r in rows:
        new = _row(r)
        same = [i for i in table if lines[i].startswith(f"| {r['case']} |")]
        if same:
            lines[same[0]] = new
        else:
            at = table[-1] + 1
            lines.insert(at, new)
            table.append(at)
    # the notes under the table are NOTES.md's, as a full run writes them
    end = table[-1] + 1
    if NOTES.exists():
        lines[end:] = ["", NOTES.read_text()]
    RESULTS.write_text("\n".join(lines))
    print(f"updated {RESULTS}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a quick look")
    parser.add_argument("--only", help="comma-separated section names (e.g. postgres,appends); "
                        "prints the rows and leaves RESULTS.md alone")
    parser.add_argument("--update", action="store_true", help="with --only: put the rows into RESULTS.md "
                        "(a row with the same case is replaced, a new case is added to the end of the table)")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    started = time.time()
    rows = []
    for case in CASES:
        if only is not None and case.__name__ not in only:
            continue
        print(f"running {case.__name__} ...", flush=True)
        for r in case(args.quick):
            print("  " + _row(r), flush=True)
            rows.append(r)
    if only is not None:
        if args.update:
            _update(rows)
        shutil.rmtree(WORK, ignore_errors=True)
        return
    versions = ", ".join(f"{p} {version(p)}" for p in ("msgspec", "textual", "langgraph", "langgraph-checkpoint-sqlite", "dbos"))
    lines = [
        "# Benchmarks",
        "",
        f"Written by `python -m bench.run{' --quick' if args.quick else ''}` on "
        f"{time.strftime('%Y-%m-%d')} in {time.time() - started:.0f} s; peak RSS {rss_mb():.0f} MB.",
        f"Machine: {machine()}; {versions}"
        + (f"; {pg_cases.INFO['version']}." if pg_cases.INFO.get("version") else "."),
        "Each vigil figure and its ceiling or peer were measured in the same run, one after the other.",
        "",
        "| case | setup | vigil | ceiling / peer | ratio | goal | met |",
        "|---|---|---|---|---|---|---|",
        *[_row(r) for r in rows],
        "",
    ]
    if NOTES.exists():
        lines += [NOTES.read_text()]
    RESULTS.write_text("\n".join(lines))
    shutil.rmtree(WORK, ignore_errors=True)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
