"""The fonts invoices are set in, from installed packages (nothing is downloaded at run time).

Noto Sans (fontpkg-noto-sans, SIL OFL) covers Latin, Greek and Cyrillic; Noto Sans CJK JP
(rinoh-typeface-notosanscjk, SIL OFL) is the fallback for Chinese, Japanese and Korean
names. The CJK package's module is never imported (it needs rinohtype); only its file is read.
"""
from __future__ import annotations

import importlib.resources
import importlib.util
from functools import lru_cache
from pathlib import Path

from domain.invoice_pdf import Fonts


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(spec.origin).parent if spec and spec.origin else None


@lru_cache(maxsize=1)
def fonts() -> Fonts:
    from fontTools.ttLib import TTFont

    regular = Path(str(importlib.resources.files("fontpkg_noto_sans") / "files" / "NotoSans[wdth,wght].ttf"))
    cjk_dir = _package_dir("rinoh_typeface_notosanscjk")
    fallback = cjk_dir / "notosanscjkjp-regular.otf" if cjk_dir else None
    with TTFont(str(regular), lazy=True) as f:
        coverage = frozenset(f.getBestCmap())
    return Fonts(regular=regular, fallback=fallback if fallback and fallback.exists() else None, coverage=coverage)
