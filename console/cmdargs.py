"""What the run commands make of their arguments: the registry `--workflows` names, and JSON
given on the command line (one clear error, never a traceback, for a bad one)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from kernel.errors import VigilError
from kernel.registry import Registry

from .workflows import default_registry


def _registry(args: argparse.Namespace) -> Registry:
    return default_registry(args.workflows)


def _parse_json(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except RecursionError:
        raise VigilError(f"{what} is not valid JSON: it is nested too deeply") from None
    except ValueError as exc:
        raise VigilError(f"{what} is not valid JSON: {exc}") from None
