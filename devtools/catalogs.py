"""Write adapters/locales/callbill.pot from domain/texts.py and merge it into every .po.

    python -m devtools.catalogs          # after adding or changing a message in domain/texts.py

New messages arrive in each catalog untranslated (the catalog test then names them); a
message removed from the list is dropped from every catalog. English is filled in as
the message itself.
"""
from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from adapters.catalogs import LANGUAGES, LOCALES_DIR
from domain.texts import MESSAGES

HEADER = "callbill's customer-facing texts. Translations: adapters/locales/<language>.po (docs/languages.md)."


STAMP = datetime(2026, 12, 3, tzinfo=timezone.utc)  # fixed: the files change only when a message does


def template() -> Catalog:
    cat = Catalog(project="callbill", header_comment=f"# {HEADER}", fuzzy=False, creation_date=STAMP,
                  revision_date=STAMP)
    for msgid, note in MESSAGES.items():
        flags = ["python-brace-format"] if "{" in msgid else []
        cat.add(msgid, auto_comments=[note], flags=flags)
    return cat


def _write(path: Path, cat: Catalog) -> None:
    with path.open("wb") as f:
        write_po(f, cat, width=100, omit_header=False, sort_output=False, ignore_obsolete=True)


def main() -> int:
    _write(LOCALES_DIR / "callbill.pot", template())
    for lang in LANGUAGES:
        path = LOCALES_DIR / f"{lang}.po"
        if path.exists():
            with path.open("rb") as f:
                cat = read_po(f, locale=lang)
        else:
            cat = Catalog(locale=lang, project="callbill", header_comment=f"# {HEADER}", fuzzy=False,
                          creation_date=STAMP, revision_date=STAMP)
        cat.update(template(), no_fuzzy_matching=True)  # a fresh template each time: update shares its messages
        if lang == "en":
            for m in cat:
                if m.id and not m.string:
                    m.string = m.id
        _write(path, cat)
    print(f"wrote {LOCALES_DIR}/callbill.pot and {len(LANGUAGES)} catalogs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
