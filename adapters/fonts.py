"""The fonts invoices are set in, from installed packages (nothing is downloaded at run time).

Noto Sans (fontpkg-noto-sans, SIL OFL) covers Latin, Greek and Cyrillic; Noto Sans CJK JP
(rinoh-typeface-notosanscjk, SIL OFL) is the fallback for Chinese, Japanese and Korean
names. The CJK package's module is never imported (it needs rinohtype); only its file is read.
"""
from __future__ import annotations

import importlib.resources
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

from domain.invoice_pdf import Fonts


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(spec.origin).parent if spec and spec.origin else None


def static_instance(variable: Path) -> Path:
    """Noto Sans Regular as a static font, built once from the variable font and cached.

    fpdf2 parses and subsets the embedded font for every PDF; the variable font (2 MB,
    with variation and layout tables callbill does not use, since it does no text shaping)
    made that most of a render's time and tripled the PDF's size. The static instance at
    weight 400, width 100, without layout tables and hinting, keeps every glyph and is
    built deterministically (same fontTools, same bytes). Any failure: the variable font.
    """
    import fontTools
    from fontTools import subset
    from fontTools.ttLib import TTFont
    from fontTools.varLib import instancer

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "callbill" / "fonts"
    target = cache / f"NotoSans-Regular-static-{variable.stat().st_size}-ft{fontTools.version}.ttf"
    if target.exists():
        return target
    try:
        cache.mkdir(parents=True, exist_ok=True)
        font = TTFont(str(variable), recalcTimestamp=False)
        opts = subset.Options()
        opts.layout_features = []
        opts.hinting = False
        opts.name_IDs = ["*"]
        opts.notdef_outline = True
        opts.drop_tables += ["GSUB", "GPOS", "GDEF", "STAT", "MVAR", "HVAR"]
        sub = subset.Subsetter(opts)
        sub.populate(unicodes=set(font.getBestCmap()))
        sub.subset(font)
        static = instancer.instantiateVariableFont(font, {"wght": 400, "wdth": 100})
        tmp = target.with_name(f".{target.name}.{os.getpid()}")
        static.save(str(tmp))
        os.replace(tmp, target)  # several workers may build it at once: the last rename wins
        return target
    except Exception:  # noqa: BLE001 - rendering must not depend on the optimisation
        return variable


@lru_cache(maxsize=1)
def fonts() -> Fonts:
    from fontTools.ttLib import TTFont

    variable = Path(str(importlib.resources.files("fontpkg_noto_sans") / "files" / "NotoSans[wdth,wght].ttf"))
    regular = static_instance(variable)
    cjk_dir = _package_dir("rinoh_typeface_notosanscjk")
    fallback = cjk_dir / "notosanscjkjp-regular.otf" if cjk_dir else None
    with TTFont(str(regular), lazy=True) as f:
        coverage = frozenset(f.getBestCmap())
    return Fonts(regular=regular, fallback=fallback if fallback and fallback.exists() else None, coverage=coverage)
