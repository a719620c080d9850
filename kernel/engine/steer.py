"""Steering a run, whoever drives it: a live owner gets a signal and applies it; a run nobody
drives is changed by this process's runtime directly. Used by the CLI and the console."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..errors import InterruptRefused, VigilError
from ..owner import current_actor, owner_alive
from ..projection import TERMINAL
from .runtime import Runtime

__all__ = ["steer"]


async def steer(runtime: Runtime, run_id: str, kind: str, body: dict[str, Any], *, wait: float = 15.0, drive: bool = True) -> str:
    """Apply `kind` ("resolve", "cancel", "pause" or "unpause") to a run; returns how it was applied, raises
    VigilError with the reason it was refused."""
    store = runtime.store
    if run_id not in runtime.drivers:
        info = await store.run(run_id)
        if info.status in TERMINAL:  # the true reason, before any talk of owners
            raise InterruptRefused(f"run {run_id} has ended ({info.status})")
        if info.owner != runtime.owner and owner_alive(info.owner, info.lease_until_ns, info.seen_ns):
            signal_id = await store.send_signal(run_id, kind, body, current_actor())
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                outcome = await store.signal_result(signal_id)
                if outcome is not None:
                    if outcome != "ok":
                        raise VigilError(outcome.removeprefix("error: "))
                    return f"applied by its owner ({info.owner})"
                await asyncio.sleep(0.05)
            raise VigilError(
                f"the owner of run {run_id} ({info.owner}) did not apply it within {wait:g}s; it stays queued"
            )
    if kind == "cancel":
        await runtime.cancel(run_id, body.get("reason", ""))
        return "applied here"
    if kind == "pause":
        await runtime.pause(run_id, body.get("reason", ""))
        return "applied here"
    if kind == "unpause":
        await runtime.unpause(run_id, drive=drive)
        return "applied here"
    await runtime.resolve(
        run_id, body["interrupt_id"], body["decision"], body.get("value"),
        payload_hash=body["payload_hash"], always=bool(body.get("always")), drive=drive,
    )
    return "applied here"
