"""`vigil worker`: a headless owner that picks up queued and orphaned runs, and on SIGTERM finishes
the step in progress and releases its runs so the next worker adopts them at once."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cli_helpers import ROOT, rest_of, vigil

HERE = Path(__file__).resolve().parent


def _env(db: Path | str, ledger: Path) -> dict:
    return {**os.environ, "VIGIL_DB": str(db), "VIGIL_LEDGER": str(ledger),
            "VIGIL_WORKFLOWS": "worker_workflows", "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}"}


def _worker(env: dict, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "worker", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("worker "), proc.stderr.read()
    return proc


def _run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def _info(env: dict, run_id: str) -> dict:
    return next(json.loads(x) for x in _run(env, "runs", "--json", "--limit", "0").stdout.splitlines()
                if json.loads(x)["run_id"] == run_id)


def _events(env: dict, run_id: str) -> list[dict]:
    return [json.loads(x) for x in _run(env, "events", run_id, "--json").stdout.splitlines()]


def _until(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_worker_drives_a_queued_run(both_backends, tmp_path):
    env = _env(both_backends, tmp_path / "ledger.txt")
    worker = _worker(env)
    try:
        out = _run(env, "run", "slow", "--queue", "--input", json.dumps({"pause": 0.0}))
        assert out.returncode == 0, out.stderr
        run_id = out.stdout.split()[1]
        assert "queued" in out.stdout
        _until(lambda: _info(env, run_id)["status"] == "completed")
    finally:
        worker.send_signal(signal.SIGTERM)
        rest, err = rest_of(worker, 30)
    assert worker.returncode == 0, err
    assert f"run {run_id} (slow) adopted" in rest and "worker stopped" in rest
    assert len((tmp_path / "ledger.txt").read_text().splitlines()) == 4


def test_sigterm_finishes_the_step_and_the_next_worker_adopts_at_once(both_backends, tmp_path):
    env = _env(both_backends, tmp_path / "ledger.txt")
    first = _worker(env, "--concurrency", "2")
    out = _run(env, "run", "slow", "--queue")
    run_id = out.stdout.split()[1]
    # stop it while a step is under way: its tool has run, its pause has not ended
    _until(lambda: any(e["type"] == "ActionSucceeded" for e in _events(env, run_id)))
    first.send_signal(signal.SIGTERM)
    rest, err = rest_of(first, 30)
    assert first.returncode == 0, err
    events = _events(env, run_id)
    assert events[-1]["type"] == "StepCompleted", [e["type"] for e in events[-3:]]
    info = _info(env, run_id)
    assert info["status"] == "running" and info["owner"] is None  # released, not waiting for a lease

    second = _worker(env)
    try:
        _until(lambda: _info(env, run_id)["status"] == "completed", timeout=20)
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=30)
    events = _events(env, run_id)
    assert not any(e["type"] == "InterruptRaised" for e in events), "a clean stop left an effect in doubt"
    lines = (tmp_path / "ledger.txt").read_text().splitlines()
    assert sorted(line.split()[-1] for line in lines) == ["1", "2", "3", "4"], lines


def test_worker_refuses_an_unknown_graph_in_one_line(both_backends, tmp_path):
    env = _env(both_backends, tmp_path / "ledger.txt")
    out = _run(env, "worker", "--graphs", "nope")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "no graph 'nope'" in out.stderr


def test_runs_shows_who_drives_each_run(both_backends, tmp_path):
    env = _env(both_backends, tmp_path / "ledger.txt")
    queued = _run(env, "run", "slow", "--queue").stdout.split()[1]
    assert _info(env, queued)["owner_state"] == "free"
    table = _run(env, "runs").stdout.splitlines()
    assert table[0].split()[-1] == "OWNER" and table[1].split()[-1] == "free"

    worker = _worker(env)
    _until(lambda: _info(env, queued)["owner_state"] == f"{os.uname().nodename}:{worker.pid}")
    worker.kill()  # kill -9: no release
    rest_of(worker, 30)
    assert _info(env, queued)["owner_state"] == "orphaned"
