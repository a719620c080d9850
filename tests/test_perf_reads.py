"""The scrubber's reads made cheap stay exact, on both backends: the before/after pair copies only
what an event changes, and a snapshot checked once is trusted again only if it is the same bytes."""

from __future__ import annotations

import asyncio
import sqlite3

import msgspec

from helpers import record_steps
from kernel.events import Patch
from kernel.store import Store

# every patch op, on keys that hold lists and dicts, so a shared container would show
STEPS = [
    (Patch("set", "items", [1]), Patch("set", "meta", {"a": 1}), Patch("set", "n", 0)),
    (Patch("append", "items", 2), Patch("merge", "meta", {"b": 2})),
    (Patch("extend", "items", [3, 4]), Patch("set", "n", 1)),
    (Patch("merge", "meta", {"a": 9}), Patch("append", "other", "x")),
    (Patch("delete", "n", None), Patch("append", "items", 5)),
    (Patch("set", "items", []), Patch("set", "meta", {})),
    (Patch("append", "items", 6),),
]


def _tamper_snapshots(target, state: dict) -> None:
    blob = msgspec.msgpack.encode(state)
    if isinstance(target, str) and target.startswith("postgresql"):
        import psycopg

        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute("UPDATE vigil.snapshots SET state = %s", (blob,))
    else:
        with sqlite3.connect(target) as conn:
            conn.execute("UPDATE snapshots SET state = ?", (blob,))


def test_state_pair_is_the_fold_before_and_at_every_seq_and_folding_leaves_before_alone(new_log):
    target = new_log()

    async def main():
        async with await Store.open(target, snapshot_every=4) as store:
            await record_steps(store, "r", STEPS)
            await store.flush_snapshots()
            last = (await store.run("r")).last_seq
            for seq in range(1, last + 1):
                before, now = await store.state_pair("r", seq)
                assert before.state == ((await store.replay("r", seq - 1)).state if seq > 1 else {})
                assert now.state == (await store.replay("r", seq)).state
                assert now.seq == seq and not now.problems
                # what a caller does to a pair (they share what the event did not change) never
                # shows in a later read
                for value in [*now.state.values(), *before.state.values()]:
                    if isinstance(value, list):
                        value.append("scribble")
                    elif isinstance(value, dict):
                        value["scribble"] = True
                again_before, again_now = await store.state_pair("r", seq)
                assert again_before.state == ((await store.replay("r", seq - 1)).state if seq > 1 else {})
                assert again_now.state == (await store.replay("r", seq)).state

    asyncio.run(main())


def test_a_snapshot_checked_once_is_not_trusted_once_its_bytes_change(new_log):
    target = new_log()

    async def main(tamper: bool):
        async with await Store.open(target, snapshot_every=4) as store:
            if not tamper:
                await record_steps(store, "r", STEPS)
                await store.flush_snapshots()
            last = (await store.run("r")).last_seq
            view = await store.state_at("r", last)
            return view, (await store.replay("r", last)).state

    good, expected = asyncio.run(main(False))
    assert good.snapshot_seq > 0 and good.state == expected  # a snapshot was used, and checked
    _tamper_snapshots(target, {"items": ["forged"]})
    # the same process (the same cache of checked snapshots) reads the forged bytes: refused
    view, expected = asyncio.run(main(True))
    assert view.snapshot_seq == 0 and view.state == expected and view.state != {"items": ["forged"]}


def test_replay_folds_well_formed_rows_and_reports_every_other_one_as_before(new_log):
    """Replay's fast loop takes only rows that are exactly what they say; the rest go the old
    way and are reported (a mislabelled body, a body without a required field, a bad crc, an
    unknown type), and the rows around them still fold."""
    import zlib

    from kernel.codec import encode
    from kernel.events import RunStarted, StepCompleted

    target = new_log()
    good = StepCompleted(step_id="s", node="n", update=(Patch("append", "log", "ok"),))
    body, crc = encode(good)
    no_node = msgspec.msgpack.encode({"type": "StepCompleted", "step_id": "s", "update": [["append", "log", "x"]]})
    flipped = bytearray(body)
    flipped[-2] ^= 0x20
    start_body, start_crc = encode(RunStarted(graph="g", update=(Patch("set", "log", []),)))
    rows = [
        ("r", 1, 1, "RunStarted", None, start_body, start_crc),
        ("r", 2, 2, "StepCompleted", "s", body, crc),
        ("r", 3, 3, "RunStarted", None, body, crc),  # says RunStarted, holds a StepCompleted
        ("r", 4, 4, "StepCompleted", "s", no_node, zlib.crc32(no_node)),  # no node
        ("r", 5, 5, "StepCompleted", "s", bytes(flipped), crc),  # crc does not match
        ("r", 6, 6, "PlanRevised", None, body, crc),  # a type this version does not know
        ("r", 7, 7, "StepCompleted", "s", body, crc),
    ]

    async def main():
        async with await Store.open(target, snapshot_every=0) as store:
            await store.append_rows("r", rows, [], expected_seq=0)
            return await store.replay("r")

    view = asyncio.run(main())
    assert view.state == {"log": ["ok", "ok"]}
    assert [seq for seq, _ in view.problems] == [3, 4, 5, 6]
    said = dict(view.problems)
    assert "body says StepCompleted" in said[3] and "checksum" in said[5] and "unknown event type" in said[6]
