"""The official EN 16931 rules (tests/support/en16931/) run on a UBL or CII file: its failed asserts.

    python tests/support/en16931_check.py invoice.xml [more.xml …]

prints each fatal rule a file breaks (id and text) and exits 1 if any does. The XSLT is
compiled once per process (about a second); each file then takes a few milliseconds.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent / "en16931"
UBL_RULES = HERE / "ubl" / "EN16931-UBL-validation.xslt"
CII_RULES = HERE / "cii" / "EN16931-CII-validation.xslt"
_FAILED = re.compile(r'<svrl:failed-assert\b([^>]*)>(.*?)</svrl:failed-assert>', re.S)


@dataclass(frozen=True)
class Failure:
    rule: str
    flag: str
    text: str


@lru_cache(maxsize=1)
def _saxon():
    from saxonche import PySaxonProcessor

    return PySaxonProcessor(license=False)


@lru_cache(maxsize=2)
def _rules(path: Path):
    return _saxon().new_xslt30_processor().compile_stylesheet(stylesheet_file=str(path))


def _syntax(xml: bytes | str | Path) -> Path:
    head = (xml.read_bytes() if isinstance(xml, Path) else xml.encode() if isinstance(xml, str) else xml)[:2000]
    return CII_RULES if b"CrossIndustryInvoice" in head else UBL_RULES


def failures(xml: bytes | str | Path) -> list[Failure]:
    """Every failed assert of the EN 16931 rules (fatal and warning) for one UBL or CII document."""
    proc, rules = _saxon(), _rules(_syntax(xml))
    if isinstance(xml, Path):
        svrl = rules.transform_to_string(source_file=str(xml))
    else:
        text = xml.decode() if isinstance(xml, bytes) else xml
        svrl = rules.transform_to_string(xdm_node=proc.parse_xml(xml_text=text))
    out = []
    for attrs, body in _FAILED.findall(svrl or ""):
        rule = re.search(r'\bid="([^"]*)"', attrs)
        flag = re.search(r'\bflag="([^"]*)"', attrs)
        message = re.search(r"<svrl:text>(.*?)</svrl:text>", body, re.S)
        out.append(Failure(rule.group(1) if rule else "?", flag.group(1) if flag else "fatal",
                           re.sub(r"\s+", " ", message.group(1)).strip() if message else ""))
    return out


def fatal(xml: bytes | str | Path) -> list[Failure]:
    return [f for f in failures(xml) if f.flag == "fatal"]


if __name__ == "__main__":
    bad = 0
    for name in sys.argv[1:]:
        broken = fatal(Path(name))
        print(f"{name}: {'passes' if not broken else f'{len(broken)} fatal'}")
        for f in broken:
            print(f"  {f.rule}: {f.text}")
        bad += bool(broken)
    raise SystemExit(1 if bad else 0)
