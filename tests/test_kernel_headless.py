"""The kernel is headless and `import kernel` is lazy, checked module by module in a fresh
interpreter (what a test process has already imported proves nothing)."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys

import pytest

from cli_helpers import ROOT

UI = {"textual", "rich", "console", "themes"}


def kernel_modules() -> list[str]:
    """Every module under kernel/, found the way pkgutil.walk_packages finds them but without
    importing the packages on the way: imports happen only in the measured interpreter."""

    def walk(path: list[str], prefix: str):
        for info in pkgutil.iter_modules(path, prefix):
            yield info.name
            if info.ispkg:
                yield from walk([os.path.join(path[0], info.name.rsplit(".", 1)[1])], info.name + ".")

    return ["kernel", *walk([str(ROOT / "kernel")], "kernel.")]


# Imports each module in turn and reports, per module, the top-level packages it pulled in that
# nothing before it had (so a UI import is blamed on the first module that makes it).
# httpx imports its optional command-line tool (click, pygments, rich) whenever click happens to be
# installed (the benchmark extras bring it): that is httpx's, not the kernel's, so it is kept out.
_PROBE = """
import importlib, json, sys
sys.modules["httpx._main"] = None
report = {}
for name in json.loads(sys.argv[1]):
    before = set(sys.modules)
    try:
        importlib.import_module(name)
        error = None
    except ImportError as exc:
        error = ["ImportError", exc.name or "", str(exc)]
    except Exception as exc:
        error = [type(exc).__name__, "", str(exc)]
    new = {m.split(".")[0] for m in set(sys.modules) - before}
    report[name] = {"error": error, "new": sorted(new)}
report["*"] = sorted({m.split(".")[0] for m in sys.modules})
print(json.dumps(report))
"""


def _optional(error: list[str]) -> bool:
    """An import that failed only because psycopg is not installed here (the Postgres backend is
    an extra). CI requires Postgres (VIGIL_REQUIRE_POSTGRES=1): there it is a failure."""
    kind, missing, _ = error
    return (
        kind == "ImportError"
        and missing.split(".")[0] == "psycopg"
        and os.environ.get("VIGIL_REQUIRE_POSTGRES") != "1"
    )


@pytest.fixture(scope="module")
def imported() -> dict:
    names = kernel_modules()
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(names)],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=120,
    )
    return json.loads(out.stdout)


def test_the_walk_finds_the_kernel():
    names = kernel_modules()
    for expected in ("kernel.engine.runtime", "kernel.agents.models.scripted", "kernel.log.port", "kernel.demos.support"):
        assert expected in names


def test_every_kernel_module_imports_without_the_ui(imported):
    broken = {
        name: r["error"] for name, r in imported.items()
        if name != "*" and r["error"] is not None and not _optional(r["error"])
    }
    assert not broken, f"kernel modules that do not import: {broken}"
    ui = {name: sorted(set(r["new"]) & UI) for name, r in imported.items() if name != "*"}
    ui = {name: pulled for name, pulled in ui.items() if pulled}
    assert not ui, f"kernel modules that pull in the UI: {ui}"
    assert not set(imported["*"]) & UI


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_import_kernel_alone_loads_nothing_of_it():
    loaded = _modules_after("import kernel")
    assert sorted(m for m in loaded if m.startswith("kernel.")) == []
    heavy = {"kernel.log.sqlite", "kernel.log.postgres", "kernel.engine", "psycopg", "sqlite3", "httpx", "anyio"}
    assert not loaded & (heavy | UI)


def test_names_from_kernel_still_import_and_bring_no_engine():
    loaded = _modules_after(
        "from kernel import Store, RunStarted, Secret, VigilError, StateAt, Record\n"
        "import kernel\n"
        "assert 'Store' in kernel.__all__ and 'RunStarted' in kernel.__all__"
    )
    assert not {m for m in loaded if m.split(".")[0] in UI or m.startswith("kernel.engine")}
    assert not loaded & {"httpx", "anyio"}


def test_cli_for_the_log_does_not_import_textual():
    code = (
        "import sys\n"
        "from console import cli, commands\n"
        "print('textual' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
