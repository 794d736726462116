"""Booleans are not numbers: ``true`` where a payload field wants a number is an error.

Pydantic's lax mode reads ``true`` as ``1`` for ``int`` and ``float`` fields, so
``{"seconds": true}`` would run a job for one second. A job type's input is
checked against its JSON schema (nested models, lists, unions and ``$ref``s
included) before the model validates it; a payload without a boolean anywhere,
the usual case, costs one walk over its values.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel

_NUMBERS = frozenset({"integer", "number"})


def bool_errors(model: type[BaseModel], payload: Any) -> list[dict[str, Any]]:
    """Field errors (``{"field", "message", "type"}``) for booleans given as numbers."""
    if not _holds_bool(payload):
        return []
    schema = _schema(model)
    errors: list[dict[str, Any]] = []
    _walk(schema, schema.get("$defs", {}), payload, (), errors)
    return errors


@functools.cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def _holds_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, dict):
        return any(_holds_bool(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_bool(v) for v in value)
    return False


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _resolve(defs.get(ref.removeprefix("#/$defs/"), {}), defs)
    return node


def _branches(node: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives a value may match (``anyOf`` / ``oneOf``), resolved."""
    options = node.get("anyOf") or node.get("oneOf")
    if isinstance(options, list):
        return [branch for option in options for branch in _branches(_resolve(option, defs), defs)]
    return [node]


def _types(node: dict[str, Any]) -> set[str]:
    kind = node.get("type")
    if isinstance(kind, list):
        return set(kind)
    return {kind} if isinstance(kind, str) else set()


def _walk(
    node: dict[str, Any],
    defs: dict[str, Any],
    value: Any,
    path: tuple[str, ...],
    errors: list[dict[str, Any]],
) -> None:
    branches = _branches(_resolve(node, defs), defs)
    kinds = [_types(branch) for branch in branches]
    if isinstance(value, bool):
        untyped = any(not k for k in kinds)
        wants_number = any(k & _NUMBERS for k in kinds)
        if wants_number and not untyped and not any("boolean" in k for k in kinds):
            errors.append(
                {
                    "field": ".".join(path),
                    "message": "Input should be a number, not a boolean",
                    "type": "bool_not_number",
                }
            )
        return
    for branch, kind in zip(branches, kinds, strict=True):
        if isinstance(value, dict) and ("object" in kind or "properties" in branch):
            properties = branch.get("properties", {})
            extra = branch.get("additionalProperties")
            for name, item in value.items():
                child = properties.get(name, extra if isinstance(extra, dict) else None)
                if child is not None:
                    _walk(child, defs, item, (*path, str(name)), errors)
            return
        if isinstance(value, list) and "array" in kind:
            items = branch.get("items")
            if isinstance(items, dict):
                for index, item in enumerate(value):
                    _walk(items, defs, item, (*path, str(index)), errors)
            return
