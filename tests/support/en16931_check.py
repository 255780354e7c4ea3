"""The official EN 16931 rules (tests/support/en16931/) run on a UBL file: its failed asserts.

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
_FAILED = re.compile(r'<svrl:failed-assert\b([^>]*)>(.*?)</svrl:failed-assert>', re.S)


@dataclass(frozen=True)
class Failure:
    rule: str
    flag: str
    text: str


@lru_cache(maxsize=1)
def _processor():
    from saxonche import PySaxonProcessor

    proc = PySaxonProcessor(license=False)
    return proc, proc.new_xslt30_processor().compile_stylesheet(stylesheet_file=str(UBL_RULES))


def failures(xml: bytes | str | Path) -> list[Failure]:
    """Every failed assert of the EN 16931 UBL rules (fatal and warning) for one document."""
    proc, rules = _processor()
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
