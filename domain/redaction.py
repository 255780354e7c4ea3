"""Mask card numbers, US social security numbers and configured patterns in outgoing text.

The guide's redaction strategy: whatever reaches a customer (subject, body, SMS, postal
job) may carry text that came from a call (notes, transcripts, an ERP's line item), so
every outgoing text passes through here just before it leaves.

A card number is 12-19 digits, contiguous or in groups of 3-6 separated by single spaces
or dashes, that passes the Luhn check and is not part of a longer number (a phone number
written with `+`, an amount with decimals). At most the first 6 and last 4 digits stay
(PCI DSS); shorter numbers keep only the last 4. Digit runs that fail Luhn stay intact:
invoice numbers, phone numbers and amounts must still read right.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_RUN = re.compile(r"(?<![\d+.,/])\d+(?:[ -]\d+)*(?![.,]\d)")
# 12 digits with at most single spaces or dashes between them: no card number without one
_CANDIDATE = re.compile(r"\d(?:[ -]?\d){11}")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d-])")
SSN_MASK = "***-**-****"
EXTRA_MASK = "[redacted]"


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_shaped(groups: list[str], seps: list[str]) -> bool:
    """Contiguous, or groups of 3-6 digits with one kind of separator (4-4-4-4, 4-6-5 …)."""
    if len(groups) == 1:
        return True
    return len(set(seps)) == 1 and all(3 <= len(g) <= 6 for g in groups)


def _mask(groups: list[str]) -> list[str]:
    n = sum(len(g) for g in groups)
    keep_head = 6 if n >= 15 else 0
    out, seen = [], 0
    for g in groups:
        chars = []
        for c in g:
            chars.append(c if seen < keep_head or seen >= n - 4 else "*")
            seen += 1
        out.append("".join(chars))
    return out


def _mask_run(run: str) -> str:
    """The longest card-shaped, Luhn-valid windows of consecutive digit groups, left first."""
    groups = re.split(r"[ -]", run)
    seps = re.findall(r"[ -]", run)
    i = 0
    while i < len(groups):
        for j in range(len(groups), i, -1):
            window = groups[i:j]
            digits = "".join(window)
            whole = len(window) == len(groups) or len(window) == 1
            # a part of a longer run only from 15 digits: fewer would match by chance too often
            if (12 if whole else 15) <= len(digits) <= 19 and _card_shaped(window, seps[i:j - 1]) \
                    and luhn_ok(digits):
                groups[i:j] = _mask(window)
                i = j
                break
        else:
            i += 1
    out = [groups[0]]
    for sep, g in zip(seps, groups[1:]):
        out += [sep, g]
    return "".join(out)


def _cards(text: str) -> str:
    if not _CANDIDATE.search(text):  # most texts: amounts, dates and numbers too short to be a card
        return text
    return _RUN.sub(lambda m: _mask_run(m.group(0)) if len(m.group(0)) >= 12 else m.group(0), text)


@dataclass(frozen=True)
class Redactor:
    extra: tuple[re.Pattern[str], ...] = field(default_factory=tuple)

    @classmethod
    def with_patterns(cls, patterns: Iterable[str]) -> Redactor:
        """Raises ValueError naming the pattern that does not compile."""
        compiled = []
        for i, p in enumerate(patterns, start=1):
            try:
                compiled.append(re.compile(p))
            except re.error as e:
                raise ValueError(f"redaction pattern {i} does not compile: {e}") from None
        return cls(tuple(compiled))

    def __call__(self, text: str) -> str:
        text = _cards(text)
        text = _SSN.sub(SSN_MASK, text)
        for p in self.extra:
            text = p.sub(EXTRA_MASK, text)
        return text


redact = Redactor()
