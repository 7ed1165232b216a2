"""The report's documents: ``report.md``, a self-contained ``report.html`` and ``summary.json``.

Pure functions of the report model built by ``render.load`` (claim rows with their figure files, the
environment, the reference-curve notes); no I/O except reading figure bytes to embed them in the HTML.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

from .palette import VERDICT_COLOURS

__all__ = ["VERDICT_ORDER", "GLOSSARY", "summary", "summary_json", "markdown", "html_report", "fmt", "measured_text",
           "columns", "column_cells", "COLUMN_HEADS"]

VERDICT_ORDER = ("holds", "consistent", "violated", "inconclusive", "error")
MARK = {"holds": "✓", "consistent": "≈", "violated": "✗", "inconclusive": "?", "error": "!"}
GLOSSARY = {
    "holds": "the identity or inequality is satisfied, beyond the measurement's confidence interval",
    "consistent": "scaling claim: the fitted exponent's 95% interval is not above the predicted one (a "
                  "measured exponent can refute an O() bound, never prove it)",
    "violated": "the measurement contradicts the claim beyond its confidence interval",
    "inconclusive": "the interval straddles the bound, or the experiment could not decide (see reason)",
    "error": "the claim's experiment or judge raised an exception: no verdict (the traceback is in claims.csv)",
}
TIGHTNESS = ("tightness: predicted minus fitted exponent for scaling claims (room the bound leaves), "
             "measured / bound for inequalities, discrepancy / tolerance for identities")
SHORT = 220  # characters of a reason shown before "more"


def fmt(v) -> str:
    """3 significant digits; '-' for a missing value."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def measured_text(row: dict) -> str:
    """Measured value with its interval when the interval says something (not a point)."""
    m, lo, hi = row["measured"], row["ci_low"], row["ci_high"]
    if math.isnan(lo) and math.isnan(hi) or (lo == hi == m):
        return fmt(m)
    return f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]"


def columns(row: dict) -> dict:
    """The one-meaning columns of a claim row (``bench.judging.report_columns``): from claims.csv when it
    has them, else derived from the row's kind and numbers."""
    from bilevelbench.bench.judging import REPORT_COLUMNS, Verdict, report_columns

    if all(k in row and isinstance(row[k], float) for k in REPORT_COLUMNS):
        return {k: row[k] for k in REPORT_COLUMNS}
    v = Verdict(id=row["id"], verdict="holds", predicted=row["predicted"], measured=row["measured"],
                ci_low=row["ci_low"], ci_high=row["ci_high"], details=row.get("details") or {})
    return report_columns(v, row.get("kind", ""))


def column_cells(row: dict) -> list[str]:
    """bound, measured [interval], ratio, exponents paper / instance / fit [CI] as display strings."""
    c = columns(row)
    meas = fmt(c["measured_value"])
    if math.isfinite(c["measured_value"]) and not (row["ci_low"] == row["ci_high"] == row["measured"]) \
            and math.isfinite(row["ci_low"]) and row.get("kind") != "scaling":
        meas = f"{meas} [{fmt(row['ci_low'])}, {fmt(row['ci_high'])}]"
    fit = (f"{fmt(c['exponent_fit'])} [{fmt(c['fit_low'])}, {fmt(c['fit_high'])}]"
           if math.isfinite(c["exponent_fit"]) else "-")
    return [fmt(c["bound"]), meas, fmt(c["ratio"]), fmt(c["exponent_paper"]), fmt(c["exponent_instance"]), fit]


COLUMN_HEADS = ["bound", "measured [interval]", "ratio", "exponent (paper)", "exponent (instance)",
                "exponent (fit) [95% CI]"]


def counts(rows) -> dict[str, int]:
    out = dict.fromkeys(VERDICT_ORDER, 0)
    for r in rows:
        out[r["verdict"]] = out.get(r["verdict"], 0) + 1
    return out


def _counts_text(c: dict[str, int]) -> str:
    return ", ".join(f"{n} {v}" for v, n in c.items() if n or v in VERDICT_ORDER)


def _papers(model) -> list[tuple[str, str, list[dict]]]:
    """(paper key, citation, rows) in the registry's paper order, unknown papers after, sorted."""
    known = list(model["papers"])
    keys = sorted({r["paper"] for r in model["claims"]},
                  key=lambda p: (known.index(p) if p in known else len(known), p))
    return [(p, model["papers"].get(p, p), [r for r in model["claims"] if r["paper"] == p]) for p in keys]


def _run_line(env: dict) -> str:
    v = env.get("versions", {})
    secs = env.get("run_seconds")
    parts = [f"profile {env.get('profile', '?')}",
             f"device {env.get('device', '?')}" + (f" ({env['device_name']})" if env.get("device_name") else ""),
             f"dtype {env.get('dtype', '?')}",
             f"run time {secs:.0f} s" if isinstance(secs, int | float) and math.isfinite(secs) else "run time ?",
             " ".join(f"{k} {v[k]}" for k in sorted(v)),
             f"git {str(env['git_revision'])[:10]}" if env.get("git_revision") else ""]
    return " · ".join(p for p in parts if p)


def summary(model) -> dict:
    """The machine-readable summary (``summary.json``)."""
    env = model["env"]
    rows = model["claims"]
    return {
        "total": len(rows), "counts": counts(rows),
        "papers": {p: {"title": t, "counts": counts(rs), "claims": {r["id"]: r["verdict"] for r in rs}}
                   for p, t, rs in _papers(model)},
        "violated": [r["id"] for r in rows if r["verdict"] == "violated"],
        "inconclusive": [r["id"] for r in rows if r["verdict"] == "inconclusive"],
        "registered_claims": model.get("registered"),
        "run_seconds": env.get("run_seconds"), "device": env.get("device"), "device_name": env.get("device_name"),
        "dtype": env.get("dtype"), "profile": env.get("profile"), "versions": env.get("versions"),
        "git_revision": env.get("git_revision"),
        "figures": sorted(f for f, _ in (model.get("headline") or {}).get("figures", []))
        + sorted(f for r in rows for f in r["figures"])
        + sorted(f for f in model["reference"]["figures"] if f.endswith(".png")),
    }


def _lead(model) -> str:
    n = len(model["claims"])
    reg = model.get("registered")
    of = f" of the {reg} registered" if reg and reg != n else ""
    return f"{n}{of} claims checked against measurement: {_counts_text(counts(model['claims']))}."


def _attention(model) -> list[dict]:
    """Errors first, then violated, then inconclusive: what a reader should look at."""
    rank = {"error": 0, "violated": 1, "inconclusive": 2}
    return sorted((r for r in model["claims"] if r["verdict"] in rank), key=lambda r: rank[r["verdict"]])


# ---------------------------------------------------------------------- markdown
def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _short(text: str, n: int = SHORT) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def _legend_lines() -> list[str]:
    from bilevelbench.bench.judging import COLUMN_LEGEND

    return [f"- **{k}**: {v}" for k, v in COLUMN_LEGEND.items()]


def markdown(model) -> str:
    env, ref, head = model["env"], model["reference"], model.get("headline") or {}
    out = ["# bilevelbench report: the papers' theorems against measurement", "",
           f"**{_lead(model)}**", "", _run_line(env), ""]
    out += ["Verdicts: " + "; ".join(f"{MARK[v]} **{v}**: {GLOSSARY[v]}" for v in VERDICT_ORDER) + ". "
            + "Full reasons and numbers: `claims.csv`, `verdicts.json`.", ""]
    out += ["## Contents", ""] + [f"- [{p}: {title}](#{p})" for p, title, _ in _papers(model)] + [""]
    figs = head.get("figures") or []
    if figs:
        out += ["## Headline figures", ""] + [f"![{cap}]({f})\n\n*{cap}*\n" for f, cap in figs]
    todo = _attention(model)
    if todo:
        out += ["## Needs attention", ""]
        out += [f"- {MARK[r['verdict']]} `{r['id']}` ({r['verdict']}): {_md_cell(_short(r['reason']))}" for r in todo]
        out.append("")
    out += ["## Columns", ""] + _legend_lines() + [""]
    for p, title, rows in _papers(model):
        out += [f"## {p}", "", f"{title}. {_counts_text(counts(rows))}.", "",
                "| ID | kind | verdict | " + " | ".join(COLUMN_HEADS) + " |",
                "|---|---|---|" + "---|" * len(COLUMN_HEADS)]
        for r in rows:
            out.append("| " + " | ".join(_md_cell(c) for c in (
                f"[`{r['id']}`](#{r['id']})", r["kind"], f"{MARK[r['verdict']]} {r['verdict']}",
                *column_cells(r))) + " |")
        out.append("")
        for r in rows:
            out += [f"### {r['id']}", "", f"**{MARK[r['verdict']]} {r['verdict']}** ({r['kind']}). "
                    f"{_md_cell(r['statement'])}", "", f"{_md_cell(r['reason'])}", ""]
            out += [f"![{r['id']} figure {i + 1}]({f})" for i, f in enumerate(r["figures"])]
            out += [_md_cell(r["figure_note"])] if not r["figures"] and r["figure_note"] else []
            out.append("")
    out += ["## Reference convergence curves", "", ref["caption"], ""]
    out += [f"![reference curves]({f})" for f in ref["figures"] if f.endswith(".png")]
    out += ["", *[f"- failed: {_md_cell(x)}" for x in ref["failures"]], "", "## Environment", "",
            "| key | value |", "|---|---|"]
    out += [f"| {k} | {_md_cell(v)} |" for k, v in _env_rows(env)]
    return "\n".join(out).replace("\n\n\n", "\n\n") + "\n"


def _env_rows(env: dict) -> list[tuple[str, str]]:
    rows = []
    for k in sorted(env):
        v = env[k]
        if isinstance(v, dict):
            rows += [(f"{k}.{kk}", str(v[kk])) for kk in sorted(v)] or [(k, "{}")]
        else:
            rows.append((k, f"{v:.1f}" if isinstance(v, float) else str(v)))
    return rows


# ---------------------------------------------------------------------- html
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:24px auto;
padding:0 16px;color:#1f2328}
h1{font-size:22px;margin:0 0 6px}h2{font-size:18px;margin:28px 0 6px;border-bottom:1px solid #d0d7de}
.lead{font-size:16px;font-weight:600}.meta{color:#57606a;font-size:12.5px}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600;margin-right:6px}
table{border-collapse:collapse;width:100%;font-size:12.5px}th,td{border:1px solid #d0d7de;padding:4px 6px;
vertical-align:top;text-align:left}th{background:#f6f8fa}td.num{text-align:right;white-space:nowrap}
td.v{color:#fff;font-weight:600;white-space:nowrap}code{font-size:12px}
details summary{cursor:pointer;color:#0969da}.figs{display:flex;flex-wrap:wrap;gap:12px;margin-top:10px}
figure{margin:0;width:calc(50% - 6px)}figure img{width:100%;border:1px solid #d0d7de}
figure.wide{width:100%}figcaption{font-size:12px;color:#57606a}ul.gloss{font-size:12.5px;color:#57606a}
nav#toc{font-size:12.5px;columns:2;border:1px solid #d0d7de;padding:4px 12px;margin:12px 0}
nav#toc h2{column-span:all;border:0;margin:4px 0}nav#toc ul.claims{columns:1;margin:0 0 4px}
section.claim{border-top:1px solid #eaeef2;margin-top:14px;padding-top:4px}section.claim h3{font-size:15px;margin:4px 0}
table.matrix{width:auto}table.matrix td{min-width:22px;height:12px;padding:1px 4px}
"""


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _badge(v: str, n: int) -> str:
    return f'<span class="badge" style="background:{VERDICT_COLOURS[v]}">{n} {v}</span>'


def embedded_webp(png: bytes) -> bytes:
    """A figure's PNG as lossless WebP (the same pixels in about 4/5 of the bytes: the self-contained HTML
    embeds ~100 figures; every current browser decodes it). Deterministic for a given libwebp."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        buf = io.BytesIO()
        # method 2: as small as method 6 on these line drawings, a hundred times faster
        im.convert("RGB").save(buf, format="WEBP", lossless=True, quality=50, method=2)
    return buf.getvalue()


def _img(out_dir: Path, rel: str, alt: str) -> str:
    data = base64.b64encode(embedded_webp((out_dir / rel).read_bytes())).decode("ascii")
    return f'<img alt="{_esc(alt)}" src="data:image/webp;base64,{data}">'


def _reason_html(text: str, tb: str = "") -> str:
    text = " ".join(str(text).split())
    trace = f"<details><summary>traceback</summary><pre>{_esc(tb)}</pre></details>" if tb else ""
    if len(text) <= SHORT:
        return _esc(text) + trace
    return f"{_esc(_short(text))}<details><summary>full reason</summary>{_esc(text)}</details>{trace}"


def _anchor(cid: str, i: int) -> str:
    return f"fig-{cid}-{i + 1}"


def _matrix_html(model) -> list[str]:
    """The verdict matrix as a table: one row per claim (linked), one column per verdict."""
    b = ['<table class="matrix"><tr><th>claim</th>' + "".join(f"<th>{v}</th>" for v in VERDICT_ORDER) + "</tr>"]
    for r in model["claims"]:
        cells = "".join(f'<td style="background:{VERDICT_COLOURS[v]}"></td>' if r["verdict"] == v else "<td></td>"
                        for v in VERDICT_ORDER)
        b.append(f'<tr><td><a href="#{_esc(r["id"])}"><code>{_esc(r["id"])}</code></a></td>{cells}</tr>')
    return b + ["</table>"]


def _nav(model) -> list[str]:
    b = ['<nav id="toc"><h2>Contents</h2><ul>', '<li><a href="#headline">Headline figures</a></li>']
    for p, title, rows in _papers(model):
        b.append(f'<li><a href="#paper-{_esc(p)}">{_esc(p)}: {_esc(title)}</a><ul class="claims">')
        b += [f'<li><a href="#{_esc(r["id"])}">{_esc(r["id"])}</a> '
              f'<span style="color:{VERDICT_COLOURS[r["verdict"]]}">{r["verdict"]}</span></li>' for r in rows]
        b.append("</ul></li>")
    b += ['<li><a href="#reference">Reference convergence curves</a></li>',
          '<li><a href="#environment">Environment</a></li></ul></nav>']
    return b


def html_report(model, out_dir: Path) -> str:
    from bilevelbench.bench.judging import COLUMN_LEGEND

    env, ref, head = model["env"], model["reference"], model.get("headline") or {}
    c = counts(model["claims"])
    b = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         "<title>bilevelbench report</title>", f"<style>{CSS}</style></head><body>",
         "<h1>bilevelbench report: the papers' theorems against measurement</h1>",
         f'<p class="lead">{_esc(_lead(model))}</p>', "<p>" + "".join(_badge(v, n) for v, n in c.items() if n) + "</p>",
         f'<p class="meta">{_esc(_run_line(env))}</p>', '<ul class="gloss">']
    b += [f'<li><b style="color:{VERDICT_COLOURS[v]}">{v}</b>: {_esc(GLOSSARY[v])}</li>' for v in VERDICT_ORDER]
    b += ["</ul>"] + _nav(model)
    b += ['<h2 id="headline">Headline figures</h2><div class="figs">']
    b += [f'<figure>{_img(out_dir, f, cap)}<figcaption>{_esc(cap)}</figcaption></figure>'
          for f, cap in head.get("figures") or []]
    b += ["</div>", "<details open><summary>verdict matrix (links to every claim)</summary>"]
    b += _matrix_html(model) + ["</details>"]
    todo = _attention(model)
    if todo:
        b += ["<h2>Needs attention</h2><ul>"]
        b += [f'<li><a href="#{_esc(r["id"])}"><code>{_esc(r["id"])}</code></a> '
              f'<b style="color:{VERDICT_COLOURS[r["verdict"]]}">{r["verdict"]}</b>: {_esc(_short(r["reason"]))}</li>'
              for r in todo]
        b += ["</ul>"]
    b += ['<details><summary>what the columns mean</summary><ul class="gloss">']
    b += [f"<li><b>{_esc(k)}</b>: {_esc(v)}</li>" for k, v in COLUMN_LEGEND.items()] + ["</ul></details>"]
    for p, title, rows in _papers(model):
        b += [f'<h2 id="paper-{_esc(p)}">{_esc(p)}: {_esc(title)}</h2>',
              "<p>" + "".join(_badge(v, n) for v, n in counts(rows).items() if n) + "</p>",
              "<table><tr><th>ID</th><th>verdict</th>" + "".join(f"<th>{_esc(h)}</th>" for h in COLUMN_HEADS)
              + "</tr>"]
        for r in rows:
            cells = "".join(f'<td class="num">{_esc(x)}</td>' for x in column_cells(r))
            b.append(f'<tr><td><a href="#{_esc(r["id"])}"><code>{_esc(r["id"])}</code></a><br>'
                     f'<small>{_esc(r["kind"])}</small></td>'
                     f'<td class="v" style="background:{VERDICT_COLOURS[r["verdict"]]}">{r["verdict"]}</td>'
                     f"{cells}</tr>")
        b.append("</table>")
        for r in rows:
            b += [f'<section class="claim" id="{_esc(r["id"])}"><h3><code>{_esc(r["id"])}</code> '
                  f'<span class="badge" style="background:{VERDICT_COLOURS[r["verdict"]]}">{r["verdict"]}</span> '
                  f"<small>{_esc(r['kind'])}</small></h3>", f"<p>{_esc(r['statement'])}</p>",
                  f'<p class="reason">{_reason_html(r["reason"], r.get("traceback", ""))}</p>']
            if r["figures"]:
                b.append('<div class="figs">')
                cid = r["id"]
                b += [f'<figure id="{_esc(_anchor(cid, i))}">{_img(out_dir, f, f"{cid} figure {i + 1}")}'
                      f"<figcaption><code>{_esc(cid)}</code> figure {i + 1}</figcaption></figure>"
                      for i, f in enumerate(r["figures"])]
                b.append("</div>")
            elif r["figure_note"]:
                b.append(f'<p class="meta">{_esc(r["figure_note"])}</p>')
            b.append("</section>")
    b += ['<h2 id="reference">Reference convergence curves</h2>', f"<p>{_esc(ref['caption'])}</p>"]
    b += [f'<div class="figs"><figure class="wide">{_img(out_dir, f, "reference curves")}</figure></div>'
          for f in ref["figures"] if f.endswith(".png")]
    if ref["failures"]:
        b += ["<ul>"] + [f"<li>failed: {_esc(x)}</li>" for x in ref["failures"]] + ["</ul>"]
    b += ['<h2 id="environment">Environment</h2><table>']
    b += [f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in _env_rows(env)]
    b += ["</table>", "</body></html>"]
    return "\n".join(b) + "\n"


def summary_json(model) -> str:
    return json.dumps(summary(model), indent=1, sort_keys=True, default=str) + "\n"
