"""Benchmark: the serial tail of a parallel ingest (merge worker states, finish, freeze).

    python bench/bench_freeze.py capture [--file /tmp/bench-audit.log] [--out FILE]
    python bench/bench_freeze.py run [--states /tmp/freeze-states.pkl] [--old DIR] [--repeat 3]

``capture`` reads the file with two worker processes once and saves, in a neutral form, what
the parent receives: each worker's counted state (as rows of identity, access, decision,
reason, tool, count, first, last, day set: the first ``UsageBuilder.export`` format) and the
boundary events the parent adds afterwards.

``run`` rebuilds each worker state with the code under test (replaying the rows through
``add_aggregate``), pickles its ``export()`` as a worker would, then times, in this process:
unpickling the states, ``absorb_export`` of each, adding the boundary events, ``finish``.
As in ``load_usage``, GC is off while reading and on again for ``finish`` (``--no-gc``: off).
It also times ``finish`` of one builder holding all the rows (the one-process path). With
``--old DIR`` (a directory holding an older ``usage.py`` and ``usage_builder.py``, e.g.
written by ``git show HEAD:rbac_advisor/usage.py``) it times that code the same way and checks
both give the same ``usage.dumps`` text.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib.util
import os
import pickle
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rbac_advisor import usage, usage_codec  # noqa: E402
from rbac_advisor.usage import BuildOptions  # noqa: E402


def capture(path: str, out: str) -> None:
    """Read ``path`` with two workers, recording what reaches the parent's builder."""
    from rbac_advisor.cli.ingest import load_usage
    from rbac_advisor.usage_builder import UsageBuilder

    parent = os.getpid()
    states: list[Any] = []
    events: list[Any] = []
    orig_absorb = UsageBuilder.absorb_export
    orig_add = UsageBuilder.add

    def absorb(self: Any, state: Any, source: int) -> None:
        states.append(_neutral(state))
        orig_absorb(self, state, source)

    def add(self: Any, ev: Any, source: int = 0) -> None:
        if os.getpid() == parent and states:
            events.append((ev, source))
        orig_add(self, ev, source)

    UsageBuilder.absorb_export = absorb  # type: ignore[method-assign]
    UsageBuilder.add = add  # type: ignore[method-assign]
    u = load_usage(
        [path],
        skip_malformed=False,
        since=None,
        until=None,
        kubectl_only=False,
        progress=False,
        workers=2,
    )
    with open(out, "wb") as f:
        pickle.dump(
            {"states": [pickle.dumps(s) for s in states], "events": events, "sources": u.sources},
            f,
        )
    print(f"{len(states)} states, {len(events)} boundary events, {len(u.entries)} entries")
    print("digest", hashlib.sha256(usage.dumps(u).encode()).hexdigest())


def _neutral(state: Any) -> Any:
    """The first export format (rows of objects), from either format."""
    rows = state[0]
    if isinstance(rows, list):
        return tuple(state)
    from itertools import starmap

    from rbac_advisor.rbac import Access, Identity
    from rbac_advisor.usage_merge import _reason

    idents = list(starmap(Identity, rows.identities))
    accs = list(starmap(Access, rows.accesses))
    vias = list(map(_reason, rows.vias))
    old_rows = [
        (idents[i], accs[a], rows.decisions[d], vias[v], rows.tools[t], c, f, last, set(days))
        for i, a, d, v, t, c, f, last, days in zip(*rows[5:], strict=True)
    ]
    return (old_rows, *state[1:])


def _load_old(folder: str) -> tuple[ModuleType, ModuleType]:
    """Load an older usage.py / usage_builder.py pair as separate modules."""
    mods = []
    for name in ("usage", "usage_builder"):
        src = (Path(folder) / f"{name}.py").read_text()
        src = src.replace("from rbac_advisor.usage import", "from old_usage import")
        spec = importlib.util.spec_from_loader(f"old_{name}", loader=None)
        assert spec is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[f"old_{name}"] = mod
        exec(compile(src, f"{folder}/{name}.py", "exec"), mod.__dict__)
        mods.append(mod)
    return mods[0], mods[1]


def fill(builder_mod: ModuleType, states: list[Any]) -> Any:
    """One builder holding the rows of all states, as a one-process read would."""
    b = builder_mod.UsageBuilder(BuildOptions(), dedupe=False)
    for state in states:
        for ident, acc, dec, via, tool, count, first, last, days in state[0]:
            b.add_aggregate(
                ident, acc, dec, via, tool, count, first, last, dict.fromkeys(days, 0), ()
            )
    return b


def replay(builder_mod: ModuleType, state: Any) -> tuple[bytes, float]:
    """A worker's export in the format of ``builder_mod``, pickled as a worker would.

    Also the seconds ``export()`` and pickling took (worker side, in parallel).
    """
    rows, requests, unauth, filtered, start, end, activity, ips, sessions, by_source = state
    b = builder_mod.UsageBuilder(BuildOptions(), dedupe=False)
    for ident, acc, dec, via, tool, count, first, last, days in rows:
        b.add_aggregate(ident, acc, dec, via, tool, count, first, last, dict.fromkeys(days, 0), ())
    b._activity = dict(activity)
    b._ips = {k: set(v) for k, v in ips.items()}
    b._sessions = list(sessions)
    b._requests, b._unauth, b._filtered = requests, unauth, filtered
    b._start, b._end = start, end
    b.by_source = dict(by_source)
    gc.disable()
    t = time.perf_counter()
    blob = pickle.dumps(b.export(), protocol=pickle.HIGHEST_PROTOCOL)
    dt = time.perf_counter() - t
    gc.enable()
    return blob, dt


def timed(
    builder_mod: ModuleType, data: dict[str, Any], blobs: list[bytes], gc_in_finish: bool
) -> tuple[Any, dict[str, float]]:
    """Unpickle, absorb, add boundary events, finish; seconds per phase."""
    gc.collect()
    gc.disable()  # as load_usage does while reading; it enables GC again before finish()
    t0 = time.perf_counter()
    states = [pickle.loads(b) for b in blobs]
    t1 = time.perf_counter()
    b = builder_mod.UsageBuilder(BuildOptions())
    for s in states:
        b.absorb_export(s, 0)
    t2 = time.perf_counter()
    for ev, src in data["events"]:
        b.add(ev, src)
    b.flush()
    if gc_in_finish:
        gc.enable()
    t3 = time.perf_counter()
    u = b.finish(data["sources"])
    t4 = time.perf_counter()
    gc.enable()
    times = {"unpickle": t1 - t0, "absorb": t2 - t1, "events": t3 - t2, "finish": t4 - t3}
    times["tail"] = t4 - t1
    return u, times


def run(states_path: str, old: str | None, repeat: int, gc_in_finish: bool) -> None:
    """Time the code under test (and an older version) on captured states."""
    with open(states_path, "rb") as f:
        data = pickle.load(f)
    raw = [pickle.loads(s) for s in data["states"]]
    impls: list[tuple[str, ModuleType]] = []
    if old:
        impls.append(("old", _load_old(old)[1]))
    from rbac_advisor import usage_builder

    impls.append(("new", usage_builder))
    digests = {}
    for name, mod in impls:
        exported = [replay(mod, s) for s in raw]
        blobs = [b for b, _ in exported]
        worker = max(t for _, t in exported)
        best: dict[str, float] = {}
        for _ in range(repeat):
            u, times = timed(mod, data, blobs, gc_in_finish)
            best = {k: min(v, best.get(k, v)) for k, v in times.items()}
            digests[name] = hashlib.sha256(usage_codec.dumps(u).encode()).hexdigest()
            del u
        kb = sum(len(b) for b in blobs) // 1024
        print(
            name,
            f"worker export+pickle {worker:.3f}s, {kb} KiB;",
            " ".join(f"{k} {v:.3f}s" for k, v in best.items()),
        )
    for name, mod in impls:
        best_seq = 1e9
        for _ in range(repeat):
            b = fill(mod, raw)
            gc.collect()
            t = time.perf_counter()
            u = b.finish(data["sources"])
            best_seq = min(best_seq, time.perf_counter() - t)
            del u, b
        print(name, f"one builder ({len(raw)} states' rows): finish {best_seq:.3f}s")
    for name, d in digests.items():
        print(name, "digest", d)
    if len(set(digests.values())) > 1:
        raise SystemExit("different models")


def main() -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture")
    c.add_argument("--file", default="/tmp/bench-audit.log")
    c.add_argument("--out", default="/tmp/freeze-states.pkl")
    r = sub.add_parser("run")
    r.add_argument("--states", default="/tmp/freeze-states.pkl")
    r.add_argument("--old", default=None)
    r.add_argument("--repeat", type=int, default=3)
    r.add_argument("--no-gc", action="store_true", help="keep GC off during finish() too")
    args = ap.parse_args()
    if args.cmd == "capture":
        capture(args.file, args.out)
    else:
        run(args.states, args.old, args.repeat, not args.no_gc)


if __name__ == "__main__":
    main()
