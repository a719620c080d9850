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


def screen_text(app) -> str:
    """The screen as it was last painted, as plain text: widgets that were not refreshed show
    their old lines here, as they would in a terminal."""
    import io

    from rich.console import Console

    console = Console(width=app.size.width, height=app.size.height, file=io.StringIO(), record=True,
                      force_terminal=True, color_system="truecolor", legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()
