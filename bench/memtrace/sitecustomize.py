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

    def _run() -> None:
        started = time.monotonic()
        n = 0
        while True:
            time.sleep(_EVERY)
            n += 1
            if _FRAMES:
                tracemalloc.take_snapshot().dump(os.path.join(_OUT, f"snapshot-{n:03d}.tracemalloc"))
            line = {"seconds": round(time.monotonic() - started), **_status(),
                    "python_blocks": sys.getallocatedblocks(), **_objects(),
                    "traced_mib": round(tracemalloc.get_traced_memory()[0] / 2**20, 1),
                    "tracemalloc_own_mib": round(tracemalloc.get_tracemalloc_memory() / 2**20, 1),
                    "rocksdb_mib": _rocksdb()}
            with open(os.path.join(_OUT, "memory.jsonl"), "a") as fh:
                fh.write(json.dumps(line) + "\n")

    threading.Thread(target=_run, name="bench-memtrace", daemon=True).start()
