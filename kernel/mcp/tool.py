"""An MCP server's tool as a vigil Tool: the engine records, replays and gates its calls like any
other; the policy (kernel.mcp.policy) sets whether a call asks first and whether a crash leaves
it in doubt."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ToolError, ToolInputError, ToolRejected
from ..secrets import reveal, unwrap
from ..tools import Tool

if TYPE_CHECKING:  # pragma: no cover
    from .server import McpServer

__all__ = ["McpTool"]


class McpTool(Tool):
    def __init__(self, server: "McpServer", listed: dict[str, Any]) -> None:
        # Not Tool.__init__: the schema comes from the server, not from a Python signature.
        self.server = server
        self.mcp_name = listed["name"]
        self.name = f"{server.prefix}{self.mcp_name}"
        self.description = listed["description"].strip()
        self.annotations = listed["annotations"]
        self._schema = listed["input_schema"]
        self._wants_key = False
        self.fn = self._call
        self.requires_approval = self._asks
        self.idempotent, _ = server.policy.idempotent(server.name, self.mcp_name, self.annotations)

    def __repr__(self) -> str:
        return f"<McpTool {self.name} of {self.server.name}>"

    @property
    def schema(self) -> dict[str, Any]:
        return dict(self._schema)

    @property
    def policy(self) -> str:
        return self.server.policy.describe(self.server.name, self.mcp_name, self.annotations)

    def verdict(self, args: dict[str, Any]) -> Any:
        plain, _ = unwrap(args)
        return self.server.policy.decide(self.server.name, self.mcp_name, self.annotations, plain)

    def _asks(self, args: dict[str, Any]) -> bool:
        return self.verdict(args).decision == "ask"

    def validate(self, args: Any) -> dict[str, Any]:
        if not isinstance(args, dict):
            raise ToolInputError(f"{self.name}: arguments must be an object, not {type(args).__name__}")
        import jsonschema  # the mcp SDK's own dependency; loaded only when a call is checked

        plain, _ = unwrap(args)
        try:
            jsonschema.validate(plain, self._schema)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path)
            raise ToolInputError(f"{self.name}: {where + ': ' if where else ''}{exc.message}") from None
        except jsonschema.SchemaError:
            pass  # the server's schema is its own business; the server checks the call itself
        return dict(args)

    async def aclose(self) -> None:
        await self.server.aclose()

    async def __call__(self, args: dict[str, Any], idempotency_key: str) -> Any:
        return await self._call(**reveal(dict(args)))

    async def _call(self, **args: Any) -> Any:
        verdict = self.server.policy.decide(self.server.name, self.mcp_name, self.annotations, args)
        if verdict.decision == "deny":
            # Checked when it runs, so an approver's edit cannot steer a call into a denied one.
            raise ToolRejected(f"{self.name} is denied by {verdict.why}")
        result = await self.server.call(self.mcp_name, args)
        output = _output(result)
        if result.is_error:
            raise ToolError(f"{self.name}: {output}")
        return output


def _output(result: Any) -> Any:
    """What the log records: the structured result if the tool gives one, else its text."""
    if result.structured_content is not None and not result.is_error:
        return result.structured_content
    parts = []
    for block in result.content:
        text = getattr(block, "text", None)
        if text is not None:
            parts.append(text)
        else:  # an image, audio, a resource: named, not stored in the log
            kind = getattr(block, "type", "content")
            mime = getattr(block, "mime_type", None) or getattr(block, "mimeType", "")
            parts.append(f"[{kind} {mime}]".replace(" ]", "]"))
    return "\n".join(parts)
