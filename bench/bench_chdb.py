"""Two aggregations of the benchmark log in chDB (ClickHouse in-process), for scale.

    pip install chdb-core   # not a dependency of the tool (a 180 MB wheel)
    python bench/bench_chdb.py [--file /tmp/bench-audit.log] [--memory 250000000]

ClickHouse's ``JSONEachRow`` reader parses only the columns a query names, over both
cores. Two queries, each timed with the peak RSS of this process after it:

1. aggregate: the final stages grouped by (user, verb, resource, namespace), counted. No
   request is deduplicated and no line is checked beyond what the reader needs: a floor
   for any design that reads the file through SQL;
2. requests: every line grouped by request (auditID, user, verb, URI), the most complete
   stage's attributes kept, then the requests grouped by (user, verb, resource,
   namespace, name, decision, agent). The per-request grouping does not fit in
   ``--memory`` without spilling (``max_bytes_before_external_group_by``).

Neither checks types, times or UTF-8 as the tool does, gives line numbers for a bad
record, matches stages in the tool's bounded window, or normalises what it groups.
"""

from __future__ import annotations

import argparse
import resource
import time

_SCHEMA = (
    "auditID String, stage String, verb String, requestURI String, "
    "user Tuple(username String, groups Array(String)), "
    "objectRef Tuple(resource String, namespace String, name String, apiGroup String, "
    "subresource String), annotations Map(String, String), userAgent String"
)


def _settings(memory: int, spill: bool) -> str:
    out = (
        "max_threads=2, input_format_skip_unknown_fields=1, "
        f"max_memory_usage={memory}, storage_file_read_method='pread'"
    )
    if spill:
        out += f", max_bytes_before_external_group_by={memory // 3}"
    return out


def queries(path: str, memory: int) -> dict[str, str]:
    """The two queries over ``path``."""
    source = f"file('{path}', 'JSONEachRow', '{_SCHEMA}')"
    aggregate = f"""
        SELECT user.username AS u, verb, objectRef.resource AS r,
               objectRef.namespace AS ns, count()
        FROM {source} WHERE stage IN ('ResponseComplete', 'Panic')
        GROUP BY u, verb, r, ns FORMAT Null SETTINGS {_settings(memory, False)}"""
    requests = f"""
        SELECT u, v, r, ns, nm, dec, ua, count() FROM (
          SELECT auditID, user.username AS u, verb AS v, requestURI,
                 argMax(objectRef.resource, rank) AS r,
                 argMax(objectRef.namespace, rank) AS ns,
                 argMax(objectRef.name, rank) AS nm,
                 argMax(annotations['authorization.k8s.io/decision'], rank) AS dec,
                 argMax(userAgent, rank) AS ua
          FROM (SELECT *, multiIf(stage = 'RequestReceived', 0,
                                  stage = 'ResponseStarted', 1, 2) AS rank
                FROM {source})
          GROUP BY auditID, u, v, requestURI)
        GROUP BY u, v, r, ns, nm, dec, ua FORMAT Null SETTINGS {_settings(memory, True)}"""
    return {"aggregate": aggregate, "requests": requests}


def main() -> None:
    """Run both queries and print their times and the peak RSS."""
    import chdb  # type: ignore[import-not-found]  # optional

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default="/tmp/bench-audit.log")
    ap.add_argument("--memory", type=int, default=250_000_000, help="bytes per query")
    args = ap.parse_args()
    for name, q in queries(args.file, args.memory).items():
        t = time.perf_counter()
        chdb.query(q, "CSV")
        took = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{name}: {took:.2f} s, peak RSS so far {peak:.0f} MB")


if __name__ == "__main__":
    main()
