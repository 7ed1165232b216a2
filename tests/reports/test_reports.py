"""The report renders from a synthetic results folder holding every registered claim ID.

The folder is written by the engine's own writer (``verify.write_outputs``) from synthetic verdicts, so
the test checks the renderer against the files verify really produces, without running an experiment.
"""

import hashlib
import json
import math
from html.parser import HTMLParser
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bilevelbench.bench import figures as F
from bilevelbench.bench.claims import all_claims
from bilevelbench.bench.experiments import get_experiment
from bilevelbench.bench.experiments.reference import NAME, THEORY, measure
from bilevelbench.bench.judging import VERDICTS, Verdict
from bilevelbench.bench.stats import Fit
from bilevelbench.bench.sweep import Env
from bilevelbench.bench.verify import write_outputs
from bilevelbench.cli import main as cli
from bilevelbench.reports import palette, plots, render

ENV = Env(profile="quick")


def _specs():
    """One spec per figure type and series style, a comparison with a plug-in name, and a broken one."""
    x = [2.0, 4.0, 8.0]
    fit = Fit(2.0, 1.9, 2.1, math.log(3.0), 9)
    rate = F.spec("loglog", "counts to eps", "kappa = L/mu", "HV (count to eps)",
                  [F.series("aid-bio: measured", x, [12.0, 48.0, 192.0], ylow=[10.0, 40.0, 180.0],
                            yhigh=[13.0, 50.0, 200.0], algorithm="aid-bio")],
                  [F.fit_line("fit", fit, (2.0, 8.0), predicted=3.0)])
    t = list(range(1, 6))
    bound = F.spec("semilogy", "MSE against t", "t (inner iterations)", "MSE",
                   [F.series("MSE (99% band)", t, [2.0**-k for k in t], ylow=[0.8 * 2.0**-k for k in t],
                             yhigh=[1.2 * 2.0**-k for k in t], style="band"),
                    F.series("Theorem 3.4 bound", t, [2.0 ** (1 - k) for k in t], style="bound")])
    comp = F.spec("linear", "Gc(g) to eps", "kappa", "Gc(g) (count)",
                  [F.series("aid-bio", x, [1.0, 2.0, 3.0], algorithm="aid-bio"),
                   F.series("my-plugin", x, [2.0, 3.0, None], algorithm="my-plugin", style="line")])
    return {"rate": rate, "bound": bound, "comp": comp, "broken": {"type": "pie", "series": []}}


def _verdicts():
    """Every registered claim, verdicts cycling through the four; the first three carry figure specs
    (the first two as a list), the fourth a malformed one."""
    specs = _specs()
    out = []
    for i, c in enumerate(all_claims()):
        details = {}
        if i == 0:
            details = {"figures": [specs["rate"], specs["bound"]]}
        elif i == 1:
            details = {"figure": specs["comp"]}
        elif i == 2:
            details = {"figure": specs["broken"]}
        v = VERDICTS[i % 4]
        out.append(Verdict(id=c.id, verdict=v, predicted=2.0, measured=1.5 + i, ci_low=1.0 + i, ci_high=2.0 + i,
                           tightness=0.5 - i, reason=f"synthetic reason {i} | with a pipe", details=details))
    return out


def _reference_rows():
    rows = []
    for name, stoch in (("aid-bio", False), ("stocbio", True)):
        for k in range(THEORY[name][3] + 1):
            for r in range(2):
                rows.append({"experiment": NAME, "algorithm": name, "stochastic": stoch, "family": "quadratic",
                             "kappa": 4.0, "instance": r, "k": k, "grad_phi_sq": 10.0 * 0.9**k * (1 + r),
                             "mv": 12.0 * k, "gc_g": 10.0 * k, "error": ""})
    rows.append({"experiment": NAME, "algorithm": "my-plugin", "stochastic": False, "family": "quadratic",
                 "kappa": 4.0, "instance": -1, "k": -1, "error": "ValueError: parameter beta must be given"})
    other = pd.DataFrame({"experiment": ["identity/prop1"] * 2, "err": [1e-12, 2e-12]})
    return pd.concat([other, pd.DataFrame(rows)], ignore_index=True)


def _tree(path):
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    verdicts = _verdicts()
    write_outputs(out, verdicts, _reference_rows(), ENV, elapsed=12.5, coverage={})
    files = render.render(out)
    return SimpleNamespace(out=out, files=files, verdicts=verdicts, first=_tree(out))


def test_every_claim_id_appears_in_every_document(rendered):
    md = (rendered.out / "report.md").read_text()
    html = (rendered.out / "report.html").read_text()
    csv = pd.read_csv(rendered.out / "claims.csv")
    ids = [c.id for c in all_claims()]
    assert list(csv["id"]) == ids
    missing = [(cid, doc) for cid in ids for doc, text in (("md", md), ("html", html)) if cid not in text]
    assert not missing


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_html_parses_and_is_self_contained(rendered):
    p = _Collect()
    p.feed((rendered.out / "report.html").read_text())
    p.close()
    tags = [t for t, _ in p.tags]
    assert "script" not in tags and "iframe" not in tags
    imgs = [a for t, a in p.tags if t == "img"]
    # 3 drawable spec figures + the reference curves + the verdict matrix (the synthetic verdicts carry no
    # exponents, so no exponent chart and no rate figure), all embedded
    assert len(imgs) == 5
    assert all(a["src"].startswith("data:image/webp;base64,") for a in imgs)
    for t, a in p.tags:
        for key in ("src", "href"):
            if key in a:
                assert a[key].startswith(("#", "data:")), (t, a[key])
    ids = {a["id"] for _, a in p.tags if "id" in a}
    hrefs = {a["href"][1:] for t, a in p.tags if t == "a"}
    assert hrefs <= ids  # every internal link lands


def test_figures_written_non_empty_png_and_svg(rendered):
    figs = sorted((rendered.out / "figures").iterdir())
    names = [f.name for f in figs]
    first = all_claims()[0].id
    second = all_claims()[1].id
    assert names == sorted([f"{first}-1.png", f"{first}-1.svg", f"{first}-2.png", f"{first}-2.svg",
                            f"{second}.png", f"{second}.svg", "reference-curves.png", "reference-curves.svg",
                            "headline-verdicts.png", "headline-verdicts.svg"])
    for f in figs:
        data = f.read_bytes()
        assert len(data) > 1000
        assert data.startswith(b"\x89PNG") if f.suffix == ".png" else b"<svg" in data[:2000]


def test_rows_say_which_claims_have_no_figure(rendered):
    md = (rendered.out / "report.md").read_text()
    third = all_claims()[2].id
    lines = md.splitlines()
    at = lines.index(f"### {third}")
    section = "\n".join(lines[at:at + 8])
    assert "could not be drawn" in section and "pie" in section
    assert md.count("no figure for this claim") == len(all_claims()) - 3
    assert "failed: my-plugin: ValueError" in md


def test_summary_json_counts(rendered):
    s = json.loads((rendered.out / "summary.json").read_text())
    expected = pd.Series([v.verdict for v in rendered.verdicts]).value_counts().to_dict()
    assert s["counts"] == {v: expected.get(v, 0) for v in VERDICTS}
    assert s["total"] == len(all_claims())
    assert sum(sum(p["counts"].values()) for p in s["papers"].values()) == s["total"]
    assert s["run_seconds"] == 12.5 and s["device"] == "cpu" and s["profile"] == "quick"


def test_rerendering_gives_byte_identical_files(rendered):
    render.render(rendered.out)
    assert _tree(rendered.out) == rendered.first


def test_report_on_an_empty_folder_exits_2_with_one_line(tmp_path, capsys):
    code = cli(["report", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and str(tmp_path) in err


def test_fit_and_predicted_lines_follow_the_spec():
    # loglog fit: log y = intercept + slope log x, so y(2) = 3 * 2^2 = 12 and y(8) = 192; the predicted
    # slope 3 is drawn through the fit's geometric middle x = 4, y = 48
    fig = plots.draw_spec(_specs()["rate"], "x.claim")
    lines = {ln.get_label(): ln for ln in fig.axes[0].lines}
    fit = next(v for k, v in lines.items() if k.startswith("fit"))
    fx, fy = fit.get_data()
    assert np.allclose([fy[0], fy[-1]], [12.0, 192.0], rtol=1e-12)  # exp/log round-off only
    assert "slope 2.00, 95% CI [1.90, 2.10]" in fit.get_label()
    px, py = lines["predicted slope 3"].get_data()
    assert np.allclose(py, 48.0 * (px / 4.0) ** 3, rtol=1e-12)
    assert fig.axes[0].get_title().startswith("x.claim")


def test_palette_fixed_per_algorithm():
    assert palette.colour("aid-bio") == palette.PALETTE["aid-bio"]
    assert len(set(palette.PALETTE.values())) == len(palette.PALETTE)
    c = palette.colour("some-plugin")
    assert c == palette.colour("some-plugin") and c in palette.FALLBACK


def test_reference_sweep_covers_every_algorithm_role_and_measures():
    import dataclasses

    from bilevelbench.bench.roles import ALGORITHM_ROLES

    s = get_experiment(NAME)
    keys = s.keys("quick")
    assert sorted(k.role for k in keys) == sorted(ALGORITHM_ROLES)
    key = next(k for k in keys if k.role == "aid-bio")
    df = pd.DataFrame([dataclasses.asdict(r) for r in measure(key, ENV, 0)])
    assert sorted(df["k"].unique()) == list(range(THEORY["aid-bio"][3] + 1))
    assert np.isfinite(df["grad_phi_sq"]).all()
    assert (df.groupby("instance")["mv"].diff().dropna() >= 0).all()  # cumulative counts
    # gradient descent on Phi from Phi(x0) - inf Phi = 1 with its default beta decreases ||grad Phi||^2
    last, first = df[df["k"] == df["k"].max()], df[df["k"] == 0]
    assert (last["grad_phi_sq"].to_numpy() < first["grad_phi_sq"].to_numpy()).all()
    bad = measure(dataclasses.replace(key, role="no-such-algorithm"), ENV, 0)
    assert len(bad) == 1 and "no-such-algorithm" in bad[0].error


def test_gallery_folder_gets_compact_png_only_figures(rendered, tmp_path, monkeypatch):
    import shutil

    gallery = tmp_path / "gallery"
    shutil.copytree(rendered.out, gallery)
    monkeypatch.setattr(render, "GALLERY", gallery.resolve())
    render.render(gallery)
    figs = sorted((gallery / "figures").iterdir())
    assert figs and all(f.suffix == ".png" for f in figs)
    ref = (gallery / "figures" / "reference-curves.png").stat().st_size
    assert ref < (rendered.out / "figures" / "reference-curves.png").stat().st_size  # 80 dpi < 110 dpi
