"""kernel.gctune: a worker's collector settings (process-wide, so checked in a subprocess)."""

import subprocess
import sys


def test_tune_gc_for_runs_freezes_start_up_and_raises_the_thresholds():
    code = (
        "import gc, kernel.gctune as t\n"
        "before = gc.get_freeze_count()\n"
        "t.tune_gc_for_runs()\n"
        "print(gc.get_threshold() == t.THRESHOLDS, before == 0, gc.get_freeze_count() > 1000)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "True"]
