"""Human decisions and commands on a run, applied by the runtime that drives it: resolve an
interrupt, cancel, pause, unpause. Mixed into Runtime (as effects are into the driver); every
refusal says the true reason: the run ended, unknown id, already resolved, hash changed, not a
declared choice, owner alive elsewhere."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..errors import EncodeFailed, InterruptRefused, ToolInputError, VigilError
from ..events import (
    Actor,
    InterruptRaised,
    InterruptResolved,
    RunCancelled,
    RunCompleted,
    RunDiverged,
    RunFailed,
    RunPaused,
    RunResumed,
    ToolApprovedForRun,
)
from ..owner import current_actor, owner_alive
from ..projection import TERMINAL
from ..redact import recordable

if TYPE_CHECKING:  # pragma: no cover
    from .driver import RunDriver

__all__ = ["Decisions", "InterruptRefused", "DECISIONS", "choice_problem"]


def _recordable(value: Any, what: str) -> Any:
    """`value` as builtins with secrets redacted; refused if too deep to walk."""
    try:
        return recordable(value)
    except RecursionError:
        raise EncodeFailed(f"{what} is nested too deeply to record") from None

DECISIONS = {
    "approval": ("approve", "reject", "edit"),
    "input": ("answer", "reject"),
    "in_doubt": ("answer", "retry", "fail"),
}

def choice_problem(raised: InterruptRaised, value: Any) -> str | None:
    """Why `value` does not answer an input interrupt that declares `choices`, or None."""
    payload = raised.payload if isinstance(raised.payload, dict) else {}
    choices = payload.get("choices")
    if raised.kind != "input" or not isinstance(choices, list) or not choices or value in choices:
        return None
    return f"{value!r} is not one of the choices ({', '.join(map(str, choices))})"


_ENDED = {RunCompleted: "completed", RunFailed: "failed", RunCancelled: "cancelled", RunDiverged: "diverged"}


def _ended(run_id: str, status: str) -> InterruptRefused:
    return InterruptRefused(f"run {run_id} has ended ({status})")



class Decisions:
    """Mixed into Runtime: `drivers`, `store`, `owner`, `adopt`, `finished`, `_chore`, `_tell`,
    `_cancelling` and `_deciding` come from it."""

    async def _steerable(self, run_id: str) -> tuple[RunDriver, bool]:
        """The driver of a run this process may decide on, and whether it was adopted for it;
        refused with the true reason: the run ended, or its owner is alive elsewhere."""
        driver = self.drivers.get(run_id)
        if driver is not None:
            return driver, False
        info = await self.store.run(run_id)
        if info.status in TERMINAL:
            raise _ended(run_id, info.status)
        driver = await self.adopt(run_id, drive=False)
        if driver is None:
            info = await self.store.run(run_id)
            if info.status in TERMINAL:
                raise _ended(run_id, info.status)
            raise InterruptRefused(
                f"run {run_id} is driven by another process ({info.owner}); send it a signal"
            )
        return driver, True

    async def _let_go(self, run_id: str) -> None:
        """Give back a run adopted only to decide on it."""
        driver = self.drivers.get(run_id)
        if driver is not None and (driver.task is None or driver.task.done()):
            self.drivers.pop(run_id, None)
            await self.store.release([run_id], self.owner)

    def _check(
        self, driver: RunDriver, interrupt_id: str, decision: str, value: Any, payload_hash: str
    ) -> InterruptRaised:
        """Refuse a decision with the true reason, in this order: the run ended (or is being
        cancelled), no such interrupt, already resolved, hash changed, not a valid answer."""
        run_id = driver.run_id
        if driver.view.terminal is not None:
            raise _ended(run_id, _ENDED.get(type(driver.view.terminal), "ended"))
        if run_id in self._cancelling:
            raise InterruptRefused(f"run {run_id} is being cancelled")
        entry = driver.view.interrupts.get(interrupt_id)
        if entry is None:
            raise InterruptRefused(f"run {run_id} has no interrupt {interrupt_id!r}")
        raised, resolved = entry
        if resolved is not None:
            who = resolved.actor.user if resolved.actor else "someone"
            raise InterruptRefused(f"interrupt {interrupt_id} was already resolved ({resolved.decision} by {who})")
        if payload_hash != raised.payload_hash:
            raise InterruptRefused(
                f"interrupt {interrupt_id} changed since it was shown (payload hash changed: it is "
                f"now {raised.payload_hash[:12]}); look again"
            )
        if decision not in DECISIONS[raised.kind]:
            raise InterruptRefused(
                f"{decision!r} does not answer a {raised.kind} interrupt "
                f"(choose {', '.join(DECISIONS[raised.kind])})"
            )
        if decision == "answer" and (problem := choice_problem(raised, value)):
            raise InterruptRefused(problem)
        return raised

    async def resolve(
        self,
        run_id: str,
        interrupt_id: str,
        decision: str,
        value: Any = None,
        *,
        payload_hash: str,
        actor: Actor | None = None,
        always: bool = False,
        drive: bool = True,
    ) -> None:
        """Apply a human decision to exactly the interrupt (and payload) the human saw."""
        driver, adopted = await self._steerable(run_id)
        try:
            value = _recordable(value, "the value")
            raised = self._check(driver, interrupt_id, decision, value, payload_hash)
            actor = actor or current_actor()
            events: list[Any] = []
            if raised.kind == "approval" and decision == "edit":
                try:
                    value = driver.tool(raised.payload["tool"]).validate(value)
                except ToolInputError as exc:
                    raise InterruptRefused(f"the edited arguments do not fit: {exc}") from None
        except BaseException:
            if adopted:
                await self._let_go(run_id)
            raise
        events.append(InterruptResolved(
            interrupt_id=interrupt_id, decision=decision, value=value,
            payload_hash=payload_hash, actor=actor,
        ))
        if always and raised.kind == "approval" and decision in ("approve", "edit"):
            events.append(ToolApprovedForRun(tool=raised.payload["tool"], actor=actor))
        # Checked and posted with no await between: a cancel cannot slip in before the post.
        self._deciding[run_id] = self._deciding.get(run_id, 0) + 1
        try:
            done = driver.post(*events)
            if drive:
                driver.start()  # re-execution queues up behind the decision while it commits
                await driver.flush_until(done)
            else:
                await driver.flush_until(done)
                self.drivers.pop(run_id, None)
                await self.store.release([run_id], self.owner)
        finally:
            if self._deciding[run_id] == 1:
                del self._deciding[run_id]
            else:
                self._deciding[run_id] -= 1

    async def cancel(self, run_id: str, reason: str = "", actor: Actor | None = None) -> None:
        """Stop a run and record RunCancelled as its last event. Refused if it has ended, or
        while a decision on it is being committed (that one won the race)."""
        driver, adopted = await self._steerable(run_id)
        view = driver.view
        refusal = None
        if view.terminal is not None:
            refusal = _ended(run_id, _ENDED.get(type(view.terminal), "ended"))
        elif run_id in self._cancelling:
            refusal = InterruptRefused(f"run {run_id} is already being cancelled")
        elif self._deciding.get(run_id):
            refusal = InterruptRefused(
                f"run {run_id} is taking a decision on an interrupt right now; cancel again once it has"
            )
        if refusal is not None:
            if adopted:
                await self._let_go(run_id)
            raise refusal
        self._cancelling.add(run_id)
        try:
            if driver.task is not None and not driver.task.done():
                driver.task.cancel()  # stops in-flight effects; appends already queued still commit
                await asyncio.gather(driver.task, return_exceptions=True)
            await driver.flush()
            if view.terminal is not None:  # it ended on its own before the cancel reached it
                if self.drivers.get(run_id) is driver:
                    self.finished(driver)
                raise _ended(run_id, _ENDED.get(type(view.terminal), "ended"))
            await driver.emit(RunCancelled(reason=reason, actor=actor or current_actor()))
            await driver.flush()
        finally:
            self._cancelling.discard(run_id)
        self.finished(driver)
        for record in list(view.actions.values()):  # a cancelled run's children stop with it
            req = record.requested
            if req.kind == "child" and record.outcome is None and req.idempotency_key:
                self._chore(self._cancel_child(req.idempotency_key, run_id, actor))

    async def _cancel_child(self, child_id: str, parent_id: str, actor: Actor | None) -> None:
        reason = f"its parent run {parent_id} was cancelled"
        try:
            info = await self.store.run(child_id)
            if info.status in TERMINAL:
                return
            if child_id in self.drivers or not owner_alive(info.owner, info.lease_until_ns, info.seen_ns):
                await self.cancel(child_id, reason, actor)
            else:  # its owner lives elsewhere: ask it, as `vigil cancel` would
                await self.store.send_signal(child_id, "cancel", {"reason": reason}, current_actor())
        except VigilError as exc:
            self._tell("error", child_id, f"could not cancel it with its parent: {exc}")

    async def pause(self, run_id: str, reason: str = "", actor: Actor | None = None) -> None:
        """Stop the run at its next step boundary (the step under way finishes) until unpaused."""
        driver, adopted = await self._steerable(run_id)
        try:
            if driver.view.paused:
                raise InterruptRefused(f"run {run_id} is already paused")
            await driver.emit(RunPaused(reason=reason, actor=actor or current_actor()))
        finally:
            if adopted:  # taken only to record the pause: a paused run needs no driver here
                await self._let_go(run_id)

    async def unpause(self, run_id: str, actor: Actor | None = None, *, drive: bool = True) -> None:
        driver, adopted = await self._steerable(run_id)
        try:
            if not driver.view.paused:
                raise InterruptRefused(f"run {run_id} is not paused")
            await driver.emit(RunResumed(actor=actor or current_actor()))
        except BaseException:
            if adopted:
                await self._let_go(run_id)
            raise
        if drive or not adopted:  # a run this process already drove goes on here
            driver.start()
        else:  # taken only to record the unpause: released, a worker drives it on
            await self._let_go(run_id)

