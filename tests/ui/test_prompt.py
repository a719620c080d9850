"""The approval prompt (issue 10): the context it shows (the agent's last message, the recent
transcript and tool results, the exact arguments with secrets marked), the key that opens the run,
the queue order, refused empty reject reasons, a failed edit that keeps the edited text, and every
key visible at 80x24."""

from __future__ import annotations

import asyncio

from textual.widgets import Input, Label, TextArea

from console.app import VigilApp
from console.screens.ask import AskJSON, AskText
from console.screens.live import LiveScreen
from console.screens.prompt import PromptScreen
from console.screens.runs import RunsScreen
from console.widgets.runlist import RunList
from kernel.codec import canonical_hash
from kernel.events import ActionRequested, InterruptRaised, RunStarted, StepStarted
from kernel.graph import END, START, Graph
from console.workflows import default_registry
from kernel.store import Store
from kernel.tools import tool
from conftest import NOW, T0
from ui_helpers import screen_text, until

SECRET = "sk-proj-Zq81LmN0pQ7rS2tU5vW9xY3aB6cD"


async def _runs_ready(pilot, count: int = 3) -> None:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.query_one(RunList).count >= count)


async def _open_prompt(pilot) -> PromptScreen:
    await pilot.press("i")
    await until(pilot, lambda: isinstance(pilot.app.screen, PromptScreen))
    return pilot.app.screen


async def _context_loaded(pilot, prompt: PromptScreen) -> str:
    """The context's text once its worker has read it from the log."""
    try:
        await until(pilot, lambda: getattr(prompt, "context_text", None) is not None, timeout=5)
    except AssertionError:
        return ""
    await pilot.pause(0.1)
    return prompt.context_text


async def _resolutions(app, run_id: str) -> list:
    return await app.store.events(run_id, types=["InterruptResolved"])


# context ---------------------------------------------------------------------------------------


def test_prompt_shows_the_agents_last_message_and_recent_tool_results(make_app):
    async def go():
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await _runs_ready(pilot)
            prompt = await _open_prompt(pilot)
            context = await _context_loaded(pilot, prompt)
            # the agent's last message, the transcript, and the lookup it ran before asking
            assert "Let me look up A-7731." in context
            assert "My order A-7731 arrived broken." in context
            assert "lookup_order" in context and "blender" in context
            # the reasoning is on screen at 80x24 without scrolling
            assert "Let me look up A-7731." in screen_text(app)

    asyncio.run(go())


@tool(requires_approval=True)
async def rotate(service: str, note: str) -> dict:
    """Installs a new API key for a service."""
    return {"rotated": service}


async def _rotate_node(state: dict, ctx) -> dict:
    return {"done": await ctx.tool("rotate", service="billing", note=f"switch to {SECRET} today")}


def _vault_registry():
    registry = default_registry()
    graph = Graph("vault", "1", tools=[rotate])
    graph.add_node("rotate", _rotate_node)
    graph.add_edge(START, "rotate")
    graph.add_edge("rotate", END)
    registry.add(graph)
    return registry


def test_prompt_shows_exact_args_with_secret_markers(tmp_path):
    async def go():
        app = VigilApp(tmp_path / "v.db", _vault_registry(), start=("vault", None), adopt=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: bool(app.pending), timeout=15)
            prompt = await _open_prompt(pilot)
            await _context_loaded(pilot, prompt)
            text = screen_text(app)
            assert "[REDACTED:openai-key]" in text and SECRET not in text
            assert '"service": "billing"' in text
            # the marker is drawn apart from the rest of the arguments
            args = prompt.query_one("#payload")
            marked = [s for strip in args.render_lines(args.region.reset_offset)
                      for s in strip if "REDACTED" in s.text]
            plain = [s for strip in args.render_lines(args.region.reset_offset)
                     for s in strip if "billing" in s.text]
            assert marked and plain
            assert marked[0].style.bold and marked[0].style.color != plain[0].style.color
            assert "secret" in text.lower()  # says what the marker means

    asyncio.run(go())


# keys ------------------------------------------------------------------------------------------


def test_o_opens_the_run_from_the_prompt(make_app):
    async def go():
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await _runs_ready(pilot)
            prompt = await _open_prompt(pilot)
            await pilot.press("o")
            await until(pilot, lambda: isinstance(app.screen, LiveScreen))
            assert app.screen.run_ids == [prompt.run_id]
            assert not any(isinstance(s, PromptScreen) for s in app.screen_stack)
            assert await _resolutions(app, prompt.run_id) == []
            await pilot.press("i")  # the question is still waiting
            await until(pilot, lambda: isinstance(app.screen, PromptScreen))

    asyncio.run(go())


def _visible_keys(prompt: PromptScreen) -> list[str]:
    """Every key of the prompt usable on this interrupt, as "key description"."""
    app = prompt.app
    shown: dict[str, list[str]] = {}
    described: dict[str, str] = {}
    for key, active in prompt.active_bindings.items():
        binding = active.binding
        if active.node is prompt and active.enabled and binding.id:
            shown.setdefault(binding.id, []).append(app.get_key_display(binding))
            described[binding.id] = binding.description
    return [f"{' '.join(keys)} {described[i]}" for i, keys in shown.items()]


def test_prompt_keys_fit_at_80_columns(make_app):
    async def go():
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await _runs_ready(pilot)
            prompt = await _open_prompt(pilot)
            await _context_loaded(pilot, prompt)
            keys = _visible_keys(prompt)
            assert any("open run" in k for k in keys) and any("close" in k for k in keys)
            text = " ".join(screen_text(app).split())
            missing = [k for k in keys if k not in text]
            assert not missing, (missing, screen_text(app))

    asyncio.run(go())


# the queue -------------------------------------------------------------------------------------


async def _plant_in_doubt(db) -> None:
    """A run that crashed during a refund, its question raised after the fixture's approval."""
    payload = {"kind": "tool", "name": "refund", "input": {"order": "C-2093", "amount": 429.0, "reason": "late"}}
    events = [
        RunStarted(graph="support", input={"messages": []}, start_at=("act",)),
        StepStarted(step_id="1.act", node="act"),
        ActionRequested(action_id="1.act#0", step_id="1.act", kind="tool", name="refund", input=payload["input"]),
        InterruptRaised(interrupt_id="1.act#0.in_doubt", step_id="1.act", kind="in_doubt",
                        title="did refund happen?", payload=payload, payload_hash=canonical_hash(payload)),
    ]
    async with await Store.open(db) as store:
        for i, event in enumerate(events):
            await store.append("run-crashed", [event], expected_seq=i, ts_ns=T0 + (60 + i) * 10**9)


def test_in_doubt_questions_come_first(log_db):
    asyncio.run(_plant_in_doubt(log_db))

    async def go():
        app = VigilApp(log_db, default_registry(), now=lambda: NOW, adopt=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await _runs_ready(pilot, 4)
            prompt = await _open_prompt(pilot)
            # raised last, shown first: whether money moved is asked before anything else
            assert prompt.raised.kind == "in_doubt" and prompt.run_id == "run-crashed"
            await pilot.press("s")
            await until(pilot, lambda: isinstance(app.screen, PromptScreen) and app.screen is not prompt)
            assert app.screen.raised.kind == "approval" and app.screen.run_id == "run-support-wait"

    asyncio.run(go())


# decisions -------------------------------------------------------------------------------------


def _demo(db) -> VigilApp:
    return VigilApp(db, default_registry(), demo=True)


async def _support_prompt(pilot) -> PromptScreen:
    app = pilot.app
    for _ in range(200):
        graphs = [(await app.store.run(p.run_id)).graph for p in app.pending]
        if "support" in graphs:
            break
        await pilot.pause(0.1)
    for _ in range(6):
        prompt = await _open_prompt(pilot)
        if prompt.graph == "support":
            return prompt
        await pilot.press("s")
        await until(pilot, lambda: app.screen is not prompt)
    raise AssertionError("no support prompt")


def test_empty_reject_reason_is_refused(make_app):
    async def go():
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await _runs_ready(pilot)
            prompt = await _open_prompt(pilot)
            await pilot.press("r")
            await until(pilot, lambda: isinstance(app.screen, AskText))
            ask = app.screen
            await pilot.press("enter")
            await pilot.pause(0.2)
            assert app.screen is ask, "an empty reason was accepted"
            assert "reason" in str(ask.query_one("#error", Label).render()).lower()
            await pilot.press("space", "space", "enter")
            await pilot.pause(0.2)
            assert app.screen is ask, "a blank reason was accepted"
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is prompt)
            assert await _resolutions(app, prompt.run_id) == []

    asyncio.run(go())


def test_a_failed_edit_keeps_the_edited_text(tmp_path):
    edited = '{"order": "A-7731", "amount": "forty", "reason": "partial"}'

    async def go():
        app = _demo(tmp_path / "v.db")
        async with app.run_test(size=(80, 24)) as pilot:
            prompt = await _support_prompt(pilot)
            await pilot.press("e")
            await until(pilot, lambda: isinstance(app.screen, AskJSON))
            app.screen.query_one("#doc", TextArea).text = edited
            await pilot.press("ctrl+s")
            await until(pilot, lambda: isinstance(app.screen, AskJSON) and app.screen.query_one("#doc", TextArea).text == edited
                        and "do not fit" in str(app.screen.query_one("#error", Label).render()))
            assert await _resolutions(app, prompt.run_id) == []
            # fix it in place: the corrected edit goes through
            app.screen.query_one("#doc", TextArea).text = edited.replace('"forty"', "40.0")
            await pilot.press("ctrl+s")
            await until(pilot, lambda: not isinstance(app.screen, (AskJSON, PromptScreen)))
            resolved = await _resolutions(app, prompt.run_id)
            assert resolved[0].event.decision == "edit" and resolved[0].event.value["amount"] == 40.0

    asyncio.run(go())
