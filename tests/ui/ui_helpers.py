"""Waiting on the console in Pilot tests."""

from __future__ import annotations


async def until(pilot, condition, timeout: float = 10.0, step: float = 0.05) -> None:
    """Pause the pilot until `condition()` is true (workers and the feed run meanwhile)."""
    waited = 0.0
    while not condition():
        await pilot.pause(step)
        waited += step
        if waited > timeout:
            raise AssertionError("timed out waiting for the console")
