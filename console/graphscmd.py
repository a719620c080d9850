"""`vigil graphs`: the registered graphs, which tools need approval and what runs at once."""

from __future__ import annotations

import argparse

import msgspec

from .cmdargs import _registry
from .commands import _out

_json = msgspec.json.Encoder()


async def cmd_graphs(args: argparse.Namespace) -> int:
    for graph in _registry(args):
        # A tool with a policy (an MCP server's) is decided per call: listed here if a call
        # with no argument rule in play asks; its words below say the rest.
        approval = [
            t.name for t in graph.tools
            if (t.verdict({}).decision == "ask" if hasattr(t, "policy") else t.requires_approval)
        ]
        policies = {t.name: t.policy for t in graph.tools if hasattr(t, "policy")}
        limits = {t.name: t.limit.max_concurrency for t in graph.tools if t.limit is not None}
        if args.json:
            _out(_json.encode({
                "name": graph.name, "version": graph.version, "description": graph.description,
                "nodes": list(graph.nodes), "tools": [t.name for t in graph.tools],
                "requires_approval": approval, "policy": policies,
                "max_concurrency": graph.max_concurrency, "limits": limits,
            }))
        else:
            needs = f"  approval: {', '.join(approval)}" if approval else ""
            _out(f"{graph.name:<12} v{graph.version:<4} {graph.description}{needs}")
            for name, words in policies.items():
                _out(f"  {name}: {words}")
            caps = [f"{graph.max_concurrency} nodes"] * bool(graph.max_concurrency)
            caps += [f"{k} {n}" for k, n in limits.items()]
            if caps:  # what a worker's operator sizes against
                _out(f"  at once: {', '.join(caps)}")
    return 0
