"""Every example in docs/examples runs for real, as the docs say (a real `vigil` subprocess on a
real SQLite file; the model examples against a loopback server speaking the provider's wire
format), and every example quoted in docs/*.md is byte-identical to its file."""

from __future__ import annotations

import json
import os
import re
import runpy
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cli_helpers import ROOT, rest_of, vigil
from fake_providers import Provider, anthropic_stream, openai_stream

DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
PROMPT = re.compile(r"vigil approve (\S+) --interrupt (\S+) --hash (\S+)")


def example(name: str) -> str:
    return str(EXAMPLES / f"{name}.py")


def sample(name: str) -> dict:
    return runpy.run_path(example(name))["SAMPLE_INPUT"]


def cli(name: str, *args: str, db: Path, env: dict | None = None, timeout: float = 60):
    """`vigil --workflows docs/examples/NAME.py ARGS...`"""
    if env is None:
        out = vigil("--workflows", example(name), *args, db=db, timeout=timeout)
    else:
        out = subprocess.run(
            [sys.executable, "-m", "console.cli", "--workflows", example(name), *args],
            cwd=ROOT, env={**os.environ, **env, "VIGIL_DB": str(db)},
            capture_output=True, timeout=timeout,
        )
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode()


def state(name: str, run_id: str, db: Path) -> dict:
    return json.loads(cli(name, "state", run_id, "--json", db=db))["state"]


def events(name: str, run_id: str, db: Path) -> list[dict]:
    return [json.loads(line) for line in cli(name, "events", run_id, "--json", db=db).splitlines()]


def run_headless(name: str, graph: str, db: Path, input: dict | None = None, env: dict | None = None) -> str:
    """`vigil run GRAPH --headless` for a run that needs no human; returns the run id."""
    out = cli(name, "run", graph, "--headless", "--input", json.dumps(input or sample(name)),
              db=db, env=env)
    run_id = out.split()[1]
    assert out.rstrip().endswith(f"run {run_id}: completed"), out
    return run_id


class Attached:
    """`vigil run GRAPH --headless` left running while the test answers its prompts from other
    processes, as an operator in another shell would."""

    def __init__(self, name: str, graph: str, db: Path, input: dict) -> None:
        self.name, self.db = name, db
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "console.cli", "--workflows", example(name), "run", graph,
             "--headless", "--input", json.dumps(input)],
            cwd=ROOT, env={**os.environ, "VIGIL_DB": str(db)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self._timer = threading.Timer(90, self.proc.kill)  # a hung run fails the test, not CI
        self._timer.start()
        self.lines: list[str] = [self.proc.stdout.readline()]
        self.run_id = self.lines[0].split()[1]

    def prompt(self) -> tuple[str, str, str]:
        """The next interrupt the attached process prints: (interrupt id, hash, what it shows)."""
        shown = []
        for line in self.proc.stdout:
            self.lines.append(line)
            shown.append(line)
            if m := PROMPT.search(line):
                assert m.group(1) == self.run_id
                return m.group(2), m.group(3), "".join(shown)
        raise AssertionError("the run ended without asking:\n" + "".join(self.lines))

    def decide(self, verb: str, *args: str) -> None:
        interrupt_id, digest, _ = self.prompt()
        cli(self.name, verb, self.run_id, "--interrupt", interrupt_id, "--hash", digest, *args, db=self.db)

    def finish(self) -> str:
        rest, err = rest_of(self.proc, 60)
        self._timer.cancel()
        assert self.proc.returncode == 0, err
        return rest.rstrip().splitlines()[-1]


# graphs ----------------------------------------------------------------------------------------


def test_graph_basics_loops_through_the_branch_and_appends_the_log(db):
    run_id = run_headless("graph_basics", "countdown", db)
    assert state("graph_basics", run_id, db) == {
        "start": 3, "label": "launch", "n": 0,
        "log": ["launch: 3", "launch: 2", "launch: 1", "launch: liftoff"],
    }


def test_graph_basics_input_schema_refuses_a_bad_input_before_the_run(db):
    out = vigil("--workflows", example("graph_basics"), "run", "countdown", "--headless",
                "--input", '{"start": "three"}', db=db)
    assert out.returncode != 0
    assert b"Expected `int`, got `str` - at `$.start`" in out.stderr
    out = vigil("--workflows", example("graph_basics"), "run", "countdown", "--headless",
                "--input", '{"start": 3, "lable": "x"}', db=db)
    assert out.returncode != 0 and b"lable" in out.stderr


def test_graph_basics_step_limit_fails_a_run_that_goes_on_too_long(db):
    out = vigil("--workflows", example("graph_basics"), "run", "countdown", "--headless",
                "--input", '{"start": 50}', db=db)
    assert out.returncode != 0
    assert out.stdout.rstrip().endswith(b": failed (step limit 20 reached)")
    runs = [json.loads(line) for line in cli("graph_basics", "runs", "--json", db=db).splitlines()]
    assert [(r["status"], r["error"]) for r in runs] == [("failed", "step limit 20 reached")]


def test_joins_runs_both_branches_in_one_superstep_then_the_join_once(db):
    run_id = run_headless("joins", "quotes", db)
    assert state("joins", run_id, db) == {
        "item": "widget", "quotes": {"acme": 120.0, "globex": 95.5},
        "sources": ["acme", "globex"], "best": "globex", "price": 95.5,
    }
    steps = [e["step_id"] for e in events("joins", run_id, db) if e["type"] == "StepStarted"]
    assert sorted(steps) == ["1.ask_acme", "1.ask_globex", "2.pick"]


def _most_at_once(evs: list[dict], start: str, end: str, key: str) -> int:
    """The most `start`s without their `end` at any point of the log: concurrency read from the
    order of events, never from their times."""
    open_, most = set(), 0
    for e in evs:
        if e["type"] == start:
            open_.add(e[key])
            most = max(most, len(open_))
        elif e["type"] == end:
            open_.discard(e[key])
    return most


def test_limits_runs_six_searches_two_nodes_and_one_call_at_a_time(db):
    run_id = run_headless("limits", "survey", db)
    topics = ["pricing", "refunds", "shipping", "returns", "warranty", "support"]
    assert state("limits", run_id, db)["report"] == sorted(f"3 articles on {t}" for t in topics)
    evs = events("limits", run_id, db)
    assert sum(e["type"] == "StepStarted" for e in evs) == 7
    # a node is started only once it has a slot; a call is requested only once it has one
    assert _most_at_once(evs, "StepStarted", "StepCompleted", "step_id") == 2
    assert _most_at_once(evs, "ActionRequested", "ActionSucceeded", "action_id") == 1


# effects ---------------------------------------------------------------------------------------


def test_effects_are_recorded_and_the_state_holds_what_was_recorded(db):
    run_id = run_headless("effects", "raffle", db)
    evs = events("effects", run_id, db)
    requested = {e["action_id"]: e for e in evs if e["type"] == "ActionRequested"}
    assert [(e["kind"], e["name"]) for e in requested.values()] == [
        ("clock", "now"), ("sleep", "sleep"), ("random", "random")]
    outputs = {e["action_id"]: e["output"] for e in evs if e["type"] == "ActionSucceeded"}
    final = state("effects", run_id, db)
    assert outputs["1.draw#0"] / 1e9 == pytest.approx(final["opened_at"])
    assert outputs["1.draw#2"] == final["roll"]
    assert final["winner"] == ["ana", "bo", "cy"][int(final["roll"] * 3)]
    # the timer was due 0.2 s after it was requested, and the run waited for it
    sleep = requested["1.draw#1"]
    assert sleep["input"] == {"seconds": 0.2} and 0.15e9 <= sleep["due_ns"] - sleep["ts_ns"] <= 0.2e9
    done = next(e for e in evs if e["type"] == "ActionSucceeded" and e["action_id"] == "1.draw#1")
    assert done["ts_ns"] >= sleep["due_ns"]


def test_interrupts_the_answer_must_be_a_choice_and_becomes_the_state(db):
    run = Attached("interrupts", "release", db, sample("interrupts"))
    interrupt_id, digest, shown = run.prompt()
    assert interrupt_id == "1.ask#0" and "choices: staging, production" in shown
    wrong = vigil("--workflows", example("interrupts"), "approve", run.run_id, "--interrupt",
                  interrupt_id, "--hash", digest, "--answer", "prod", db=db)
    assert wrong.returncode != 0 and b"not one of the choices" in wrong.stderr
    cli("interrupts", "approve", run.run_id, "--interrupt", interrupt_id, "--hash", digest,
        "--answer", "production", db=db)
    assert run.finish() == f"run {run.run_id}: completed"
    assert state("interrupts", run.run_id, db) == {"version": "2.4.1", "target": "production"}


def test_interrupts_a_rejected_question_raises_tool_rejected_in_the_node(db):
    run = Attached("interrupts", "release", db, sample("interrupts"))
    run.decide("reject", "--reason", "freeze until Monday")
    assert run.finish() == f"run {run.run_id}: completed"
    final = state("interrupts", run.run_id, db)
    assert final["target"] is None and "freeze until Monday" in final["note"]


def test_child_runs_each_child_is_a_run_with_lineage_and_returns_its_state(db):
    run_id = run_headless("child_runs", "report", db)
    assert state("child_runs", run_id, db)["counts"] == [3, 2]
    assert state("child_runs", run_id, db)["total"] == 5
    runs = [json.loads(line) for line in cli("child_runs", "runs", "--json", db=db).splitlines()]
    children = [r for r in runs if r["graph"] == "summarise"]
    assert len(children) == 2
    assert all(r["parent_run_id"] == run_id and r["status"] == "completed" for r in children)
    assert all(r["labels"] == {"kind": "summary"} for r in children)


def test_secret_args_the_tool_gets_the_value_and_the_log_never_holds_it(db):
    value = "correct horse battery staple 42"
    run_id = run_headless("secret_args", "status", db, env={"STATUS_AUTH": value})
    assert state("secret_args", run_id, db)["sent"]["auth_length"] == len(value)
    requested = [e for e in events("secret_args", run_id, db) if e["type"] == "ActionRequested"]
    assert requested[0]["input"]["auth"] == "[REDACTED:secret]"
    for path in db.parent.iterdir():  # the database, its WAL and anything beside it
        if path.is_file():
            assert value.encode() not in path.read_bytes(), path


# tools and approvals ---------------------------------------------------------------------------


def test_approvals_edit_reject_and_approve_for_the_rest_of_the_run(db):
    run = Attached("approvals", "bills", db, sample("approvals"))
    interrupt_id, digest, shown = run.prompt()  # acme 500; bob 20 needs no approval
    assert interrupt_id == "1.pay_all#0.approval" and '"amount": 500.0' in shown
    cli("approvals", "approve", run.run_id, "--interrupt", interrupt_id, "--hash", digest,
        "--edit", '{"to": "acme", "amount": 450}', db=db)
    interrupt_id, digest, shown = run.prompt()
    assert interrupt_id == "1.pay_all#2.approval" and '"to": "cyd"' in shown
    cli("approvals", "reject", run.run_id, "--interrupt", interrupt_id, "--hash", digest,
        "--reason", "not in this quarter's budget", db=db)
    interrupt_id, digest, shown = run.prompt()
    assert interrupt_id == "1.pay_all#3.approval" and '"to": "dan"' in shown
    cli("approvals", "approve", run.run_id, "--interrupt", interrupt_id, "--hash", digest,
        "--always", db=db)
    assert run.finish() == f"run {run.run_id}: completed"  # eve 900 was not asked about
    final = state("approvals", run.run_id, db)
    assert [(p["to"], p["amount"]) for p in final["paid"]] == [
        ("acme", 450.0), ("bob", 20.0), ("dan", 250.0), ("eve", 900.0)]
    assert final["paid"][0]["ref"] == f"{run.run_id}:1.pay_all#0"
    [refused] = final["refused"]
    assert refused["to"] == "cyd" and refused["why"].startswith("rejected by ")
    assert refused["why"].endswith(": not in this quarter's budget")
    types = [e["type"] for e in events("approvals", run.run_id, db)]
    assert types.count("InterruptRaised") == 3 and types.count("ToolApprovedForRun") == 1


def test_retries_the_node_fails_twice_then_succeeds_on_durable_timers(db):
    run_id = run_headless("retries", "rates", db)
    assert state("retries", run_id, db) == {"usd": 100, "eur": 92.0, "attempt": 3}
    failed = [e for e in events("retries", run_id, db) if e["type"] == "StepFailed"]
    assert [(f["attempt"], f["error"]) for f in failed] == [
        (1, "ActionError: ToolError: upstream answered 503"),
        (2, "ActionError: ToolError: upstream answered 503"),
    ]
    # exponential, no jitter: 0.1 s after the first failure, 0.2 s after the second
    gaps = [(f["retry_at_ns"] - f["ts_ns"]) / 1e9 for f in failed]
    assert gaps == [pytest.approx(0.1, abs=0.03), pytest.approx(0.2, abs=0.03)]
    # and each next attempt started only when its timer was due
    started = [e for e in events("retries", run_id, db) if e["type"] == "StepStarted"]
    assert [s["attempt"] for s in started] == [1, 2, 3]
    assert all(s["ts_ns"] >= f["retry_at_ns"] for s, f in zip(started[1:], failed))


# agents and models -----------------------------------------------------------------------------


def test_agent_scripted_looks_up_asks_for_the_refund_and_answers(db):
    run = Attached("agent_scripted", "support_agent", db, sample("agent_scripted"))
    interrupt_id, digest, shown = run.prompt()
    assert interrupt_id == "4.act#t0.0.approval" and '"amount": 80.0' in shown
    cli("agent_scripted", "approve", run.run_id, "--interrupt", interrupt_id, "--hash", digest, db=db)
    assert run.finish() == f"run {run.run_id}: completed"
    messages = state("agent_scripted", run.run_id, db)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert json.loads(messages[4]["content"]) == {"refunded": 80.0, "order": "A-17"}
    assert messages[-1]["content"] == 'Done: {"refunded": 80.0, "order": "A-17"}'


def test_agent_scripted_a_rejected_tool_call_goes_back_to_the_model_as_its_error(db):
    run = Attached("agent_scripted", "support_agent", db, sample("agent_scripted"))
    run.decide("reject", "--reason", "refunds over 50 go to a manager")
    assert run.finish() == f"run {run.run_id}: completed"
    messages = state("agent_scripted", run.run_id, db)["messages"]
    error = json.loads(messages[4]["content"])["error"]
    assert error.startswith("rejected by ") and error.endswith("refunds over 50 go to a manager")
    assert messages[-1]["content"].startswith("Done: {\"error\": ")


@pytest.fixture
def provider():
    made = []

    def make(plan):
        made.append(Provider(plan))
        return made[-1]

    yield make
    for p in made:
        p.close()


def _weather_turns(stream):
    def plan(path, body):
        if body["messages"][-1]["role"] == "tool" or (
            isinstance(body["messages"][-1]["content"], list)
            and body["messages"][-1]["content"][0].get("type") == "tool_result"
        ):
            return 200, stream("Sunny and 21 degrees in Oslo."), False
        return 200, stream("Checking.", [("w1", "weather", {"city": "Oslo"})]), False

    return plan


def test_agent_openai_talks_to_the_base_url_with_the_key_from_the_environment(db, provider):
    p = provider(_weather_turns(openai_stream))
    key = "sk-docs-example-abcdefghijklmnopqrstuvwxyz"
    run_id = run_headless("agent_openai", "weather_openai", db, env={
        "OPENAI_BASE_URL": p.url + "/v1", "OPENAI_MODEL": "local-model", "OPENAI_API_KEY": key})
    messages = state("agent_openai", run_id, db)["messages"]
    assert messages[-1]["content"] == "Sunny and 21 degrees in Oslo. "
    assert json.loads(messages[2]["content"]) == {"city": "Oslo", "sky": "sunny", "celsius": 21}
    assert [(path, h["authorization"], b["model"]) for path, h, b in p.requests] == [
        ("/v1/chat/completions", f"Bearer {key}", "local-model")] * 2
    assert key.encode() not in db.read_bytes()


def test_agent_anthropic_talks_to_the_base_url_with_the_key_from_the_environment(db, provider):
    p = provider(_weather_turns(anthropic_stream))
    key = "sk-ant-docs-example-abcdefghijklmnopqrstuvwxyz"
    run_id = run_headless("agent_anthropic", "weather_anthropic", db, env={
        "ANTHROPIC_BASE_URL": p.url, "ANTHROPIC_MODEL": "claude-local", "ANTHROPIC_API_KEY": key})
    messages = state("agent_anthropic", run_id, db)["messages"]
    assert messages[-1]["content"] == "Sunny and 21 degrees in Oslo. "
    assert [(path, h["x-api-key"], b["model"], b["system"]) for path, h, b in p.requests] == [
        ("/v1/messages", key, "claude-local", "You report the weather.")] * 2
    assert key.encode() not in db.read_bytes()


# running ---------------------------------------------------------------------------------------


def test_running_a_queued_run_is_driven_by_a_worker_that_stops_cleanly(db):
    out = cli("joins", "run", "quotes", "--queue", "--input", json.dumps(sample("joins")), db=db)
    run_id = out.split()[1]
    assert "queued" in out
    runs = [json.loads(line) for line in cli("joins", "runs", "--json", db=db).splitlines()]
    assert [(r["run_id"], r["status"], r["owner_state"]) for r in runs] == [(run_id, "running", "free")]
    worker = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "--workflows", example("joins"), "worker", "--concurrency", "2"],
        cwd=ROOT, env={**os.environ, "VIGIL_DB": str(db)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = json.loads(cli("joins", "runs", "--json", db=db).splitlines()[0])
            if info["status"] == "completed":
                break
            time.sleep(0.3)
        assert info["status"] == "completed"
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert state("joins", run_id, db)["best"] == "globex"


def test_running_resume_drives_a_run_whose_owner_went_away(db):
    out = cli("graph_basics", "run", "countdown", "--queue", "--input", '{"start": 2}', db=db)
    run_id = out.split()[1]
    assert cli("graph_basics", "resume", run_id, db=db).rstrip().endswith(f"run {run_id}: completed")
    assert state("graph_basics", run_id, db)["log"] == ["launch: 2", "launch: 1", "launch: liftoff"]


def test_embedding_runs_a_graph_in_process_and_answers_its_approval_in_code(tmp_path):
    db = tmp_path / "embedded.db"
    out = subprocess.run([sys.executable, example("embedding"), str(db)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["status"] == "completed"
    assert [(p["to"], p["amount"]) for p in result["state"]["paid"]] == [("acme", 500.0)]
    # the same log, read by the CLI: the decision is in it, with who made it
    resolved = [e for e in events("approvals", result["state"]["paid"][0]["ref"].split(":")[0], db)
                if e["type"] == "InterruptResolved"]
    assert [(e["interrupt_id"], e["decision"]) for e in resolved] == [("1.pay_all#0.approval", "approve")]


# the docs never drift from the examples --------------------------------------------------------

FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
QUOTED = re.compile(r"\A# (docs/examples/[\w/]+\.py)\n")


def quoted_examples() -> list[tuple[str, str, str]]:
    """(page, example path, the text quoted) for every python block quoting an example file."""
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for block in FENCE.findall(page.read_text()):
            if m := QUOTED.match(block):
                found.append((page.name, m.group(1), block))
    return found


def test_every_quoted_example_is_byte_identical_to_its_file():
    quoted = quoted_examples()
    assert quoted
    for page, path, text in quoted:
        assert (ROOT / path).read_text() == text, f"{page} quotes {path}, which has changed"


def test_every_example_is_quoted_in_a_page_and_exercised_by_a_test():
    files = sorted(p.relative_to(ROOT).as_posix() for p in EXAMPLES.glob("*.py"))
    assert set(files) == {path for _, path, _ in quoted_examples()}
    source = Path(__file__).read_text()
    for path in files:
        name = Path(path).stem
        assert f'def test_{name}_' in source, f"no test_{name}_* for {path}"
        assert Path(path).read_text().startswith(f"# {path}\n")


def test_the_five_minute_example_in_the_docs_index_runs(tmp_path):
    index = (DOCS / "README.md").read_text()
    [code] = [b for b in FENCE.findall(index) if b.startswith("# flows.py\n")]
    (tmp_path / "flows.py").write_text(code)
    db = tmp_path / "vigil.db"
    out = vigil("--workflows", str(tmp_path / "flows.py"), "run", "hello", "--headless",
                "--input", '{"name": "ada"}', db=db)
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.split()[1].decode()
    final = json.loads(vigil("state", run_id, "--json", db=db).stdout)["state"]
    assert final["greeting"] == "hello ada" and isinstance(final["at"], float)


def test_every_relative_link_in_the_docs_points_at_a_file():
    for page in [*DOCS.glob("*.md"), ROOT / "README.md"]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


# in doubt --------------------------------------------------------------------------------------


def _killed_mid_invoice(db: Path) -> str:
    """Start an invoice run whose tool takes a minute, SIGKILL the process while the tool runs,
    and let `vigil resume` find the request without an outcome. Returns the run id."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "--workflows", example("in_doubt"), "run", "invoice",
         "--headless", "--input", json.dumps(sample("in_doubt"))],
        cwd=ROOT, env={**os.environ, "VIGIL_DB": str(db), "INVOICE_LATENCY": "60"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        run_id = proc.stdout.readline().split()[1]
        for line in proc.stdout:
            if "ActionRequested" in line:
                break
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    out = cli("in_doubt", "resume", run_id, db=db)
    assert f"run {run_id}: waiting, 1 waiting for a human" in out, out
    return run_id


def _doubt(run_id: str, db: Path) -> dict:
    [raised] = [e for e in events("in_doubt", run_id, db) if e["type"] == "InterruptRaised"]
    assert raised["kind"] == "in_doubt" and raised["interrupt_id"] == "1.bill#0.doubt"
    assert raised["title"] == "did tool send_invoice run before the crash?"
    return raised


def test_in_doubt_a_human_says_it_happened_and_the_tool_is_not_run_again(db):
    run_id = _killed_mid_invoice(db)
    raised = _doubt(run_id, db)
    cli("in_doubt", "approve", run_id, "--interrupt", raised["interrupt_id"], "--hash",
        raised["payload_hash"][:12], "--answer", '{"sent_to": "acme", "amount": 120.0, "by": "hand"}', db=db)
    assert cli("in_doubt", "resume", run_id, db=db).rstrip().endswith(f"run {run_id}: completed")
    assert state("in_doubt", run_id, db)["receipt"] == {"sent_to": "acme", "amount": 120.0, "by": "hand"}
    requested = [e for e in events("in_doubt", run_id, db) if e["type"] == "ActionRequested"]
    assert len(requested) == 1  # requested once, before the crash; never again


def test_in_doubt_run_it_again_records_a_new_request_and_runs_the_tool(db):
    run_id = _killed_mid_invoice(db)
    raised = _doubt(run_id, db)
    cli("in_doubt", "approve", run_id, "--interrupt", raised["interrupt_id"], "--hash",
        raised["payload_hash"][:12], db=db)
    assert cli("in_doubt", "resume", run_id, db=db).rstrip().endswith(f"run {run_id}: completed")
    assert state("in_doubt", run_id, db)["receipt"] == {"sent_to": "acme", "amount": 120.0}
    requested = [e for e in events("in_doubt", run_id, db) if e["type"] == "ActionRequested"]
    assert [e["action_id"] for e in requested] == ["1.bill#0", "1.bill#0"]
