"""Exponential backoff with full jitter (AWS architecture blog), capped; Retry-After wins."""
from __future__ import annotations

import random


def full_jitter(attempt: int, base: float, cap: float, rand: random.Random | None = None) -> float:
    """A delay in [0, min(cap, base * 2**attempt)); attempt counts from 0."""
    r = rand or random
    return r.uniform(0, min(cap, base * (2 ** min(attempt, 32))))


def next_delay(attempt: int, base: float, cap: float, retry_after: float | None = None,
               rand: random.Random | None = None) -> float:
    """The wait before the next attempt: jittered backoff, never shorter than Retry-After."""
    delay = full_jitter(attempt, base, cap, rand)
    if retry_after is not None:
        delay = max(delay, min(retry_after, 24 * 3600.0))
    return delay
