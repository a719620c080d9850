import subprocess
import sys

from cli_helpers import ROOT


def test_importing_kernel_pulls_in_no_ui():
    code = (
        "import sys, kernel, kernel.store, kernel.verify, kernel.exchange\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'textual', 'rich', 'console', 'themes'})\n"
        "print(' '.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_for_the_log_does_not_import_textual():
    code = (
        "import sys\n"
        "from console import cli, commands\n"
        "print('textual' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
