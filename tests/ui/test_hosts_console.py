"""A console on one host answers a run that a worker on another host drives, over one PostgreSQL
log: the decision travels as a signal, the owning worker applies it, the run goes on."""

import asyncio
import os
import signal
import subprocess
import sys

from cli_helpers import ROOT
from console.app import VigilApp
from console.screens.prompt import PromptScreen
from console.workflows import default_registry
from kernel.demos import samples
from kernel.owner import HOST
from test_flows import _open_prompt_for, _resolution
from ui_helpers import until


def test_a_console_on_another_host_approves_what_a_worker_drives(pg_dsn):
    env = {**os.environ, "VIGIL_DB": pg_dsn, "VIGIL_HOST": "worker-host"}
    worker = subprocess.Popen([sys.executable, "-m", "console.cli", "worker"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().startswith("worker worker-host:"), worker.stderr.read()
        queued = subprocess.run([sys.executable, "-m", "console.cli", "run", "support", "--queue",
                                 "--input", __import__("json").dumps(samples()["support"])],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        run_id = queued.stdout.split()[1]

        async def go():
            app = VigilApp(pg_dsn, default_registry(), adopt=False)
            async with app.run_test(size=(120, 40)) as pilot:
                prompt = await _open_prompt_for(pilot, app, "support")
                assert prompt.run_id == run_id
                info = await app.store.run(run_id)
                assert info.owner.startswith("worker-host:") and HOST != "worker-host"
                await pilot.press("a")
                await until(pilot, lambda: not isinstance(app.screen, PromptScreen), timeout=20)
                for _ in range(200):  # the worker applies it and drives the run on
                    if (await app.store.run(run_id)).status == "completed":
                        break
                    await pilot.pause(0.1)
                resolved = await _resolution(app, run_id)
                return resolved, (await app.store.run(run_id)).status

        resolved, status = asyncio.run(go())
        assert status == "completed"
        assert resolved.decision == "approve" and resolved.actor.host == HOST and resolved.actor.claimed
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)
