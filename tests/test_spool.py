"""Counts one reading process spills to disk past SPILL_AT uses, and adds back at the end."""

from __future__ import annotations

import gzip
import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
from audit_samples import event, line
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rbac_advisor import logfiles, usage
from rbac_advisor.cli import app, spool
from rbac_advisor.cli.ingest import load_usage
from rbac_advisor.usage_builder import UsageBuilder

KW: dict[str, Any] = {"since": None, "until": None, "kubectl_only": False, "progress": False}
FIXTURES = Path(__file__).parent.parent / "fixtures"


def _spills(monkeypatch: pytest.MonkeyPatch, at: int) -> list[int]:
    """Spill past ``at`` uses, in blocks of 4 KB (many chances); the uses of each spill."""
    monkeypatch.setattr(spool, "SPILL_AT", at)
    monkeypatch.setattr(logfiles, "BLOCK", 1 << 12)
    sizes: list[int] = []
    put = spool.Spool.put

    def counted(self: spool.Spool, state: Any) -> None:
        sizes.append(len(state.rows.counts))
        put(self, state)

    monkeypatch.setattr(spool.Spool, "put", counted)
    return sizes


def _log(tmp_path: Path, gz: bool) -> Path:
    """Requests of 40 users at two stages, with impersonation, exec sessions and denials."""
    rnd = random.Random(7)
    lines = []
    for i in range(2500):
        u = f"u{rnd.randrange(40)}"
        day, sec = divmod(i * 97, 86400)
        kw: dict[str, Any] = {
            "audit_id": f"id{i}",
            "user": u,
            "verb": rnd.choice(["get", "list"]),
            "time": f"2026-11-{20 + day:02d}T{sec // 3600:02d}:{sec // 60 % 60:02d}:"
            f"{sec % 60:02d}.000001Z",
            "ip": f"10.0.0.{rnd.randrange(3)}",
        }
        if i % 37 == 0:
            kw["imp"] = {"username": f"v{i % 5}", "groups": ["ops"]}
        if i % 41 == 0:
            ref = {"resource": "pods", "namespace": "ns", "name": "p", "apiVersion": "v1"}
            kw.update(
                verb="create",
                uri="/api/v1/namespaces/ns/pods/p/exec?command=ls",
                ref={**ref, "subresource": "exec"},
                decision=rnd.choice(["allow", "forbid"]),
            )
        lines.append(line(event(stage="RequestReceived", **kw)))
        lines.append(line(event(**kw)))
    for i in range(0, len(lines) - 1, 5):  # stages interleaved, as a busy apiserver writes
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
    data = b"".join(t + b"\n" for t in lines)
    p = tmp_path / ("audit.log.gz" if gz else "audit.log")
    p.write_bytes(gzip.compress(data) if gz else data)
    return p


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("at", [1, 7, 40])
def test_a_model_is_the_same_whenever_its_counts_were_spilled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gz: bool, at: int
) -> None:
    p = str(_log(tmp_path, gz))
    whole = load_usage([p], workers=1, skip_malformed=False, **KW)
    sizes = _spills(monkeypatch, at)
    spilled = load_usage([p], workers=1, skip_malformed=False, **KW)
    assert usage.dumps(spilled) == usage.dumps(whole)
    assert whole.requests == 2500
    assert len(sizes) > 2 and max(sizes) < len(whole.entries)  # several parts, each partial
    assert all(n >= at for n in sizes)  # handed over once the threshold was reached


def test_a_real_apiserver_log_spilled_at_every_block_equals_one_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Lines recorded from a real kube-apiserver (scripts/record-demo.py).
    log = str(FIXTURES / "demo" / "audit.jsonl")
    whole = load_usage([log], workers=1, skip_malformed=False, **KW)
    sizes = _spills(monkeypatch, 1)
    spilled = load_usage([log], workers=1, skip_malformed=False, **KW)
    assert usage.dumps(spilled) == usage.dumps(whole) and whole.requests > 100
    assert len(sizes) > 2


_REQ = st.tuples(
    st.integers(0, 30),  # auditID, reused on purpose
    st.sampled_from(["alice", "bob", "system:serviceaccount:ns:sa"]),
    st.sampled_from(["get", "watch", "delete"]),
    st.sets(
        st.sampled_from(["RequestReceived", "ResponseStarted", "ResponseComplete"]), min_size=1
    ),
    st.booleans(),  # impersonated
)


@settings(max_examples=60, deadline=None)
@given(reqs=st.lists(_REQ, min_size=1, max_size=40), at=st.integers(1, 6), files=st.integers(1, 3))
def test_any_log_spilled_at_any_point_equals_one_read(
    tmp_path_factory: pytest.TempPathFactory, reqs: list[Any], at: int, files: int
) -> None:
    lines = []
    for n, (aid, user, verb, stages, imp) in enumerate(reqs):
        for stage in ("RequestReceived", "ResponseStarted", "ResponseComplete"):
            if stage in stages:
                kw: dict[str, Any] = {"audit_id": f"a{aid}", "stage": stage, "verb": verb}
                if imp and stage != "RequestReceived":
                    kw["imp"] = {"username": "carol"}
                stamp = f"2026-11-20T10:{n // 60:02d}:{n % 60:02d}.000001Z"
                lines.append(line(event(user=user, time=stamp, **kw)))
    d = tmp_path_factory.mktemp("spill")
    paths = []
    for k in range(files):  # rotated pieces of one log, read through one window
        p = d / f"audit-{k}.log"
        p.write_bytes(b"".join(t + b"\n" for t in lines[k::files]))
        paths.append(str(p))
    with pytest.MonkeyPatch.context() as mp:
        whole = load_usage(paths, workers=1, skip_malformed=False, **KW)
        mp.setattr(spool, "SPILL_AT", at)
        mp.setattr(logfiles, "BLOCK", 256)
        spilled = load_usage(paths, workers=1, skip_malformed=False, **KW)
    assert usage.dumps(spilled) == usage.dumps(whole)


def test_standard_input_is_spilled_like_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    data = (FIXTURES / "demo" / "audit.jsonl").read_bytes()
    runner = CliRunner()
    whole = runner.invoke(app, ["usage", "--json", "-"], input=data)
    sizes = _spills(monkeypatch, 1)
    spilled = runner.invoke(app, ["usage", "--json", "-"], input=data)
    assert whole.exit_code == 0 and spilled.exit_code == 0, spilled.output
    assert spilled.stdout == whole.stdout and len(sizes) > 2


def test_exports_come_back_in_order_and_the_file_goes() -> None:
    builders = []
    for user in ("a", "b", "c"):
        b = UsageBuilder()
        b.count_requests(0, len(user) + 1)
        builders.append((user, b.export()))
    s = spool.Spool()
    for _, state in builders:
        s.put(state)
    assert s.parts == 3
    back = list(s.drain())
    assert [x.requests for x in back] == [2, 2, 2] and back == [x for _, x in builders]
    assert s.parts == 0 and list(s.drain()) == []


def test_an_unwritable_temporary_directory_is_one_line_and_exit_6(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _log(tmp_path, False)
    _spills(monkeypatch, 1)
    missing = tmp_path / "gone"
    monkeypatch.setattr(tempfile, "tempdir", str(missing))
    r = CliRunner().invoke(app, ["usage", str(p)])
    assert r.exit_code == 6, r.output
    lines = r.stderr.strip().splitlines()
    assert lines == [
        f"error: cannot keep counts in a temporary file in {missing} "
        "(No such file or directory): set TMPDIR to a writable directory with free space"
    ]
    assert r.stdout == ""


def test_a_spill_file_cut_short_is_refused_on_reading_back(tmp_path: Path) -> None:
    b = UsageBuilder()
    b.count_requests(0, 3)
    s = spool.Spool(str(tmp_path))
    s.put(b.export())
    s.put(b.export())
    assert s._file is not None
    s._file.truncate(s._file.tell() - 5)
    with pytest.raises(spool.SpillError, match=f"in {tmp_path} .*read back short"):
        list(s.drain())
    assert s.parts == 0
