"""The progress line: a bar over the bytes of all inputs, a counter for stdin."""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path

import pytest
from audit_samples import event, line, read_logs

from rbac_advisor import usage, usage_codec, usage_report
from rbac_advisor.cli import parallel, progress
from rbac_advisor.cli.commands import usage as usage_cmd
from rbac_advisor.cli.ingest import load_saved
from rbac_advisor.cli.progress import Progress, render


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_steps_after_reading_are_named_once_the_run_is_long() -> None:
    clock, out = _Clock(), _Tty()
    p = Progress(True, 1000, stream=out, clock=clock)
    p.phase("building the usage model")
    assert out.getvalue() == ""  # a short run stays silent
    clock.now += 75
    p.phase("building the usage model")
    assert out.getvalue() == "\rbuilding the usage model  1m15s\033[K"
    p.done()
    assert out.getvalue().endswith("\r\033[K")
    piped = io.StringIO()
    q = Progress(True, 1000, stream=piped, clock=clock)
    clock.now += 5
    q.phase("merging what 2 processes counted")
    assert piped.getvalue() == ""


def test_render_bar_percent_rate_and_time_left() -> None:
    text = render(0.25, 50_000, 1.0)
    assert text.startswith("[######" + "." * 18 + "]  25%")
    assert "50,000 lines" in text and "50k lines/s" in text and "3s left" in text
    assert render(None, 1234, 2.0) == "1,234 lines read  1k lines/s"
    assert "left" not in render(1.0, 10, 1.0)  # done: no estimate
    assert render(0.5, 10, 3600.0, "b.log").endswith("1h00m left  b.log")
    # Read in bytes only (a saved model): the share and the time left, no line count.
    assert render(0.5, 0, 4.0, "reading m.json") == (
        "[" + "#" * 12 + "." * 12 + "]  50%  4s left  reading m.json"
    )


def test_time_left_is_the_pace_since_the_first_report() -> None:
    """What came before the first report (an index built, workers started) is not the pace."""
    assert render(0.5, 0, 10.0, since=(8.0, 0.0)).endswith("  2s left")
    assert render(0.5, 0, 10.0, since=(6.0, 0.25)).endswith("  8s left")
    assert "left" not in render(0.5, 0, 10.0, since=(10.0, 0.5))  # no pace yet
    clock, out = _Clock(), _Tty()
    p = Progress(True, 100, stream=out, clock=clock)
    p.file(100, "summarising")
    clock.now += 6.0  # six seconds before the first report, at 0 %
    p.tick(0, 0.0)
    clock.now += 1.0
    p.tick(0, 0.1)  # 10 % in one second: 9 s left, not 63 s
    assert out.getvalue().endswith("]  10%  9s left  summarising\033[K")


def test_shown_after_a_second_only_on_a_terminal_and_cleared() -> None:
    clock, out = _Clock(), _Tty()
    p = Progress(True, 1000, stream=out, clock=clock)
    p.file(400)
    p.tick(10, 0.5)
    assert out.getvalue() == ""  # under a second: nothing
    clock.now += 1.5
    p.tick(10, 1.0)
    assert "[" + "#" * 9 in out.getvalue() and " 40%" in out.getvalue()
    p.file(600, "second.log")  # the first file is complete: 400 of 1000 bytes
    clock.now += 1.0
    p.tick(5, 0.5)
    assert " 70%" in out.getvalue().rsplit("\r", 1)[-1] and "second.log" in out.getvalue()
    p.done()
    assert out.getvalue().endswith("\r\033[K")
    piped = io.StringIO()  # not a terminal: never drawn
    q = Progress(True, 10, stream=piped, clock=clock)
    clock.now += 5
    q.tick(1, 0.5)
    q.done()
    assert piped.getvalue() == ""


@pytest.mark.parametrize(("gz", "workers"), [(False, 1), (True, 1), (False, 2), (True, 2)])
def test_load_usage_draws_the_bar_to_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gz: bool, workers: int
) -> None:
    data = b"".join(line(event(audit_id=f"a{i}", user=f"u{i % 7}")) + b"\n" for i in range(4000))
    p = tmp_path / ("a.log.gz" if gz else "a.log")
    p.write_bytes(gzip.compress(data) if gz else data)
    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr(progress, "PERIOD", 0.0)
    monkeypatch.setattr(parallel, "MIN_SIZE", 0)
    out = _Tty()
    monkeypatch.setattr("sys.stderr", out)
    u = read_logs([str(p)], progress=True, workers=workers)
    assert u.requests == 4000
    shown = [s for s in out.getvalue().split("\r") if s.startswith("[")]
    assert shown, out.getvalue()
    percents = [int(m.group(1)) for s in shown if (m := re.search(r"(\d+)%", s))]
    assert percents == sorted(percents) and 0 <= percents[-1] <= 100
    assert "4,000 lines" in shown[-1]  # every line read is counted, by every reader
    assert out.getvalue().endswith("\r\033[K")  # the line is cleared at the end


def test_counts_handed_over_are_named_and_the_bar_comes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Impersonated requests are counted one by one, so the builders hold uses between blocks.
    imp = {"username": "bob"}
    data = b"".join(
        line(event(audit_id=f"a{i}", user=f"u{i % 97}", imp=imp if i % 10 == 0 else None)) + b"\n"
        for i in range(4000)
    )
    p = tmp_path / "a.log"
    p.write_bytes(data)
    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr(progress, "PERIOD", 0.0)
    monkeypatch.setattr(parallel, "MIN_SIZE", 0)
    monkeypatch.setattr(parallel, "BLOCK", 1 << 14)
    monkeypatch.setattr(parallel, "HAND_OVER", 1)  # the workers inherit it
    out = _Tty()
    monkeypatch.setattr("sys.stderr", out)
    u = read_logs([str(p)], progress=True, workers=2)
    assert u.requests == 4000
    drawn = out.getvalue().split("\r")
    taking = [k for k, s in enumerate(drawn) if s.startswith(parallel.TAKING)]
    assert taking, out.getvalue()
    # The bar is drawn again after the counts were added up, to the last line read.
    assert any(s.startswith("[") for s in drawn[taking[0] + 1 :])
    assert "4,000 lines" in [s for s in drawn if s.startswith("[")][-1]


def test_a_saved_model_is_read_with_a_bar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(
        b"".join(
            line(event(audit_id=f"a{i}", user=f"u{i % 50}", uri=f"/api/v1/namespaces/n{i}/pods"))
            + b"\n"
            for i in range(400)
        )
    )
    saved = tmp_path / "model.json"
    model = read_logs([str(log)])
    saved.write_text(usage.dumps(model))
    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr(progress, "PERIOD", 0.0)
    monkeypatch.setattr(usage_codec, "PIECE", 2000)  # many pieces of a small model
    out = _Tty()
    monkeypatch.setattr("sys.stderr", out)
    assert usage.dumps(load_saved(saved, progress=True)) == usage.dumps(model)
    shown = [s for s in out.getvalue().split("\r") if s.startswith("[")]
    assert len(shown) > 3, out.getvalue()
    percents = [int(m.group(1)) for s in shown if (m := re.search(r"(\d+)%", s))]
    assert percents == sorted(percents) and percents[-1] > 90 and percents[0] < 50
    assert all("reading model.json" in s and "lines" not in s for s in shown)
    assert out.getvalue().endswith("\r\033[K")
    piped = io.StringIO()  # not a terminal: nothing is drawn
    monkeypatch.setattr("sys.stderr", piped)
    load_saved(saved, progress=True)
    assert piped.getvalue() == ""


@pytest.mark.parametrize("json_out", [False, True])
def test_summarising_many_subjects_shows_a_bar_while_stdout_is_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, json_out: bool
) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(
        b"".join(line(event(audit_id=f"a{i}", user=f"u{i}")) + b"\n" for i in range(600))
    )
    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr(progress, "PERIOD", 0.0)
    monkeypatch.setattr(usage_report, "PROGRESS_STEP", 0.1)

    def run(stdout: io.StringIO, stderr: io.StringIO) -> str:
        monkeypatch.setattr("sys.stdout", stdout)
        monkeypatch.setattr("sys.stderr", stderr)
        usage_cmd.usage(paths=[str(log)], json_out=json_out)
        return stdout.getvalue()

    err = _Tty()
    text = run(io.StringIO(), err)
    model = read_logs([str(log)])
    assert text == (usage_report.to_json(model) if json_out else usage_report.to_table(model))
    what = "writing JSON" if json_out else "summarising the subjects"
    shown = [s for s in err.getvalue().split("\r") if s.startswith("[") and what in s]
    assert len(shown) == 10, err.getvalue()  # 600 subjects, a report every tenth
    percents = [int(m.group(1)) for s in shown if (m := re.search(r"(\d+)%", s))]
    assert percents == list(range(0, 100, 10))
    assert not any("lines" in s for s in shown)
    assert err.getvalue().endswith("\r\033[K")
    # JSON streamed to the terminal itself: no bar mixed into it.
    err = _Tty()
    out = _Tty()
    assert run(out, err) == text
    assert (what in err.getvalue()) is not json_out


def test_merging_and_saving_models_are_named_and_one_model_is_not_merged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(
        b"".join(line(event(audit_id=f"a{i}", user=f"u{i}")) + b"\n" for i in range(30))
    )
    saved = tmp_path / "model.json"
    model = read_logs([str(log)])
    saved.write_text(usage.dumps(model))
    monkeypatch.setattr(progress, "DELAY", 0.0)
    merges: list[int] = []
    real = usage.Usage.merge

    def counted(self: usage.Usage, other: usage.Usage) -> usage.Usage:
        merges.append(1)
        return real(self, other)

    monkeypatch.setattr(usage.Usage, "merge", counted)
    monkeypatch.setattr("sys.stdout", io.StringIO())
    err = _Tty()
    monkeypatch.setattr("sys.stderr", err)
    out = tmp_path / "out.json"
    usage_cmd.usage(load=[saved], save=out)
    assert merges == [] and "merging" not in err.getvalue()
    assert out.read_text() == usage.dumps(model)  # the loaded model itself, unchanged
    assert "\rsaving the usage model to out.json  0s\033[K" in err.getvalue()
    err.seek(0)
    err.truncate(0)
    usage_cmd.usage(paths=[str(log)], load=[saved])
    assert merges == [1]
    assert "\rmerging the usage models  0s\033[K" in err.getvalue()
    assert err.getvalue().endswith("\r\033[K")


def test_names_on_the_progress_line_cannot_drive_the_terminal() -> None:
    clock, out = _Clock(), _Tty()
    p = Progress(True, 10, stream=out, clock=clock)
    p.file(10, "audit\x1b[2J.log")
    clock.now += 5
    p.tick(1, 0.5)
    p.phase("saving the usage model to m\x07.json")
    assert "\x1b[2J" not in out.getvalue() and "\x07" not in out.getvalue()
    assert "audit\\x1b[2J.log" in out.getvalue() and "m\\x07.json" in out.getvalue()
