"""The gettext catalogs: adapters/locales/<language>.po, and the operator's overrides.

The .po files are compiled when they are loaded (babel), once per process, so the repo
holds only what translators edit. An operator's catalog directory
(CALLBILL_CATALOG_DIR) holds `<language>.po` files that override any message for their
brand, or add a language or a regional variant (fr_CA.po); it is checked at start-up
like the templates: an unknown message id, a missing or foreign placeholder, or a file
that does not parse is refused with the file and the message named.
"""
from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from domain.i18n import Localizer, choose, parse_tag
from domain.texts import MESSAGES, problems

LOCALES_DIR = Path(__file__).with_name("locales")
LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pt", "pl", "sv", "ja", "ar")


class CatalogError(ValueError):
    pass


def read_catalog(path: Path, complete: bool) -> dict[str, str]:
    """msgid -> msgstr of one .po file, checked against domain/texts.py.

    complete: every message must be there (a built-in catalog); otherwise (an override)
    only the messages it has are checked.
    """
    name = parse_tag(path.stem)
    if name is None:
        raise CatalogError(f"catalog {path}: {path.stem!r} is not a locale name (like de or fr_CA)")
    try:
        with path.open("rb") as f:
            cat = read_po(f, locale=str(name), abort_invalid=True)
    except Exception as e:  # noqa: BLE001 - any parse failure is one clear message
        raise CatalogError(f"catalog {path}: cannot read it ({e})") from None
    found: dict[str, str] = {}
    errors = []
    for m in cat:
        if not m.id:
            continue
        if m.id not in MESSAGES:
            errors.append(f"{m.id!r}: not a callbill message")
            continue
        if m.fuzzy:
            errors.append(f"{m.id!r}: marked fuzzy (check the translation and remove the flag)")
            continue
        text = m.string if isinstance(m.string, str) else m.string[0]
        errors += [f"{m.id!r}: {p}" for p in problems(m.id, text)]
        found[m.id] = text
    if complete:
        errors += [f"{msgid!r}: missing" for msgid in MESSAGES if msgid not in found]
    if errors:
        raise CatalogError(f"catalog {path}: " + "; ".join(errors[:10]) + (" …" if len(errors) > 10 else ""))
    return found


def _translations(messages: dict[str, str], fallback: Translations | None) -> Translations:
    from babel.messages.catalog import Catalog

    cat = Catalog()
    for msgid, text in messages.items():
        cat.add(msgid, text)
    buf = io.BytesIO()
    write_mo(buf, cat)
    buf.seek(0)
    t = Translations(buf)
    if fallback is not None:
        t.add_fallback(fallback)
    return t


@dataclass
class Catalogs:
    """Every catalog of this process, and a Localizer per customer tag (cached)."""

    default_locale: str = "en"
    override_dir: Path | None = None
    _catalogs: dict[str, Translations] = field(default_factory=dict)
    _cache: dict[str | None, Localizer] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self) -> "Catalogs":
        builtin = {lang: read_catalog(LOCALES_DIR / f"{lang}.po", complete=True) for lang in LANGUAGES}
        overrides: dict[str, dict[str, str]] = {}
        if self.override_dir is not None:
            if not self.override_dir.is_dir():
                raise CatalogError(f"CALLBILL_CATALOG_DIR {self.override_dir} is not a directory")
            for path in sorted(self.override_dir.glob("*.po")):
                overrides[str(parse_tag(path.stem) or path.stem)] = read_catalog(path, complete=False)
        names = set(builtin) | set(overrides)
        for name in sorted(names, key=len):  # languages before their regional variants
            loc = parse_tag(name)
            lang = loc.language if loc else name
            base = self._catalogs.get(lang) if name != lang else None
            messages = {**builtin.get(name, {}), **overrides.get(name, {})}
            self._catalogs[name] = _translations(messages, base or (self._catalogs.get("en") if name != "en" else None))
        if parse_tag(self.default_locale) is None:
            raise CatalogError(f"CALLBILL_DEFAULT_LOCALE {self.default_locale!r} is not a locale (like en or de-DE)")
        return self

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._catalogs)

    def localizer(self, tag: str | None) -> Localizer:
        with self._lock:
            hit = self._cache.get(tag)
            if hit is None:
                if not self._catalogs:
                    self.load()
                name, loc = choose(tag, self._catalogs, self.default_locale)
                hit = Localizer(name, loc, self._catalogs[name].gettext)
                if len(self._cache) < 1024:
                    self._cache[tag] = hit
            return hit
