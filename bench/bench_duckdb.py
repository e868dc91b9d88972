"""The floor of a DuckDB design for the usage model, measured on the benchmark log.

    pip install duckdb   # not a dependency of the tool
    python bench/bench_duckdb.py [--file /tmp/bench-audit.log] [--memory 250MB] [--strict]

DuckDB's ``read_json`` parses newline-delimited JSON in C++ over both cores and reads only
the columns a query names, so a scan of the 2M-line log costs about a second. The tool's
model needs more than one scan, though, and this script times the least a design built on
it would run, step by step, with DuckDB's memory bounded (``--memory``):

1. keys: one scan writing, for every line, its request key hash (auditID, user, verb,
   URI, received time), its line number (``WITH ORDINALITY``) and its class: early stage,
   a final stage the aggregation may count, or one that needs the per-request path
   (impersonation, sessions, no decision, a create by patch...);
2. requests: the final stages logged twice (to count once) and the early stages whose
   request has no final stage anywhere (counted from the early stage), from that table;
3. aggregate: a second scan grouping the countable final stages by (user, groups, verb,
   objectRef, decision, reason, agent, day, first source IP) with counts and first/last
   times; a ``count(DISTINCT key)`` per group instead of step 2's duplicates does not
   stay within the memory bound;
4. rest: a third scan returning the text of every line step 2 left to the per-request
   path, in order (what the tool's Python path would then parse).

Not included: the Python work on the ~200k aggregated rows and on the rest lines, and the
file's sha256; so the time reported is below what such a design would take. ``--strict``
reads the fields as JSON instead of VARCHAR: VARCHAR columns turn a number into text
(``"verb": 5`` reads as "5"), where the tool refuses the record; strict typing is needed
for the same answers on malformed input.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

_FINAL = "('ResponseComplete', 'Panic')"


def _columns(strict: bool) -> str:
    s = "JSON" if strict else "VARCHAR"
    return (
        f"{{auditID:'{s}', stage:'{s}', requestURI:'{s}', verb:'{s}', "
        f"user:'STRUCT(username {s}, groups {s}[])', impersonatedUser:'JSON', "
        f"sourceIPs:'{s}[]', userAgent:'{s}', "
        f"objectRef:'STRUCT(resource {s}, namespace {s}, name {s}, apiGroup {s}, "
        f"subresource {s})', responseStatus:'STRUCT(code {s})', "
        f'annotations:\'STRUCT("authorization.k8s.io/decision" {s}, '
        f"\"authorization.k8s.io/reason\" {s})', requestReceivedTimestamp:'{s}'}}"
    )


def _text(col: str, strict: bool) -> str:
    """The string value of a column (JSON columns hold the quoted text)."""
    return f"({col} ->> '$')" if strict else col


def run(path: str, memory: str, strict: bool) -> int:
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute(f"SET memory_limit = '{memory}'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET temp_directory = '/tmp/bench-duckdb.tmp'")
    src = f"read_json('{path}', format = 'newline_delimited', columns = {_columns(strict)})"

    def t(col: str) -> str:
        return _text(col, strict)

    stage = t("stage")
    decision = 'annotations."authorization.k8s.io/decision"'
    final = f"{stage} IN {_FINAL}"
    simple = (
        f"{final} AND impersonatedUser IS NULL AND {t('auditID')} <> '' "
        f"AND len(sourceIPs) > 0 AND {t('verb')} <> '' AND {t('userAgent')} <> '' "
        f"AND len(user.groups) > 0 AND {t(decision)} "
        f"IN ('allow', 'forbid') AND {t('objectRef.resource')} <> '' "
        f"AND coalesce({t('objectRef.subresource')}, '') NOT IN "
        f"('exec', 'attach', 'portforward', 'proxy') "
        f"AND NOT contains({t('requestURI')}, '%') "
        f"AND NOT contains({t('requestURI')}, 'command=') "
        f"AND coalesce({t('responseStatus.code')}, '') <> '201'"
    )
    key = (
        f"hash({t('auditID')}, {t('user.username')}, {t('verb')}, {t('requestURI')}, "
        f"{t('requestReceivedTimestamp')})"
    )
    times: dict[str, float] = {}

    def step(name: str, sql: str) -> list[tuple[object, ...]]:
        t0 = time.perf_counter()
        rows = con.execute(sql).fetchall()
        times[name] = time.perf_counter() - t0
        return rows

    step(
        "keys (scan 1)",
        f"CREATE TEMP TABLE k AS SELECT {key} AS kh, o, "
        f"CASE WHEN {simple} THEN 1 WHEN {final} THEN 2 ELSE 0 END AS cls "
        f"FROM {src} WITH ORDINALITY AS x(auditID, stage, requestURI, verb, user, "
        "impersonatedUser, sourceIPs, userAgent, objectRef, responseStatus, annotations, "
        "requestReceivedTimestamp, o)",
    )
    lines = int(step("requests", "SELECT count(*) FROM k")[0][0])  # type: ignore[call-overload]
    step(
        "requests",
        "CREATE TEMP TABLE twice AS SELECT kh FROM k WHERE cls > 0 GROUP BY kh HAVING count(*) > 1",
    )
    rest_t0 = times["requests"]
    step(
        "requests",
        "CREATE TEMP TABLE rest AS SELECT o, kh FROM k e WHERE cls = 2 "
        "OR (cls = 1 AND kh IN (SELECT kh FROM twice)) "
        "OR (cls = 0 AND NOT EXISTS (SELECT 1 FROM k f WHERE f.cls > 0 AND f.kh = e.kh))",
    )
    times["requests"] += rest_t0
    groups = step(
        "aggregate (scan 2)",
        f"SELECT hash(user, verb, objectRef, annotations, userAgent, "
        f"left({t('requestReceivedTimestamp')}, 10), sourceIPs[1]) AS gh, "
        "any_value(user), any_value(verb), any_value(objectRef), any_value(annotations), "
        "any_value(userAgent), any_value(sourceIPs[1]), count(*), "
        f"min({t('requestReceivedTimestamp')}), max({t('requestReceivedTimestamp')}) "
        f"FROM {src} WHERE {simple} GROUP BY gh",
    )
    texts = step(
        "rest (scan 3)",
        f"SELECT o, json FROM read_ndjson_objects('{path}') WITH ORDINALITY AS x(json, o) "
        "SEMI JOIN rest USING (o) ORDER BY o",
    )
    rest_requests = con.execute("SELECT count(DISTINCT kh) FROM rest").fetchall()[0][0]
    total = sum(times.values())
    counted = sum(int(g[7]) for g in groups)  # type: ignore[call-overload]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{path}: {lines:,} lines, strict types: {strict}, DuckDB memory limit {memory}")
    for name, secs in times.items():
        print(f"  {name:20} {secs:6.2f} s")
    print(f"  {'total':20} {total:6.2f} s  ({lines / total / 1000:.0f}k lines/s)")
    print(
        f"  {len(groups):,} aggregated rows counting {counted:,} requests; "
        f"{len(texts):,} lines for the per-request path ({rest_requests:,} requests); "
        f"peak RSS {rss:.0f} MB"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", default="/tmp/bench-audit.log")
    parser.add_argument("--memory", default="250MB", help="DuckDB's memory_limit")
    parser.add_argument("--strict", action="store_true", help="read fields as JSON")
    args = parser.parse_args()
    try:
        import duckdb  # noqa: F401
    except ImportError:
        print("duckdb is not installed: pip install duckdb", file=sys.stderr)
        return 2
    if not Path(args.file).exists():
        print(f"{args.file}: no such file (bench/gen_audit.py writes one)", file=sys.stderr)
        return 2
    return run(args.file, args.memory, args.strict)


if __name__ == "__main__":
    sys.exit(main())
