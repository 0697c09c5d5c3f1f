"""Kubernetes-style conditions as pure functions (after apimachinery's meta.SetStatusCondition)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..names import FALSE as FALSE
from ..names import TRUE as TRUE
from ..names import UNKNOWN as UNKNOWN


@dataclass(frozen=True)
class Cond:
    """A desired condition, before times and generations are attached."""

    type: str
    status: str
    reason: str
    message: str = ""


def set_condition(
    existing: list[dict[str, Any]], desired: Cond, now: str, generation: int | None
) -> list[dict[str, Any]]:
    """Upsert by type; lastTransitionTime changes only when the status flips."""
    result = [dict(c) for c in existing]
    for current in result:
        if current.get("type") != desired.type:
            continue
        if current.get("status") != desired.status or not current.get("lastTransitionTime"):
            current["lastTransitionTime"] = now
        current.update(status=desired.status, reason=desired.reason, message=desired.message)
        if generation is not None:
            current["observedGeneration"] = generation
        return result
    entry: dict[str, Any] = {
        "type": desired.type,
        "status": desired.status,
        "reason": desired.reason,
        "message": desired.message,
        "lastTransitionTime": now,
    }
    if generation is not None:
        entry["observedGeneration"] = generation
    result.append(entry)
    return result


def set_conditions(
    existing: list[dict[str, Any]], desired: list[Cond], now: str, generation: int | None
) -> list[dict[str, Any]]:
    result = existing
    for cond in desired:
        result = set_condition(result, cond, now, generation)
    return result


def find(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)
