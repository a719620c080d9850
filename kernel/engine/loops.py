"""The runtime's two background loops: signals (commands other processes leave in the log for the
runs this one owns) and the renewal of this process's leases."""

from __future__ import annotations

import asyncio

from .. import signals
from ..errors import BadSignal, VigilError

__all__ = ["Loops"]


def _storable(text: str) -> str:
    """A message that SQLite can store as text (a lone surrogate from a row would not be)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class Loops:
    """Mixed into Runtime: `store`, `owner`, `drivers`, `_signal_interval`, `_lease_ns`, `_tell`,
    the decisions (`resolve`, `cancel`, `pause`, `unpause`) and `_wake` come from it."""

    async def _signal_loop(self) -> None:
        # Signals are rows anyone with the file can write: one that cannot be read or applied
        # is refused with the reason and the loop goes on; nothing in a row may stop it.
        while True:
            await asyncio.sleep(self._signal_interval)
            try:
                pending = await self.store.pending_signals(self.owner)
            except Exception as exc:
                self._tell("error", "", f"cannot read signals: {exc}")
                continue
            for signal in pending:
                try:
                    outcome = await self._apply(signal)
                except Exception as exc:  # the store failed (or a bug): still never the loop's end
                    outcome = f"error: not applied: {type(exc).__name__}: {exc}"
                try:
                    await self.store.finish_signal(signal.id, _storable(outcome))
                except Exception as exc:
                    self._tell("error", signal.run_id, f"cannot record the outcome of signal {signal.id}: {exc}")

    async def _apply(self, signal: signals.Signal) -> str:
        try:
            body, actor = signals.parse(signal)
        except BadSignal as exc:
            return f"error: refused: {exc}"
        try:
            if isinstance(body, signals.ResolveBody):
                await self.resolve(
                    signal.run_id, body.interrupt_id, body.decision, body.value,
                    payload_hash=body.payload_hash, actor=actor, always=body.always,
                )
            elif isinstance(body, signals.CancelBody):
                await self.cancel(signal.run_id, body.reason, actor)
            elif isinstance(body, signals.PauseBody):
                await self.pause(signal.run_id, body.reason, actor)
            elif isinstance(body, signals.UnpauseBody):
                await self.unpause(signal.run_id, actor)
            else:
                await self._wake(signal.run_id)
        except VigilError as exc:
            return f"error: {exc}"
        return "ok"

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self._lease_ns / 3e9)
            if self.drivers:
                try:
                    await self.store.renew(self.owner, self._lease_ns)
                except VigilError as exc:
                    self._tell("error", "", str(exc))
