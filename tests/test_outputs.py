"""Output files: never an input or a special file, links followed, usual modes, one-line errors."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_samples import event, line
from typer.testing import CliRunner

from rbac_advisor import usage as model
from rbac_advisor.cli import app, outputs

REPO = Path(__file__).resolve().parents[1]
DEMO_AUDIT = REPO / "fixtures" / "demo" / "audit.jsonl"
DEMO_RBAC = REPO / "fixtures" / "demo" / "rbac.yaml"

runner = (
    CliRunner(mix_stderr=False)
    if "mix_stderr" in CliRunner.__init__.__code__.co_varnames
    else CliRunner()
)


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def log(tmp_path: Path, name: str = "base.jsonl") -> Path:
    p = tmp_path / name
    p.write_bytes(line(event(audit_id="1")) + b"\n" + line(event(audit_id="2", user="bob")) + b"\n")
    return p


def one_error(stderr: str) -> str:
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert stderr.startswith("error: ")
    return stderr.removeprefix("error: ").rstrip("\n")


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


def test_save_over_the_input_log_is_refused(tmp_path: Path) -> None:
    p = log(tmp_path)
    before = p.read_bytes()
    r = runner.invoke(app, ["usage", str(p), "--save", str(p)])
    assert r.exit_code == 3
    assert one_error(r.stderr) == f"{p}: will not overwrite: it is one of the inputs"
    assert p.read_bytes() == before and leftovers(tmp_path) == []


def test_save_over_a_log_read_from_a_directory_or_a_hard_link_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    d.mkdir()
    p = log(d, "audit.log")
    before = p.read_bytes()
    r = runner.invoke(app, ["usage", str(d), "--save", str(p)])
    assert r.exit_code == 3 and "is one of the inputs" in one_error(r.stderr)
    other = tmp_path / "other-name.json"
    os.link(p, other)
    r = runner.invoke(app, ["usage", str(p), "--save", str(other)])
    assert r.exit_code == 3 and one_error(r.stderr).startswith(f"{other}: will not overwrite")
    assert p.read_bytes() == before


def test_save_may_replace_a_loaded_model_with_the_merged_one(tmp_path: Path) -> None:
    p = log(tmp_path)
    saved = tmp_path / "m.json"
    assert runner.invoke(app, ["usage", str(p), "--save", str(saved)]).exit_code == 0
    q = tmp_path / "more.jsonl"
    q.write_bytes(line(event(audit_id="3", user="carol")) + b"\n")
    r = runner.invoke(app, ["usage", str(q), "--load", str(saved), "--save", str(saved)])
    assert r.exit_code == 0, r.stderr
    assert model.loads(saved.read_text()).requests == 3


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_target_that_is_not_a_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    p = log(tmp_path)
    target = tmp_path / "target"
    if kind == "directory":
        target.mkdir()
        shown = "a directory"
    else:
        os.mkfifo(target)
        shown = "a named pipe"
    r = runner.invoke(app, ["usage", str(p), "--save", str(target)])
    assert r.exit_code == 3
    assert one_error(r.stderr) == f"{target}: cannot write: it is {shown}, not a regular file"
    mode = os.lstat(target).st_mode
    assert stat.S_ISDIR(mode) if kind == "directory" else stat.S_ISFIFO(mode)
    assert leftovers(tmp_path) == []


def test_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    p = log(tmp_path)
    target = tmp_path / "nonexistent" / "dir" / "s.json"
    r = runner.invoke(app, ["usage", str(p), "--save", str(target)])
    assert r.exit_code == 3
    assert one_error(r.stderr) == (
        f"{target}: cannot write: directory {target.parent} does not exist"
    )
    assert not (tmp_path / "nonexistent").exists()


def test_a_symlink_target_is_followed_and_kept(tmp_path: Path) -> None:
    p = log(tmp_path)
    elsewhere = tmp_path / "models"
    elsewhere.mkdir()
    real = elsewhere / "usage.json"
    link = tmp_path / "latest.json"
    link.symlink_to(real)  # dangling until the first save
    for _ in range(2):
        r = runner.invoke(app, ["usage", str(p), "--save", str(link)])
        assert r.exit_code == 0, r.stderr
        assert link.is_symlink() and os.readlink(link) == str(real)
        assert model.loads(real.read_text()).requests == 2
    assert leftovers(tmp_path) == leftovers(elsewhere) == []


def test_a_link_to_an_input_is_refused(tmp_path: Path) -> None:
    p = log(tmp_path)
    before = p.read_bytes()
    link = tmp_path / "alias.json"
    link.symlink_to(p)
    r = runner.invoke(app, ["usage", str(p), "--save", str(link)])
    assert r.exit_code == 3 and "is one of the inputs" in one_error(r.stderr)
    assert link.is_symlink() and p.read_bytes() == before


def test_new_files_get_the_umask_mode_and_replaced_files_keep_theirs(
    tmp_path: Path, umask_027: None
) -> None:
    p = log(tmp_path)
    new = tmp_path / "new.json"
    assert runner.invoke(app, ["usage", str(p), "--save", str(new)]).exit_code == 0
    assert stat.S_IMODE(new.stat().st_mode) == 0o640
    old = tmp_path / "old.json"
    old.write_text("{}")
    old.chmod(0o604)
    assert runner.invoke(app, ["usage", str(p), "--save", str(old)]).exit_code == 0
    assert stat.S_IMODE(old.stat().st_mode) == 0o604
    assert model.loads(old.read_text()).requests == 2


@pytest.mark.parametrize("call", ["mkstemp", "replace"])
def test_a_refused_write_is_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    p = log(tmp_path)
    target = tmp_path / "s.json"
    target.write_text("previous")

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    if call == "mkstemp":
        monkeypatch.setattr(outputs.tempfile, "mkstemp", refuse)
    else:
        monkeypatch.setattr(outputs.os, "replace", refuse)
    r = runner.invoke(app, ["usage", str(p), "--save", str(target)])
    assert r.exit_code == 3
    assert one_error(r.stderr) == f"{target}: cannot write: Permission denied"
    assert target.read_text() == "previous" and leftovers(tmp_path) == []


def analyze(out: Path, *extra: str) -> list[str]:
    return ["analyze", "--rbac", str(DEMO_RBAC), "--out", str(out), *extra]


def test_analyze_outputs_never_replace_an_input(tmp_path: Path) -> None:
    out = tmp_path / "review"
    out.mkdir()
    rbac = out / "roles.yaml"
    rbac.write_bytes(DEMO_RBAC.read_bytes())
    r = runner.invoke(
        app, ["analyze", "--audit", str(DEMO_AUDIT), "--rbac", str(out), "--out", str(out)]
    )
    assert r.exit_code == 3
    assert one_error(r.stderr) == f"{rbac}: will not overwrite: it is one of the inputs"
    assert rbac.read_bytes() == DEMO_RBAC.read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["roles.yaml"]


def test_analyze_refuses_a_special_file_before_writing_any(tmp_path: Path) -> None:
    out = tmp_path / "review"
    out.mkdir()
    (out / "report.html").mkdir()
    r = runner.invoke(app, analyze(out, "--audit", str(DEMO_AUDIT)))
    assert r.exit_code == 3
    assert one_error(r.stderr) == (
        f"{out / 'report.html'}: cannot write: it is a directory, not a regular file"
    )
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]


def test_write_all_follows_links_and_keeps_modes(tmp_path: Path, umask_027: None) -> None:
    out = tmp_path / "out"
    out.mkdir()
    kept = tmp_path / "kept.yaml"
    kept.write_text("old")
    kept.chmod(0o644)
    (out / "a.yaml").symlink_to(kept)
    written = outputs.write_all(out, {"a.yaml": "A", "b.yaml": "B"})
    assert written == [out / "a.yaml", out / "b.yaml"]
    assert (out / "a.yaml").is_symlink() and kept.read_text() == "A"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o644
    assert stat.S_IMODE((out / "b.yaml").stat().st_mode) == 0o640
    assert leftovers(out) == []


def test_a_save_failing_midway_is_one_line_and_leaves_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rbac_advisor import usage_codec

    p = log(tmp_path)
    target = tmp_path / "s.json"
    target.write_text("previous")
    real = usage_codec.dump_chunks
    written: list[str] = []

    def disk_full_after_two(u: model.Usage, rows: int | None = None) -> Iterator[str]:
        pieces = real(u, 1)
        for _ in range(2):
            written.append(next(pieces))
            yield written[-1]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(usage_codec, "dump_chunks", disk_full_after_two)
    r = runner.invoke(app, ["usage", str(p), "--save", str(target)])
    assert r.exit_code == 3
    assert one_error(r.stderr) == f"{target}: cannot write: No space left on device"
    assert len(written) == 2 and r.stdout == ""
    assert target.read_text() == "previous" and leftovers(tmp_path) == []


def test_write_pieces_writes_them_in_order_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    assert outputs.write_pieces(target, iter(["a", "", "bé", "c\n"])) == target
    assert target.read_bytes() == "abéc\n".encode()

    def failing() -> Iterator[str]:
        yield "new"
        raise RuntimeError("encoder failed")

    with pytest.raises(RuntimeError, match="encoder failed"):
        outputs.write_pieces(target, failing())
    assert target.read_bytes() == "abéc\n".encode() and leftovers(tmp_path) == []
