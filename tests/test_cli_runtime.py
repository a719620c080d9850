"""The CLI that runs and steers runs, each command a real subprocess on a real database."""

import json
import re
import os
import subprocess
import sys
import time

from cli_helpers import ROOT, rest_of, vigil


def runs(db, *extra):
    return [json.loads(x) for x in vigil("runs", "--json", "--limit", "0", *extra, db=db).stdout.splitlines()]


def test_graphs_lists_the_demos_with_their_approvals():
    rows = {r["name"]: r for r in map(json.loads, vigil("graphs", "--json").stdout.splitlines())}
    assert set(rows) >= {"support", "research", "deploy", "triage"}
    assert rows["support"]["requires_approval"] == ["refund"]
    assert rows["deploy"]["requires_approval"] == ["deploy"]


def test_demo_headless_approve_all_completes_everything(db):
    out = vigil("demo", "--headless", "--approve", "all", db=db, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "4 runs in" in out.stdout.decode() and "4 completed" in out.stdout.decode()
    statuses = {r["graph"]: r["status"] for r in runs(db)}
    assert statuses == {"support": "completed", "research": "completed", "deploy": "completed", "triage": "completed"}
    assert len(runs(db)) == 5  # triage's child research run
    assert vigil("verify", db=db).returncode == 0


def waits_on(db, run_id):
    """The interrupt a run waits on, as a shell approver reads it from the log."""
    raised = [json.loads(x) for x in vigil("events", run_id, "--json", "--type", "InterruptRaised", db=db).stdout.splitlines()]
    return ["--interrupt", raised[-1]["interrupt_id"], "--hash", raised[-1]["payload_hash"][:12]]


def test_demo_headless_leaves_approvals_to_you_then_reject_and_resume(db):
    out = vigil("demo", "--headless", "--runs", "1", db=db, timeout=120)
    assert "1 completed, 3 waiting" in out.stdout.decode()
    by_graph = {r["graph"]: r for r in runs(db)}
    support, deploy, triage = by_graph["support"], by_graph["deploy"], by_graph["triage"]
    assert support["pending"] == deploy["pending"] == triage["pending"] == 1

    blind = vigil("reject", support["run_id"], "--reason", "already refunded by phone", db=db)
    assert blind.returncode == 2 and "pass --interrupt ID --hash HASH" in blind.stderr.decode()
    rejected = vigil("reject", support["run_id"], *waits_on(db, support["run_id"]), "--reason", "already refunded by phone", db=db)
    assert rejected.returncode == 0, rejected.stderr
    assert "applied here (no live owner)" in rejected.stdout.decode()
    again = vigil("reject", support["run_id"], "--reason", "twice", db=db)
    assert again.returncode == 2 and "has no pending interrupt" in again.stderr.decode()
    assert vigil("approve", triage["run_id"], *waits_on(db, triage["run_id"]), "--answer", "production", db=db).returncode == 0
    assert vigil("approve", deploy["run_id"], *waits_on(db, deploy["run_id"]), db=db).returncode == 0

    out = vigil("resume", db=db, timeout=120)
    assert out.returncode == 0, out.stderr
    final = {r["graph"]: r for r in runs(db) if r["run_id"] in {support["run_id"], deploy["run_id"], triage["run_id"]}}
    assert {g: r["status"] for g, r in final.items()} == {"support": "completed", "deploy": "completed", "triage": "completed"}
    state = json.loads(vigil("state", support["run_id"], "--json", db=db).stdout)["state"]
    refund = next(m for m in state["messages"] if m["role"] == "tool" and m["name"] == "refund")
    assert "already refunded by phone" in refund["content"]
    assert vigil("verify", db=db).returncode == 0


def test_run_headless_stays_attached_while_another_process_approves(db):
    env = {**os.environ, "VIGIL_DB": str(db)}
    attached = subprocess.Popen([sys.executable, "-m", "console.cli", "run", "support", "--headless",
                                 "--input", json.dumps({"messages": [{"role": "user", "content": "Order B-1180 is broken"}]})],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in attached.stdout:
        lines.append(line)
        if "vigil approve" in line:
            break
    run_id = lines[0].split()[1]
    assert any("waiting for a human: refund needs your approval" in line for line in lines)
    which = lines[-1].split()[3:7]  # --interrupt ID --hash HASH, as printed

    # the owner is alive: the approval goes through a signal the owner applies
    out = vigil("approve", run_id, *which, "--edit", json.dumps({"order": "B-1180", "amount": 20.0, "reason": "goodwill"}), db=db)
    assert out.returncode == 0, out.stderr
    assert "applied by its owner" in out.stdout.decode()
    asked = next(re.search(r"--interrupt (\S+)", line).group(1) for line in lines if "--interrupt" in line)
    stale = vigil("approve", run_id, "--interrupt", asked, db=db)
    assert stale.returncode == 2 and "already resolved" in stale.stderr.decode()

    rest, err = rest_of(attached, 60)
    assert attached.returncode == 0, err
    assert rest.strip().endswith(f"run {run_id}: completed")
    events = [json.loads(x) for x in vigil("events", run_id, "--json", db=db).stdout.splitlines()]
    resolved = next(e for e in events if e["type"] == "InterruptResolved")
    assert resolved["decision"] == "edit" and resolved["actor"]["pid"] != attached.pid
    refund_call = [e for e in events if e["type"] == "ActionRequested" and e["name"] == "refund"]
    assert refund_call[0]["input"]["amount"] == 20.0


def test_cancel_a_waiting_run_owned_by_another_process(db):
    env = {**os.environ, "VIGIL_DB": str(db)}
    attached = subprocess.Popen([sys.executable, "-m", "console.cli", "run", "triage", "--headless",
                                 "--input", json.dumps({"alert": "disk full"})],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = attached.stdout.readline()
    run_id = first.split()[1]
    for line in attached.stdout:
        if "vigil approve" in line:
            break
    out = vigil("cancel", run_id, "--reason", "false alarm", db=db)
    assert out.returncode == 0, out.stderr
    rest, _ = rest_of(attached, 30)
    assert attached.returncode == 1 and rest.strip().endswith(f"run {run_id}: cancelled (false alarm)")
    assert vigil("verify", run_id, db=db).returncode == 0


def test_fork_from_a_seq(db):
    vigil("demo", "--headless", "--approve", "all", db=db, timeout=120)
    research = next(r for r in runs(db, "--graph", "research") if r.get("parent_run_id") is None)
    events = [json.loads(x) for x in vigil("events", research["run_id"], "--json", db=db).stdout.splitlines()]
    plan_done = next(e["seq"] for e in events if e["type"] == "StepCompleted" and e["node"] == "plan")
    out = vigil("fork", research["run_id"], "--at", str(plan_done), db=db, timeout=60)
    assert out.returncode == 0, out.stderr
    new_id = out.stdout.decode().split()[3]
    # the fork's log is the parent's up to the fork point, so its seqs line up with the parent's
    forked = json.loads(vigil("state", new_id, "--at", str(plan_done), "--json", db=db).stdout)["state"]
    original = json.loads(vigil("state", research["run_id"], "--at", str(plan_done), "--json", db=db).stdout)["state"]
    assert forked == original
    info = next(r for r in runs(db) if r["run_id"] == new_id)
    assert info["status"] == "completed" and info["parent_run_id"] == research["run_id"]
    assert info["labels"]["fork_of"] == f"{research['run_id']}@{plan_done}"


def test_unknown_graph_and_bad_input_are_one_line(db):
    out = vigil("run", "nope", "--headless", db=db)
    assert out.returncode == 2 and out.stderr.decode().startswith("vigil: no graph 'nope' registered (known:")
    out = vigil("run", "support", "--input", "{oops", "--headless", db=db)
    assert out.returncode == 2 and "--input is not valid JSON" in out.stderr.decode()
    out = vigil("--workflows", "no_such_module", "graphs")
    assert out.returncode == 2 and "cannot import workflows module 'no_such_module'" in out.stderr.decode()


def test_workflows_module_registers_a_users_graphs(db, tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", "VIGIL_LEDGER": str(tmp_path / "ledger.txt"),
           "VIGIL_DB": str(db)}
    out = subprocess.run([sys.executable, "-m", "console.cli", "--workflows", "crash_workflows", "graphs"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "ledger" in out.stdout and "support" in out.stdout
    out = subprocess.run([sys.executable, "-m", "console.cli", "--workflows", "crash_workflows", "run", "ledger",
                          "--headless", "--input", '{"n": 1}'], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("completed")
