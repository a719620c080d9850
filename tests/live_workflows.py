"""An agent whose model is the loopback streaming provider at VIGIL_TEST_PROVIDER (tests/
fake_providers.py), for the live channel tests: a `vigil worker` drives it in a subprocess."""

from __future__ import annotations

import os

from kernel.agents.agent import agent_graph
from kernel.agents.models.openai import OpenAIChat

_URL = os.environ.get("VIGIL_TEST_PROVIDER", "http://127.0.0.1:9")

GRAPHS = [agent_graph("livechat", model=OpenAIChat("m", base_url=_URL + "/v1", key_env=None),
                      tools=[], system="Answer in a few words.")]
