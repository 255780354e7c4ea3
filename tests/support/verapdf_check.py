"""veraPDF (the PDF Association's PDF/A validator) on PDF files, as PDF/A-3B.

    python tests/support/verapdf_check.py invoice.pdf [more.pdf …]

The validation library comes from Maven Central, as the suite's Kafka does: the first run
resolves its classpath with Maven into the cache (CALLBILL_CACHE_DIR, default
~/.cache/callbill) and compiles tests/support/verapdf/Check.java there; later runs reuse
both. Needs Java 17 and Maven.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent / "verapdf"
VERSION = re.search(r"<version>(\d+\.\d+\.\d+)</version>", (HERE / "pom.xml").read_text()).group(1)


def _cache() -> Path:
    base = Path(os.environ.get("CALLBILL_CACHE_DIR") or Path.home() / ".cache" / "callbill")
    return base / f"verapdf-{VERSION}"


def _prepared() -> tuple[Path, str]:
    cache = _cache()
    classes, cp_file = cache / "classes", cache / "classpath.txt"
    if not cp_file.exists():
        cache.mkdir(parents=True, exist_ok=True)
        shutil.copy(HERE / "pom.xml", cache / "pom.xml")
        subprocess.run(["mvn", "-q", "-B", "dependency:build-classpath", f"-Dmdep.outputFile={cp_file}"],
                       cwd=cache, check=True, timeout=600)
    classpath = cp_file.read_text().strip()
    if not (classes / "Check.class").exists() or \
            (classes / "Check.class").stat().st_mtime < (HERE / "Check.java").stat().st_mtime:
        classes.mkdir(parents=True, exist_ok=True)
        subprocess.run(["javac", "-cp", classpath, "-d", str(classes), str(HERE / "Check.java")], check=True,
                       timeout=300)
    return classes, classpath


@dataclass(frozen=True)
class Verdict:
    compliant: bool
    failures: tuple[str, ...]  # "6.6.4-1: The PDF/A version and conformance level …"


def validate(paths: list[Path]) -> dict[Path, Verdict]:
    classes, classpath = _prepared()
    run = subprocess.run(["java", "-cp", f"{classes}{os.pathsep}{classpath}", "Check", *map(str, paths)],
                         capture_output=True, text=True, timeout=600)
    out: dict[Path, Verdict] = {}
    current, ok, fails = None, False, []
    for line in run.stdout.splitlines():
        m = re.match(r"^(.*): (compliant|NOT compliant)$", line)
        if m:
            if current is not None:
                out[current] = Verdict(ok, tuple(fails))
            current, ok, fails = Path(m.group(1)), m.group(2) == "compliant", []
        elif line.startswith("  ") and current is not None:
            fails.append(line.strip())
    if current is not None:
        out[current] = Verdict(ok, tuple(fails))
    if set(out) != set(paths):
        raise RuntimeError(f"veraPDF answered for {len(out)} of {len(paths)} files: {run.stderr[-2000:]}")
    return out


if __name__ == "__main__":
    verdicts = validate([Path(p) for p in sys.argv[1:]])
    for path, v in verdicts.items():
        print(f"{path}: {'PDF/A-3B compliant' if v.compliant else 'NOT compliant'}")
        for f in v.failures:
            print(f"  {f}")
    raise SystemExit(0 if all(v.compliant for v in verdicts.values()) else 1)
