import msgspec
import pytest

from kernel.codec import Corrupt, Unknown, canonical_hash, decode, encode, type_of
from kernel.events import (
    EVENT_TYPES,
    ActionRequested,
    Actor,
    InterruptRaised,
    InterruptResolved,
    Patch,
    RunStarted,
    StepCompleted,
)

SAMPLES = [
    RunStarted(graph="g", input={"q": "hi"}, update=(Patch("set", "q", "hi"),), labels={"a": "b"}),
    StepCompleted(step_id="1.a", node="a", update=(Patch("append", "xs", 1),), next=("b",), state_hash="x"),
    ActionRequested(action_id="1.a#0", step_id="1.a", kind="tool", name="t", input=[1, 2.5, None]),
    InterruptRaised(interrupt_id="i", step_id="1.a", kind="approval", title="ok?", payload={"k": 1}),
    InterruptResolved(
        interrupt_id="i", decision="edit", value={"k": 2},
        actor=Actor(user="u", uid=1, host="h", pid=2, ssh_connection="1.2.3.4 5 6.7.8.9 22"),
    ),
]


@pytest.mark.parametrize("event", SAMPLES, ids=type_of)
def test_round_trip(event):
    body, crc = encode(event)
    assert decode(type_of(event), body, crc) == event


def test_every_event_type_encodes_with_its_tag():
    for name, cls in EVENT_TYPES.items():
        required = {f: "x" for f in cls.__struct_fields__ if f not in cls.__struct_defaults__}
        fields = {**{f: 1 for f in ("attempt",) if f in required}}
        try:
            event = msgspec.convert({**required, **fields, "type": name}, cls)
        except msgspec.ValidationError:
            continue  # a Literal field; covered by SAMPLES
        body, crc = encode(event)
        assert msgspec.msgpack.decode(body)["type"] == name
        assert decode(name, body, crc) == event


def test_unknown_type_is_reported_not_raised():
    body = msgspec.msgpack.encode({"type": "FromTheFuture", "x": 1})
    out = decode("FromTheFuture", body, None)
    assert isinstance(out, Unknown) and out.type == "FromTheFuture" and out.body == body


def test_flipped_byte_is_corrupt():
    body, crc = encode(SAMPLES[0])
    bad = bytearray(body)
    bad[len(bad) // 2] ^= 0xFF
    out = decode("RunStarted", bytes(bad), crc)
    assert isinstance(out, Corrupt) and "checksum" in out.error


def test_undecodable_body_is_corrupt():
    out = decode("RunStarted", b"\xc1\xc1", None)
    assert isinstance(out, Corrupt)


def test_type_column_disagreeing_with_body_is_corrupt():
    body, crc = encode(SAMPLES[0])
    out = decode("StepCompleted", body, crc)
    assert isinstance(out, Corrupt) and "RunStarted" in out.error


def test_canonical_hash_ignores_key_order():
    assert canonical_hash({"a": 1, "b": [1, {"y": 2, "x": 1}]}) == canonical_hash(
        {"b": [1, {"x": 1, "y": 2}], "a": 1}
    )
    assert canonical_hash({"a": 1}) != canonical_hash({"a": 2})
