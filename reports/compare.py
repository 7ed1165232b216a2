"""``bilevelbench report --compare RUN_A RUN_B``: two results folders side by side, differences first.

Typical use: the paper's algorithm (a plain ``verify``) against a plug-in (``verify --plugin ...``). Reads
each folder's ``verdicts.json`` (and ``environment.json`` for the run's settings and plug-ins); writes
``compare.csv`` (one row per claim: both verdicts and both values of every one-meaning column, and what
changed), ``compare.md`` and a self-contained ``compare.html``. Claims judged in only one run are listed
too. Nothing is computed again.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import pandas as pd

from bilevelbench.bench.judging import REPORT_COLUMNS, Verdict, report_columns

from .palette import VERDICT_COLOURS

__all__ = ["load_run", "compare_frame", "write_comparison"]

NUMBERS = ("predicted", "measured", "ci_low", "ci_high", "tightness")


class NotARun(ValueError):
    """A folder without verdicts.json."""


def load_run(folder) -> dict:
    """verdicts (id -> dict with kind and the one-meaning columns), settings, plug-ins of one run."""
    from bilevelbench.bench.claims import get_claim

    d = Path(folder)
    vj = d / "verdicts.json"
    if not vj.is_file():
        raise NotARun(f"{d} holds no results (no verdicts.json)")
    env = json.loads((d / "environment.json").read_text()) if (d / "environment.json").is_file() else {}
    rows = {}
    for v in json.loads(vj.read_text()):
        try:
            kind = get_claim(v["id"]).kind
        except ValueError:
            kind = ""
        nums = {k: (math.nan if v.get(k) is None else float(v[k])) for k in NUMBERS}
        verdict = Verdict(id=v["id"], verdict=v["verdict"], details=v.get("details") or {}, **nums)
        rows[v["id"]] = {"verdict": v["verdict"], "kind": kind, "reason": v.get("reason", ""),
                         **report_columns(verdict, kind)}
    plugins = ", ".join(p.get("plugin", "") for p in env.get("plugins") or []) or "the paper's code"
    return {"name": d.name, "path": str(d), "rows": rows, "plugins": plugins, "profile": env.get("profile"),
            "git": env.get("git_revision")}


def _same(a, b, rel=1e-9) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=rel, abs_tol=0.0)
    return a == b


def compare_frame(a: dict, b: dict) -> pd.DataFrame:
    """One row per claim of either run; ``changed`` lists what differs ('verdict', column names, 'only in A')."""
    ids = list(dict.fromkeys(list(a["rows"]) + list(b["rows"])))
    out = []
    for cid in ids:
        ra, rb = a["rows"].get(cid), b["rows"].get(cid)
        row = {"id": cid, "kind": (ra or rb)["kind"]}
        changed = []
        if ra is None or rb is None:
            changed.append("only in A" if rb is None else "only in B")
        for side, r in (("A", ra), ("B", rb)):
            row[f"verdict_{side}"] = r["verdict"] if r else ""
            for k in REPORT_COLUMNS:
                row[f"{k}_{side}"] = r[k] if r else math.nan
            row[f"reason_{side}"] = r["reason"] if r else ""
        if ra and rb:
            if ra["verdict"] != rb["verdict"]:
                changed.append("verdict")
            changed += [k for k in REPORT_COLUMNS if not _same(ra[k], rb[k])]
        row["changed"] = ", ".join(changed)
        out.append(row)
    df = pd.DataFrame(out)
    if df.empty:
        return df
    # verdict changes first, then claims judged in one run only, then value differences, then the same
    rank = df["changed"].map(lambda c: 0 if "verdict" in c else 1 if "only" in c else 2 if c else 3)
    return df.assign(_r=rank).sort_values(["_r"], kind="stable").drop(columns="_r").reset_index(drop=True)


def _fmt(x) -> str:
    return f"{x:.4g}" if isinstance(x, float) and math.isfinite(x) else ("-" if isinstance(x, float) else str(x))


def _md(df: pd.DataFrame, a: dict, b: dict) -> str:
    n_v = int(df["changed"].str.contains("verdict").sum()) if len(df) else 0
    n_c = int((df["changed"] != "").sum()) if len(df) else 0
    lines = ["# bilevelbench: two runs side by side", "",
             f"- **A** `{a['path']}`: {a['plugins']} (profile {a['profile']}, git {str(a['git'])[:10]})",
             f"- **B** `{b['path']}`: {b['plugins']} (profile {b['profile']}, git {str(b['git'])[:10]})", "",
             f"{len(df)} claims; {n_v} change verdict, {n_c} differ in any value. Differences first.", "",
             "| claim | verdict A | verdict B | changed | measured A | measured B | exponent fit A | exponent fit B |",
             "|---|---|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        lines.append(f"| `{r['id']}` | {r['verdict_A']} | {r['verdict_B']} | {r['changed'] or '-'} | "
                     f"{_fmt(r['measured_value_A'])} | {_fmt(r['measured_value_B'])} | "
                     f"{_fmt(r['exponent_fit_A'])} | {_fmt(r['exponent_fit_B'])} |")
    return "\n".join(lines) + "\n"


def _html(df: pd.DataFrame, a: dict, b: dict) -> str:
    e = html.escape

    def badge(v):
        return f'<span style="background:{VERDICT_COLOURS.get(v, "#999")};color:#fff;padding:1px 6px;' \
               f'border-radius:8px">{e(v)}</span>' if v else ""

    rows = []
    for _, r in df.iterrows():
        hot = ' style="background:#fff8c5"' if "verdict" in r["changed"] or "only" in r["changed"] else ""
        rows.append(f'<tr id="{e(r["id"])}"{hot}><td><code>{e(r["id"])}</code></td><td>{badge(r["verdict_A"])}</td>'
                    f"<td>{badge(r['verdict_B'])}</td><td>{e(r['changed'] or '-')}</td>"
                    + "".join(f'<td class="num">{e(_fmt(r[f"{k}_{s}"]))}</td>' for k in ("measured_value", "ratio",
                                                                                          "exponent_fit")
                              for s in ("A", "B"))
                    + f"<td><details><summary>reasons</summary><b>A</b>: {e(r['reason_A'])}<br><b>B</b>: "
                      f"{e(r['reason_B'])}</details></td></tr>")
    head = ("<tr><th>claim</th><th>verdict A</th><th>verdict B</th><th>changed</th><th>measured A</th>"
            "<th>measured B</th><th>ratio A</th><th>ratio B</th><th>exponent fit A</th><th>exponent fit B</th>"
            "<th>reasons</th></tr>")
    css = ("body{font:14px system-ui,sans-serif;max-width:1200px;margin:24px auto;padding:0 16px}table{border-collapse:"
           "collapse;width:100%;font-size:12.5px}td,th{border:1px solid #d0d7de;padding:3px 6px;vertical-align:top}"
           "td.num{text-align:right}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>bilevelbench comparison</title>'
            f"<style>{css}</style></head><body><h1>Two runs side by side</h1>"
            f"<p><b>A</b> <code>{e(a['path'])}</code>: {e(a['plugins'])}<br><b>B</b> <code>{e(b['path'])}</code>: "
            f"{e(b['plugins'])}</p><p>Differences first; highlighted rows change verdict.</p>"
            f"<table>{head}{''.join(rows)}</table></body></html>\n")


def write_comparison(run_a, run_b, out: Path) -> pd.DataFrame:
    """Write compare.csv, compare.md, compare.html into ``out`` (a staging folder of the caller)."""
    a, b = load_run(run_a), load_run(run_b)
    df = compare_frame(a, b)
    df.to_csv(out / "compare.csv", index=False)
    (out / "compare.md").write_text(_md(df, a, b), encoding="utf-8")
    (out / "compare.html").write_text(_html(df, a, b), encoding="utf-8")
    return df
