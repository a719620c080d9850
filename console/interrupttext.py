"""An interrupt written for a shell: what it asks, and the exact command that answers it (its id
and payload hash, so nobody answers blind)."""

from __future__ import annotations

import json
from typing import Any

from kernel.events import InterruptRaised


def _how_to_answer(run_id: str, raised: InterruptRaised) -> str:
    """Everything a shell approver needs to answer exactly this interrupt, never blind."""
    where = f"vigil {{}} {run_id} --interrupt {raised.interrupt_id} --hash {raised.payload_hash[:12]}"
    if raised.kind == "approval":
        hint = f"{where.format('approve')}   (or reject --reason ..., approve --edit JSON)"
    elif raised.kind == "input":
        hint = f"{where.format('approve')} --answer VALUE   (or reject)"
    else:
        hint = f"{where.format('approve')} [--answer OUTPUT]   (retry; or reject to fail the run)"
    lines = [
        f"waiting for a human: {raised.title}",
        f"interrupt {raised.interrupt_id}  payload hash {raised.payload_hash}",
        *_what_it_asks(raised).splitlines(),
        hint,
    ]
    return "\n".join(f"    {line}" for line in lines)


def _what_it_asks(raised: InterruptRaised) -> str:
    payload = raised.payload
    if raised.kind == "approval" and isinstance(payload, dict):
        return f"tool {payload.get('tool')} with {_dumps(payload.get('args'))}"
    if raised.kind == "input" and isinstance(payload, dict) and isinstance(payload.get("choices"), list):
        return f"choices: {', '.join(map(str, payload['choices']))}\n{_dumps(payload)}"
    return _dumps(payload)


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
