"""What a run driver needs of the process that hosts it, and nothing more. The Runtime is the one
host; a driver never reaches past this into it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from ..events import InterruptRaised, InterruptResolved
from ..projection import RunInfo
from ..store import Store

if TYPE_CHECKING:  # pragma: no cover
    from .driver import RunDriver

__all__ = ["Host"]


class Host(Protocol):
    store: Store  # where the driver's appends go
    approvals: str  # "ask", "auto" or "deny": what a call that needs approval meets
    draining: bool  # the process is stopping: drivers stop at their next step boundary

    # slots: how many runs are driven at once
    def may_drive(self, driver: RunDriver) -> bool: ...
    def slot_freed(self, task: asyncio.Task) -> None: ...

    # listeners: what the driver tells, and how a driver ends
    def stream(self, run_id: str, action_id: str, token: str) -> None: ...
    def raised(self, run_id: str, raised: InterruptRaised) -> None: ...
    def lost(self, run_id: str, why: str) -> None: ...
    def finished(self, driver: RunDriver) -> None: ...

    # the approvals policy's automatic decisions (a headless `--approve` mode)
    def auto_resolve(self, raised: InterruptRaised) -> InterruptResolved | None: ...

    # child runs
    async def new_child_id(self, parent_run_id: str) -> str: ...
    async def start(
        self,
        graph_name: str,
        input: Any = None,
        *,
        labels: dict[str, str] | None = None,
        run_id: str | None = None,
        parent: tuple[str, int] | None = None,
        lineage: str | None = None,
    ) -> str: ...
    async def child_status(self, run_id: str) -> RunInfo | None: ...
    async def child_output(self, run_id: str) -> Any: ...
