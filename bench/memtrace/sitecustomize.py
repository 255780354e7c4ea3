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
    _CENSUS_AT = float(os.environ.pop("BENCH_MEMTRACE_CENSUS_AT", "0"))  # seconds; 0: no census
    if _FRAMES:
        tracemalloc.start(_FRAMES)

    _gc = {"seconds": [0.0, 0.0, 0.0], "collections": [0, 0, 0], "longest": [0.0, 0.0, 0.0], "started": 0.0}

    def _on_gc(phase: str, info: dict) -> None:
        """The time the collector takes, by generation: its pauses hold the event loop like any
        other work, and py-spy charges them to whatever frame allocated last."""
        if phase == "start":
            _gc["started"] = time.perf_counter()
            return
        g = info["generation"]
        took = time.perf_counter() - _gc["started"]
        _gc["seconds"][g] += took
        _gc["collections"][g] += 1
        _gc["longest"][g] = max(_gc["longest"][g], took)

    gc.callbacks.append(_on_gc)

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

    def _census() -> dict:
        """Which objects hold Python's arenas: every object reachable from the collector's, put
        in the 1 MiB window its address falls in (an arena, near enough), and, for the windows
        used least (an arena freed by all but a few objects is kept whole for them), what
        those objects are. Only objects that existed before it started are counted: its own
        bookkeeping is allocated after, so it cannot count itself."""
        have_gc = 1 << 14  # Py_TPFLAGS_HAVE_GC: the block starts at the collector's header
        roots = gc.get_objects()
        seen: set = set()
        windows: dict = {}
        stack = list(roots)
        while stack:
            o = stack.pop()
            i = id(o)
            if i in seen:
                continue
            seen.add(i)
            t = type(o)
            try:
                size = sys.getsizeof(o)
            except Exception:  # noqa: BLE001 - an object that will not say
                continue
            if size <= 512:  # pymalloc's blocks; larger ones are the C allocator's
                w = windows.get(i >> 20)
                if w is None:
                    w = windows[i >> 20] = [0, Counter()]
                w[0] += (size + 15) & ~15
                if t is dict:
                    keys = [k for k in list(o)[:4] if isinstance(k, str)]
                    name = "dict{" + ",".join(keys) + "}"
                elif t is tuple:
                    name = f"tuple{len(o)}:" + ",".join(type(x).__name__ for x in o[:3])
                else:
                    name = f"{t.__module__}.{t.__qualname__}"
                w[1][name] += 1
            if t.__flags__ & have_gc:
                stack.extend(r for r in gc.get_referents(o) if not gc.is_tracked(r))  # the tracked are roots
        del roots, stack, seen
        rows = sorted(windows.values(), key=lambda w: w[0])
        bands = Counter(min(9, w[0] * 10 >> 20) for w in rows)  # tenths of a window in use
        sparse = [w for w in rows if w[0] < 0.3 * 2**20]
        held = Counter()
        for w in sparse:
            held.update(w[1])
        return {"windows": len(rows), "counted_mib": round(sum(w[0] for w in rows) / 2**20, 1),
                "windows_by_tenths_used": {f"{k / 10:.1f}": v for k, v in sorted(bands.items())},
                "sparse_windows": len(sparse), "sparse_mib": round(sum(w[0] for w in sparse) / 2**20, 1),
                "sparse_objects_by_kind": dict(held.most_common(40))}

    def _run() -> None:
        started = time.monotonic()
        n = 0
        census_due = _CENSUS_AT > 0
        while True:
            time.sleep(_EVERY)
            n += 1
            if _FRAMES:
                tracemalloc.take_snapshot().dump(os.path.join(_OUT, f"snapshot-{n:03d}.tracemalloc"))
            line = {"seconds": round(time.monotonic() - started), **_status(),
                    "python_blocks": sys.getallocatedblocks(), "pymalloc": _pymalloc(), **_objects(),
                    "gc": {"seconds": [round(x, 3) for x in _gc["seconds"]], "collections": list(_gc["collections"]),
                           "longest_ms": [round(1000 * x, 1) for x in _gc["longest"]]},
                    "traced_mib": round(tracemalloc.get_traced_memory()[0] / 2**20, 1),
                    "tracemalloc_own_mib": round(tracemalloc.get_tracemalloc_memory() / 2**20, 1),
                    "rocksdb_mib": _rocksdb()}
            with open(os.path.join(_OUT, "memory.jsonl"), "a") as fh:
                fh.write(json.dumps(line) + "\n")
            if census_due and line["seconds"] >= _CENSUS_AT:
                census_due = False
                with open(os.path.join(_OUT, "census.json"), "w") as fh:
                    json.dump({"seconds": line["seconds"], **_census()}, fh)

    threading.Thread(target=_run, name="bench-memtrace", daemon=True).start()
