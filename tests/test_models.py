"""The OpenAI-compatible and Anthropic clients against a real HTTP server on loopback."""

import asyncio
import json

import pytest

from fake_providers import Provider, anthropic_stream, openai_stream
from kernel.agents.models import ModelError
from kernel.agents.models.anthropic import AnthropicMessages
from kernel.agents.models.openai import OpenAIChat

CONVERSATION = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "refund A-1"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "t1", "name": "lookup", "arguments": {"order": "A-1"}}]},
    {"role": "tool", "tool_call_id": "t1", "name": "lookup", "content": "{\"amount\": 5}"},
]
TOOLS = [{"name": "refund", "description": "Refund.", "parameters": {"type": "object", "properties": {"order": {"type": "string"}}}}]


@pytest.fixture
def provider():
    made = []

    def make(plan):
        p = Provider(plan)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def _complete(model, messages=CONVERSATION, tools=TOOLS):
    tokens: list[str] = []
    message = asyncio.run(model.complete(messages, tools, tokens.append))
    return message, tokens


def test_openai_streams_text_and_tool_calls(provider, monkeypatch):
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test-abcdefghijklmnopqrstuvwxyz")
    p = provider(lambda path, body: (200, openai_stream("Refunding it now.", [("c9", "refund", {"order": "A-1", "note": "broken on arrival"})]), False))
    model = OpenAIChat("gpt-test", base_url=p.url + "/v1", key_env="TEST_OPENAI_KEY")
    message, tokens = _complete(model)
    assert message["content"] == "Refunding it now. "
    assert "".join(tokens) == message["content"] and len(tokens) == 3
    assert message["tool_calls"] == [{"id": "c9", "name": "refund", "arguments": {"order": "A-1", "note": "broken on arrival"}}]
    assert message["usage"] == {"input_tokens": 11, "output_tokens": 7}
    path, headers, body = p.requests[0]
    assert path == "/v1/chat/completions" and headers["authorization"] == "Bearer sk-test-abcdefghijklmnopqrstuvwxyz"
    assert body["stream"] is True and body["tools"][0]["function"]["name"] == "refund"
    wire = body["messages"]
    assert wire[2]["tool_calls"][0]["function"] == {"name": "lookup", "arguments": "{\"order\": \"A-1\"}"}
    assert wire[3] == {"role": "tool", "tool_call_id": "t1", "content": "{\"amount\": 5}"}


def test_anthropic_streams_text_and_tool_use(provider, monkeypatch):
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant-test-abcdefghijklmnopqrstuvwxyz")
    p = provider(lambda path, body: (200, anthropic_stream("On it.", [("tu_1", "refund", {"order": "A-1"})]), False))
    model = AnthropicMessages("claude-test", base_url=p.url, key_env="TEST_ANTHROPIC_KEY")
    message, tokens = _complete(model)
    assert message["content"] == "On it. " and "".join(tokens) == "On it. "
    assert message["tool_calls"] == [{"id": "tu_1", "name": "refund", "arguments": {"order": "A-1"}}]
    assert message["usage"] == {"input_tokens": 13, "output_tokens": 9}
    path, headers, body = p.requests[0]
    assert path == "/v1/messages" and headers["x-api-key"].startswith("sk-ant-test")
    assert headers["anthropic-version"] == "2023-06-01"
    assert body["system"] == "be brief" and body["tools"][0]["input_schema"]["type"] == "object"
    assert body["messages"][1]["content"][0] == {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"order": "A-1"}}
    assert body["messages"][2] == {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "{\"amount\": 5}"}]}


@pytest.mark.parametrize("make, stream", [
    (lambda url: OpenAIChat("m", base_url=url + "/v1", key_env=None), openai_stream),
    (lambda url: AnthropicMessages("m", base_url=url, key_env=None), anthropic_stream),
])
def test_error_status_is_a_model_error(provider, make, stream):
    p = provider(lambda path, body: (429, [json.dumps({"error": {"message": "slow down"}}).encode()], False))
    with pytest.raises(ModelError, match="answered 429: slow down") as info:
        _complete(make(p.url))
    assert info.value.retryable
    p2 = provider(lambda path, body: (400, [json.dumps({"error": {"message": "bad tool schema"}}).encode()], False))
    with pytest.raises(ModelError, match="400: bad tool schema") as info:
        _complete(make(p2.url))
    assert not info.value.retryable


@pytest.mark.parametrize("make, stream", [
    (lambda url: OpenAIChat("m", base_url=url + "/v1", key_env=None), openai_stream),
    (lambda url: AnthropicMessages("m", base_url=url, key_env=None), anthropic_stream),
])
def test_dropped_connection_is_a_retryable_model_error(provider, make, stream):
    p = provider(lambda path, body: (200, stream("half of a long answer")[:4], True))
    tokens: list[str] = []
    with pytest.raises(ModelError) as info:
        asyncio.run(make(p.url).complete(CONVERSATION, [], tokens.append))
    assert info.value.retryable
    assert tokens  # some tokens streamed before the drop


def test_refused_connection_is_a_retryable_model_error():
    model = OpenAIChat("m", base_url="http://127.0.0.1:9/v1", key_env=None)
    with pytest.raises(ModelError, match="connection failed") as info:
        _complete(model)
    assert info.value.retryable


def test_an_agent_on_the_openai_client_runs_tools_and_records_the_turns(provider, db):
    from kernel.agents.agent import agent_graph
    from kernel.tools import tool
    from runtime_helpers import run, runtime

    def plan(path, body):
        if body["messages"][-1]["role"] == "tool":
            return 200, openai_stream("It is sunny in Oslo."), False
        return 200, openai_stream("Checking.", [("w1", "weather", {"city": "Oslo"})]), False

    p = provider(plan)

    @tool(idempotent=True)
    async def weather(city: str) -> dict:
        return {"city": city, "sky": "sunny"}

    graph = agent_graph("weather", model=OpenAIChat("m", base_url=p.url + "/v1", key_env=None),
                        tools=[weather], system="You report weather.")
    tokens = []

    async def go():
        async with runtime(db, graph) as (store, rt):
            rt.listen(lambda what, run_id, data: tokens.append(data[1]) if what == "token" else None)
            run_id = await rt.start("weather", {"messages": [{"role": "user", "content": "Weather in Oslo?"}]})
            await rt.settle()
            return await store.run(run_id), (await store.state_at(run_id)).state

    info, state = run(go())
    assert info.status == "completed"
    assert state["messages"][-1]["content"] == "It is sunny in Oslo. "
    assert json.loads(state["messages"][2]["content"]) == {"city": "Oslo", "sky": "sunny"}
    assert "".join(tokens) == "Checking. It is sunny in Oslo. "
    assert state["usage"] == {"input_tokens": 22, "output_tokens": 14}


def test_server_sent_events_split_anywhere_in_the_byte_stream():
    """The SSE reader splits lines from raw bytes: a \\r\\n, a multi-byte character or a field
    cut between two network chunks, \\r alone, comments, and a last event with no blank line."""
    import asyncio

    from kernel.agents.models.sse import events

    wire = ": hello\r\nevent: delta\r\ndata: {\"t\": \"héllo\"}\r\n\r\ndata: a\rdata: b\r\rdata: [DONE]".encode()

    async def read(cuts: list[int]) -> list:
        async def body():
            last = 0
            for cut in [*cuts, len(wire)]:
                yield wire[last:cut]
                last = cut

        return [e async for e in events(body())]

    expected = [("delta", '{"t": "héllo"}'), ("message", "a\nb"), ("message", "[DONE]")]
    accent = wire.index("é".encode()) + 1  # inside the two bytes of é
    for cuts in ([], [wire.index(b"\r\n") + 1], [accent], list(range(1, len(wire)))):
        assert asyncio.run(read(cuts)) == expected, cuts
    wire = b"data: a\rdata: b\r"  # the stream ends on a \r: still two lines
    assert asyncio.run(read([])) == [("message", "a\nb")]
