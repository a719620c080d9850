"""Over real SSH: sshd on 127.0.0.1 (a high port, a throwaway host key, key-only login), a
headless owner driving a run in one process, and `vigil` opened through `ssh -tt` in tmux,
approving its interrupt. The owner applies it; the decision's actor carries SSH_CONNECTION."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import rest_of
from test_terminal import ROOT, Tmux, vigil

SSHD = "/usr/sbin/sshd"
pytestmark = pytest.mark.skipif(
    not (os.path.exists(SSHD) and shutil.which("ssh") and shutil.which("tmux")),
    reason="needs openssh-server, ssh and tmux (.ci/run installs them)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshd(tmp_path):
    keys = tmp_path / "ssh"
    keys.mkdir(mode=0o700)
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    (keys / "authorized_keys").write_text((keys / "client.pub").read_text())
    os.chmod(keys / "authorized_keys", 0o600)
    port = _free_port()
    config = keys / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {keys / 'host'}",
        f"AuthorizedKeysFile {keys / 'authorized_keys'}", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "PermitRootLogin prohibit-password",
        "StrictModes no", "UsePAM no", f"PidFile {keys / 'sshd.pid'}", "LogLevel ERROR", "",
    ]))
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    daemon = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert daemon.poll() is None, daemon.stderr.read()
            assert time.monotonic() < deadline, "sshd did not start"
            time.sleep(0.1)
    ssh = (f"ssh -tt -p {port} -i {keys / 'client'} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
           f" -o LogLevel=ERROR {getpass.getuser()}@127.0.0.1")
    yield ssh
    daemon.terminate()
    daemon.wait(5)


@pytest.mark.parametrize("term", ["xterm-256color", "screen"])
def test_approve_over_ssh_while_another_process_owns_the_run(tmp_path, sshd, term):
    env = {**os.environ, "VIGIL_DB": str(tmp_path / "v.db"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    owner = subprocess.Popen([sys.executable, "-m", "console.cli", "run", "support", "--headless"],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_id = owner.stdout.readline().split()[1]
    for line in owner.stdout:
        if "vigil approve" in line:
            break

    theme = " --theme vigil-ansi" if term == "screen" else ""
    remote = (f"cd {ROOT} && env VIGIL_DB={env['VIGIL_DB']} XDG_CONFIG_HOME={env['XDG_CONFIG_HOME']} TERM={term}"
              f" {sys.executable} -m console.cli{theme}")
    tmux = Tmux("remote", f"{sshd} '{remote}'", {"TERM": term})
    try:
        tmux.wait_for("1 waiting for you", timeout=30)
        tmux.run("resize-window", "-t", "remote", "-x", "80", "-y", "24")
        tmux.wait_for("waiting for you")
        tmux.keys("i")
        tmux.wait_for("refund needs your approval")
        tmux.keys("a")
        tmux.wait_for("nothing waiting", timeout=30)
        rest, err = rest_of(owner, 60)  # the owner applies it and drives the run to its end
        assert owner.returncode == 0, err
        assert rest.strip().endswith(f"run {run_id}: completed")
        tmux.keys("q")
        time.sleep(0.5)
    finally:
        tmux.close()
        if owner.poll() is None:
            owner.kill()

    events = [json.loads(x) for x in vigil("events", run_id, "--json", env=env).stdout.splitlines()]
    resolved = [e for e in events if e["type"] == "InterruptResolved"]
    assert len(resolved) == 1 and resolved[0]["decision"] == "approve"
    actor = resolved[0]["actor"]
    assert actor["ssh_connection"] and actor["ssh_connection"].startswith("127.0.0.1 ")
    assert actor["pid"] != owner.pid  # decided by the console over SSH, applied by the owner
