"""The raw-field aggregation gives exactly the model an Event per request gives."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest
from audit_samples import event, line

from rbac_advisor import usage
from rbac_advisor.audit import parse_lines
from rbac_advisor.cli.ingest import load_usage

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_audit", ROOT / "bench" / "gen_audit.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _event_path(path: str, **opts) -> usage.Usage:
    data = Path(path).read_bytes().splitlines()
    return usage.build(
        parse_lines((path, i, t) for i, t in enumerate(data, 1) if t.strip()), **opts
    )


def _strip(u: usage.Usage) -> usage.Usage:
    return usage.freeze(
        u.entries,
        requests=u.requests,
        unauthenticated=u.unauthenticated,
        start=u.start,
        end=u.end,
        activity=u.activity,
        client_ips=u.client_ips,
        sessions=u.sessions,
        filtered=u.filtered,
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_generated_log(tmp_path, seed: int) -> None:
    buf = io.StringIO()
    _generator().generate(6000, 150, seed, buf)
    p = tmp_path / "gen.log"
    p.write_text(buf.getvalue())
    kw = {"skip_malformed": False, "since": None, "until": None, "progress": False}
    fast = load_usage([str(p)], kubectl_only=False, workers=1, **kw)
    assert _strip(fast) == _strip(_event_path(str(p)))
    start = fast.start or 0.0
    mid = start + ((fast.end or start) - start) / 2
    assert _strip(load_usage([str(p)], kubectl_only=True, workers=1, **kw)) == _strip(
        _event_path(str(p), kubectl_only=True)
    )
    windowed = load_usage([str(p)], kubectl_only=False, workers=1, **{**kw, "since": mid})
    assert _strip(windowed) == _strip(_event_path(str(p), since=mid))


def test_duplicate_final_stage_lines_counted_once(tmp_path) -> None:
    rc = line(event(audit_id="a"))
    p = tmp_path / "d.log"
    p.write_bytes(b"\n".join([line(event(audit_id="a", stage="RequestReceived")), rc, rc]) + b"\n")
    u = load_usage(
        [str(p)],
        skip_malformed=False,
        since=None,
        until=None,
        kubectl_only=False,
        progress=False,
        workers=1,
    )
    assert u.requests == 1
