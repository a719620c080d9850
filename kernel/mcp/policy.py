"""Who decides an MCP tool call: the server's annotations, overridden by the operator's file.

    # ~/.config/vigil/approvals.toml   (or $XDG_CONFIG_HOME/vigil/approvals.toml)
    [[rule]]
    server = "git"            # globs on the server's name and the tool's MCP name ("*" if left out)
    tool = "git_commit"
    decision = "ask"          # ask | auto | deny
    [[rule]]
    server = "fs"
    tool = "write_file"
    args = { path = "/tmp/*" }  # only calls whose arguments match these globs
    decision = "auto"
    [[rule]]
    tool = "*_reset"
    idempotent = true         # re-run after a crash instead of asking whether it ran

The first rule that matches a call and names a decision decides it. Without one, the
annotations do: readOnlyHint -> auto, anything else -> ask (the MCP defaults make an
unannotated tool destructive). Annotations come from the server, which may not be trusted: the
file is how an operator says otherwise.
"""

from __future__ import annotations

import fnmatch
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VigilError

__all__ = ["Rule", "Policy", "Verdict", "policy_path", "load_policy", "DECISIONS"]

DECISIONS = ("ask", "auto", "deny")


def policy_path() -> Path:
    """The operator's file, where console/config.py keeps the console's settings."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "vigil" / "approvals.toml"


@dataclass(frozen=True)
class Rule:
    server: str = "*"
    tool: str = "*"
    decision: str | None = None
    idempotent: bool | None = None
    args: dict[str, str] = field(default_factory=dict)
    where: str = ""  # "approvals.toml rule 2", for the reason a decision gives

    def names_match(self, server: str, tool: str) -> bool:
        return fnmatch.fnmatchcase(server, self.server) and fnmatch.fnmatchcase(tool, self.tool)

    def matches(self, server: str, tool: str, args: dict[str, Any]) -> bool:
        if not self.names_match(server, tool):
            return False
        # An argument the call does not carry never matches: a rule about paths must not
        # apply to a call that names none.
        return all(
            name in args and fnmatch.fnmatchcase(_text(args[name]), pattern)
            for name, pattern in self.args.items()
        )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Verdict:
    decision: str  # ask | auto | deny
    why: str


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...] = ()
    source: str = ""

    def decide(self, server: str, tool: str, annotations: dict[str, Any], args: dict[str, Any]) -> Verdict:
        for rule in self.rules:
            if rule.decision is not None and rule.matches(server, tool, args):
                return Verdict(rule.decision, rule.where)
        return default_verdict(annotations)

    def idempotent(self, server: str, tool: str, annotations: dict[str, Any]) -> tuple[bool, str]:
        for rule in self.rules:
            if rule.idempotent is not None and rule.names_match(server, tool):
                return rule.idempotent, rule.where
        # A read changes nothing, so running it again cannot do anything twice (the MCP spec
        # gives idempotentHint meaning only for tools that are not read-only).
        if annotations.get("readOnlyHint"):
            return True, "readOnlyHint"
        if annotations.get("idempotentHint"):
            return True, "idempotentHint"
        return False, "not idempotentHint"

    def describe(self, server: str, tool: str, annotations: dict[str, Any]) -> str:
        """The effective policy in words, for `vigil graphs`: the decision for a call with no
        argument rules in play, and any rule that depends on the arguments."""
        verdict = self.decide(server, tool, annotations, {})
        idem, idem_why = self.idempotent(server, tool, annotations)
        parts = [f"{verdict.decision} ({verdict.why})"]
        for rule in self.rules:
            if rule.args and rule.decision is not None and rule.names_match(server, tool):
                cond = ", ".join(f"{k}={v}" for k, v in rule.args.items())
                parts.append(f"{rule.decision} if {cond} ({rule.where})")
        parts.append(("idempotent" if idem else "in doubt after a crash") + f" ({idem_why})")
        return "; ".join(parts)


def default_verdict(annotations: dict[str, Any]) -> Verdict:
    if annotations.get("readOnlyHint"):
        return Verdict("auto", "readOnlyHint")
    if annotations.get("destructiveHint", True):
        return Verdict("ask", "destructiveHint" if "destructiveHint" in annotations else "no annotations")
    return Verdict("ask", "not readOnlyHint")


def parse_policy(data: dict[str, Any], source: str) -> Policy:
    rules = []
    unknown = set(data) - {"rule"}
    if unknown:
        raise VigilError(f"{source}: unknown key {sorted(unknown)[0]!r} (expected [[rule]] tables)")
    for i, raw in enumerate(data.get("rule", []), 1):
        where = f"{Path(source).name} rule {i}"
        if not isinstance(raw, dict):
            raise VigilError(f"{where}: a rule is a table")
        extra = set(raw) - {"server", "tool", "decision", "idempotent", "args"}
        if extra:
            raise VigilError(f"{where}: unknown key {sorted(extra)[0]!r}")
        decision = raw.get("decision")
        if decision is not None and decision not in DECISIONS:
            raise VigilError(f"{where}: decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
        idempotent = raw.get("idempotent")
        if idempotent is not None and not isinstance(idempotent, bool):
            raise VigilError(f"{where}: idempotent must be true or false")
        args = raw.get("args", {})
        if not isinstance(args, dict) or not all(isinstance(v, str) for v in args.values()):
            raise VigilError(f"{where}: args maps argument names to glob strings")
        if args and idempotent is not None:
            # Whether a crash leaves a tool in doubt is a property of the tool, not of one call.
            raise VigilError(f"{where}: idempotent cannot depend on args")
        if decision is None and idempotent is None:
            raise VigilError(f"{where}: a rule needs a decision or idempotent")
        for key in ("server", "tool"):
            if not isinstance(raw.get(key, "*"), str):
                raise VigilError(f"{where}: {key} is a glob string")
        rules.append(Rule(
            server=raw.get("server", "*"), tool=raw.get("tool", "*"), decision=decision,
            idempotent=idempotent, args=dict(args), where=where,
        ))
    return Policy(tuple(rules), source)


def load_policy(path: Path | None = None) -> Policy:
    """The operator's rules; no file is no rules. A file that is there but wrong stops the
    workflow from registering: guessing would mean running calls the operator meant to stop."""
    path = path or policy_path()
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return Policy()
    except tomllib.TOMLDecodeError as exc:
        raise VigilError(f"{path} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VigilError(f"cannot read {path}: {exc}") from None
    return parse_policy(data, str(path))
