"""Cross-process tail: one process appends at a steady rate, another tails the log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kernel.log.sqlite import schema

from .common import fresh_db

ROOT = Path(__file__).resolve().parent.parent


def _one(rate: int, seconds: float) -> dict:
    db = fresh_db(f"tail-{rate}.db")
    conn = schema.connect(db)
    schema.migrate(conn)
    conn.close()
    count = int(rate * seconds * 0.9)
    reader = subprocess.Popen([sys.executable, "-m", "bench.tail_probe", str(db), "tail", str(count)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "ready"
    writer = subprocess.run([sys.executable, "-m", "bench.flood", str(db), f"tail-{rate}", str(rate), str(seconds)],
                            cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60)
    out = json.loads(reader.communicate(timeout=60)[0].strip().splitlines()[-1])
    out["rate"] = float(writer.stdout.strip().splitlines()[-1])
    return out


def tail(quick: bool) -> list[dict]:
    rows = []
    for rate, seconds in ((10, 10 if quick else 20), (5000, 5 if quick else 10)):
        r = _one(rate, seconds)
        rows.append(dict(
            case=f"commit to visible in another process at {rate:,} events/s",
            setup=f"one process appends (50 a batch at 5,000/s, 1 at a time at 10/s) for {seconds} s, "
                  f"another tails (data_version poll every 50 ms); {r['n']:,} events, achieved {r['rate']:,.0f}/s",
            vigil=f"p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms", peer="-", ratio=None,
            goal="p99 < 150 ms", ok=r["p99_ms"] < 150,
        ))
    return rows
