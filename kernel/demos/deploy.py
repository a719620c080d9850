"""Deploy pipeline: build, a flaky test step that retries, a durable canary wait, then a
production deploy that needs approval."""

from __future__ import annotations

import asyncio

from ..graph import END, START, Graph, RetryPolicy
from ..tools import ToolError, tool

_attempts: dict[str, int] = {}


@tool(idempotent=True)
async def build(service: str, ref: str) -> dict:
    """Build and push an image."""
    await asyncio.sleep(0.5)
    return {"image": f"registry.local/{service}:{ref[:7]}", "size_mb": 182}


@tool(idempotent=True)
async def run_tests(image: str, idempotency_key: str) -> dict:
    """Run the integration suite. Flaky: its first run of each request times out."""
    _attempts[idempotency_key] = _attempts.get(idempotency_key, 0) + 1
    await asyncio.sleep(0.4)
    if _attempts[idempotency_key] == 1:
        raise ToolError("integration suite timed out talking to the test database", retryable=True)
    return {"passed": 412, "failed": 0, "image": image}


@tool(requires_approval=True)
async def deploy(image: str, environment: str) -> dict:
    """Roll an image out to an environment."""
    await asyncio.sleep(0.6)
    return {"environment": environment, "image": image, "replicas": 6}


graph = Graph(
    "deploy", tools=[build, run_tests, deploy],
    description="a deploy pipeline with a flaky step that retries and a durable wait",
    input_schema={"service": str, "ref": str, "bake_seconds": (float, 3.0)},
)


@graph.node()
async def build_image(state: dict, ctx) -> dict:
    return {"build": await ctx.tool("build", service=state["service"], ref=state["ref"])}


@graph.node(retry=RetryPolicy(attempts=3, backoff="fixed", initial=1.0, jitter=False))
async def test(state: dict, ctx) -> dict:
    return {"tests": await ctx.tool("run_tests", image=state["build"]["image"])}


@graph.node()
async def canary(state: dict, ctx) -> dict:
    await ctx.sleep(state.get("bake_seconds", 3))  # durable: a restart wakes at the same time
    return {"canary": "healthy"}


@graph.node()
async def release(state: dict, ctx) -> dict:
    return {"release": await ctx.tool("deploy", image=state["build"]["image"], environment="production")}


graph.add_edge(START, "build_image")
graph.add_edge("build_image", "test")
graph.add_edge("test", "canary")
graph.add_edge("canary", "release")
graph.add_edge("release", END)

SAMPLE_INPUT = {"service": "checkout", "ref": "9f2c1e7a4b", "bake_seconds": 3}
