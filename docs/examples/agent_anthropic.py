# docs/examples/agent_anthropic.py
"""The agent loop on Anthropic's Messages API. The kernel reads only the API key from the
environment (ANTHROPIC_API_KEY); this file reads the base URL and model name itself."""

import os

from kernel.agents.agent import agent_graph
from kernel.agents.models.anthropic import AnthropicMessages
from kernel.tools import tool


@tool(idempotent=True)
async def weather(city: str) -> dict:
    """Current weather for a city."""
    return {"city": city, "sky": "sunny", "celsius": 21}


model = AnthropicMessages(
    os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-5"),
    base_url=os.environ.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
    key_env="ANTHROPIC_API_KEY",
    max_tokens=1024,
)

GRAPHS = [agent_graph("weather_anthropic", model=model, tools=[weather], system="You report the weather.")]
SAMPLE_INPUT = {"messages": [{"role": "user", "content": "Weather in Oslo?"}]}
