"""The verification engine's machinery: registry coverage, verdict rules, fits, sweep storage, CLI."""

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bilevelbench.bench import judging as R
from bilevelbench.bench.claims import KINDS, all_claims
from bilevelbench.bench.stats import loglog_fit, mean_bound
from bilevelbench.bench.sweep import Env, Point, SweepStore, point_seed, run_sweep
from bilevelbench.cli import main as cli

# the contract: ../shared/claims.md and claims-modern.md next to the checkout, else their snapshots in
# tests/data (a clean clone in CI has no ../shared; test_catalogue_snapshots_are_current keeps them equal)
FILES = ("claims.md", "claims-modern.md")
SHARED = Path(__file__).resolve().parents[3] / "shared"
DATA = Path(__file__).resolve().parents[1] / "data"


def _catalogue_text() -> str:
    return "".join(((SHARED / f) if (SHARED / f).exists() else (DATA / f)).read_text() for f in FILES)


def catalogue_ids():
    return re.findall(r"^\| ([a-z0-9]+\.[a-z0-9.-]+) \|", _catalogue_text(), flags=re.M)


@pytest.mark.parametrize("name", FILES)
def test_catalogue_snapshots_are_current(name):
    if not (SHARED / name).exists():
        pytest.skip(f"no shared catalogue at {SHARED / name} to compare the snapshot with")
    assert (DATA / name).read_text() == (SHARED / name).read_text(), f"tests/data/{name} is stale: copy it"


def test_registry_has_exactly_the_catalogue_ids_in_order():
    ids = catalogue_ids()
    assert [c.id for c in all_claims()] == ids


def test_registry_kinds_match_the_catalogue():
    kinds = dict(re.findall(r"^\| ([a-z0-9]+\.[a-z0-9.-]+) \| ([a-z-]+) \|", _catalogue_text(), flags=re.M))
    for c in all_claims():
        assert c.kind in KINDS
        assert kinds[c.id] == c.kind, c.id


def test_every_formula_claim_names_its_bounds_and_a_dangling_name_fails():
    from bilevelbench.bench.claims import Claim, register_claim

    formula = ("inequality", "lower-bound", "scaling")
    bare = [c.id for c in all_claims() if c.kind in formula and not c.bounds]
    assert not bare, f"formula claims without bounds: {bare}"
    from bilevelbench.bench.claims import CLAIMS

    good = all_claims()[0]
    CLAIMS.pop(good.id)  # re-register the first claim with a dangling bound name
    try:
        with pytest.raises(ValueError, match="no.such.bound"):
            register_claim(Claim(id=good.id, paper=good.paper, kind=good.kind, statement="", setup="",
                                 experiments=good.experiments, judge=good.judge, bounds=("no.such.bound",)))
    finally:
        CLAIMS[good.id] = good


# ---------------------------------------------------------------------- verdict rules
def test_upper_rule_three_outcomes():
    assert R.judge_upper("x", 1.0, 0.5, 0.4, 0.6, "m").verdict == "holds"
    assert R.judge_upper("x", 1.0, 1.5, 1.2, 1.8, "m").verdict == "violated"
    assert R.judge_upper("x", 1.0, 1.0, 0.8, 1.2, "m").verdict == "inconclusive"
    # a non-finite measurement (a diverged run) against a finite bound is a violation
    assert R.judge_upper("x", 1.0, math.nan, math.nan, math.nan, "m").verdict == "violated"
    assert R.judge_upper("x", math.nan, 0.5, 0.4, 0.6, "m").verdict == "inconclusive"


def test_lower_rule_three_outcomes():
    assert R.judge_lower("x", 1.0, 2.0, 1.5, 2.5, "m").verdict == "holds"
    assert R.judge_lower("x", 1.0, 0.5, 0.4, 0.6, "m").verdict == "violated"
    assert R.judge_lower("x", 1.0, 1.0, 0.9, 1.1, "m").verdict == "inconclusive"


def test_scaling_rule_upper_and_lower():
    from bilevelbench.bench.stats import Fit

    assert R.judge_scaling("x", 2.0, Fit(1.5, 1.4, 1.6, 0, 9), "m").verdict == "consistent"
    assert R.judge_scaling("x", 2.0, Fit(2.5, 2.3, 2.7, 0, 9), "m").verdict == "violated"
    # the interval straddles the prediction: not confidently above, so consistent
    assert R.judge_scaling("x", 2.0, Fit(2.1, 1.9, 2.3, 0, 9), "m").verdict == "consistent"
    assert R.judge_scaling("x", 2.0, Fit(1.5, 1.4, 1.6, 0, 9), "m", upper=False).verdict == "violated"
    assert R.judge_scaling("x", 2.0, Fit(math.nan, math.nan, math.nan, 0, 1), "m").verdict == "inconclusive"
    # the reason says where a tolerance comes from, on the side it is applied
    assert "+ tolerance 0.3 (from the local slope over the grid of the log factor the O~ hides)" in R.judge_scaling(
        "x", 2.0, Fit(2.1, 1.9, 2.3, 0, 9), "m", tol=0.3).reason
    lower = R.judge_scaling("x", 2.0, Fit(2.1, 1.9, 2.3, 0, 9), "m", upper=False, tol=0.3, tol_from="round-off")
    assert "- tolerance 0.3 (from round-off)" in lower.reason and "log" not in lower.reason


def test_bad_verdict_name_rejected_and_verdicts_are_built_by_keyword():
    with pytest.raises(ValueError, match="verdict"):
        R.Verdict(id="x", verdict="passed")
    with pytest.raises(TypeError):
        R.Verdict("x", "holds")  # positional construction is refused


def test_exact_rule_sees_a_ten_percent_bias_and_says_when_it_cannot():
    assert R.judge_exact("x", 1.0, 0.02, 1.0, "m", resolution=0.1).verdict == "holds"
    assert R.judge_exact("x", 1.1, 0.02, 1.0, "m", resolution=0.1).verdict == "violated"
    assert R.judge_exact("x", 1.0, 0.2, 1.0, "m", resolution=0.1).verdict == "inconclusive"


def test_scaling_rule_flags_counts_below_the_structure():
    from bilevelbench.bench.stats import Fit

    v = R.judge_scaling("x", 3.0, Fit(1.0, 0.9, 1.1, 0, 9), "m", structural=2.0, structural_tol=0.05)
    assert v.verdict == "violated" and "under-counted" in v.reason
    assert R.judge_scaling("x", 3.0, Fit(2.0, 1.9, 2.1, 0, 9), "m", structural=2.0).verdict == "consistent"


def test_combine_takes_the_most_severe_part():
    parts = {"a": R.Verdict(id="x", verdict="holds"), "b": R.Verdict(id="x", verdict="inconclusive")}
    assert R.combine("x", parts).verdict == "inconclusive"
    parts["c"] = R.Verdict(id="x", verdict="violated")
    assert R.combine("x", parts).verdict == "violated"


# ---------------------------------------------------------------------- statistics
def test_loglog_fit_recovers_a_known_exponent():
    rng = np.random.default_rng(0)
    x = np.repeat([2.0, 4.0, 8.0, 16.0], 20)
    y = 3.0 * x**2.5 * np.exp(0.05 * rng.standard_normal(x.size))
    fit = loglog_fit(x, y, groups=x)
    assert abs(fit.slope - 2.5) < 0.05  # noise sd 0.05 in log over a factor-8 range: slope sd ~ 0.01
    assert fit.low <= 2.5 <= fit.high


def test_mean_bound_covers_the_mean_at_its_level():
    # 400 independent experiments of R = 100 exponential draws (mean 1): a one-sided 99% upper bound must
    # fall below 1 in about 1% of them; 4% would happen with probability < 1e-3 (binomial tail).
    rng = np.random.default_rng(1)
    misses = sum(mean_bound(rng.exponential(size=100)).high < 1.0 for _ in range(400))
    assert misses <= 16


# ---------------------------------------------------------------------- sweep storage
def _measure(key, env, seed):
    if key.get("boom"):
        raise RuntimeError("interrupted")
    return [{"value": key["i"] * 10 + seed % 7}]


def test_point_seed_depends_only_on_key_and_base_seed():
    assert point_seed(0, "c", {"a": 1, "b": 2}) == point_seed(0, "c", {"b": 2, "a": 1})
    assert point_seed(0, "c", {"a": 1}) != point_seed(1, "c", {"a": 1})


def test_point_digest_covers_the_settings_but_the_seed_does_not():
    a, b = Point("s", {"i": 1}, '{"dtype":"float64"}'), Point("s", {"i": 1}, '{"dtype":"float32"}')
    assert a.digest != b.digest and a.seed(0) == b.seed(0)


def test_interrupted_sweep_resumes_without_recomputing(tmp_path):
    env = Env()
    store = SweepStore(tmp_path)
    points = [Point("s", {"i": i}) for i in range(4)]
    bad = points[:2] + [Point("s", {"i": 2, "boom": True})]
    with pytest.raises(RuntimeError):
        run_sweep(bad, _measure, env, store)
    assert store.has(points[0]) and store.has(points[1])
    assert not list((tmp_path / "points").rglob(".tmp-*"))
    calls = []

    def counting(key, env, seed):
        calls.append(key["i"])
        return _measure(key, env, seed)

    res = run_sweep(points, counting, env, store, resume=True)
    assert calls == [2, 3] and res.reused == 2 and res.computed == 2
    df = res.frame
    assert sorted(df["value"] // 10) == [0, 1, 2, 3]
    assert set(df.columns) >= {"experiment", "point", "point_key", "point_seed", "settings", "device", "dtype",
                               "versions"}


def test_resume_recomputes_a_corrupt_point_with_a_warning_naming_it(tmp_path):
    store = SweepStore(tmp_path)
    p = Point("s", {"i": 1})
    run_sweep([p], _measure, Env(), store)
    store.path(p).write_bytes(b"not parquet")
    with pytest.warns(UserWarning, match=str(store.path(p).name)):
        res = run_sweep([p], _measure, Env(), store, resume=True)
    assert res.reused == 0 and res.computed == 1 and res.invalid == [str(store.path(p))]


def test_results_are_parquet_round_trippable(tmp_path):
    store = SweepStore(tmp_path)
    p = Point("s", {"i": 1})
    run_sweep([p], _measure, Env(), store)
    assert isinstance(store.read(p), pd.DataFrame)
    other = Point("s", {"i": 1}, '{"dtype":"float32"}')  # same key, other settings: not the same point
    assert not store.has(other)


# ---------------------------------------------------------------------- CLI usage errors
@pytest.mark.parametrize("argv, needle", [
    (["verify", "--claims", "no.such.claim"], "no.such.claim"),
    (["verify", "--device", "tpu"], "tpu"),
    (["verify", "--device", "cuda"], "cuda"),
])
def test_verify_bad_usage_exits_2_with_one_line(argv, needle, capsys, tmp_path):
    import torch

    if needle == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA present")
    code = cli(argv + ["--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and needle in err[0]


def test_verify_unwritable_out_exits_2(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = cli(["verify", "--claims", "icml21.prop2", "--out", str(blocker / "sub")])
    assert code == 2
    assert "--out" in capsys.readouterr().err


def test_list_commands_run(capsys):
    for what in ("problems", "algorithms", "claims"):
        assert cli(["list", what]) == 0
    assert cli(["list", "claims", "--json"]) == 0
    assert "icml21.prop1" in capsys.readouterr().out
