"""``bilevelbench report DIR``: rebuild the report of a results folder from its files alone.

Reads ``claims.csv`` and ``verdicts.json`` (the verdicts and their figure specs, ``bench.figures``),
``results.parquet`` (the reference convergence curves) and ``environment.json``; writes
``figures/*.png`` (and ``*.svg``), ``report.md``, a self-contained ``report.html`` and ``summary.json``.
Rendering twice gives byte-identical files. In the committed gallery (``reports/gallery``) figures are
PNG only at a lower resolution, to keep the repository small.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pandas as pd

from . import documents, headline, plots

__all__ = ["NoResults", "load", "render", "main", "GALLERY", "DPI"]

GALLERY = Path(__file__).resolve().parent / "gallery"
#: PNG resolution: the working report, and the committed gallery (small files, still legible)
DPI = {"default": 100, "gallery": 80}
NUMERIC = ("predicted", "measured", "ci_low", "ci_high", "tightness", "bound", "measured_value", "ratio",
           "exponent_paper", "exponent_instance", "exponent_fit", "fit_low", "fit_high")


class NoResults(ValueError):
    """The folder holds no results (neither claims.csv nor verdicts.json)."""


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _claims(out: Path) -> list[dict]:
    """One dict per claim: claims.csv's columns (catalogue order) plus the details of verdicts.json."""
    csv, vj = out / "claims.csv", out / "verdicts.json"
    if not vj.exists():
        raise NoResults(f"{out} holds no results (no verdicts.json); run 'bilevelbench verify --out {out}' first")
    details = {}
    rows = []
    if vj.exists():
        for v in json.loads(vj.read_text()):
            details[v["id"]] = v.get("details") or {}
            rows.append(v)
    if csv.exists():  # the table of record; verdicts.json adds the details
        rows = pd.read_csv(csv, dtype={"id": str}).to_dict("records")
    out_rows = []
    for r in rows:
        row = {k: ("" if (v is None or (isinstance(v, float) and math.isnan(v))) else str(v))
               for k, v in r.items() if k not in NUMERIC and k != "details"}
        row.update({k: _float(r.get(k)) for k in NUMERIC})
        if not row.get("paper"):  # the ID's prefix names the paper (catalogue convention)
            row["paper"] = row["id"].split(".")[0]
        row.setdefault("kind", "")
        row.setdefault("statement", "")
        row.setdefault("reason", "")
        if row.get("verdict") not in documents.VERDICT_ORDER:
            row["reason"] = f"unknown verdict {row.get('verdict')!r}. {row['reason']}"
            row["verdict"] = "inconclusive"
        row["details"] = details.get(row["id"], {})
        out_rows.append(row)
    return out_rows


def _specs(details: dict) -> list[dict]:
    if details.get("figures"):
        return [s for s in details["figures"] if isinstance(s, dict)]
    return [details["figure"]] if isinstance(details.get("figure"), dict) else []


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def _papers() -> dict[str, str]:
    from bilevelbench.bench.claims import PAPERS

    return dict(PAPERS)


def _registered() -> int | None:
    """How many claims the registry holds (to say how much of it this folder covers); None if it fails."""
    try:
        from bilevelbench.bench.claims import all_claims

        return len(all_claims())
    except Exception:  # a broken claim module must not take the report down
        return None


def load(out_dir) -> dict:
    """The report model of a results folder (raises NoResults when it holds none)."""
    out = Path(out_dir)
    claims = _claims(out)
    env_file = out / "environment.json"
    env = json.loads(env_file.read_text()) if env_file.exists() else {}
    res_file = out / "results.parquet"
    results = pd.read_parquet(res_file) if res_file.exists() else pd.DataFrame()
    return {"claims": claims, "env": env, "results": results, "papers": _papers(), "registered": _registered()}


def _claim_figure(spec: dict, claim_id: str, stem: Path, svg: bool, dpi: int) -> list[Path] | str:
    """Draw and save one figure of a claim (in a worker process with ``jobs`` > 1); a malformed spec returns
    the note saying why it has no figure (it costs its figure, never the report)."""
    try:
        fig = plots.draw_spec(spec, claim_id)
    except Exception as exc:
        return f"({type(exc).__name__}: {exc})"
    return plots.save(fig, stem, svg=svg, dpi=dpi)


def _draw_claims(model, figdir: Path, svg: bool, dpi: int, pool=None) -> list[Path]:
    """Every claim's figures, drawn on ``pool`` (a process pool) when given, while this process goes on."""
    tasks = []
    for row in model["claims"]:
        specs = _specs(row["details"])
        for i, spec in enumerate(specs):
            stem = figdir / (_slug(row["id"]) + (f"-{i + 1}" if len(specs) > 1 else ""))
            tasks.append((row, i, (spec, row["id"], stem, svg, dpi)))
    results = [pool.submit(_claim_figure, *args) for _, _, args in tasks] if pool is not None else None

    def collect():
        files = []
        for row in model["claims"]:
            row["figures"], row["_notes"] = [], []
        for n, (row, i, args) in enumerate(tasks):
            written = results[n].result() if results is not None else _claim_figure(*args)
            if isinstance(written, str):
                row["_notes"].append(f"figure {i + 1} could not be drawn {written}")
                continue
            files += written
            row["figures"].append(f"figures/{written[0].name}")
        for row in model["claims"]:
            notes = row.pop("_notes")
            row["figure_note"] = "; ".join(notes) or ("" if _specs(row["details"]) else "no figure for this claim")
        return files

    return collect


HEADLINE_CAPTIONS = {
    "headline-exponents": "(a) every scaling claim and counted quantity: the exponent fitted against the variable the "
                          "row names (kappa, 1/eps, nu, lambda, K, ...) with its 95% interval (colour: the claim's "
                          "verdict), the paper's exponent (diamond) and the exponent the instance's own constants "
                          "imply (bar)",
    "headline-verdicts": "(c) the verdict of every claim (the table below links to each)",
}


def _draw_headline(model, figdir: Path, svg: bool, dpi: int) -> list[Path]:
    """The three headline figures (``headline``): exponent chart, rate-vs-kappa per setting and count kind,
    verdict matrix. A figure that fails to draw is noted, never fatal."""
    figs, files, notes = [], [], []
    makers = [("headline-exponents", headline.exponent_chart)]
    try:
        rate = headline.rate_figures(model)
    except Exception as exc:  # the rate figures are a summary: the claims' own figures still stand
        rate, notes = [], [f"rate figures not drawn ({type(exc).__name__}: {exc})"]
    for name, maker in makers:
        try:
            fig = maker(model)
        except Exception as exc:
            notes.append(f"{name} not drawn ({type(exc).__name__}: {exc})")
            continue
        if fig is not None:
            figs.append((name, fig, HEADLINE_CAPTIONS[name]))
    for name, fig in rate:
        setting, kind = name.split("-")[2], name.split("-", 3)[3]
        figs.append((name, fig, f"(b) {setting} algorithms: {headline.KIND_LABELS.get(kind, kind)} to eps against "
                               "kappa, with each fitted line (solid) and the paper's slope from the same anchor "
                               "(dotted); open triangles are censored runs (lower bounds)"))
    try:
        m = headline.verdict_matrix(model)
        if m is not None:
            figs.append(("headline-verdicts", m, HEADLINE_CAPTIONS["headline-verdicts"]))
    except Exception as exc:
        notes.append(f"verdict matrix not drawn ({type(exc).__name__}: {exc})")
    entries = []
    for name, fig, cap in figs:
        written = plots.save(fig, figdir / name, svg=svg, dpi=dpi)
        files += written
        entries.append((f"figures/{written[0].name}", cap))
    model["headline"] = {"figures": entries, "notes": notes}
    return files


def _draw_reference(model, figdir: Path, svg: bool, dpi: int) -> list[Path]:
    fig, failures = plots.reference_figure(model["results"])
    ref = {"figures": [], "failures": failures}
    files = []
    if fig is None:
        ref["caption"] = ("No reference curves in this folder (results.parquet has no 'reference/curves' rows; "
                          "'bilevelbench verify' records them).")
    else:
        files = plots.save(fig, figdir / "reference-curves", svg=svg, dpi=dpi)
        ref["figures"] = [f"figures/{f.name}" for f in files]
        ref["caption"] = ("Every algorithm role run under the theory preset of the theorem it is verified against, on "
                          "one small instance (deterministic: nonconvex quadratic, solid; stochastic: stochastic "
                          "quadratic, dashed; meta-learning family for the meta roles), from Phi(x0) - inf Phi = 1 "
                          "where known: ||grad Phi(x_k)||^2 against the oracle calls spent. A diagnostic picture, "
                          "not a claim; a diverging curve would be a finding about its preset.")
    model["reference"] = ref
    return files


def render(out_dir, *, dest=None, svg: bool | None = None, dpi: int | None = None, jobs: int = 1) -> list[Path]:
    """Render the report of the results in ``out_dir`` into ``dest`` (default: ``out_dir`` itself);
    returns the files written, sorted. ``svg``/``dpi`` default to PNG+SVG at 100 dpi, or PNG only at 80 dpi
    for the committed gallery (or a folder in it). With ``jobs`` > 1 the claims' figures are drawn by that
    many worker processes (``bench.sweep.worker_context``) while this one draws the headline and reference
    figures; the files are the same."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs={jobs!r}: expected an integer >= 1")
    model = load(Path(out_dir))
    out = Path(dest) if dest is not None else Path(out_dir)
    home = Path(out_dir).resolve()
    gallery = home == GALLERY or GALLERY in home.parents
    svg = (not gallery) if svg is None else svg
    dpi = DPI["gallery" if gallery else "default"] if dpi is None else dpi
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    for old in sorted(figdir.glob("*")):  # figures of an earlier render may no longer be produced
        if old.suffix in (".png", ".svg"):
            old.unlink()
    pool = None
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        from ..bench.sweep import worker_context

        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=worker_context())
    try:
        claims = _draw_claims(model, figdir, svg, dpi, pool)
        files = _draw_headline(model, figdir, svg, dpi) + _draw_reference(model, figdir, svg, dpi) + claims()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    docs = {"report.md": documents.markdown(model), "report.html": documents.html_report(model, out),
            "summary.json": documents.summary_json(model)}
    for name, text in docs.items():
        (out / name).write_text(text, encoding="utf-8")
        files.append(out / name)
    return sorted(files)


REPORT_FILES = ("report.md", "report.html", "summary.json", "figures")
COMPARE_FILES = ("compare.csv", "compare.md", "compare.html")


def _compare_main(args) -> int:
    """``report --compare A B --out DIR``: written in a staging folder, moved into DIR; an existing
    comparison in DIR is replaced only with --force."""
    import shutil
    import tempfile

    from bilevelbench.bench.verify import swap_in

    from .compare import NotARun, write_comparison

    if args.dir is not None:
        print("bilevelbench: error: report takes a folder or --compare RUN_A RUN_B, not both", file=sys.stderr)
        return 2
    out = Path(args.out)
    for run in args.compare:
        if not (Path(run) / "verdicts.json").is_file():
            print(f"bilevelbench: error: --compare {run}: holds no results (no verdicts.json)", file=sys.stderr)
            return 2
    if out.exists() and not out.is_dir():
        print(f"bilevelbench: error: --out {out}: exists and is not a folder", file=sys.stderr)
        return 2
    if out.is_dir() and any((out / f).exists() for f in COMPARE_FILES) and not args.force:
        print(f"bilevelbench: error: --out {out}: holds a comparison; use --force to replace it", file=sys.stderr)
        return 2
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    except OSError as exc:
        print(f"bilevelbench: error: --out {out} is not writable ({exc.strerror or exc})", file=sys.stderr)
        return 2
    try:
        df = write_comparison(args.compare[0], args.compare[1], staging)
        swap_in(staging, out, COMPARE_FILES)
    except NotARun as exc:
        print(f"bilevelbench: error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    changed = int(df["changed"].str.contains("verdict").sum()) if len(df) else 0
    print(f"comparison: {out / 'compare.html'} ({len(df)} claims, {changed} change verdict)")
    return 0


def main(args) -> int:
    """``bilevelbench report DIR``: re-render DIR's report from its results (built in a staging folder and
    moved into place file by file); 2 (one line on stderr, nothing touched) when DIR holds no results."""
    import shutil
    import tempfile

    from bilevelbench.bench.verify import swap_in

    if args.compare:
        return _compare_main(args)
    if args.dir is None:
        print("bilevelbench: error: report needs a folder (report DIR) or --compare RUN_A RUN_B", file=sys.stderr)
        return 2
    src = Path(args.dir)
    if not src.is_dir():
        print(f"bilevelbench: error: {src} is not a folder", file=sys.stderr)
        return 2
    if not (src / "verdicts.json").exists():
        print(f"bilevelbench: error: {src} holds no results (no verdicts.json); run 'bilevelbench verify --out "
              f"{src}' first", file=sys.stderr)
        return 2
    from bilevelbench.bench.verify import UsageError, resolve_jobs

    try:
        jobs = resolve_jobs(getattr(args, "jobs", None))
    except UsageError as exc:
        print(f"bilevelbench: error: {exc}", file=sys.stderr)
        return 2
    try:
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=src))
    except OSError as exc:
        print(f"bilevelbench: error: {src} is not writable ({exc.strerror or exc})", file=sys.stderr)
        return 2
    try:
        files = render(src, dest=staging, jobs=jobs)
        swap_in(staging, src, REPORT_FILES)
    except NoResults as exc:
        print(f"bilevelbench: error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"report: {src / 'report.html'} ({len(files)} files)")
    return 0
