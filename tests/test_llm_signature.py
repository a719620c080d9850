"""The llm action's signature, computed turn by turn (kernel/engine/llmsig.py), is exactly what
its definition says, `canonical_hash(recordable(messages))`: logs recorded before it replay."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import secret_workflows as sw
from kernel.codec import canonical_hash
from kernel.engine.llmsig import Signatures
from kernel.redact import recordable
from kernel.secrets import Secret

SPECS = [{"name": "lookup"}]


def definition(messages):
    clean = recordable(messages)
    return {"messages": len(clean), "last": clean[-1] if clean else None, "hash": canonical_hash(clean),
            "tools": ["lookup"]}


text = st.text(max_size=30) | st.sampled_from(list(sw.secrets_for("run input").values()))
message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "tool"]), "content": text},
                                 optional={"api_key": text, "n": st.integers(), "raw": st.binary(max_size=8)})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(message, max_size=6), min_size=1, max_size=5), st.data())
def test_turn_by_turn_equals_the_definition(turns, data):
    """Conversations that grow, get edited in the middle, shrink or start again: each turn's
    signature is the definition's."""
    sig = Signatures()
    conversation: list[dict] = []
    for added in turns:
        how = data.draw(st.sampled_from(["grow", "grow", "edit", "restart"]))
        if how == "edit" and conversation:
            i = data.draw(st.integers(0, len(conversation) - 1))
            conversation[i] = dict(conversation[i], content=conversation[i]["content"] + "!")  # a new dict
        elif how == "restart":
            conversation = []
        conversation = conversation + added
        assert sig.of(conversation, SPECS) == definition(conversation)


def test_a_message_changed_in_place_is_seen():
    """A node that edits a message dict it already sent (same object) gets the new signature."""
    sig = Signatures()
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    sig.of(conversation, SPECS)
    conversation[0]["content"] = "my token is " + sw.secrets_for("run input")["openai"]
    assert sig.of(conversation, SPECS) == definition(conversation)
    assert "sk-proj" not in str(sig.of(conversation, SPECS))
    conversation.append({"role": "user", "content": Secret("hunter22-hunter22")})
    assert sig.of(conversation, SPECS) == definition(conversation)
