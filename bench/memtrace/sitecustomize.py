"""bench.e2e's memory trace of a worker (BENCH_E2E_MEMTRACE=1); never part of callbill.

bench.e2e puts this folder on the worker's PYTHONPATH, so Python loads it at start-up. The
first process to load it (the worker; its render children start after the variable is gone)
starts tracemalloc and, every BENCH_MEMTRACE_EVERY seconds, dumps a snapshot and appends one
line to memory.jsonl: RSS and its anonymous part, what tracemalloc traces (Python's own
allocations, and what tracing them costs), and what RocksDB holds (memtables, block cache, table readers): the RSS growth
that neither explains is the C allocator's.
"""
import os

_OUT = os.environ.pop("BENCH_MEMTRACE_DIR", None)

if _OUT:
    import gc
    import json
    import sys
    import threading
    from collections import Counter
    import time
    import tracemalloc

    _EVERY = float(os.environ.pop("BENCH_MEMTRACE_EVERY", "300"))
    _FRAMES = int(os.environ.pop("BENCH_MEMTRACE_FRAMES", "1"))  # 0: no tracemalloc, the figures only
    if _FRAMES:
        tracemalloc.start(_FRAMES)

    def _status() -> dict:
        out = {}
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "RssAnon:", "RssFile:")):
                    name, kb = line.split()[:2]
                    out[name.rstrip(":") + "_mib"] = round(int(kb) / 1024, 1)
        return out

    def _rocksdb() -> dict:
        sums = {"memtables": 0, "block_cache": 0, "table_readers": 0, "databases": 0}
        props = {"memtables": "rocksdb.cur-size-all-mem-tables", "block_cache": "rocksdb.block-cache-usage",
                 "table_readers": "rocksdb.estimate-table-readers-mem"}
        for obj in gc.get_objects():
            if type(obj).__module__ == "faust.stores.rocksdb" and type(obj).__name__ == "Store":
                for db in list(getattr(obj, "_dbs", {}).values()):
                    sums["databases"] += 1
                    for key, prop in props.items():
                        try:
                            sums[key] += int(db.property_int_value(prop) or 0)
                        except Exception:  # noqa: BLE001 - a closed database
                            pass
        return {k: (round(v / 2**20, 1) if k != "databases" else v) for k, v in sums.items()}

    def _objects() -> dict:
        """How many objects the collector tracks, and the 30 most numerous types: a type whose
        count climbs from line to line is what is being kept."""
        objects = gc.get_objects()
        counts = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in objects)
        return {"gc_objects": len(objects), "types": dict(counts.most_common(30))}

    def _pymalloc() -> dict:
        """Python's allocator, from sys._debugmallocstats (which writes to fd 2): arenas held
        against bytes in use. Arenas climbing while the bytes in use stay flat is fragmentation."""
        import re
        import tempfile

        wanted = {"arenas allocated current": "arenas", "bytes in allocated blocks": "allocated_mib",
                  "bytes in available blocks": "available_mib", "arenas highwater mark": "arenas_highwater"}
        with tempfile.TemporaryFile(mode="w+") as tmp:
            saved = os.dup(2)
            try:
                sys.stderr.flush()
                os.dup2(tmp.fileno(), 2)
                sys._debugmallocstats()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            tmp.seek(0)
            text = tmp.read()
        out = {}
        for label, key in wanted.items():
            m = re.search(r"# " + re.escape(label) + r"\s*=\s*([\d,]+)", text)
            if m:
                value = int(m.group(1).replace(",", ""))
                out[key] = round(value / 2**20, 1) if key.endswith("_mib") else value
        m = re.search(r"(\d+) unused pools", text)
        if m:
            out["unused_pools"] = int(m.group(1))
        return out

    def _run() -> None:
        started = time.monotonic()
        n = 0
        while True:
            time.sleep(_EVERY)
            n += 1
            if _FRAMES:
                tracemalloc.take_snapshot().dump(os.path.join(_OUT, f"snapshot-{n:03d}.tracemalloc"))
            line = {"seconds": round(time.monotonic() - started), **_status(),
                    "python_blocks": sys.getallocatedblocks(), "pymalloc": _pymalloc(), **_objects(),
                    "traced_mib": round(tracemalloc.get_traced_memory()[0] / 2**20, 1),
                    "tracemalloc_own_mib": round(tracemalloc.get_tracemalloc_memory() / 2**20, 1),
                    "rocksdb_mib": _rocksdb()}
            with open(os.path.join(_OUT, "memory.jsonl"), "a") as fh:
                fh.write(json.dumps(line) + "\n")

    threading.Thread(target=_run, name="bench-memtrace", daemon=True).start()
