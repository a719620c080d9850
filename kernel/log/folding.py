"""What every backend's reader shares: the state at a seq as a fold of rows, snapshots checked
against their hash, and the row shapes the port returns. Backends supply rows; this folds them."""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from typing import Any, Iterable, Union

import msgspec

from ..codec import Corrupt, Unknown, canonical_hash, decode
from ..events import EVENT_TYPES
from ..events import Patch
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


# The fold's own decoder, of the two event types that change state. It skips (without building
# them) the fields a fold does not read, such as a RunStarted's input, and only ever sees a body
# whose crc matched and whose row says it is one of these two (`_FAST` below).
_FoldEvent = Union[
    # the required fields are there as Raw (present, not decoded): a body without them is corrupt
    msgspec.defstruct("RunStarted", [("graph", msgspec.Raw), ("update", tuple[Patch, ...], ())],
                      tag_field="type", tag="RunStarted", frozen=True, kw_only=True),
    msgspec.defstruct("StepCompleted", [("step_id", msgspec.Raw), ("node", msgspec.Raw),
                                        ("update", tuple[Patch, ...], ())],
                      tag_field="type", tag="StepCompleted", frozen=True, kw_only=True),
]
_fold_decode = msgspec.msgpack.Decoder(_FoldEvent).decode
_FAST = frozenset(STATE_TYPES)


def fold_rows(state: dict, rows: Iterable[tuple[int, str, bytes, int]], problems: list) -> None:
    """Fold (seq, type, body, crc) rows into `state`, noting what cannot be folded.

    Replay's loop (a million rows a run): a row that is well formed is folded here without the
    per-row calls of fold_one (0.67x of a raw scan + decode before, goal 0.8x); anything else
    (a bad crc, an unknown type, a body that does not decode or whose tag is not its row's type)
    goes to fold_one, the one place that says what is wrong with a row."""
    crc32, decode_, fast, apply_ = zlib.crc32, _fold_decode, _FAST, apply
    for seq, type_, body, crc in rows:
        if type_ in fast and (crc is None or crc32(body) == crc):
            try:
                event = decode_(body)
            except (msgspec.DecodeError, msgspec.ValidationError):
                event = None
            if event is not None and event.__struct_config__.tag == type_:
                try:
                    apply_(state, event.update)
                except PatchError as exc:
                    problems.append((seq, str(exc)))
                continue
        fold_one(state, seq, type_, body, crc, problems)


def describe(event: Corrupt | Unknown) -> str:
    if isinstance(event, Corrupt):
        return f"corrupt {event.type} ({event.error})"
    return f"unknown event type {event.type!r} (written by a newer vigil?)"
