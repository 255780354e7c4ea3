"""The one shape of a domain refusal: a review reason code, and a detail a person can act on."""
from __future__ import annotations


class Refusal(Exception):
    """`reason` is the review (or API error) code; `detail` names what to fix, never a customer's data."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
