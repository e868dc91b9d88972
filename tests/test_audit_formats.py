"""Every supported audit shape normalises to the same Event; corpus files are read fully."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from audit_samples import corpus, event, line, lines
from hypothesis import given
from hypothesis import strategies as st

from rbac_advisor.audit import Malformed, parse_lines, parse_record
from rbac_advisor.errors import AuditParseError
from rbac_advisor.events import Decision
from rbac_advisor.rbac import Access


def one(obj: object):
    parsed = parse_record(obj)
    assert len(parsed.events) == 1
    return parsed.events[0], parsed


def test_native_v1_and_v1beta1_agree() -> None:
    v1, p1 = one(event())
    beta = event(api_version="audit.k8s.io/v1beta1")
    del beta["requestReceivedTimestamp"]
    beta["timestamp"] = "2026-11-20T10:00:00.000001Z"
    b1, pb = one(beta)
    assert v1.identity == b1.identity and v1.access == b1.access and v1.time == b1.time
    assert p1.formats == {"native"} and pb.formats == {"native-v1beta1"}
    assert v1.access == Access("get", "", "pods", "", "ns", "p")
    assert v1.decision is Decision.ALLOW


def test_event_list_webhook_batch() -> None:
    batch = {
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "metadata": {},
        "items": [event(audit_id="a"), event(audit_id="b", user="bob")],
    }
    parsed = parse_record(batch)
    assert [e.identity.user for e in parsed.events] == ["alice", "bob"]
    assert parsed.formats == {"eventlist"}


def test_cloudwatch_envelope_and_control_message() -> None:
    inner = [
        event(audit_id="a"),
        event(audit_id="b", verb="list", uri="/api/v1/pods", ref={"resource": "pods"}),
    ]
    env = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "/aws/eks/prod/cluster",
        "logStream": "kube-apiserver-audit-abc",
        "logEvents": [
            {"id": str(i), "timestamp": 1795000000000, "message": json.dumps(e)}
            for i, e in enumerate(inner)
        ],
    }
    parsed = parse_record(env)
    assert [e.audit_id for e in parsed.events] == ["a", "b"]
    assert parsed.events[1].access == Access("list", "", "pods")
    assert parsed.formats == {"eks-cloudwatch"}
    control = parse_record({"messageType": "CONTROL_MESSAGE", "logEvents": []})
    assert control.events == [] and control.ignored == 1


def test_panther_eks_row_uses_p_event_time() -> None:
    d = event()
    del d["requestReceivedTimestamp"], d["stageTimestamp"]
    d.update(p_log_type="Amazon.EKS.Audit", p_event_time="2022-11-29 00:09:04.38")
    ev, parsed = one(d)
    assert parsed.formats == {"eks"}
    assert ev.time == pytest.approx(1669680544.38)


@pytest.mark.parametrize("as_string", [True, False])
def test_aks_properties_log_string_or_object(as_string: bool) -> None:
    inner = event(user="aksService", groups=["system:masters", "system:authenticated"])
    rec = {
        "category": "kube-audit",
        "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
        "properties": {"log": json.dumps(inner) if as_string else inner, "stream": "stdout"},
        "time": "2025-10-07T16:19:19.647880072Z",
    }
    ev, parsed = one(rec)
    assert ev.identity.user == "aksService" and parsed.formats == {"aks"}
    assert (
        parse_record({"category": "kube-apiserver", "properties": {"log": "I1007 ..."}}).ignored
        == 1
    )
    # Event Hub batches wrap records in {"records": [...]}
    assert len(parse_record({"records": [rec, rec]}).events) == 2


def test_gke_entry() -> None:
    entry = {
        "insertId": "x1",
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "authenticationInfo": {
                "principalEmail": "system:serviceaccount:kube-system:deployment-controller"
            },
            "authorizationInfo": [
                {"granted": True, "permission": "io.k8s.core.v1.pods.exec.create"}
            ],
            "methodName": "io.k8s.core.v1.pods.exec.create",
            "requestMetadata": {
                "callerIp": "1.2.3.4",
                "callerSuppliedUserAgent": "kubectl/v1.28.2 (darwin/amd64) kubernetes/89a4ea3",
            },
            "resourceName": "core/v1/namespaces/prod/pods/db-0/exec",
            "serviceName": "k8s.io",
        },
        "resource": {"type": "k8s_cluster"},
        "timestamp": "2024-02-16T11:48:22.742154Z",
    }
    ev, parsed = one(entry)
    assert ev.access == Access("create", "", "pods", "exec", "prod", "db-0")
    assert ev.decision is Decision.ALLOW
    assert ev.identity.groups == (
        "system:authenticated",
        "system:serviceaccounts",
        "system:serviceaccounts:kube-system",
    )
    assert "user.groups" in parsed.missing
    denied = json.loads(json.dumps(entry))
    denied["protoPayload"]["authorizationInfo"][0]["granted"] = False
    assert one(denied)[0].decision is Decision.FORBID
    create = json.loads(json.dumps(entry))
    create["protoPayload"]["methodName"] = "io.k8s.apps.v1.deployments.create"
    create["protoPayload"]["resourceName"] = "apps/v1/namespaces/prod/deployments/web"
    assert one(create)[0].access == Access("create", "apps", "deployments", "", "prod", "")
    other = {
        "protoPayload": {
            "methodName": "compute.instances.list",
            "serviceName": "compute.googleapis.com",
        }
    }
    assert parse_record(other).ignored == 1


def _gke(**over: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "insertId": "e1",
        "operation": {"id": "op-1", "producer": "k8s.io", "first": True},
        "protoPayload": {
            "authenticationInfo": {"principalEmail": "alice@example.com"},
            "authorizationInfo": [{"granted": True, "permission": "io.k8s.core.v1.pods.watch"}],
            "methodName": "io.k8s.core.v1.pods.watch",
            "resourceName": "core/v1/namespaces/ns1/pods",
            "serviceName": "k8s.io",
            "status": {"code": 0},
        },
        "timestamp": "2026-11-20T10:00:00.000001Z",
    }
    p = entry["protoPayload"]
    for key, value in over.items():
        if key in ("insertId", "operation", "timestamp"):
            entry[key] = value
        else:
            p[key] = value
    return entry


def test_gke_long_operation_logged_first_and_last_counts_once(tmp_path) -> None:
    from audit_samples import read_logs

    first = _gke()
    last = _gke(
        insertId="e2", operation={"id": "op-1", "last": True}, timestamp="2026-11-20T10:05:00Z"
    )
    other = _gke(insertId="e3", resourceName="core/v1/namespaces/ns2/pods")  # same op id
    p = tmp_path / "gke.jsonl"
    p.write_text("".join(json.dumps(e) + "\n" for e in (first, last, other)))
    u = read_logs([str(p)])
    assert u.requests == 2
    assert sorted((k.access.namespace, s.count) for k, s in u.entries.items()) == [
        ("ns1", 1),
        ("ns2", 1),
    ]


def test_gke_entries_of_short_requests_are_each_a_request(tmp_path) -> None:
    """Without first/last an entry is a whole request, whatever operation id it shares."""
    from audit_samples import read_logs

    get = {"methodName": "io.k8s.core.v1.pods.get", "resourceName": "core/v1/namespaces/ns1/pods/p"}
    a = _gke(insertId="a", operation={"id": "same"}, **get)
    b = _gke(insertId="b", operation={"id": "same"}, timestamp="2026-11-21T10:00:00Z", **get)
    p = tmp_path / "gke.jsonl"
    p.write_text(json.dumps(a) + "\n" + json.dumps(b) + "\n")
    u = read_logs([str(p)])
    assert u.requests == 2
    [stats] = u.entries.values()
    assert stats.count == 2 and len(stats.days) == 2


def test_gke_create_is_attributed_as_its_url_was() -> None:
    ns = _gke(
        methodName="io.k8s.core.v1.namespaces.create", resourceName="core/v1/namespaces/newns"
    )
    assert one(ns)[0].access == Access("create", "", "namespaces", "", "", "")
    pod = _gke(
        methodName="io.k8s.core.v1.pods.create", resourceName="core/v1/namespaces/ns1/pods/p"
    )
    assert one(pod)[0].access == Access("create", "", "pods", "", "ns1", "")


def test_gke_unauthenticated_entry_without_principal_is_counted_as_such(tmp_path) -> None:
    from audit_samples import read_logs

    entry = _gke(authenticationInfo={}, authorizationInfo=[], status={"code": 16})
    ev, _ = one(entry)
    assert ev.code == 401 and ev.identity.user == ""
    p = tmp_path / "gke.jsonl"
    p.write_text(json.dumps(entry) + "\n" + json.dumps(_gke(insertId="e9", operation={})) + "\n")
    u = read_logs([str(p)])
    assert (u.requests, u.unauthenticated) == (2, 1)


@pytest.mark.parametrize(
    "meta", [{"callerSuppliedUserAgent": 123}, {"callerIp": ["1.2.3.4"]}, {"callerIP": {"a": 1}}]
)
def test_gke_request_metadata_must_be_strings(meta: dict[str, Any]) -> None:
    with pytest.raises(Malformed, match="requestMetadata.caller.* must be a string"):
        parse_record(_gke(requestMetadata=meta))


def test_gke_names_what_an_entry_lacks() -> None:
    full = parse_record(
        _gke(requestMetadata={"callerIp": "1.2.3.4", "callerSuppliedUserAgent": "kubectl/v1"})
    )
    assert full.missing == {"impersonatedUser", "requestURI", "stage", "user.groups"}
    bare = _gke(authorizationInfo=[], timestamp=None, insertId=None, operation={})
    assert parse_record(bare).missing - full.missing == {
        "userAgent",
        "sourceIPs",
        "requestReceivedTimestamp",
        "auditID",
        "annotations.authorization.k8s.io/decision",
    }


@pytest.mark.parametrize("granted", ["false", 0, None])
def test_gke_granted_must_be_a_boolean(granted: object) -> None:
    entry = _gke(authorizationInfo=[{"granted": granted, "permission": "x"}])
    with pytest.raises(Malformed, match="granted must be true or false"):
        parse_record(entry)


def test_eks_batches_of_other_control_plane_logs_are_ignored() -> None:
    batch = {
        "messageType": "DATA_MESSAGE",
        "logGroup": "/aws/eks/c1/cluster",
        "logStream": "authenticator-0123",
        "logEvents": [
            {"id": "1", "timestamp": 1, "message": "time=... level=info msg=access granted"}
        ],
    }
    parsed = parse_record(batch)
    assert parsed.events == [] and parsed.ignored == 1
    audit = dict(batch, logStream="kube-apiserver-audit-0123")
    with pytest.raises(Malformed, match="not JSON"):
        parse_record(audit)


@pytest.mark.parametrize("ms", [10**30, 10**17, -(10**20), 1e300])
def test_eks_log_event_times_out_of_range_are_malformed(ms: float) -> None:
    native = dict(event(), requestReceivedTimestamp=None, stageTimestamp=None)
    batch = {
        "messageType": "DATA_MESSAGE",
        "logStream": "kube-apiserver-audit-1",
        "logEvents": [{"id": "1", "timestamp": ms, "message": json.dumps(native)}],
    }
    with pytest.raises(Malformed, match="is not milliseconds since 1970"):
        parse_record(batch)


def test_gke_non_resource_and_status_codes() -> None:
    base = {
        "protoPayload": {
            "authenticationInfo": {"principalEmail": "system:anonymous"},
            "methodName": "io.k8s.get",
            "resourceName": "readyz",
            "serviceName": "k8s.io",
            "status": {"code": 7},
        }
    }
    ev, _ = one(base)
    assert ev.access == Access("get", path="/readyz", resource_request=False)
    assert ev.decision is Decision.FORBID and ev.identity.groups == ("system:unauthenticated",)


@pytest.mark.parametrize(
    "obj, reason",
    [
        ({"kind": "Event", "apiVersion": "v1", "reason": "Pulled"}, "not an audit event"),
        ({"hello": "world"}, "not an audit event"),
        ([], "empty JSON array"),
        (42, "not an audit event"),
        ({k: v for k, v in event().items() if k != "verb"}, "no verb"),
        (dict(event(), verb=5), "verb must be a string"),
        ({k: v for k, v in event().items() if k != "user"}, "no user"),
        (dict(event(), responseStatus={"code": "200"}), "code must be an integer"),
    ],
)
def test_not_audit_events(obj: object, reason: str) -> None:
    with pytest.raises(Malformed, match=reason):
        parse_record(obj)


def _independent_count(path) -> tuple[int, Counter[str]]:
    """Distinct requests and users of a native log, by plain json: (auditID, user, verb, uri)."""
    keys = set()
    users: Counter[str] = Counter()
    for text in path.read_text().splitlines():
        if not text.strip():
            continue
        d = json.loads(text)
        k = (d.get("auditID"), d["user"].get("username"), d.get("verb"), d.get("requestURI"))
        if k not in keys:
            keys.add(k)
            imp = d.get("impersonatedUser") or {}
            users[imp.get("username") or d["user"]["username"]] += 1
    return len(keys), users


def test_corpus_native_logs_count_every_request() -> None:
    root = corpus() / "audit" / "native"
    files = sorted(p for p in root.rglob("*") if p.suffix in (".log", ".json"))
    assert len(files) > 40
    for f in files:
        expected, users = _independent_count(f)
        stats: dict = {}
        evs = list(
            parse_lines(
                [
                    (str(f), i, t.encode())
                    for i, t in enumerate(f.read_text().splitlines(), 1)
                    if t.strip()
                ],
                stats=stats,
            )
        )
        assert len(evs) == expected, f
        assert Counter(e.identity.user for e in evs) == users, f


def test_corpus_managed_formats_with_skips() -> None:
    root = corpus() / "audit"
    for rel, shape in [
        ("gke/panther-gke-audit-tests.jsonl", "gke"),
        ("aks/panther-aks-audit-tests.jsonl", "aks"),
        ("eks/panther-eks-audit-tests.jsonl", "eks"),
        ("mixed-elastic/kubernetes-audit_logs-test-audit.log", "gke"),
    ]:
        f = root / rel
        raw = [t for t in f.read_text().splitlines() if t.strip()]
        stats: dict = {}
        evs = list(
            parse_lines(
                [(str(f), i, t.encode()) for i, t in enumerate(raw, 1)],
                skip_malformed=True,
                stats=stats,
            )
        )
        st = stats[str(f)]
        assert st.lines == len(raw)
        assert len(evs) + st.skipped + st.ignored == len(raw), rel  # one request per record here
        assert shape in st.formats
        with pytest.raises(AuditParseError) if st.skipped else _nothing():
            list(parse_lines([(str(f), i, t.encode()) for i, t in enumerate(raw, 1)]))


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None


def test_corpus_eks_records_without_verb_are_the_skipped_ones() -> None:
    f = corpus() / "audit" / "eks" / "panther-eks-audit-tests.jsonl"
    raw = [t for t in f.read_text().splitlines() if t.strip()]
    bad = 0
    for t in raw:
        d = json.loads(t)
        user = (d.get("user") or {}).get("username")
        target = (d.get("objectRef") or {}).get("resource") or d.get("requestURI")
        code = (d.get("responseStatus") or {}).get("code")
        if "verb" not in d or not target or (not user and code != 401):
            bad += 1
    stats: dict = {}
    list(
        parse_lines(
            [(str(f), i, t.encode()) for i, t in enumerate(raw, 1)],
            skip_malformed=True,
            stats=stats,
        )
    )
    assert stats[str(f)].skipped == bad
    assert stats[str(f)].first_error.startswith(f"{f}:1: ")


def test_fast_and_general_paths_agree() -> None:
    from rbac_advisor.audit import native

    samples = [
        event(),
        event(
            stage="ResponseStarted",
            verb="create",
            uri="/api/v1/namespaces/ns/pods/p/exec?command=sh&stdin=true",
            ref={"resource": "pods", "namespace": "ns", "name": "p", "subresource": "exec"},
            code=101,
        ),
        event(code=403, decision="forbid", reason=""),
        event(
            imp={
                "username": "system:serviceaccount:ns:sa",
                "groups": [
                    "system:serviceaccounts",
                    "system:serviceaccounts:ns",
                    "system:authenticated",
                ],
            }
        ),
        event(verb="get", uri="/healthz?verbose=1", ref=None),
        event(reason='RBAC: allowed by RoleBinding "rb/ns" of Role "r" to User "alice"'),
    ]
    for d in samples:
        fast = native.decode_fast(line(d))
        assert fast is not None
        assert fast[0] == native.from_dict(d)
    assert list(parse_lines(lines(*samples)))  # and through the stream


def _cloudwatch(*messages: str) -> dict[str, object]:
    return {
        "messageType": "DATA_MESSAGE",
        "logGroup": "/aws/eks/prod/cluster",
        "logEvents": [
            {"id": str(i), "timestamp": 1795000000000, "message": m} for i, m in enumerate(messages)
        ],
    }


def test_cloudwatch_batch_skips_only_its_bad_log_events() -> None:
    good = json.dumps(event(audit_id="good"))
    env = _cloudwatch(good, "not json", json.dumps({"hello": "world"}), json.dumps([1]))
    stats: dict = {}
    evs = list(parse_lines([("cw.json", 7, line(env))], skip_malformed=True, stats=stats))
    assert [e.audit_id for e in evs] == ["good"]
    st = stats["cw.json"]
    assert (st.lines, st.events, st.skipped, st.formats) == (1, 1, 3, {"eks-cloudwatch"})
    assert st.first_error.startswith("cw.json:7: logEvents[1].message is not JSON")
    with pytest.raises(AuditParseError) as err:
        list(parse_lines([("cw.json", 7, line(env))]))
    text = str(err.value)
    assert text.startswith("cw.json:7: logEvents[1].message is not JSON") and "\n" not in text


def test_cloudwatch_bad_event_fields_name_the_log_event() -> None:
    bad = dict(event(), verb=5)
    env = _cloudwatch(json.dumps(event()), json.dumps(event()), json.dumps(bad))
    with pytest.raises(AuditParseError, match=r"^cw.json:2: logEvents\[2\]: .*verb must be"):
        list(parse_lines([("cw.json", 2, line(env))]))
    stats: dict = {}
    evs = list(parse_lines([("cw.json", 2, line(env))], skip_malformed=True, stats=stats))
    assert len(evs) == 2 and stats["cw.json"].skipped == 1
    assert stats["cw.json"].first_error.startswith("cw.json:2: logEvents[2]: ")


def test_first_error_is_kept_when_a_later_batch_item_is_skipped() -> None:
    env = _cloudwatch(json.dumps(event()), "{")
    stats: dict = {}
    src = [("t.log", 1, b"{oops"), ("t.log", 2, line(env))]
    assert len(list(parse_lines(src, skip_malformed=True, stats=stats))) == 1
    assert stats["t.log"].skipped == 2
    assert stats["t.log"].first_error.startswith("t.log:1: invalid JSON")


def test_other_batches_skip_only_their_bad_items() -> None:
    good, bad = event(audit_id="g"), dict(event(audit_id="b"), user=None)
    event_list = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [bad, good, 3]}
    parsed = parse_record(event_list, skip_malformed=True)
    assert [e.audit_id for e in parsed.events] == ["g"]
    assert parsed.skipped == ["items[0]: audit event has no user", "items[2] is not an audit event"]
    with pytest.raises(Malformed, match=r"^items\[0\]: audit event has no user"):
        parse_record(event_list)

    parsed = parse_record([good, "x", bad], skip_malformed=True)
    assert len(parsed.events) == 1
    assert parsed.skipped == [
        "item 1: not an audit event: a JSON str",
        "item 2: audit event has no user",
    ]

    aks = {"category": "kube-audit", "properties": {"log": json.dumps(good)}}
    nested = {
        "records": [
            aks,
            {"records": [aks, event_list]},
            {"category": "kube-audit", "resourceId": "r"},
        ]
    }
    parsed = parse_record(nested, skip_malformed=True)
    assert len(parsed.events) == 3
    assert parsed.skipped == [
        "records[1]: records[1]: items[0]: audit event has no user",
        "records[1]: records[1]: items[2] is not an audit event",
        "records[2]: AKS kube-audit record has no properties object",
    ]
    with pytest.raises(Malformed, match=r"^records\[1\]: records\[1\]: items\[0\]: "):
        parse_record(nested)


def test_batch_with_a_bad_item_still_feeds_the_usage_model(tmp_path) -> None:
    from audit_samples import read_logs

    log = tmp_path / "cw.jsonl"
    log.write_bytes(line(_cloudwatch(json.dumps(event()), "garbage")) + b"\n")
    usage = read_logs([str(log)], skip_malformed=True)
    (src,) = usage.sources
    assert (src.requests, src.skipped) == (1, 1)
    assert src.first_error.startswith(f"{log}:1: logEvents[1].message is not JSON")
    with pytest.raises(AuditParseError, match=r":1: logEvents\[1\]\.message is not JSON"):
        read_logs([str(log)])


@pytest.mark.parametrize("key", ["requestReceivedTimestamp", "timestamp", "stageTimestamp"])
@pytest.mark.parametrize("stage", ["ResponseComplete", "RequestReceived"])
def test_a_timestamp_that_is_not_a_string_is_malformed(key: str, stage: str) -> None:
    from rbac_advisor.audit import native

    d = event(stage=stage)
    if key == "stageTimestamp":  # only read when the event has no earlier time
        del d["requestReceivedTimestamp"]
    d[key] = 12345
    assert native.decode_fast(line(d)) is None
    with pytest.raises(Malformed, match=f"^{key} must be a string, got int$"):
        parse_record(d)
    with pytest.raises(AuditParseError, match=f"^t.log:1: {key} must be a string, got int$"):
        list(parse_lines(lines(d)))
    stats: dict = {}
    assert list(parse_lines(lines(d), skip_malformed=True, stats=stats)) == []
    assert stats["t.log"].skipped == 1
    assert stats["t.log"].first_error == f"t.log:1: {key} must be a string, got int"


def test_an_unused_stage_timestamp_agrees_on_both_paths() -> None:
    from rbac_advisor.audit import native

    d = event(stageTimestamp=12345)
    fast = native.decode_fast(line(d))
    assert fast is not None and fast[0] == native.from_dict(d)


def test_timestamps_of_other_shapes_must_be_strings() -> None:
    entry = {
        "protoPayload": {
            "authenticationInfo": {"principalEmail": "alice@example.com"},
            "methodName": "io.k8s.core.v1.pods.get",
            "resourceName": "core/v1/namespaces/ns/pods/p",
            "serviceName": "k8s.io",
        },
        "timestamp": 1700000000,
    }
    with pytest.raises(Malformed, match="^timestamp must be a string, got int$"):
        parse_record(entry)
    rec = {"category": "kube-audit", "properties": {"log": json.dumps(event())}, "time": 1.5}
    with pytest.raises(Malformed, match="^time must be a string, got float$"):
        parse_record(rec)


@pytest.mark.parametrize(
    "text, shown",
    [
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"),
        ("0999-12-31T23:59:59.25Z", "0999-12-31T23:59:59.250000Z"),
        ("1970-01-02T00:00:01.5Z", "1970-01-02T00:00:01.500000Z"),
        ("2026-11-20T10:00:00.000001Z", "2026-11-20T10:00:00.000001Z"),
        ("9999-12-31T23:59:59.5Z", "9999-12-31T23:59:59.500000Z"),
    ],
)
def test_format_time_is_rfc3339_with_four_digit_years(text: str, shown: str) -> None:
    from rbac_advisor.audit.timestamps import format_time, parse_time

    assert format_time(parse_time(text)) == shown
    assert parse_time(shown) == parse_time(text)


@pytest.mark.parametrize(
    ("t", "shown"),
    [
        (86401.5, "1970-01-02T00:00:01Z"),
        (1.9999994, "1970-01-01T00:00:01Z"),
        (1.9999996, "1970-01-01T00:00:02Z"),  # the microseconds round up into the next second
        (59.9999996, "1970-01-01T00:01:00Z"),
        (86399.9999996, "1970-01-02T00:00:00Z"),
        (-1e-7, "1970-01-01T00:00:00Z"),
        (-6e-7, "1969-12-31T23:59:59Z"),
        (-86400.5, "1969-12-30T23:59:59Z"),
        (-62135596800, "0001-01-01T00:00:00Z"),
        (253402300799.25, "9999-12-31T23:59:59Z"),
    ],
)
def test_format_second_is_the_second_format_time_shows(t: float, shown: str) -> None:
    from rbac_advisor.audit.timestamps import format_second, format_time

    assert format_second(t) == shown == format_time(t)[:19] + "Z"


@given(
    st.floats(-62135596800, 253402300799.5)
    | st.builds(
        float.__add__,
        st.integers(-62135596800, 253402300798).map(float),
        st.sampled_from([0.0, 0.4999995, 0.5000005, 0.9999994999, 0.9999995, 0.9999996]),
    )
)
def test_format_second_agrees_with_format_time(t: float) -> None:
    from rbac_advisor.audit import timestamps

    assert timestamps.format_second(t) == timestamps.format_time(t)[:19] + "Z"
    timestamps._MINUTES.clear()  # computed afresh, not from the minute kept
    assert timestamps.format_second(t) == timestamps.format_time(t)[:19] + "Z"


@given(
    st.integers(-62135596800 + 86400, 253402300800 - 86400 - 1),
    st.integers(0, 999_999),
    st.integers(-23 * 60 - 59, 23 * 60 + 59),
    st.sampled_from(["T", "t", " "]),
    st.integers(0, 3),  # trailing zeros beyond the microseconds
)
def test_canonical_stamp_gives_one_text_per_instant(
    seconds: int, micros: int, offset_min: int, sep: str, zeros: int
) -> None:
    import datetime

    from rbac_advisor.audit.timestamps import canonical_stamp, format_time, parse_time

    shown = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=seconds + offset_min * 60)
    sign = "+" if offset_min >= 0 else "-"
    zone = f"{sign}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}"
    text = shown.strftime(f"%Y-%m-%d{sep}%H:%M:%S").zfill(19) + f".{micros:06d}" + "0" * zeros
    text += zone
    fixed = canonical_stamp(text)
    assert fixed == format_time(seconds)[:20] + f"{micros:06d}Z"
    assert canonical_stamp(fixed) == fixed
    assert parse_time(fixed) == parse_time(text)


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2026-11-20T24:00:00Z", "2026-11-20T10:00:00.Z", "2026-11-20T10:00"]
)
def test_canonical_stamp_keeps_a_text_that_is_not_a_time(text: str) -> None:
    from rbac_advisor.audit.timestamps import canonical_stamp

    assert canonical_stamp(text) == text


def test_nanosecond_times_do_not_round_across_a_window_boundary(tmp_path) -> None:
    from audit_samples import event, line, read_logs

    from rbac_advisor.audit.timestamps import parse_time

    times = ["2026-11-20T09:59:59.999999999Z", "2026-11-20T10:59:59.9999999Z"]
    p = tmp_path / "a.log"
    p.write_bytes(
        b"".join(line(event(audit_id=str(i), time=t)) + b"\n" for i, t in enumerate(times))
    )
    u = read_logs(
        [str(p)],
        since=parse_time("2026-11-20T10:00:00Z"),
        until=parse_time("2026-11-20T11:00:00Z"),
    )
    assert (u.requests, u.filtered) == (1, 1)
    [stats] = u.entries.values()
    assert stats.last == parse_time("2026-11-20T10:59:59.999999Z")


def _envelope(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "messageType": "DATA_MESSAGE",
        "logGroup": "/aws/eks/c1/cluster",
        "logStream": "kube-apiserver-audit-1",
        "logEvents": [
            {"id": str(i), "timestamp": 1763632800000, "message": json.dumps(e)}
            for i, e in enumerate(events)
        ],
    }


def test_firehose_envelopes_written_back_to_back_are_each_read(tmp_path) -> None:
    """Firehose delivers CloudWatch batches to S3 as gzip members of JSON with no newline."""
    import gzip

    from audit_samples import read_logs

    batches = [
        _envelope(event(audit_id="1", stage="RequestReceived"), event(audit_id="2")),
        _envelope(event(audit_id="1"), event(audit_id="3", user="bob")),
        _envelope(event(audit_id="4", user="bob")),
    ]
    p = tmp_path / "firehose.gz"
    p.write_bytes(b"".join(gzip.compress(json.dumps(b).encode()) for b in batches))
    u = read_logs([str(p)])
    assert u.requests == 4
    [src] = u.sources
    assert src.format == "eks-cloudwatch" and src.lines == 1
    native = tmp_path / "native.log"
    native.write_bytes(line(event(audit_id="1")) + b"  " + line(event(audit_id="2")) + b"\n")
    assert read_logs([str(native)]).requests == 2


def test_a_bad_document_among_back_to_back_ones_is_named(tmp_path) -> None:
    from audit_samples import read_logs

    p = tmp_path / "firehose.json"
    good = json.dumps(_envelope(event(audit_id="1")))
    other = json.dumps(_envelope(event(audit_id="2")))
    bad = '{"messageType": "DATA_MESSAGE", "logEvents": 3}'
    p.write_text(good + bad + good + "[1]")
    with pytest.raises(
        AuditParseError, match="document 2 of several back to back: CloudWatch logEvents"
    ):
        read_logs([str(p)])
    p.write_text(good + '{"a": NaN}')
    with pytest.raises(AuditParseError, match="invalid JSON in document 2"):
        read_logs([str(p)])
    p.write_text(good + "[1]")
    with pytest.raises(AuditParseError, match="document 2 of several back to back: not a JSON"):
        read_logs([str(p)])
    # Skipping: what was read before a bad document counts, and what follows it when its
    # end is known.
    for text, requests in (
        (good + bad + other, 2),
        (good + "[1,2]" + other, 2),
        (good + other + "}", 2),
        (good + other + " NaN", 2),
        (good + '{"kind":"Event", "broken' + other, 1),
    ):
        p.write_text(text)
        u = read_logs([str(p)], skip_malformed=True)
        assert (u.requests, u.skipped) == (requests, 1), text


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30T00:00:00Z",  # no such day
        "2026-11-20T23:59:60Z",  # Go's time.Parse has no leap second
        "2026-11-20T10:00:00+25:00",
        "2026-11-20T10:00:00+01:60",
        "2026-+1-20T10:00:00Z",  # int() would take the sign
        "2026-11-20T10:00:00.\u0663Z",  # a digit of another script
        "9999-12-31T23:30:00-02:00",  # year 10000 once in UTC
    ],
)
def test_impossible_timestamps_are_refused(text: str) -> None:
    from rbac_advisor.audit.timestamps import parse_time

    with pytest.raises(ValueError):
        parse_time(text)


def test_possible_edge_timestamps_are_read() -> None:
    from rbac_advisor.audit.timestamps import format_time, parse_time

    assert parse_time("2024-02-29T00:00:00Z") == 1709164800
    last = parse_time("9999-12-31T23:59:59.999999Z")
    assert last < 253402300800 and format_time(last).startswith("9999-12-31T23:59:59.9999")
    assert parse_time("0001-01-01T00:00:00Z") == -62135596800
