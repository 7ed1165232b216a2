"""Nothing a user made is lost or silently wrong (issue 18): digests decide what --resume reuses, reports are
replaced only with --force or merged when a run adds claims, a crash is an ``error`` (exit 3), the baseline
comparison fails on any verdict change, and a run killed with SIGKILL resumes to the same verdicts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bilevelbench.bench.baseline import compare, snapshot
from bilevelbench.bench.judging import Verdict
from bilevelbench.cli import main as cli

TESTS = Path(__file__).resolve().parents[1]


def _run(argv, capsys=None):
    code = cli(argv)
    if capsys is not None:
        return code, capsys.readouterr()
    return code


def _verdicts(out: Path) -> dict:
    return {v["id"]: v for v in json.loads((out / "verdicts.json").read_text())}


def test_resume_reuses_only_points_of_the_same_settings(tmp_path, capsys):
    out = tmp_path / "o"
    assert _run(["verify", "--claims", "icml21.prop2", "--out", str(out)]) == 0
    code, io = _run(["verify", "--claims", "icml21.prop2", "--out", str(out), "--resume"], capsys)
    assert code == 0 and "computed 0" in io.err
    # a plug-in changes the digest of every point it reaches: recomputed, never reused
    code, io = _run(["verify", "--claims", "icml21.prop2", "--out", str(out), "--force",
                     "--plugin", "bbplugins.twins:TWIN_ITD_HYPERGRADIENT"], capsys)
    assert code == 0
    code, io = _run(["verify", "--claims", "icml21.prop2", "--out", str(tmp_path / "fresh"), "--plugin",
                     "bbplugins.defects_icml21:ITD_OFF_BY_ONE"], capsys)
    assert code == 1


def test_a_defect_resumed_into_the_paper_s_points_is_still_caught(tmp_path, capsys):
    """The case of issue 18: a sign-slip plug-in resumed into a folder of the correct algorithm's points."""
    out = tmp_path / "o"
    assert _run(["verify", "--claims", "icml21.thm1.bound", "--out", str(out)]) == 0
    code, io = _run(["verify", "--claims", "icml21.thm1.bound", "--out", str(out), "--force",
                     "--plugin", "bbplugins.defects_icml21:AID_SIGN_SLIP"], capsys)
    assert code == 1 and _verdicts(out)["icml21.thm1.bound"]["verdict"] == "violated"


def test_existing_report_is_kept_merged_or_replaced_only_with_force(tmp_path, capsys):
    out = tmp_path / "o"
    assert _run(["verify", "--claims", "icml21.prop2", "--out", str(out)]) == 0
    first = (out / "claims.csv").read_text()
    # the same claims again: refused without --force / --resume, report untouched
    code, io = _run(["verify", "--claims", "icml21.prop2", "--out", str(out)], capsys)
    assert code == 2 and "--force" in io.err and (out / "claims.csv").read_text() == first
    # a run adding claims merges into the report
    assert _run(["verify", "--claims", "icml21.prop1", "--out", str(out)]) == 0
    assert set(_verdicts(out)) == {"icml21.prop1", "icml21.prop2"}
    assert set(pd.read_csv(out / "claims.csv")["id"]) == {"icml21.prop1", "icml21.prop2"}
    # other settings cannot be merged into it
    code, io = _run(["verify", "--claims", "icml21.thm1.bound", "--out", str(out), "--seed", "3"], capsys)
    assert code == 2 and "seed" in io.err
    # --force replaces the report (the points cache stays)
    assert _run(["verify", "--claims", "icml21.prop2", "--out", str(out), "--force"]) == 0
    assert set(_verdicts(out)) == {"icml21.prop2"}
    assert (out / "points").is_dir()


def test_report_rerenders_in_place(tmp_path):
    out = tmp_path / "o"
    assert _run(["verify", "--claims", "icml21.prop2", "--out", str(out), "--no-report"]) == 0
    assert not (out / "report.html").exists()
    assert _run(["report", str(out)]) == 0
    assert (out / "report.html").exists() and any((out / "figures").glob("*.png"))
    assert not list(out.glob(".staging-*"))


def test_a_crash_is_an_error_with_its_traceback_and_exit_3(tmp_path, capsys):
    out = tmp_path / "o"
    code, io = _run(["verify", "--claims", "icml21.thm2.bound", "--out", str(out), "--plugin",
                     "bbplugins.bad_plugins:CRASHING_ITD"], capsys)
    assert code == 3
    v = _verdicts(out)["icml21.thm2.bound"]
    assert v["verdict"] == "error" and "crashed" in v["reason"] and "Traceback" in v["traceback"]
    row = pd.read_csv(out / "claims.csv").set_index("id").loc["icml21.thm2.bound"]
    assert "RuntimeError" in row["traceback"]


def test_baseline_comparison_fails_on_any_verdict_change():
    base = snapshot([Verdict(id="a", verdict="holds", measured=1.0, ci_low=0.9, ci_high=1.1)])
    same = [Verdict(id="a", verdict="holds", measured=1.0, ci_low=0.9, ci_high=1.1)]
    assert compare(same, base) == []
    drop = [Verdict(id="a", verdict="inconclusive", measured=1.0, ci_low=0.9, ci_high=1.1)]
    assert any("holds -> inconclusive" in p for p in compare(drop, base))


def test_write_baseline_elsewhere_and_compare(tmp_path, capsys):
    path = tmp_path / "b.json"
    out = tmp_path / "o"
    assert _run(["verify", "--claims", "icml21.prop2", "--out", str(out), "--write-baseline",
                 "--baseline-path", str(path)]) == 0
    assert "icml21.prop2" in json.loads(path.read_text())
    code, io = _run(["verify", "--claims", "icml21.prop2", "--out", str(out), "--resume", "--baseline",
                     "--baseline-path", str(path)], capsys)
    assert code == 0 and "no change" in io.err


def _finished(out: Path) -> list[str]:
    """Names of the finished sweep points in ``out`` (temporary files of points in flight excluded)."""
    return sorted(p.name for p in (out / "points").rglob("*.parquet") if not p.name.startswith("."))


def _cli_process(args, env=None):
    return subprocess.Popen([sys.executable, "-m", "bilevelbench", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def test_sigkill_mid_sweep_loses_no_finished_point_and_resume_gives_the_same_verdicts(tmp_path):
    """A real kill -9 once some points are on disk; --resume then reuses them and the verdicts equal an
    uninterrupted run's."""
    claims = "icml21.thm2.rates,loops22.cor5"  # ~45 points of ~0.2 s: killed with most of them to do
    pypath = {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    killed = tmp_path / "killed"
    # killed while two worker processes run its points; the clean run below runs them in one process
    proc = _cli_process(["verify", "--claims", claims, "--out", str(killed), "--no-report", "--jobs", "2"], pypath)
    deadline = time.time() + 240
    while time.time() < deadline and (not (killed / "points").exists() or len(_finished(killed)) < 4):
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = _finished(killed)
    assert len(done) >= 4 and not (killed / "verdicts.json").exists()
    resumed = _cli_process(["verify", "--claims", claims, "--out", str(killed), "--no-report", "--resume"], pypath)
    assert resumed.wait(timeout=600) == 0
    assert set(done) <= set(_finished(killed))
    clean = tmp_path / "clean"
    assert _cli_process(["verify", "--claims", claims, "--out", str(clean), "--no-report", "--jobs", "1"],
                        pypath).wait(600) == 0
    a, b = _verdicts(killed), _verdicts(clean)
    for cid in a:
        for k in ("verdict", "predicted", "measured", "ci_low", "ci_high", "tightness"):
            assert a[cid][k] == b[cid][k] or (a[cid][k] != a[cid][k] and b[cid][k] != b[cid][k]), (cid, k)


def _descendants(pid: int) -> set[int]:
    """Live descendants of ``pid`` (from /proc's ppid fields)."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                parent[int(d)] = int(Path(f"/proc/{d}/stat").read_bytes().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p and c not in out]
        out.update(kids)
        todo += kids
    return out


def _running(pid: int) -> bool:
    """``pid`` exists and is not a zombie (a container's init may never reap an orphan's exit status)."""
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_ctrl_c_stops_the_workers_keeps_finished_points_and_says_how_to_resume(tmp_path):
    """SIGINT (Ctrl-C) during a --jobs 2 sweep: exit 130 with one line saying how to continue, no traceback,
    no worker left running, and every finished point kept for --resume."""
    claims = "icml21.thm2.rates,loops22.cor5"
    pypath = {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "o"
    # SIGINT's default action restored in the child: a test run started in the background of a non-interactive
    # shell (as a CI script may be) ignores SIGINT, every descendant inherits that, and Python then leaves it
    # ignored, rightly (a nohup'd run must not stop on Ctrl-C)
    proc = subprocess.Popen([sys.executable, "-m", "bilevelbench", "verify", "--claims", claims, "--out", str(out),
                             "--no-report", "--jobs", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **pypath},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while time.time() < deadline and (not (out / "points").exists() or len(_finished(out)) < 2):
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    workers = _descendants(proc.pid)
    assert workers, "no worker processes under --jobs 2"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    err = proc.stderr.read()
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err, err
    done = _finished(out)
    deadline = time.time() + 30
    while time.time() < deadline and any(_running(w) for w in workers):
        time.sleep(0.1)
    assert not [w for w in workers if _running(w)], "worker processes outlived the run"
    resumed = _cli_process(["verify", "--claims", claims, "--out", str(out), "--no-report", "--resume",
                            "--jobs", "1"], pypath)
    assert resumed.wait(timeout=600) == 0 and set(done) <= set(_finished(out))


@pytest.mark.parametrize("flag", ["--resume", "--force", "--all-claims", "--baseline"])
def test_run_flags_documented_in_help(flag, capsys):
    assert cli(["verify", "--help"]) == 0
    assert flag in capsys.readouterr().out
