"""The `usage` command end to end with CliRunner."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from audit_samples import corpus, event, line
from typer.testing import CliRunner

from rbac_advisor import usage as model
from rbac_advisor.cli import app

runner = (
    CliRunner(mix_stderr=False)
    if "mix_stderr" in CliRunner.__init__.__code__.co_varnames
    else CliRunner()
)


def write(p, *dicts, gz=False) -> str:
    data = b"".join(line(d) + b"\n" for d in dicts)
    p.write_bytes(gzip.compress(data) if gz else data)
    return str(p)


def test_table_and_json(tmp_path) -> None:
    p = write(
        tmp_path / "a.log",
        event(audit_id="1", stage="RequestReceived"),
        event(audit_id="1"),
        event(audit_id="2", user="system:serviceaccount:ns1:builder", decision="forbid", code=403),
        event(audit_id="3", user="", groups=[], code=401, decision=None, stage="ResponseStarted"),
    )
    r = runner.invoke(app, ["usage", p])
    assert r.exit_code == 0, r.output
    assert "3 requests (1 unauthenticated)" in r.stdout
    assert "ServiceAccount  builder" in r.stdout
    r = runner.invoke(app, ["usage", "--json", p])
    doc = json.loads(r.stdout)
    assert doc["requests"] == 3 and doc["unauthenticated"] == 1
    subjects = {(s["kind"], s["name"], s["namespace"]): s for s in doc["subjects"]}
    assert subjects[("User", "alice", "")]["requests"] == 1
    sa = subjects[("ServiceAccount", "builder", "ns1")]
    assert (sa["requests"], sa["denied"], sa["accesses"][0]["decision"]) == (1, 1, "forbid")
    assert doc["sources"][0]["path"] == p


def test_json_is_written_a_subject_at_a_time_as_one_document(tmp_path) -> None:
    from rbac_advisor import usage_report

    users = [f"user-{i}" for i in range(5)]
    p = write(tmp_path / "a.log", *(event(audit_id=f"r{i}", user=u) for i, u in enumerate(users)))
    r = runner.invoke(app, ["usage", "--json", p])
    doc = json.loads(r.stdout)
    assert sorted(s["name"] for s in doc["subjects"]) == users
    u = model.loads(model.dumps(model.empty()))
    pieces = list(usage_report.iter_json(u))
    assert json.loads("".join(pieces))["subjects"] == []
    one = write(tmp_path / "b.log", event(audit_id="x"))
    r = runner.invoke(app, ["usage", "--json", one])
    assert r.stdout.count('"kind": "User"') == 1 and r.stdout.endswith("}\n")


def test_window_without_requests_is_said(tmp_path) -> None:
    p = write(tmp_path / "a.log", event(audit_id="1"), event(audit_id="2", user="bob"))
    r = runner.invoke(app, ["usage", p, "--until", "2000-01-01T00:00:00Z"])
    assert r.exit_code == 0
    assert r.stdout.splitlines()[0] == "0 requests (0 unauthenticated, 2 filtered out)"
    assert "warning: all 2 requests fall outside --since/--until" in r.stderr


def test_corpus_demo_log_json() -> None:
    demo = corpus() / "audit" / "native" / "audit2rbac" / "demo.log"
    r = runner.invoke(app, ["usage", "--json", str(demo)])
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    rows = [json.loads(t) for t in demo.read_text().splitlines() if t.strip()]
    assert doc["requests"] == len({d["auditID"] for d in rows})
    per_user: dict[str, int] = {}
    for d in rows:
        u = d["impersonatedUser"]["username"]
        per_user[u] = per_user.get(u, 0) + 1
    got = {s["user"]: s["requests"] for s in doc["subjects"] if s["requests"]}
    assert got == per_user
    denied = sum(1 for d in rows if d["responseStatus"]["code"] == 403)
    assert sum(s["denied"] for s in doc["subjects"]) == denied


def test_malformed_exit_3_one_line_and_nothing_written(tmp_path) -> None:
    p = tmp_path / "a.log"
    p.write_bytes(line(event()) + b"\n{oops\n")
    out = tmp_path / "model.json"
    r = runner.invoke(app, ["usage", str(p), "--save", str(out)])
    assert r.exit_code == 3
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"error: {p}:2: invalid JSON")
    assert "Traceback" not in r.stderr and not out.exists()
    r = runner.invoke(app, ["usage", str(p), "--skip-malformed", "--save", str(out)])
    assert r.exit_code == 0 and "warning: skipped 1 malformed record (first: " in r.stderr
    assert model.loads(out.read_text()).skipped == 1
    r = runner.invoke(app, ["usage", "--load", str(out), "--json"])  # and it loads as it was
    assert r.exit_code == 0, r.stderr
    (source,) = json.loads(r.stdout)["sources"]
    assert source["skipped"] == 1 and source["firstError"].startswith(f"{p}:2: invalid JSON (")


@pytest.mark.parametrize("content", [b"", b"\n\n", gzip.compress(b"")])
def test_empty_input_is_an_error(tmp_path, content: bytes) -> None:
    p = tmp_path / "empty.log"
    p.write_bytes(content)
    r = runner.invoke(app, ["usage", str(p)])
    assert r.exit_code == 3 and r.stderr == f"error: {p}: no audit events found\n"


def test_stdin_is_named_in_errors() -> None:
    r = runner.invoke(app, ["usage", "-"], input=b"")
    assert r.exit_code == 3 and r.stderr == "error: <stdin>: no audit events found\n"
    r = runner.invoke(app, ["usage", "-"], input=line(event()) + b"\n{oops\n")
    assert r.exit_code == 3 and r.stderr.startswith("error: <stdin>:2: invalid JSON")


def test_non_event_json_and_truncated_gzip(tmp_path) -> None:
    p = write(tmp_path / "k.json", {"kind": "Event", "apiVersion": "v1", "reason": "Scheduled"})
    r = runner.invoke(app, ["usage", p])
    assert r.exit_code == 3 and "not an audit event" in r.stderr
    data = gzip.compress(b"".join(line(event(audit_id=str(i))) + b"\n" for i in range(3000)))
    g = tmp_path / "t.log.gz"
    g.write_bytes(data[:-40])
    r = runner.invoke(app, ["usage", str(g)])
    assert r.exit_code == 3 and "truncated or corrupt gzip" in r.stderr


def test_save_load_merge_and_time_flags(tmp_path) -> None:
    a = write(tmp_path / "a.log", event(audit_id="1", time="2026-11-01T00:00:00Z"))
    b = write(tmp_path / "b.log.gz", event(audit_id="2", time="2026-11-05T00:00:00Z"), gz=True)
    ma, mb = tmp_path / "a.json", tmp_path / "b.json"
    assert runner.invoke(app, ["usage", a, "--save", str(ma)]).exit_code == 0
    assert runner.invoke(app, ["usage", b, "--save", str(mb)]).exit_code == 0
    r = runner.invoke(app, ["usage", "--json", "--load", str(ma), "--load", str(mb)])
    both = runner.invoke(app, ["usage", "--json", a, b])
    merged, direct = json.loads(r.stdout), json.loads(both.stdout)
    assert merged["requests"] == direct["requests"] == 2
    assert merged["subjects"] == direct["subjects"]
    r = runner.invoke(app, ["usage", "--json", a, b, "--since", "2026-11-03T00:00:00Z"])
    assert json.loads(r.stdout)["requests"] == 1
    r = runner.invoke(app, ["usage", a, "--since", "yesterday"])
    assert r.exit_code == 2 and "--since 'yesterday'" in r.stderr
    r = runner.invoke(app, ["usage"])
    assert r.exit_code == 2


def test_rotation_boundary_counts_once(tmp_path) -> None:
    d = tmp_path / "logs"
    d.mkdir()
    write(
        d / "audit-2026-11-20T10-00-00.000.log.gz",
        event(audit_id="x", stage="RequestReceived"),
        gz=True,
    )
    write(d / "audit.log", event(audit_id="x", stage="ResponseComplete"))
    r = runner.invoke(app, ["usage", "--json", str(d)])
    assert json.loads(r.stdout)["requests"] == 1


def test_stdin_dash() -> None:
    data = line(event(audit_id="s1")) + b"\n" + line(event(audit_id="s2", user="bob")) + b"\n"
    r = runner.invoke(app, ["usage", "--json", "-"], input=data)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["requests"] == 2 and doc["sources"][0]["path"] == "-"


def test_corpus_gke_reports_missing_groups_skips_and_ignored() -> None:
    f = corpus() / "audit" / "gke" / "panther-gke-audit-tests.jsonl"
    r = runner.invoke(app, ["usage", "--json", "--skip-malformed", str(f)])
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    [src] = doc["sources"]
    assert "user.groups" in src["missingFields"] and src["format"] == "gke"
    assert src["skipped"] > 0 and src["ignored"] > 0 and doc["skipped"] == src["skipped"]
    raw = [json.loads(t) for t in f.read_text().splitlines() if t.strip()]
    assert src["lines"] == len(raw)
    assert doc["requests"] == len(raw) - src["skipped"] - src["ignored"]


def test_parse_when_forms() -> None:
    from rbac_advisor.cli.ingest import parse_when
    from rbac_advisor.errors import UsageError

    now = 1_800_000_000.0
    assert parse_when("30d", now, "--since") == now - 30 * 86400
    assert parse_when("12h", now, "--since") == now - 12 * 3600
    assert parse_when("2026-11-20T10:00:00Z", now, "--since") == 1_795_168_800.0
    assert parse_when(None, now, "--since") is None
    with pytest.raises(UsageError, match="--until 'soon'"):
        parse_when("soon", now, "--until")


def test_a_malformed_record_error_says_how_to_go_on(tmp_path) -> None:
    p = tmp_path / "a.log"
    p.write_bytes(line(event()) + b"\n{oops\n")
    r = runner.invoke(app, ["usage", str(p)])
    assert r.exit_code == 3 and r.stderr.count("\n") == 1
    assert r.stderr.startswith(f"error: {p}:2: invalid JSON")
    assert r.stderr.rstrip().endswith("--skip-malformed skips such records and counts them")


def test_an_error_skipping_cannot_get_past_offers_no_skipping(tmp_path) -> None:
    """Invalid JSON in a file of JSON documents ends what can be read, skipping or not."""
    p = tmp_path / "a.json"
    doc = json.dumps(json.loads(line(event())), indent=2)
    p.write_text(doc + "\n" + doc.replace('"verb"', '"verb" "x"', 1) + "\n")
    for extra in ([], ["--skip-malformed"]):
        r = runner.invoke(app, ["usage", *extra, str(p)])
        assert r.exit_code == 3 and r.stderr.count("\n") == 1, r.stderr
        assert r.stderr.startswith(f"error: {p}:") and "invalid JSON" in r.stderr
        assert "--skip-malformed" not in r.stderr
    q = tmp_path / "b.json"
    q.write_bytes(doc.encode() + b"\n" + doc.encode().replace(b"get", b"g\xffe", 1) + b"\n")
    r = runner.invoke(app, ["usage", str(q)])
    assert r.exit_code == 3 and "not UTF-8" in r.stderr and "--skip-malformed" not in r.stderr


def test_jobs_chooses_how_many_processes_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rbac_advisor.cli import parallel

    dicts = []
    for i in range(400):
        dicts += [event(audit_id=str(i), stage="RequestReceived"), event(audit_id=str(i))]
    p = write(tmp_path / "a.log", *dicts)
    monkeypatch.setattr(parallel, "MIN_SIZE", 0)  # worth sharing, however small
    used: list[int] = []
    read_files = parallel.read_files

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        used.append(args[5])  # the number of workers
        return read_files(*args, **kwargs)

    monkeypatch.setattr(parallel, "read_files", spy)
    outputs = []
    for jobs in ("1", "3"):
        r = runner.invoke(app, ["usage", "--json", "--jobs", jobs, p])
        assert r.exit_code == 0, r.output
        outputs.append(json.loads(r.stdout)["requests"])
    assert used == [3] and outputs == [400, 400]
    r = runner.invoke(app, ["usage", "-j", "0", p])
    assert r.exit_code == 2 and "--jobs" in r.output


def test_default_jobs_follow_the_cpus_this_process_may_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rbac_advisor.cli import options

    for cpus, expected in (({0}, 1), ({0, 1}, 2), (set(range(16)), 4)):
        monkeypatch.setattr(options.os, "sched_getaffinity", lambda _pid, c=cpus: c)
        assert options.default_workers() == expected


def run_main(monkeypatch: pytest.MonkeyPatch, capsys, *args: str) -> tuple[int, str]:
    """The installed entry point in this process: exit code and stderr."""
    from rbac_advisor.cli import main

    monkeypatch.setattr("sys.argv", ["rbac-advisor", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return int(exc.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--since", "30d"], "--since"),
        (["--until", "2026-11-03T00:00:00Z"], "--until"),
        (["--kubectl-only"], "--kubectl-only"),
        (["--since", "1d", "--kubectl-only"], "--since/--kubectl-only"),
    ],
)
@pytest.mark.parametrize("with_logs", [False, True])
def test_filters_with_a_loaded_model_are_a_usage_error(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys, flags: list[str], named: str, with_logs: bool
) -> None:
    a = write(tmp_path / "a.log", event(audit_id="1", time="2026-11-01T00:00:00Z"))
    saved = tmp_path / "a.json"
    assert runner.invoke(app, ["usage", a, "--save", str(saved)]).exit_code == 0
    args = ["usage", "--load", str(saved), *flags, *([a] if with_logs else [])]
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and r.stdout == ""
    code, err = run_main(monkeypatch, capsys, *args)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: Invalid value: {named} cannot be combined with --load: ")
    assert "the filters apply to audit logs only" in err
    assert "a saved model keeps the filters it was built with" in err


def test_analyze_filters_with_a_saved_model_are_a_usage_error(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    a = write(tmp_path / "a.log", event(audit_id="1"))
    saved = tmp_path / "a.json"
    assert runner.invoke(app, ["usage", a, "--save", str(saved)]).exit_code == 0
    out = tmp_path / "review"
    args = ["analyze", "--usage", str(saved), "--rbac", "x.yaml", "--until", "1d", "-o", str(out)]
    assert runner.invoke(app, args).exit_code == 2
    code, err = run_main(monkeypatch, capsys, *args)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: Invalid value: --until cannot be combined with --usage: ")
    assert not out.exists()


@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("2026-11-22T00:00:00Z", "2026-11-21T00:00:00Z"),
        ("2026-11-21T00:00:00Z", "2026-11-21T00:00:00Z"),
        ("1d", "2d"),
    ],
)
def test_since_not_before_until_is_refused(tmp_path, since: str, until: str) -> None:
    a = write(tmp_path / "a.log", event(audit_id="1"))
    saved, out = tmp_path / "a.json", tmp_path / "review"
    for args in (
        ["usage", a, "--save", str(saved)],
        ["analyze", "--audit", a, "--rbac", "x.yaml", "-o", str(out)],
    ):
        r = runner.invoke(app, [*args, "--since", since, "--until", until])
        assert r.exit_code == 3, r.output
        assert r.stderr == f"error: --since {since} is not before --until {until}\n"
    assert not saved.exists() and not out.exists()
    r = runner.invoke(app, ["usage", a, "--since", "2d", "--until", "1d"])
    assert r.exit_code == 0 and "is not before" not in r.stderr


def test_help_says_how_the_filters_work() -> None:
    r = runner.invoke(app, ["usage", "--help"], env={"COLUMNS": "200"})
    text = " ".join(r.stdout.split())
    assert "durations counted back from now (30d, 12h)" in text
    assert "a model given with --load keeps the filters it was built with" in text
    assert "cannot be combined with --load" in text


def test_skips_are_counted_per_file_on_the_terminal_too(tmp_path) -> None:
    a = tmp_path / "a.log"
    b = tmp_path / "b.log"
    a.write_bytes(line(event(audit_id="1")) + b"\n{oops\n{oops\n")
    b.write_bytes(b"[1,\n" + line(event(audit_id="2")) + b"\n")
    r = runner.invoke(app, ["usage", "--skip-malformed", str(a), str(b)])
    assert r.exit_code == 0, r.output
    assert r.stderr.startswith(
        f"warning: skipped 3 malformed records ({a}: 2, {b}: 1; first: {a}:2: invalid JSON"
    )
    assert "2 requests" in r.stdout


def test_a_model_loaded_twice_counts_once_and_a_log_counted_twice_is_named(tmp_path) -> None:
    p = write(tmp_path / "a.log", *(event(audit_id=str(i)) for i in range(3)))
    m1, m2 = tmp_path / "m1.json", tmp_path / "m2.json"
    for m in (m1, m2):
        assert runner.invoke(app, ["usage", p, "--save", str(m)]).exit_code == 0
    r = runner.invoke(app, ["usage", "--json", "--load", str(m1), "--load", str(m1)])
    assert r.exit_code == 0 and json.loads(r.stdout)["requests"] == 3 and r.stderr == ""
    r = runner.invoke(app, ["usage", "--json", "--load", str(m1), "--load", str(m2)])
    assert json.loads(r.stdout)["requests"] == 6  # what the models hold, merged
    assert r.stderr == (
        f"warning: {p} was read for 2 models: their requests are counted once per model, "
        "unless --since/--until kept the models apart\n"
    )
    r = runner.invoke(app, ["usage", "--json", p, "--load", str(m1)])
    assert f"warning: {p} was read for 2 models" in r.stderr


def test_analyze_names_a_log_given_both_as_audit_and_inside_a_saved_model(tmp_path) -> None:
    demo = Path(__file__).parent.parent / "fixtures" / "demo"
    audit, rbac = str(demo / "audit.jsonl"), str(demo / "rbac.yaml")
    saved = tmp_path / "m.json"
    assert runner.invoke(app, ["usage", audit, "--save", str(saved)]).exit_code == 0
    once = runner.invoke(
        app, ["analyze", "--audit", audit, "--rbac", rbac, "-o", str(tmp_path / "a")]
    )
    assert once.exit_code == 0 and "was read for 2 models" not in once.stderr
    twice = runner.invoke(
        app,
        [
            "analyze",
            "--audit",
            audit,
            "--usage",
            str(saved),
            "--rbac",
            rbac,
            "-o",
            str(tmp_path / "b"),
        ],
    )
    assert twice.exit_code == 0, twice.output
    assert f"warning: {audit} was read for 2 models: their requests are counted" in twice.stderr


def test_analyze_shows_no_date_for_requests_whose_records_gave_none(tmp_path) -> None:
    demo = Path(__file__).parent.parent / "fixtures" / "demo"
    undated = {
        k: v
        for k, v in event(user="system:serviceaccount:ci:deployer").items()
        if k not in ("requestReceivedTimestamp", "stageTimestamp")
    }
    p = write(tmp_path / "a.log", undated, event(audit_id="2", user="alice"))
    out = tmp_path / "review"
    r = runner.invoke(
        app, ["analyze", "--audit", p, "--rbac", str(demo / "rbac.yaml"), "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    for name in ("findings.json", "report.html"):
        assert "1970-01-01" not in (out / name).read_text()
    uses = [
        u
        for b in json.loads((out / "findings.json").read_text())["bindings"]
        for u in b.get("uses", [])
        if u["identity"]["user"] == "system:serviceaccount:ci:deployer"
    ]
    assert uses and all(u["firstSeen"] is None and u["lastSeen"] is None for u in uses)


def test_save_to_stdout_is_refused(tmp_path, monkeypatch) -> None:
    p = write(tmp_path / "a.log", event())
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["usage", p, "--save", "-"])
    assert r.exit_code == 2 and "--save needs a file" in r.output
    assert not (tmp_path / "-").exists()


def test_the_table_names_tools_and_the_json_their_versions(tmp_path) -> None:
    p = write(
        tmp_path / "a.log",
        event(audit_id="1"),
        event(audit_id="2", ua="kubectl/v1.35.0 (linux/amd64) kubernetes/abc"),
        event(audit_id="3", ua="Helm/3.15.2"),
    )
    r = runner.invoke(app, ["usage", p])
    [row] = [x for x in r.stdout.splitlines() if x.startswith("User")]
    assert "kubectl,helm" in row and "v1." not in row
    [subject] = json.loads(runner.invoke(app, ["usage", "--json", p]).stdout)["subjects"]
    assert subject["tools"] == {"kubectl/v1.36.3": 1, "kubectl/v1.35.0": 1, "helm/3.15.2": 1}


def test_table_columns_add_up_to_the_requests(tmp_path) -> None:
    p = write(
        tmp_path / "a.log",
        event(audit_id="1"),
        event(audit_id="2", decision="forbid", code=403),
        event(audit_id="3", stage="RequestReceived"),  # never finished: decision unknown
    )
    r = runner.invoke(app, ["usage", p])
    head, row = [x.split() for x in r.stdout.splitlines()[2:4]]
    assert head[3:7] == ["REQUESTS", "ALLOWED", "DENIED", "UNKNOWN"]
    assert row[0] == "User" and row[3:7] == ["3", "1", "1", "1"]


def test_a_stray_file_in_a_log_directory_is_named_as_such(tmp_path) -> None:
    d = tmp_path / "logs"
    d.mkdir()
    write(d / "audit.log", event())
    (d / "NOTES").write_text("rotate weekly\n")
    r = runner.invoke(app, ["usage", str(d)])
    assert r.exit_code == 3 and r.stderr.count("\n") == 1
    assert r.stderr.startswith(f"error: {d / 'NOTES'}:1: invalid JSON")
    assert f"is it an audit log? It was found in {d}: name the log files" in r.stderr
    r = runner.invoke(app, ["usage", str(d / "NOTES")])  # named: the usual hint
    assert r.exit_code == 3 and "is it an audit log" not in r.stderr


@pytest.mark.parametrize(
    "stamp",
    ["2026-11-20T24:00:00.000000Z", "2026-11-20T10:00:00.00000xZ", "2026-02-30T10:00:00.000000Z"],
)
def test_an_impossible_time_in_an_apiserver_line_is_malformed(tmp_path, stamp: str) -> None:
    p = write(
        tmp_path / "a.log",
        event(audit_id="1"),
        event(audit_id="2", time=stamp),
        event(audit_id="3"),
    )
    r = runner.invoke(app, ["usage", "--json", p])
    assert r.exit_code == 3 and r.stdout == ""
    err = r.stderr.strip()
    assert err.startswith(f"error: {p}:2: ") and "\n" not in err
    r = runner.invoke(app, ["usage", "--json", "--skip-malformed", p])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["requests"], doc["sources"][0]["skipped"]) == (2, 1)


def test_other_rfc3339_forms_are_ordered_as_times_not_as_text(tmp_path) -> None:
    # A space or a lowercase t is valid RFC 3339 but does not sort like the apiserver's form.
    p = write(
        tmp_path / "a.log",
        event(audit_id="1", time="2026-11-20 23:00:00.000000Z"),
        event(audit_id="2", time="2026-11-20T01:00:00.000000Z"),
        event(audit_id="3", time="2026-11-20t12:00:00.000000Z"),
    )
    r = runner.invoke(app, ["usage", "--json", p])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    (access,) = doc["subjects"][0]["accesses"]
    assert (access["firstSeen"], access["lastSeen"]) == (
        "2026-11-20T01:00:00Z",
        "2026-11-20T23:00:00Z",
    )


@pytest.mark.parametrize("target", ["/dev/stdin", "/proc/self/fd/0"])
def test_save_never_replaces_a_log_read_from_stdin(tmp_path, target: str) -> None:
    import subprocess
    import sys

    log = tmp_path / "a.log"
    write(log, event())
    before = log.read_bytes()
    with log.open("rb") as stdin:
        r = subprocess.run(
            [sys.executable, "-m", "rbac_advisor", "usage", "-", "--save", target],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 3, r.stderr
    assert "will not overwrite: it is one of the inputs" in r.stderr
    assert log.read_bytes() == before


def test_a_compressed_model_a_full_disk_and_a_huge_duration_give_one_line(tmp_path) -> None:
    import subprocess
    import sys

    log = write(tmp_path / "a.log", event())
    saved = tmp_path / "m.json"
    assert runner.invoke(app, ["usage", log, "--save", str(saved)]).exit_code == 0
    packed = tmp_path / "m.json.gz"
    packed.write_bytes(gzip.compress(saved.read_bytes()))
    r = runner.invoke(app, ["usage", "--load", str(packed)])
    assert r.exit_code == 3 and r.stdout == ""
    assert r.stderr.strip() == f"error: {packed}: not a saved usage model: not UTF-8 text " + (
        "(compressed? decompress it first)"
    )
    r = runner.invoke(app, ["usage", log, "--json", "--since", "9" * 300 + "w"])
    assert r.exit_code == 0 and json.loads(r.stdout)["requests"] == 1
    with open("/dev/full", "w") as full:
        p = subprocess.run(
            [sys.executable, "-m", "rbac_advisor", "usage", log, "--json"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert p.returncode == 6
    assert p.stderr == "error: cannot write to standard output: No space left on device\n"


@pytest.mark.parametrize(
    "flags, kept",
    [
        # a bound between two whole microseconds acts as the next one
        (["--until", "2026-11-20T10:00:00.0000001Z"], ["a", "b"]),
        (["--since", "2026-11-20T09:59:59.9999999Z"], ["b", "c"]),
        (["--since", "2026-11-20T11:59:59.9999995+02:00"], ["b", "c"]),
        (["--until", "2026-11-20T10:00:00.0000000Z"], ["a"]),
    ],
)
def test_window_bounds_finer_than_a_microsecond(
    tmp_path, flags: list[str], kept: list[str]
) -> None:
    p = write(
        tmp_path / "a.log",
        event(audit_id="a", user="a", time="2026-11-20T09:59:59.999999Z"),
        event(audit_id="b", user="b", time="2026-11-20T10:00:00.000000Z"),
        event(audit_id="c", user="c", time="2026-11-20T10:00:00.000001Z"),
    )
    r = runner.invoke(app, ["usage", "--json", p, *flags])
    assert r.exit_code == 0, r.stderr
    assert sorted(s["name"] for s in json.loads(r.stdout)["subjects"]) == kept


def test_quiet_leaves_only_errors_on_stderr(tmp_path) -> None:
    import subprocess
    import sys

    p = write(tmp_path / "a.log", event(audit_id="1"), {"x": 1}, event(audit_id="2"))
    cmd = [sys.executable, "-m", "rbac_advisor"]
    loud = subprocess.run([*cmd, "usage", p, "--skip-malformed"], capture_output=True, text=True)
    assert loud.returncode == 0 and loud.stderr.startswith("warning: skipped 1 malformed record")
    quiet = subprocess.run(
        [*cmd, "-q", "usage", p, "--skip-malformed"], capture_output=True, text=True
    )
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == loud.stdout


def _hostile_lines(tmp_path) -> dict[str, bytes]:
    good = line(event(audit_id="ok"))
    deep = b"[" * 3000 + b"]" * 3000
    return {
        # a byte that is not UTF-8 in a field the typed reader decodes
        "badutf": line(event(audit_id="u", ua="kubectl/\x00")).replace(b"\\u0000", b"\xff"),
        # nesting past every reader's limit in a body nobody reads
        "deep": line(event(audit_id="d", requestObject=[])).replace(b"[]", deep),
        # two documents on a line, the second nested too deep or with a lone surrogate
        "b2b_deep": good + line(event(audit_id="b", requestObject=[])).replace(b"[]", deep),
        "b2b_surrogate": good + line(event(audit_id="s", user="mall\ud800ory")),
    }


@pytest.mark.parametrize("case", ["badutf", "deep", "b2b_deep", "b2b_surrogate"])
def test_hostile_lines_are_malformed_records_not_tracebacks(tmp_path, case: str) -> None:
    bad = _hostile_lines(tmp_path)[case]
    p = tmp_path / "a.log"
    p.write_bytes(
        line(event(audit_id="1")) + b"\n" + bad + b"\n" + line(event(audit_id="2")) + b"\n"
    )
    r = runner.invoke(app, ["usage", "--json", str(p)])
    assert r.exit_code == 3 and r.stdout == "", r.stderr
    err = r.stderr.strip()
    assert err.startswith(f"error: {p}:2: ") and "\n" not in err
    r = runner.invoke(app, ["usage", "--json", "--skip-malformed", str(p)])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["sources"][0]["skipped"] == 1 and doc["requests"] >= 2


def test_a_selector_name_that_is_not_utf8_names_nothing(tmp_path) -> None:
    uri = "/api/v1/namespaces/team-a/pods?fieldSelector=metadata.name%3Dp%FF"
    d = event(verb="list", uri=uri)
    d.pop("objectRef", None)
    p = write(tmp_path / "a.log", d)
    r = runner.invoke(app, ["usage", "--json", p])
    assert r.exit_code == 0, r.stderr
    (access,) = json.loads(r.stdout)["subjects"][0]["accesses"]
    assert (access["verb"], access["resource"], access.get("name", "")) == ("list", "pods", "")


def test_a_file_name_cannot_send_terminal_escapes(tmp_path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    bad = logs / "x\x1b]0;pwned\x07\x1b[31m.log"
    bad.write_bytes(b"not json\n")
    r = runner.invoke(app, ["usage", str(logs)])
    assert r.exit_code == 3
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr
    assert "x\\x1b]0;pwned\\x07\\x1b[31m.log:1: " in r.stderr


def test_a_skipped_record_of_stdin_is_named_as_stdin() -> None:
    """Every message names standard input ``<stdin>``, the first skipped record's too."""
    bad = b"not json\n"
    good = line(event(audit_id="a")) + b"\n"
    r = runner.invoke(app, ["usage", "-", "--skip-malformed", "--json"], input=bad + good)
    assert r.exit_code == 0, r.output
    [source] = json.loads(r.stdout)["sources"]
    assert source["path"] == "-" and source["firstError"].startswith("<stdin>:1: invalid JSON")
    r = runner.invoke(app, ["usage", "-", "--skip-malformed"], input=bad)
    assert r.exit_code == 3
    assert r.stderr.startswith("error: <stdin>: no audit events found (first: <stdin>:1: ")


def test_binary_given_as_a_model_is_refused_at_once(tmp_path) -> None:
    """NUL bytes (JSON text holds none) refuse a file, and a stream before it is all read."""
    import os
    import threading

    zeros = tmp_path / "zeros.json"
    zeros.write_bytes(b"\0" * (3 << 20))  # valid UTF-8, but no model
    message = "not a saved usage model: not UTF-8 text (compressed? decompress it first)"
    r = runner.invoke(app, ["usage", "--load", str(zeros)])
    assert (r.exit_code, r.stderr.strip()) == (3, f"error: {zeros}: {message}")
    read_end, write_end = os.pipe()
    sent = [0]

    def feed() -> None:  # like /dev/zero, but it ends: 64 MB
        try:
            for _ in range(64):
                sent[0] += os.write(write_end, b"\0" * (1 << 20))
        except BrokenPipeError:
            pass
        finally:
            os.close(write_end)

    writer = threading.Thread(target=feed)
    writer.start()
    stream = f"/dev/fd/{read_end}"
    try:
        r = runner.invoke(app, ["usage", "--load", stream])
    finally:
        os.close(read_end)
        writer.join()
    assert (r.exit_code, r.stderr.strip()) == (3, f"error: {stream}: {message}")
    assert sent[0] < 8 << 20  # the reader stopped at the first piece


def test_a_file_that_reports_no_size_is_read_whole() -> None:
    """Files of /proc say size 0 but hold text: read as a stream, they are not empty."""
    r = runner.invoke(app, ["usage", "--load", "/proc/self/status"])
    assert r.exit_code == 3
    assert r.stderr.startswith("error: /proc/self/status: not a saved usage model: invalid JSON")
    assert "empty document" not in r.stderr and r.stderr.count("\n") == 1


def test_models_added_past_the_saved_bound_are_not_saved(tmp_path) -> None:
    """Two models each at the bound add up past it: shown, but saving is refused."""
    from rbac_advisor.usage_codec import INT_MAX

    saved = tmp_path / "m.json"
    log = write(tmp_path / "a.log", event())
    assert runner.invoke(app, ["usage", log, "--save", str(saved)]).exit_code == 0
    doc = json.loads(saved.read_text())
    doc["entries"][0][5] = doc["activity"][0][3] = doc["requests"] = INT_MAX
    doc["sources"][0]["requests"] = doc["sources"][0]["lines"] = INT_MAX
    saved.write_text(json.dumps(doc))
    other = tmp_path / "copy.json"
    other.write_text(json.dumps(doc))
    r = runner.invoke(app, ["usage", "--load", str(saved), "--load", str(other), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["requests"] == 2 * INT_MAX
    out = tmp_path / "sum.json"
    r = runner.invoke(
        app, ["usage", "--load", str(saved), "--load", str(other), "--save", str(out)]
    )
    assert r.exit_code == 3 and not out.exists()
    assert r.stderr.strip() == (
        f"error: cannot save {out}: requests ({2 * INT_MAX}) passes {INT_MAX}, "
        "the most a saved model holds"
    )
