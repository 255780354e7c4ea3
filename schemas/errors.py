"""Validation errors as field names and messages, never echoing the input (it may hold PII)."""
from __future__ import annotations

from pydantic import ValidationError


def field_errors(e: ValidationError) -> list[dict[str, str]]:
    out = []
    for err in e.errors(include_url=False, include_input=False, include_context=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(body)"
        out.append({"field": loc, "message": err["msg"]})
    return out


def summary(e: ValidationError) -> str:
    return "; ".join(f"{x['field']}: {x['message']}" for x in field_errors(e))
