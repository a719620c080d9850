"""Bad input to the CLI is one clear line and exit 2; users' workflows load from a file path."""

import json
import os
import subprocess
import sys

from cli_helpers import ROOT, vigil

FLOWS = '''
from kernel.graph import END, START, Graph
from helper_of_flows import GREETING   # a sibling module: found without PYTHONPATH

g = Graph("hello", input_schema={"name": str})

async def greet(state, ctx):
    return {"greeting": f"{GREETING}, {state['name']}"}

g.add_node("greet", greet)
g.add_edge(START, "greet")
g.add_edge("greet", END)
GRAPHS = [g]
'''


def _one_line_error(out) -> str:
    err = out.stderr.decode()
    assert out.returncode == 2, (out.returncode, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_unknown_status_type_and_seq_are_clear_errors(db):
    assert vigil("demo", "--headless", db=db, timeout=120).returncode == 0
    run_id = json.loads(vigil("runs", "--json", "--limit", "1", db=db).stdout.splitlines()[0])["run_id"]
    assert "is not a status" in _one_line_error(vigil("runs", "--status", "bogus", db=db))
    assert "is not an event type" in _one_line_error(vigil("events", run_id, "--type", "Bogus", db=db))
    for at in ("999", "-1", "0"):
        assert f"has no seq {at}" in _one_line_error(vigil("state", run_id, "--at", at, db=db))


def test_run_input_is_checked_against_the_graphs_declared_input(db):
    err = _one_line_error(vigil("run", "triage", "--headless", "--input", '{"alrt": "disk full"}', db=db))
    assert "input for graph 'triage'" in err and "alrt" in err
    err = _one_line_error(vigil("run", "deploy", "--headless", "--input", '{"service": "api", "ref": 5}', db=db))
    assert "$.ref" in err
    assert vigil("runs", "--json", db=db).stdout == b""  # nothing was started


def test_workflows_from_a_file_path_without_pythonpath(tmp_path, db):
    (tmp_path / "flows.py").write_text(FLOWS)
    (tmp_path / "helper_of_flows.py").write_text('GREETING = "hello"\n')
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["VIGIL_DB"] = str(db)
    vigil_bin = os.path.join(os.path.dirname(sys.executable), "vigil")
    out = subprocess.run([vigil_bin, "--workflows", "./flows.py", "run", "hello", "--headless",
                          "--input", '{"name": "ada"}'], cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    state = subprocess.run([vigil_bin, "state", out.stdout.split()[1].decode(), "--json"], cwd=tmp_path,
                           env=env, capture_output=True, timeout=60)
    assert json.loads(state.stdout)["state"]["greeting"] == "hello, ada"
    # a module name is found from the current directory too, as `python -m` would
    out = subprocess.run([vigil_bin, "--workflows", "flows", "graphs"], cwd=tmp_path, env=env,
                         capture_output=True, timeout=60)
    assert out.returncode == 0 and b"hello" in out.stdout, out.stderr
    out = subprocess.run([vigil_bin, "--workflows", "./nope.py", "graphs"], cwd=tmp_path, env=env,
                         capture_output=True, timeout=60)
    assert "no such file" in _one_line_error(out)
