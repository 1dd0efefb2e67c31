"""The one-line messages of config errors: a value shown short, the key an error is about, a
did-you-mean for a misspelt key. Generic over the config model (experiments/config.py)."""

from __future__ import annotations

import difflib
import re
import typing
from typing import Any

from pydantic import BaseModel


def is_config_key(root: type[BaseModel], dotted: str) -> bool:
    """Whether `dotted` (e.g. "privacy.epsilon") names a key of the config model `root`."""
    model: Any = root
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return False
        model = fields[part].annotation
        # An optional section (`X | None`, e.g. faults.malicious, analytics) has X's keys.
        inner = [a for a in getattr(model, "__args__", ()) if a is not type(None)]
        if len(inner) == 1 and hasattr(inner[0], "model_fields"):
            model = inner[0]
    return True


def shown(value: Any, limit: int = 120) -> str:
    """repr() of a value for a one-line message: cut to `limit` characters (a value may be a
    list of thousands of items, or a name of megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _section_keys(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys the config section at `loc` (a path of keys) knows, [] if `loc` is no section."""
    model: Any = root
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return []
        annotation = fields[part].annotation
        # `Section | None`: the section's model
        model = next((a for a in (annotation, *typing.get_args(annotation)) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    fields = getattr(model, "model_fields", None)
    return list(fields) if fields else []


def unknown_key_hint(root: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """' (did you mean 'epsilon'?)' for a misspelt key at `loc`, else the keys its section knows."""
    known = _section_keys(root, loc[:-1])
    if not known:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    section = ".".join(str(p) for p in loc[:-1]) or "the top level"
    return shown(f" (keys of {section}: {', '.join(known)})", 400)[1:-1]


def describe(root: type[BaseModel], error: dict) -> str:
    """One line for a validation error of the config model `root`: key, problem, value."""
    key = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{shown(key, 200)[1:-1]}: unknown key{unknown_key_hint(root, tuple(error['loc']))}"
    if error["type"] == "literal_error" or not key:
        return f"{key + ': ' if key else ''}{message}" + ("" if not key else f" (got {shown(error['input'])})")
    return f"{key}: {message} (got {shown(error['input'])})"


def error_key(error: dict) -> str:
    """The dotted key an error is about: its location, or for a check across keys the key its
    message starts with ("data.path: ...")."""
    key = ".".join(str(part) for part in error["loc"])
    if key:
        return key
    match = re.match(r"(?:Value error, )?([A-Za-z_][\w.]*):", error["msg"])
    return match.group(1) if match else ""
