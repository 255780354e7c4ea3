"""The fonts invoices are set in, from installed packages (nothing is downloaded at run time).

Noto Sans (fontpkg-noto-sans, SIL OFL) covers Latin, Greek and Cyrillic; IBM Plex Sans
Arabic (fontpkg-ibm-plex-sans-arabic, SIL OFL) Arabic, shaped and joined by typst. Not Noto
Sans Arabic: it draws a letter's dots as separate glyphs, and typst's text layer then maps
them back to the wrong letters (فاتورة extracts as فايورة; typst issue #4225), so a
customer's search or screen reader would read nonsense. Noto Sans CJK JP
(rinoh-typeface-notosanscjk, SIL OFL, installed without its dependencies) Chinese, Japanese
and Korean. typst reads font folders, embeds only the glyphs a PDF uses and
falls back from one family to the next glyph by glyph. The CJK package's module is never
imported (it needs rinohtype); only its folder is read.
"""
from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path

FAMILIES = ("Noto Sans", "IBM Plex Sans Arabic", "Noto Sans CJK JP")  # the template falls back in this order


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(spec.origin).parent if spec and spec.origin else None


def font_dirs() -> list[Path]:
    """The folders typst reads fonts from; Noto Sans is required, the CJK fallback optional."""
    dirs = [Path(str(importlib.resources.files(pkg) / "files")) for pkg in ("fontpkg_noto_sans", "fontpkg_ibm_plex_sans_arabic")]
    cjk = _package_dir("rinoh_typeface_notosanscjk")
    if cjk is not None:
        dirs.append(cjk)
    return dirs
