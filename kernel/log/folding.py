"""What every backend's reader shares: the state at a seq as a fold of rows, snapshots checked
against their hash, and the row shapes the port returns. Backends supply rows; this folds them."""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from typing import Any, Iterable, Literal

import msgspec

from ..codec import Corrupt, Unknown, canonical_hash, decode
from ..events import EVENT_TYPES
from ..events import Patch, PatchOp
from ..state import STATE_TYPES, PatchError, apply, fold

__all__ = [
    "StateAt", "InterruptInfo", "FOLD_TYPES", "KNOWN_TYPES", "fold_rows", "pick_snapshot",
    "fold_one", "encode_state", "decode_state", "fold_next",
]

decode_state = msgspec.msgpack.Decoder(dict[str, Any]).decode
encode_state = msgspec.msgpack.Encoder().encode
# A fold reads the state-changing rows, plus any type this version does not know: it may change
# state, so it is reported rather than silently skipped. (Backends filter on these in SQL.)
FOLD_TYPES = STATE_TYPES
KNOWN_TYPES = tuple(EVENT_TYPES)


class StateAt(msgspec.Struct, frozen=True, kw_only=True):
    """The state of a run as of `seq`, and the rows that could not be folded into it."""

    run_id: str
    seq: int
    state: dict[str, Any]
    problems: list[tuple[int, str]] = []
    snapshot_seq: int = 0


class InterruptInfo(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    interrupt_id: str
    seq: int
    kind: str
    title: str
    raised_ns: int
    resolved_seq: int | None


# Snapshot blobs already checked against their hash, by hash. Checking means a canonical
# encoding and a sha256 of the whole state (3 ms for 1 MB), on every state_at; the scrubber asks
# for the same snapshot at every cursor move. A blob byte-equal to one that matched the same
# digest matches again, so the check is skipped for it; anything else is checked as before.
_VERIFIED: OrderedDict[str, bytes] = OrderedDict()
_VERIFIED_MAX = 4
_verified_lock = threading.Lock()  # readers run on several threads


def _verified(digest: str, blob: bytes) -> bool:
    with _verified_lock:
        return _VERIFIED.get(digest) == blob


def _remember(digest: str, blob: bytes) -> None:
    with _verified_lock:
        _VERIFIED[digest] = blob
        _VERIFIED.move_to_end(digest)
        while len(_VERIFIED) > _VERIFIED_MAX:
            _VERIFIED.popitem(last=False)


def pick_snapshot(rows: Iterable[tuple[int, bytes, str]]) -> tuple[int, dict]:
    """The newest (seq, state) whose blob matches its hash; rows come newest first. A snapshot
    is only an optimisation: one that does not match is skipped, never trusted."""
    for snap_seq, blob, digest in rows:
        blob = bytes(blob)
        try:
            state = decode_state(blob)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        if _verified(digest, blob):
            return snap_seq, state
        if canonical_hash(state) == digest:
            _remember(digest, blob)
            return snap_seq, state
    return 0, {}


def fold_one(state: dict, seq: int, type_: str, body: bytes, crc: int, problems: list) -> None:
    event = decode(type_, body, crc)
    if isinstance(event, (Corrupt, Unknown)):
        problems.append((seq, describe(event)))
        return
    try:
        fold(state, event)
    except PatchError as exc:
        problems.append((seq, str(exc)))


def fold_next(state: dict, seq: int, type_: str, body: bytes, crc: int, problems: list) -> dict:
    """A new state: `state` with one more row folded in; `state` itself is left as it was.
    A patch changes one level (kernel.state.apply: it replaces a key, or appends to or merges
    into the list or dict at a key), so only the values at the keys the event patches are
    copied, shallowly: the before/after pair of a 1 MB state costs what the event changes,
    not a copy of the whole state (a msgpack round trip, ~5 ms a MB)."""
    after = dict(state)
    event = decode(type_, body, crc)
    if isinstance(event, (Corrupt, Unknown)):
        problems.append((seq, describe(event)))
        return after
    for patch in getattr(event, "update", None) or ():
        value = after.get(patch.key)
        if type(value) is list or type(value) is dict:
            after[patch.key] = value.copy()
    try:
        fold(after, event)
    except PatchError as exc:
        problems.append((seq, str(exc)))
    return after


# The fold's own decoders, one per event type that changes state. They skip (without building
# them) the fields a fold does not read, such as a RunStarted's input, and only ever see a body
# whose crc matched. One decoder per type, not one for the union: the row's type picks it, and
# msgspec itself refuses a body whose `type` is another (a mislabelled row), so no tag is
# compared in Python. Nothing but the loop below holds these structs, so they can never be part
# of a reference cycle: gc=False spares the collector a million young objects a replay.
class _FoldPatch(msgspec.Struct, frozen=True, array_like=True, gc=False):
    op: PatchOp  # the same wire form as kernel.events.Patch
    key: str
    value: Any = None


def _fold_decoder(type_: str, required: list[str]) -> Any:
    # `type` is a required Literal field, not a struct tag: msgspec takes a tag as optional when
    # it decodes one tagged type alone, and a body without its tag is corrupt. The required
    # fields are there as Raw (present, not decoded): a body without them is corrupt too.
    return msgspec.msgpack.Decoder(msgspec.defstruct(
        type_,
        [("type", Literal[type_])] + [(name, msgspec.Raw) for name in required]
        + [("update", tuple[_FoldPatch, ...], ())],
        frozen=True, kw_only=True, gc=False,
    )).decode


_FOLD_DECODERS = {
    "RunStarted": _fold_decoder("RunStarted", ["graph"]),
    "StepCompleted": _fold_decoder("StepCompleted", ["step_id", "node"]),
}
assert set(_FOLD_DECODERS) == set(STATE_TYPES)


def fold_rows(state: dict, rows: Iterable[tuple[int, str, bytes, int]], problems: list) -> None:
    """Fold (seq, type, body, crc) rows into `state`, noting what cannot be folded.

    Replay's loop (a million rows a run): a row that is well formed is folded here without the
    per-row calls of fold_one (0.67x of a raw scan + decode before, goal 0.8x); anything else
    (a bad crc, an unknown type, a body that does not decode or whose tag is not its row's type)
    goes to fold_one, the one place that says what is wrong with a row.

    The patches are applied inline, not by a call of kernel.state.apply per row: that call was a
    tenth of replay. This is the same code as `apply` (set copies a list or dict shallowly;
    append/extend need a list, merge a dict, created when the key is absent; delete pops), and
    tests/test_fold_rows.py checks the two agree, errors included, on random rows."""
    crc32, decoders, copy_types = zlib.crc32, _FOLD_DECODERS.get, (list, dict)
    for seq, type_, body, crc in rows:
        decode_ = decoders(type_)
        if decode_ is not None and (crc is None or crc32(body) == crc):
            try:
                update = decode_(body).update
            except (msgspec.DecodeError, msgspec.ValidationError):
                update = None
            if update is not None:
                for p in update:
                    op, key, value = p.op, p.key, p.value
                    if op == "set":
                        state[key] = value.copy() if type(value) in copy_types else value
                        continue
                    current = state.get(key)
                    if op == "merge":
                        if current is None:
                            current = state[key] = {}
                        elif type(current) is not dict:
                            problems.append((seq, f"merge into {key!r}, which holds a {type(current).__name__}"))
                            break
                        try:
                            current.update(value)
                        except (TypeError, ValueError):
                            problems.append((seq, f"merge into {key!r} of a {type(value).__name__}, not a mapping"))
                            break
                    elif op == "delete":
                        state.pop(key, None)
                    else:  # append, extend: the decoder admits no other op
                        if current is None:
                            current = state[key] = []
                        elif type(current) is not list:
                            problems.append((seq, f"{op} to {key!r}, which holds a {type(current).__name__}"))
                            break
                        if op == "append":
                            current.append(value)
                        else:
                            try:
                                current.extend(value)
                            except TypeError:
                                problems.append((seq, f"extend of {key!r} with a {type(value).__name__}, not a list"))
                                break
                continue
        fold_one(state, seq, type_, body, crc, problems)


def describe(event: Corrupt | Unknown) -> str:
    if isinstance(event, Corrupt):
        return f"corrupt {event.type} ({event.error})"
    return f"unknown event type {event.type!r} (written by a newer vigil?)"
