"""The raw-field aggregation gives exactly the model an Event per request gives."""

from __future__ import annotations

import gzip
import importlib.util
import io
from pathlib import Path
from typing import Any

import pytest
from audit_samples import event, line, read_logs
from hypothesis import given, settings
from hypothesis import strategies as st
from request_samples import interleave, request, request_lines

from rbac_advisor import usage
from rbac_advisor.audit import parse_lines
from rbac_advisor.audit import stream as stream_mod
from rbac_advisor.cli.ingest import load_usage

ROOT = Path(__file__).resolve().parents[1]
_KW = {"skip_malformed": False, "since": None, "until": None, "progress": False}


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
    assert read_logs([str(p)]).requests == 1


# ---- the fast path against the general one under hypothesis ---------------------------------


def _general_path(texts: list[bytes]) -> usage.Usage:
    # A leading blank keeps every line off the typed fast path and out of the deferral.
    return usage.build(parse_lines(("g.log", i, b" " + t) for i, t in enumerate(texts, 1)))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(request, max_size=30), st.randoms(use_true_random=False), st.sampled_from([1, 2, 8192])
)
def test_fast_path_equals_general_path(tmp_path_factory, reqs, rnd, defer_max) -> None:
    texts = interleave(request_lines(reqs), rnd)
    if not texts:
        return
    p = tmp_path_factory.mktemp("h") / "a.log"
    p.write_bytes(b"\n".join(texts) + b"\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stream_mod, "DEFER_MAX", defer_max)
        fast = load_usage([str(p)], kubectl_only=False, workers=1, **_KW)
    assert _strip(fast) == _strip(_general_path(texts))


def test_generated_log_in_pieces_and_gzip(tmp_path) -> None:
    buf = io.StringIO()
    _generator().generate(8000, 120, 5, buf)
    texts = buf.getvalue().encode().splitlines()
    a, b = tmp_path / "audit-1.log", tmp_path / "audit-2.log.gz"
    a.write_bytes(b"\n".join(texts[:3001]) + b"\n")  # the cut falls inside requests
    b.write_bytes(gzip.compress(b"\n".join(texts[3001:]) + b"\n"))
    fast = load_usage([str(a), str(b)], kubectl_only=False, workers=1, **_KW)
    assert _strip(fast) == _strip(_general_path(texts))


# One instant (2026-11-20T10:00:00.5Z) in the forms logs carry it in.
_FORMS = (
    "2026-11-20T10:00:00.500000Z",  # the apiserver's
    "2026-11-20T10:00:00.5Z",
    "2026-11-20T10:00:00.500000000Z",
    "2026-11-20 10:00:00.5",
    "2026-11-20t10:00:00.5z",
    "2026-11-20T11:00:00.5+01:00",
)


@pytest.mark.parametrize("early", _FORMS)
@pytest.mark.parametrize("final", _FORMS)
def test_stages_written_in_two_time_forms_count_once(tmp_path, early: str, final: str) -> None:
    texts = [
        line(event(audit_id="a", stage="RequestReceived", time=early)),
        line(event(audit_id="a", stage="ResponseComplete", time=final)),
        # The same audit ID and call a microsecond later: another request.
        line(event(audit_id="a", stage="ResponseComplete", time="2026-11-20T10:00:00.500001Z")),
    ]
    p = tmp_path / "a.log"
    p.write_bytes(b"\n".join(texts) + b"\n")
    fast = load_usage([str(p)], kubectl_only=False, workers=1, **_KW)
    assert fast.requests == 2
    assert [s.count for s in fast.entries.values()] == [2]
    assert _strip(fast) == _strip(_general_path(texts))


def test_a_reason_read_again_after_many_others_is_the_same_object() -> None:
    """Tables of uses index reasons by identity: a reason must stay one object however many
    others were read in between (more than the parser's cache holds)."""
    from rbac_advisor.audit.normalise import forget, reason_ref

    texts = [
        f'RBAC: allowed by ClusterRoleBinding "b-{i}" of ClusterRole "r" to User "u-{i}"'
        for i in range(10_000)
    ]
    first = [reason_ref(t) for t in texts]
    again = [reason_ref(t) for t in texts]
    assert all(a is not None and a is b for a, b in zip(first, again, strict=True))
    forget()
    assert reason_ref(texts[0]) == first[0]


def test_reasons_naming_one_binding_share_it() -> None:
    """A binding per service account: one reason per subject, one binding and role object."""
    from rbac_advisor.audit.normalise import reason_ref

    refs = [
        reason_ref(
            f'RBAC: allowed by RoleBinding "apps/team-{i % 2}" of ClusterRole "edit" '
            f'to ServiceAccount "app-{i}/team-{i % 2}"'
        )
        for i in range(6)
    ]
    assert all(r is not None for r in refs)
    bindings = {id(r.binding) for r in refs if r}
    roles = {id(r.role) for r in refs if r}
    assert len(bindings) == 2 and len(roles) == 1
    assert len({id(r.subject.namespace) for r in refs if r}) == 2
    assert [r.subject.name for r in refs if r] == [f"app-{i}" for i in range(6)]
    assert [r.binding.namespace for r in refs if r] == ["team-0", "team-1"] * 3


@pytest.mark.parametrize("raw_max", [2, 7, 64])
def test_combinations_normalised_in_batches_give_the_same_model(
    tmp_path, monkeypatch: pytest.MonkeyPatch, raw_max: int
) -> None:
    from rbac_advisor import usage_fast

    buf = io.StringIO()
    _generator().generate(6000, 150, 3, buf)
    p = tmp_path / "gen.log"
    p.write_text(buf.getvalue())
    whole = load_usage([str(p)], kubectl_only=False, workers=1, **_KW)
    batches: list[int] = []
    real = usage_fast.RawAggregator._normalise

    def counted(self: usage_fast.RawAggregator, keep: int = 0) -> None:
        before = list(self._raw)
        real(self, keep)
        # The combinations seen first stay; those seen last go.
        assert list(self._raw) == before[:keep]
        batches.append(len(before) - len(self._raw))

    monkeypatch.setattr(usage_fast, "RAW_MAX", raw_max)
    monkeypatch.setattr(usage_fast.RawAggregator, "_normalise", counted)
    batched = load_usage([str(p)], kubectl_only=False, workers=1, **_KW)
    assert usage.dumps(batched) == usage.dumps(whole)
    assert len(batches) > 3 and max(batches) <= raw_max


def test_combinations_normalised_in_batches_keep_the_window(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rbac_advisor import usage_fast

    # Final stages only (no Event path): the window comes from the batches alone; the
    # latest request is seen first and the earliest last.
    times = [f"2026-11-20T10:{m:02d}:00.000001Z" for m in range(40)]
    times[0], times[-1] = "2026-11-20T11:00:00.000001Z", "2026-11-20T09:00:00.000001Z"
    p = tmp_path / "a.log"
    p.write_bytes(
        b"".join(
            line(
                event(
                    audit_id=f"a{i}",
                    user=f"u{i % 9}",
                    uri=f"/api/v1/namespaces/n{i}/pods",
                    ref={"resource": "pods", "namespace": f"n{i}", "apiVersion": "v1"},
                    verb="list",
                    time=t,
                )
            )
            + b"\n"
            for i, t in enumerate(times)
        )
    )
    taken: list[bool] = []
    make_sink = usage_fast.RawAggregator._make_sink

    def counting(self: usage_fast.RawAggregator, options: Any) -> None:
        make_sink(self, options)
        real = self.sink

        def spy(e: Any, path: str, no: int) -> Any:
            key = real(e, path, no)
            taken.append(key is not None)
            return key

        self.sink = spy

    monkeypatch.setattr(usage_fast.RawAggregator, "_make_sink", counting)
    whole = load_usage([str(p)], kubectl_only=False, workers=1, **_KW)
    assert taken == [True] * 40  # every line counted on the raw fields
    monkeypatch.setattr(usage_fast, "RAW_MAX", 4)
    batched = load_usage([str(p)], kubectl_only=False, workers=1, **_KW)
    assert usage.dumps(batched) == usage.dumps(whole)
    assert (batched.start, batched.end) == (
        usage_fast.parse_time(times[-1]),
        usage_fast.parse_time(times[0]),
    )
    assert batched.requests == 40 and len(batched.entries) == 40
