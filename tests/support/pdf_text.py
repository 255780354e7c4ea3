"""Text out of a PDF by glyph position, for right-to-left checks (pypdf reads RTL in visual order).

`lines(pdf)` gives each text line (pdfminer's layout analysis) as a reader reads it: its
glyphs sorted right to left for an RTL page, a space where the glyphs leave a gap (typst
draws no space glyphs), then each left-to-right word (Latin, digits, an invoice number)
turned back to its own order, the Unicode bidi rule for a number inside Arabic.
`glyphs(pdf)` gives (x, y, text) of every glyph, to check where something is on the page.
"""
from __future__ import annotations

import io
import re

from pdfminer.high_level import extract_pages
from pdfminer.layout import LTChar


def _chars(o) -> list[LTChar]:
    out: list[LTChar] = []

    def walk(x) -> None:
        if isinstance(x, LTChar):
            if x.x1 > x.x0:  # typst adds zero-width glyphs for marks; they carry no letter of their own
                out.append(x)
        elif hasattr(x, "__iter__"):
            for y in x:
                walk(y)

    walk(o)
    return out


def _page(pdf: bytes, page: int):
    for n, layout in enumerate(extract_pages(io.BytesIO(pdf))):
        if n == page:
            return layout
    raise IndexError(page)


def glyphs(pdf: bytes, page: int = 0) -> list[tuple[float, float, str]]:
    return [(c.x0, c.y0, c.get_text()) for c in _chars(_page(pdf, page))]


_STRONG_LTR = r"[0-9A-Za-z\u00C0-\u024F\u0370-\u04FF]"
# a left-to-right run inside RTL text: from a Latin letter or digit to the last one before Arabic resumes
_LTR_RUN = re.compile(_STRONG_LTR + r"(?:[^\u0590-\u08FF]*" + _STRONG_LTR + ")?")


def _rows(chars: list[LTChar]) -> list[list[LTChar]]:
    """Glyphs on one baseline (the text matrix's y: fonts differ in their boxes, not in it)."""
    rows: dict[int, list[LTChar]] = {}
    for c in chars:
        rows.setdefault(round(c.matrix[5]), []).append(c)
    return [rows[y] for y in sorted(rows, reverse=True)]


def lines(pdf: bytes, rtl: bool = True, page: int = 0) -> list[str]:
    return [text for _, _, text in segments(pdf, rtl, page)]


def segments(pdf: bytes, rtl: bool = True, page: int = 0) -> list[tuple[float, float, str]]:
    """(x where the text starts: its right edge for RTL, baseline y, text) of every run of text."""
    out = []
    for row in _rows(_chars(_page(pdf, page))):
        chars = sorted(row, key=lambda c: -c.x1 if rtl else c.x0)
        runs, text, prev = [], "", None
        start = None
        for c in chars:
            if prev is not None:
                gap = (prev.x0 - c.x1) if rtl else (c.x0 - prev.x1)
                if gap > 0.6 * c.size:  # another column of the layout (a word space is about 0.25)
                    runs.append((start, text))
                    text, start = "", None
                elif gap > 0.15 * c.size:
                    text += " "
            if start is None:
                start = c.x1 if rtl else c.x0
            text += c.get_text()
            prev = c
        runs.append((start, text))
        for x, seg in runs:
            if rtl:  # LTR runs inside RTL text were laid out left to right: read them back in their order
                seg = _LTR_RUN.sub(lambda m: m.group(0)[::-1], seg)
            seg = re.sub(r"\s+", " ", seg).strip()
            if seg:
                out.append((x, round(row[0].matrix[5], 1), seg))
    return out
