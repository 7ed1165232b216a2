"""The committed rate baseline (``bench/baselines/<profile>.json``) and the drift check of CI.

A baseline stores, per claim, the verdict, the measured value with its interval and, for scaling claims,
every fitted exponent with its bootstrap interval. ``compare`` flags a claim whose verdict changed (in any
direction: holds -> inconclusive is a change too), whose measured value (or any fitted exponent) left the
baseline's interval, or which is missing on either side.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["baseline_path", "snapshot", "write_baseline", "load_baseline", "compare"]


def baseline_path(profile: str) -> Path:
    return Path(__file__).resolve().parent / "baselines" / f"{profile}.json"


def _num(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def snapshot(verdicts) -> dict:
    out = {}
    for v in verdicts:
        entry = {"verdict": v.verdict, "measured": _num(v.measured), "ci_low": _num(v.ci_low),
                 "ci_high": _num(v.ci_high)}
        exps = v.details.get("exponents") if isinstance(v.details, dict) else None
        if exps:
            entry["exponents"] = {k: {"fitted": _num(e["fitted"]), "ci": [_num(c) for c in e["ci"]]}
                                  for k, e in exps.items()}
        out[v.id] = entry
    return out


def write_baseline(profile: str, verdicts, path: Path | None = None) -> Path:
    """Write (or update, for the claims of this run) the profile's baseline, or the file ``path``."""
    path = path or baseline_path(profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(snapshot(verdicts))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def load_baseline(profile: str, path: Path | None = None) -> dict:
    path = path or baseline_path(profile)
    if not path.exists():
        raise FileNotFoundError(f"no baseline at {path}; write one with 'bilevelbench verify --profile "
                                f"{profile} --write-baseline'")
    return json.loads(path.read_text())


def _outside(value, lo, hi, slack) -> bool:
    if value is None or lo is None or hi is None:
        return False
    return value < lo - slack or value > hi + slack


def compare(verdicts, baseline: dict, *, require_all: bool = False) -> list[str]:
    """Changes of a new run against the baseline: changed verdicts, drifted values, claims missing from the
    baseline (and, with ``require_all``, baseline claims missing from the run)."""
    problems = []
    now = snapshot(verdicts)
    for cid, new in now.items():
        old = baseline.get(cid)
        if old is None:
            problems.append(f"{cid}: not in the baseline (rewrite it with --write-baseline)")
            continue
        if new["verdict"] != old["verdict"]:
            problems.append(f"{cid}: verdict {old['verdict']} -> {new['verdict']}")
        # Exact quantities have a zero-width interval; allow their float round-off (1e-9 relative).
        m, lo, hi = new["measured"], old["ci_low"], old["ci_high"]
        slack = 1e-9 * max(abs(lo or 0.0), abs(hi or 0.0), 1.0)
        if _outside(m, lo, hi, slack):
            problems.append(f"{cid}: measured {m:.6g} left the baseline interval [{lo:.6g}, {hi:.6g}]")
        for kind, e in (new.get("exponents") or {}).items():
            b = (old.get("exponents") or {}).get(kind)
            if b and _outside(e["fitted"], b["ci"][0], b["ci"][1], 1e-9):
                problems.append(f"{cid}: {kind} exponent {e['fitted']:.4g} left the baseline interval "
                                f"[{b['ci'][0]:.4g}, {b['ci'][1]:.4g}]")
    if require_all:
        problems += [f"{cid}: in the baseline but not in this run" for cid in sorted(set(baseline) - set(now))]
    return problems
