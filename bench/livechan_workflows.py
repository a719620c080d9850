"""The live-channel bench's agent: a scripted model that streams VIGIL_LIVEBENCH_TOKENS words,
one every VIGIL_LIVEBENCH_DELAY seconds (50 a second by default, a fast hosted model's pace)."""

from __future__ import annotations

import os

from kernel.agents.agent import agent_graph
from kernel.agents.models.scripted import ScriptedModel, reply

TOKENS = int(os.environ.get("VIGIL_LIVEBENCH_TOKENS", "300"))
DELAY = float(os.environ.get("VIGIL_LIVEBENCH_DELAY", "0.02"))

_model = ScriptedModel("livebench", lambda messages: reply(" ".join(f"w{i}" for i in range(TOKENS))),
                       token_delay=DELAY)
GRAPHS = [agent_graph("livebench", model=_model, tools=[], system="stream")]
INPUT = {"messages": [{"role": "user", "content": "go"}]}
