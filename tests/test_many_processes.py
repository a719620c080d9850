"""Many consoles, one log: an owner process, two approvers racing, two readers tailing."""

import json
import os
import subprocess
import sys

import pytest

from cli_helpers import ROOT, vigil

OWNER = """
import asyncio, sys
from kernel.demos import samples
from console.workflows import default_registry
from kernel.engine.runtime import Runtime
from kernel.store import Store

async def main(db):
    async with await Store.open(db) as store:
        async with Runtime(store, default_registry()) as rt:
            ids = [await rt.start("support", samples()["support"]) for _ in range(3)]
            await rt.settle()
            print(" ".join(ids), flush=True)
            while [r for r in ids if (await store.run(r)).status != "completed"]:
                await asyncio.sleep(0.1)
    print("done", flush=True)

asyncio.run(main(sys.argv[1]))
"""

TAIL = """
import asyncio, sys
from kernel.store import Store

async def main(db, want):
    async with await Store.open(db, readonly=True) as store:
        seen = 0
        async for batch in store.tail(0):
            for r in batch:
                print(r.pos, r.run_id, r.seq, r.type, flush=True)
            seen += len(batch)
            if seen >= want:
                return

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


@pytest.fixture
def db(both_backends):
    return both_backends  # SQLite and PostgreSQL alike


def test_two_approvers_race_exactly_one_wins_and_readers_agree(db):
    env = {**os.environ, "VIGIL_DB": str(db)}
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(db)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_ids = owner.stdout.readline().split()
    assert len(run_ids) == 3, owner.stderr.read()

    # two shells approve every run at once, each naming the interrupt it saw; each run's
    # approval is applied exactly once
    def saw(run_id):
        out = vigil("events", run_id, "--json", "--type", "InterruptRaised", db=db).stdout
        raised = json.loads(out.splitlines()[-1])
        return ["--interrupt", raised["interrupt_id"], "--hash", raised["payload_hash"][:12]]

    racers = [
        subprocess.Popen([sys.executable, "-m", "console.cli", "approve", run_id, *saw(run_id)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for run_id in run_ids for _ in range(2)
    ]
    outcomes = [(p.wait(60), p.stdout.read(), p.stderr.read()) for p in racers]
    for i in range(0, len(outcomes), 2):
        pair = outcomes[i:i + 2]
        winners = [o for o in pair if o[0] == 0]
        losers = [o for o in pair if o[0] != 0]
        assert len(winners) == 1 and len(losers) == 1, pair
        assert "applied by its owner" in winners[0][1]
        assert "already resolved" in losers[0][2] or "no pending interrupt" in losers[0][2]

    assert owner.stdout.readline().strip() == "done"
    owner.wait(30)
    total = sum(json.loads(r)["last_seq"] for r in vigil("runs", "--json", db=db).stdout.splitlines())

    readers = [subprocess.run([sys.executable, "-c", TAIL, str(db), str(total)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60) for _ in range(2)]
    assert readers[0].stdout == readers[1].stdout and readers[0].stdout.count("\n") == total
    for run_id in run_ids:
        events = [json.loads(x) for x in vigil("events", run_id, "--json", db=db).stdout.splitlines()]
        assert [e["type"] for e in events].count("InterruptResolved") == 1
        assert events[-1]["type"] == "RunCompleted"
