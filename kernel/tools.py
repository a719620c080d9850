"""Tools: typed Python functions whose JSON schema comes from their type hints.

    @tool(requires_approval=lambda args: args["amount"] > 50)
    async def refund(order: str, amount: float, reason: str = "") -> dict:
        "Refund an order."
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, get_type_hints

import msgspec

from .errors import ToolError, ToolInputError, ToolRejected
from .limits import Limit
from .secrets import reveal, rewrap, unwrap

__all__ = ["Tool", "tool", "close_tools", "ToolError", "ToolInputError", "ToolRejected"]


class Tool:
    limit: Limit | None = None  # see __init__; a subclass that skips it (McpTool) has none

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        requires_approval: bool | Callable[[dict[str, Any]], bool] = False,
        idempotent: bool = False,
        max_concurrency: int | None = None,
        limit: Limit | None = None,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.description = (description or inspect.getdoc(fn) or "").strip()
        self.requires_approval = requires_approval
        self.idempotent = idempotent
        # Calls of this tool running at once in this process, every run together (a worker with
        # 100 runs must not fire 100 requests at one API). `limit` shares one line between tools.
        if limit is None and max_concurrency is not None:
            limit = Limit(max_concurrency, name=f"tool {self.name}")
        self.limit = limit
        hints = get_type_hints(fn)
        fields = []
        self._wants_key = False
        for p in inspect.signature(fn).parameters.values():
            if p.name == "idempotency_key":
                self._wants_key = True
                continue
            annotation = hints.get(p.name, Any)
            if p.default is inspect.Parameter.empty:
                fields.append((p.name, annotation))
            else:
                fields.append((p.name, annotation, p.default))
        self._args = msgspec.defstruct(
            f"{self.name}_args", fields, kw_only=True, forbid_unknown_fields=True
        )

    def __repr__(self) -> str:
        return f"<Tool {self.name}>"

    @property
    def schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments, inline (what model APIs expect). Built once: every
        model call offers it, and msgspec's schema generation was a steady share of a busy
        worker's CPU (bench/NOTES.md, many live runs); each caller gets its own top-level dict."""
        body = getattr(self, "_schema_body", None)
        if body is None:
            (ref,), components = msgspec.json.schema_components([self._args])
            body = dict(components[self._args.__name__])
            body.pop("title", None)
            if components.keys() - {self._args.__name__}:
                body["$defs"] = {k: v for k, v in components.items() if k != self._args.__name__}
            self._schema_body = body
        return dict(body)

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.schema}

    def validate(self, args: Any) -> dict[str, Any]:
        """The arguments converted to the declared types, or ToolInputError saying why not."""
        if not isinstance(args, dict):
            raise ToolInputError(f"{self.name}: arguments must be an object, not {type(args).__name__}")
        # Secrets are checked as the strings they hold and stay wrapped until the tool runs.
        plain, secrets = unwrap(args)
        try:
            return rewrap(msgspec.to_builtins(msgspec.convert(plain, self._args)), secrets)
        except msgspec.ValidationError as exc:
            raise ToolInputError(f"{self.name}: {exc}") from None

    def needs_approval(self, args: dict[str, Any]) -> bool:
        rule = self.requires_approval
        return bool(rule(args)) if callable(rule) else bool(rule)

    async def __call__(self, args: dict[str, Any], idempotency_key: str) -> Any:
        kwargs = reveal(dict(args))  # the one place a Secret's value is handed over
        if self._wants_key:
            kwargs["idempotency_key"] = idempotency_key
        result = self.fn(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    requires_approval: bool | Callable[[dict[str, Any]], bool] = False,
    idempotent: bool = False,
    max_concurrency: int | None = None,
    limit: Limit | None = None,
) -> Any:
    """Make a Tool from a function; usable bare (`@tool`) or with options."""

    def make(f: Callable[..., Any]) -> Tool:
        return Tool(f, name=name, requires_approval=requires_approval, idempotent=idempotent,
                    max_concurrency=max_concurrency, limit=limit)

    return make(fn) if fn is not None else make


async def close_tools(tools: Iterable[Any]) -> None:
    """Stop what tools keep running between calls (an MCP server's process); the Runtime calls
    this when it closes. A plain function tool keeps nothing."""
    for t in tools:
        close = getattr(t, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:  # noqa: BLE001 - closing one must not stop the others closing
                pass
