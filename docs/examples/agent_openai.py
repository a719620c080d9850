# docs/examples/agent_openai.py
"""The agent loop on any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama,
llama.cpp server). The kernel reads only the API key from the environment (OPENAI_API_KEY);
this file reads the base URL and model name from the environment itself."""

import os

from kernel.agents.agent import agent_graph
from kernel.agents.models.openai import OpenAIChat
from kernel.tools import tool


@tool(idempotent=True)
async def weather(city: str) -> dict:
    """Current weather for a city."""
    return {"city": city, "sky": "sunny", "celsius": 21}


model = OpenAIChat(
    os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
    base_url=os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"),
    key_env="OPENAI_API_KEY",     # None for a local server that wants no key
)

GRAPHS = [agent_graph("weather_openai", model=model, tools=[weather], system="You report the weather.")]
SAMPLE_INPUT = {"messages": [{"role": "user", "content": "Weather in Oslo?"}]}
