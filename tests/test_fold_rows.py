"""Replay's inline fold (kernel/log/folding.fold_rows) against the per-row path it must agree
with (fold_one: codec.decode, then kernel.state.apply), on random rows: the same state and the
same problems, in the same order, patch errors and bad rows included."""

import copy
import zlib

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.codec import encode
from kernel.events import Patch, RunStarted, StepCompleted
from kernel.log.folding import fold_one, fold_rows

keys = st.sampled_from(["a", "b", "c"])
scalars = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none())
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["x", "y"]), inner, max_size=2)), max_leaves=4)
# Each op with a value it accepts (extend a list, merge a dict), on few keys, so that ops meet
# values of the wrong kind (append to a dict, merge into a list) and raise PatchError.
patches = st.one_of(
    st.builds(Patch, st.just("set"), keys, values),
    st.builds(Patch, st.just("append"), keys, values),
    st.builds(Patch, st.just("extend"), keys, st.lists(scalars, max_size=3)),
    st.builds(Patch, st.just("merge"), keys, st.dictionaries(st.sampled_from(["x", "y"]), scalars, max_size=2)),
    st.builds(Patch, st.just("delete"), keys),
)
updates = st.lists(patches, max_size=4).map(tuple)


@st.composite
def rows(draw):
    out = []
    for seq in range(1, draw(st.integers(1, 12)) + 1):
        kind = draw(st.sampled_from(["step", "step", "step", "start", "mislabelled", "no_type",
                                     "bad_crc", "unknown", "no_crc", "garbage"]))
        update = draw(updates)
        event = RunStarted(graph="g", update=update) if kind == "start" else StepCompleted(
            step_id=f"{seq}.n", node="n", update=update)
        body, crc = encode(event)
        type_ = type(event).__name__
        if kind == "mislabelled":
            type_ = "RunStarted"
        elif kind == "no_type":
            plain = msgspec.msgpack.decode(body)
            del plain["type"]
            body = msgspec.msgpack.encode(plain)
            crc = zlib.crc32(body)
        elif kind == "bad_crc":
            crc ^= 1
        elif kind == "unknown":
            type_ = "PlanRevised"
        elif kind == "no_crc":
            crc = None
        elif kind == "garbage":
            body = b"\xc1" + body
            crc = zlib.crc32(body)
        out.append((seq, type_, body, crc))
    return out


@settings(max_examples=300, deadline=None)
@given(rows(), st.dictionaries(keys, values, max_size=3))
def test_fold_rows_agrees_with_folding_row_by_row(batch, start):
    fast_state, fast_problems = copy.deepcopy(start), []
    fold_rows(fast_state, batch, fast_problems)
    slow_state, slow_problems = copy.deepcopy(start), []
    for row in batch:
        fold_one(slow_state, *row, slow_problems)
    assert fast_state == slow_state
    assert fast_problems == slow_problems
