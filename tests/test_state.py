import pytest

from kernel.events import Patch
from kernel.state import PatchError, apply


def test_patch_ops():
    state: dict = {}
    apply(state, [Patch("set", "a", 1), Patch("append", "l", 1), Patch("extend", "l", [2, 3]),
                  Patch("merge", "d", {"x": 1}), Patch("merge", "d", {"y": 2}), Patch("delete", "a")])
    assert state == {"l": [1, 2, 3], "d": {"x": 1, "y": 2}}


def test_set_then_append_does_not_mutate_the_event_value():
    value = [1]
    patch = Patch("set", "l", value)
    state: dict = {}
    apply(state, [patch, Patch("append", "l", 2)])
    assert value == [1] and state["l"] == [1, 2]


@pytest.mark.parametrize("op", ["append", "extend", "merge"])
def test_patch_on_wrong_type_raises(op):
    with pytest.raises(PatchError):
        apply({"k": 5}, [Patch(op, "k", [1] if op != "merge" else {"a": 1})])
