"""``bilevelbench verify``: plan, run the claims' experiments, judge every claim, write the results folder.

Writes ``OUT/claims.csv`` (id, paper, kind, verdict, predicted, measured, ci_low, ci_high, tightness,
reason, roles, seconds, traceback, statement), ``OUT/verdicts.json`` (with each verdict's details),
``OUT/results.parquet`` (every sweep point's rows), ``OUT/environment.json``, ``OUT/coverage.json`` (per
claim: the roles a plug-in substituted, or 'not applicable') and the report. Finished sweep points are
kept in ``OUT/points`` (by digest, see ``bench.sweep``).

Exit status: 0 when no claim is violated, 1 when one is (or, with ``--baseline``, when a verdict or a
value changed against the baseline), 2 on bad usage (one line on stderr, nothing written), 3 when a claim
ends in ``error`` (an experiment or judge raised; the traceback is in claims.csv and the report).

Nothing the user made is lost: the outputs are built in a staging folder inside OUT and moved into place
file by file (each move atomic) at the end. An OUT that already holds a report is replaced only with
``--force``; with ``--resume`` the run continues it (its points are reused where their digest matches);
a run whose claims are all new to the report is merged into it (same settings required).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .claims import Claim, all_claims, get_claim
from .experiments import EXPERIMENTS
from .experiments import load as load_experiments
from .judging import REPORT_COLUMNS, SEVERITY, Verdict, error_verdict, report_columns
from .roles import Cast, PluginError, cast_for, load_plugin
from .sweep import Env, SweepStore, canon, make_executor, peak_rss_mb, run_sweeps, versions

__all__ = ["main", "verify", "environment", "BASELINE_DIR", "UsageError", "Plan", "plan", "OUTPUT_FILES",
           "exit_code", "write_outputs", "swap_in", "print_table", "RunStats", "check_arms"]

BASELINE_DIR = Path(__file__).resolve().parent / "baselines"
#: the files and folder a report consists of (what --force replaces; points/ is a cache and stays)
OUTPUT_FILES = ("claims.csv", "verdicts.json", "results.parquet", "environment.json", "coverage.json",
                "report.md", "report.html", "summary.json", "figures")
REFERENCE = "reference/curves"


class UsageError(Exception):
    """Bad usage: one line on stderr, exit status 2, nothing written."""


# ====================================================================== planning
@dataclass
class Plan:
    """What a run will do: the claims to judge, the experiments they need, each claim's coverage."""

    claims: list[Claim]
    skipped: list[str] = field(default_factory=list)  # reached by no plug-in (skipped without --all-claims)
    coverage: dict[str, list[str]] = field(default_factory=dict)  # claim -> roles substituted ([] = n/a)
    experiments: list[str] = field(default_factory=list)


def plan(claim_ids, cast: Cast, all_claims_flag: bool = False, reference: bool = True) -> Plan:
    """The claims to run: with plug-ins, those reaching a substituted role (every requested one with
    ``all_claims_flag``); and their experiments, in first-use order."""
    load_experiments()
    claims = [get_claim(c) for c in claim_ids]
    out = Plan(claims=[])
    for c in claims:
        subs = cast.substituted(c.reach)
        out.coverage[c.id] = subs
        if cast.specs and not subs and not all_claims_flag:
            out.skipped.append(c.id)
            continue
        out.claims.append(c)
    names = [e for c in out.claims for e in c.experiments]
    if reference:
        names.append(REFERENCE)
    out.experiments = list(dict.fromkeys(names))
    return out


def check_arms(p: Plan, cast: Cast) -> None:
    """Every arm a plug-in plays must get the parameters the paper's preset and the experiment set: a
    plug-in lacking one is a usage error naming the parameter and the claims (raised before any run)."""
    import bilevelbench.analytic as an

    users: dict[str, list[str]] = {}
    for c in p.claims:
        for e in c.experiments:
            users.setdefault(e, []).append(c.id)
    problems = {}
    for name in p.experiments:
        for arm in EXPERIMENTS[name].arms:
            if not arm.audited or arm.role not in cast.algorithms:
                continue
            if arm.family not in problems:
                problems[arm.family] = an.make_problem(arm.family)
            try:
                cast.params_for(arm.role, problems[arm.family], arm.preset, arm.preset_args,
                                **dict.fromkeys(arm.params, None))
            except PluginError as exc:
                who = ", ".join(users.get(name, [])) or "the reference curves"
                raise UsageError(f"{exc} (experiment {name}; claims {who})") from None
            except Exception:  # noqa: S110 - the preset needs another instance than the probe: the run checks it
                pass


# ====================================================================== running
def environment(env: Env, elapsed: float | None = None, memory: dict | None = None) -> dict:
    import torch

    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        rev = None
    dev = env.device
    name = torch.cuda.get_device_name(0) if dev.startswith("cuda") else (platform.processor() or platform.machine())
    return {"versions": versions(), "device": dev, "device_name": name, "dtype": env.dtype,
            "profile": env.profile, "seed": env.seed, "threads": env.threads, "compile": env.compile,
            "git_revision": rev,
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "run_seconds": elapsed,
            **(memory or {"peak_rss_mb": None}), "plugins": [s.identity() for s in env.plugins]}


class TreeRss:
    """Samples, every ``interval`` seconds on a background thread, the memory of this process and all its
    descendants (the fork server and the workers) together, from /proc (Linux; ``peak_mb`` stays None
    elsewhere): the sum of their proportional set sizes, so that the pages the workers share with the fork
    server (torch's libraries) count once (their resident sizes where PSS cannot be read: an upper
    estimate). A peak shorter than the interval can be missed."""

    def __init__(self, interval: float = 0.25):
        import threading

        self.interval, self.peak_mb = interval, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bilevelbench-rss", daemon=True)

    def __enter__(self):
        if Path("/proc/self/stat").exists():
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self):
        while True:
            total = _tree_rss_mb(os.getpid())
            if total is not None:
                self.peak_mb = max(self.peak_mb or 0.0, total)
            if self._stop.wait(self.interval):
                return


def _tree_rss_mb(root: int) -> float | None:
    """MiB held by ``root`` and its descendants now (PSS, else /proc/PID/stat's rss field)."""
    parent, rss = {}, {}
    page = os.sysconf("SC_PAGE_SIZE") / 2**20
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        parent[int(d)], rss[int(d)] = int(fields[1]), int(fields[21]) * page
    if root not in rss:
        return None
    total, todo, seen = 0.0, [root], set()
    children: dict[int, list[int]] = {}
    for pid, pp in parent.items():
        children.setdefault(pp, []).append(pid)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += _pss_mb(pid) or rss.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def _pss_mb(pid: int) -> float | None:
    """Proportional set size of ``pid`` in MiB (pages shared by k processes count 1/k to each), from
    /proc/PID/smaps_rollup; None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _memory(jobs: int, results: pd.DataFrame, tree_peak_mb: float | None) -> dict:
    """environment.json's memory fields (MiB): this process's peak; the largest peak of a process that ran
    sweep points (a worker, with ``jobs`` > 1; ``sweep.measure_point`` records it per point); and the peak of
    the whole run, this process and its workers together, as sampled (:class:`TreeRss`)."""
    own = peak_rss_mb()
    worker = None
    if jobs > 1 and "process_peak_rss_mb" in results and results["process_peak_rss_mb"].notna().any():
        worker = float(results["process_peak_rss_mb"].max())
    total = None if tree_peak_mb is None else max(tree_peak_mb, own, worker or 0.0)
    return {"jobs": jobs, "peak_rss_mb": own, "peak_rss_worker_mb": worker, "peak_pss_total_mb": total}


@dataclass
class RunStats:
    reused: int = 0
    computed: int = 0
    invalid: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # experiment -> seconds spent computing


def verify(claim_ids, env: Env, out: Path, resume: bool = False, executor=None, progress: bool = True,
           all_claims_flag: bool = False, stats: RunStats | None = None):
    """Run and judge ``claim_ids``; returns (verdicts, results DataFrame). ``out/points`` holds the sweep
    points (reused with ``resume`` where their digest matches). Claims reached by no plug-in are skipped
    (with plug-ins, unless ``all_claims_flag``); their verdicts are absent from the result."""
    from tqdm import tqdm

    cast = cast_for(env)
    p = plan(claim_ids, cast, all_claims_flag)
    check_arms(p, cast)
    stats = stats if stats is not None else RunStats()
    store = SweepStore(out)
    store.clear_partial()
    exps = {n: EXPERIMENTS[n] for n in p.experiments}
    keys = {n: e.keys(env.profile) for n, e in exps.items()}
    bar = tqdm(total=sum(len(k) for k in keys.values()), desc="sweep points", unit="pt", disable=not progress,
               file=sys.stderr)
    from .experiments import ExperimentMeasure
    from .sweep import Point, Sweep

    sweeps = {}
    for name, e in exps.items():
        settings = canon(env.settings(e.reach))
        sweeps[name] = Sweep([Point(name, k, settings) for k in keys[name]], ExperimentMeasure(name),
                             tuple(e.row_type.columns()))
    try:
        outs = run_sweeps(sweeps, env, store, executor=executor, resume=resume, progress=bar)
    except PluginError:
        bar.close()
        raise
    frames, errors = {}, {}
    for name, res in outs.items():
        stats.reused += res.reused
        stats.computed += res.computed
        stats.invalid += res.invalid
        if res.error is not None:  # a bug must not take the other claims down; it is reported per claim
            exc = res.error
            errors[name] = (exc, "".join(traceback.format_exception(exc)))  # a worker's traceback is its cause
            continue
        frames[name] = res.frame
        # what the experiment's points cost to compute (stored ones included), wherever they ran
        stats.seconds[name] = float(res.frame.drop_duplicates("point")["point_seconds"].sum()) \
            if "point_seconds" in res.frame else 0.0
    bar.close()
    verdicts = []
    for c in p.claims:
        bad = [(n, errors[n]) for n in c.experiments if n in errors]
        if bad:
            n, (exc, tb) = bad[0]
            v = error_verdict(c.id, f"experiment {n}", exc, tb)
        else:
            try:
                v = c.judge({n: frames[n] for n in c.experiments}, env)
                if not isinstance(v, Verdict) or v.id != c.id:
                    raise TypeError(f"judge of {c.id} returned {v!r}, not a Verdict with id {c.id!r}")
            except Exception as exc:
                v = error_verdict(c.id, "judge", exc, traceback.format_exc())
        v.details["roles"] = p.coverage.get(c.id, [])
        v.details["seconds"] = sum(stats.seconds.get(n, 0.0) / _users(p, n) for n in c.experiments)
        verdicts.append(v)
    results = pd.concat([f for f in frames.values() if not f.empty], ignore_index=True) if frames else pd.DataFrame()
    return verdicts, results


def _users(p: Plan, name: str) -> int:
    return max(1, sum(name in c.experiments for c in p.claims))


def exit_code(verdicts) -> int:
    """3 when a claim ended in error, else 1 when one is violated, else 0."""
    if any(v.verdict == "error" for v in verdicts):
        return 3
    return 1 if any(v.verdict == "violated" for v in verdicts) else 0


# ====================================================================== outputs
CLAIM_COLUMNS = ["id", "paper", "kind", "verdict", *REPORT_COLUMNS, "predicted", "measured", "ci_low", "ci_high",
                 "tightness", "reason", "roles", "substituted", "seconds", "traceback", "statement"]


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_outputs(out: Path, verdicts, results: pd.DataFrame, env: Env, elapsed: float, coverage: dict,
                  memory: dict | None = None) -> None:
    """claims.csv, verdicts.json, coverage.json, results.parquet, environment.json into ``out`` (a staging
    folder: the caller swaps them into place)."""
    rows, cov = [], {}
    for v in verdicts:
        c = get_claim(v.id)
        subs = coverage.get(v.id) or []
        audited = ",".join(subs) if subs else "not applicable"
        cov[v.id] = {"roles": list(c.roles), "substituted": subs if env.plugins else None, "audits": c.audits}
        rows.append({**v.row(), **report_columns(v, c.kind), "paper": c.paper, "kind": c.kind,
                     "statement": c.statement,
                     "roles": ",".join(c.roles), "substituted": audited if env.plugins else "",
                     "seconds": v.details.get("seconds", math.nan)})
    pd.DataFrame(rows, columns=CLAIM_COLUMNS).to_csv(out / "claims.csv", index=False)
    (out / "verdicts.json").write_text(json.dumps([{**v.row(), "details": v.details} for v in verdicts], indent=1,
                                                  default=str))
    (out / "coverage.json").write_text(json.dumps(
        {"plugins": [s.identity() for s in env.plugins], "claims": cov}, indent=1, sort_keys=True))
    if not results.empty:
        obj = results.select_dtypes(include=["object", "string"]).columns
        results = results.copy()
        results[obj] = results[obj].astype(str)
        results.to_parquet(out / "results.parquet", index=False)
    (out / "environment.json").write_text(json.dumps(environment(env, elapsed, memory), indent=1))


def swap_in(staging: Path, out: Path, names=OUTPUT_FILES) -> None:
    """Move the outputs of ``staging`` into ``out``: each file with one atomic rename; the figures folder
    by renaming the old one aside first, then removing it once the new one is in place."""
    for name in names:
        src = staging / name
        if not src.exists():
            continue
        dst = out / name
        if src.is_dir():
            old = None
            if dst.exists():
                old = out / f".old-{name}-{os.getpid()}"
                os.replace(dst, old)
            os.replace(src, dst)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(src, dst)


def _existing_report(out: Path) -> dict | None:
    """The previous report of ``out``: its verdicts (id -> verdict dict) and environment, or None."""
    vj = out / "verdicts.json"
    if not vj.exists():
        return None
    try:
        verdicts = {v["id"]: v for v in json.loads(vj.read_text())}
        env = json.loads((out / "environment.json").read_text()) if (out / "environment.json").exists() else {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"--out {out}: its verdicts.json cannot be read ({exc}); use --force to replace the "
                         f"report") from None
    return {"verdicts": verdicts, "env": env}


def _same_settings(old_env: dict, env: Env) -> list[str]:
    want = {"profile": env.profile, "dtype": env.dtype, "device": env.device, "seed": env.seed,
            "threads": env.threads, "compile": env.compile,
            "plugins": [s.identity() for s in env.plugins]}
    return [k for k, v in want.items() if old_env.get(k, v) != v]


def _merge_previous(previous: dict, verdicts, results: pd.DataFrame, out: Path):
    """Verdicts of the previous report for claims this run did not judge, and its result rows for
    experiments this run did not run, added to this run's."""
    mine = {v.id for v in verdicts}
    keep = [Verdict(**{k: v.get(k) for k in ("id", "verdict", "predicted", "measured", "ci_low", "ci_high",
                                             "tightness", "reason", "traceback")},
                    details=v.get("details") or {})
            for cid, v in previous["verdicts"].items() if cid not in mine]
    for v in keep:
        for k in ("predicted", "measured", "ci_low", "ci_high", "tightness"):
            v.__dict__[k] = math.nan if getattr(v, k) is None else float(getattr(v, k))
        v.traceback = v.traceback or ""
    merged = sorted(verdicts + keep, key=lambda v: _rank().get(v.id, 10**6))
    old_res = out / "results.parquet"
    if old_res.exists() and not results.empty:
        prev = pd.read_parquet(old_res)
        col = "experiment" if "experiment" in prev else None
        if col is not None:
            prev = prev[~prev[col].isin(set(results["experiment"]))]
            results = pd.concat([prev, results], ignore_index=True)
    return merged, results


def _rank() -> dict[str, int]:
    return {c.id: i for i, c in enumerate(all_claims())}


# ====================================================================== printing
def _num(x) -> str:
    return f"{x:.3g}" if isinstance(x, float) and math.isfinite(x) else "-"


def print_table(verdicts, coverage: dict | None = None, file=sys.stdout):
    """The console table: a header, one row per claim (columns of one meaning each, as in claims.csv),
    the summary and what the columns mean."""
    w = max([len(v.id) for v in verdicts] + [5])
    cols = [("bound", 9), ("measured", 9), ("ratio", 8), ("exp.paper", 9), ("exp.inst", 8), ("exp.fit [95% CI]", 22)]
    head = f"{'claim':<{w}}  {'verdict':<12}" + "".join(f" {name:>{width}}" for name, width in cols)
    if coverage is not None:
        head += "  roles audited"
    print(head, file=file)
    print("-" * len(head), file=file)
    for v in verdicts:
        c = report_columns(v, get_claim(v.id).kind)
        fit = (f"{_num(c['exponent_fit'])} [{_num(c['fit_low'])}, {_num(c['fit_high'])}]"
               if math.isfinite(c["exponent_fit"]) else "-")
        cells = [_num(c["bound"]), _num(c["measured_value"]), _num(c["ratio"]), _num(c["exponent_paper"]),
                 _num(c["exponent_instance"]), fit]
        line = f"{v.id:<{w}}  {v.verdict:<12}" + "".join(f" {x:>{width}}" for x, (_, width) in zip(cells, cols,
                                                                                                strict=True))
        if coverage is not None:
            line += "  " + (",".join(coverage.get(v.id) or []) or "not applicable")
        print(line, file=file)
    counts = pd.Series([v.verdict for v in verdicts]).value_counts().to_dict()
    print("summary: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: -SEVERITY[kv[0]])),
          file=file)
    print("columns: bound = tolerance (identity) or bound (inequality, lower-bound); ratio = measured/bound; "
          "exp.* = exponents of scaling claims (paper, instance-implied, fitted); reasons in claims.csv", file=file)


# ====================================================================== command line
def _check_out(out: Path, force: bool, resume: bool, ids: list[str], env: Env) -> dict | None:
    """Refuse to touch a folder the run would replace without --force; return the report to merge into."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    previous = _existing_report(out) if out.exists() else None
    if out.exists() and previous is None and not force and not resume:
        foreign = [p.name for p in out.iterdir() if p.name not in ("points",) and not p.name.startswith(".")]
        if any(n in OUTPUT_FILES for n in foreign):
            raise UsageError(f"--out {out}: holds report files but no readable verdicts.json; use --force to "
                             "replace them")
        if (out / "points").exists():
            raise UsageError(f"--out {out}: holds sweep points of an unfinished run; use --resume to continue it or "
                             "--force to start over")
    if previous is None or force:
        return None
    diff = _same_settings(previous["env"], env)
    if diff:
        raise UsageError(f"--out {out}: holds a report made with other settings ({', '.join(diff)}); use --force "
                         "to replace it or choose another --out")
    overlap = sorted(set(previous["verdicts"]) & set(ids))
    if overlap and not resume:
        raise UsageError(f"--out {out}: already holds a report with {len(previous['verdicts'])} claims (e.g. "
                         f"{overlap[0]}); use --force to replace it, --resume to continue it, or another --out")
    return previous


def _parse_claims(args) -> list[str]:
    known = [c.id for c in all_claims()]
    if args.claims is None:
        return known
    given = [args.claims] if isinstance(args.claims, str) else list(args.claims)
    ids = [c.strip() for part in given for c in part.split(",") if c.strip()]
    if not ids:
        raise UsageError("--claims: no claim ID given (an empty filter selects nothing); omit --claims to run "
                         "them all, see 'bilevelbench list claims'")
    unknown = [c for c in ids if c not in known]
    if unknown:
        raise UsageError(f"--claims: unknown claim ID(s) {', '.join(unknown)} (see 'bilevelbench list claims')")
    return list(dict.fromkeys(ids))


def _writable(out: Path) -> None:
    """Raise UsageError unless ``out`` (or, if it does not exist yet, the nearest existing folder above it)
    and its ``points`` folder accept a new file. Creates nothing that stays."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r}: exists and is not a folder")
    probe_dir = out
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    dirs = [probe_dir] + ([out / "points"] if (out / "points").exists() else [])
    for d in dirs:
        if not d.is_dir():
            raise UsageError(f"--out {str(out)!r}: {d} is not a folder")
        try:
            fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=d)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise UsageError(f"--out {str(out)!r} is not writable: {d} ({exc.strerror or exc})") from None


def resolve_jobs(value) -> int:
    """--jobs: an integer in [1, 1024]; default $BILEVELBENCH_JOBS, else the usable CPUs."""
    from .sweep import usable_cpus

    source = "--jobs"
    if value is None:
        value = os.environ.get("BILEVELBENCH_JOBS")
        source = "BILEVELBENCH_JOBS"
        if value is None or value == "":
            return max(1, min(usable_cpus(), 1024))
    try:
        jobs = int(str(value).strip())
    except ValueError:
        raise UsageError(f"{source} {value!r}: expected an integer in [1, 1024]") from None
    if not 1 <= jobs <= 1024:
        raise UsageError(f"{source} {value!r}: expected an integer in [1, 1024]")
    return jobs


def _check_args(args):
    """Every check of the command line that needs no experiment; nothing is written."""
    import torch

    if args.device not in ("cpu", "cuda") and not str(args.device).startswith("cuda:"):
        raise UsageError(f"--device {args.device!r}: expected cpu, cuda or cuda:N")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: CUDA is not available on this machine")
    if args.threads < 1 or args.threads > 1024:
        raise UsageError(f"--threads {args.threads}: expected an integer in [1, 1024]")
    args.jobs = resolve_jobs(getattr(args, "jobs", None))
    if args.jobs > 1 and args.executor == "dask":
        raise UsageError(f"--jobs {args.jobs} and --executor dask: the Dask cluster's workers run the points; "
                         "leave --jobs out")
    if args.seed < 0 or args.seed > 2**31 - 1:
        raise UsageError(f"--seed {args.seed}: expected an integer in [0, 2^31 - 1]")
    if args.scheduler and args.executor != "dask":
        raise UsageError(f"--scheduler {args.scheduler!r} is only used with --executor dask")
    if not args.dask_timeout > 0:
        raise UsageError(f"--dask-timeout {args.dask_timeout}: expected a positive number of seconds")
    if args.executor == "dask" and not args.scheduler:
        raise UsageError("--executor dask needs --scheduler ADDRESS (e.g. tcp://127.0.0.1:8786)")
    if args.force and args.resume:
        raise UsageError("--force and --resume contradict each other: --force replaces the report, --resume "
                         "continues it")
    if args.baseline and args.write_baseline:
        raise UsageError("--baseline and --write-baseline: compare with a baseline or write one, not both")
    if args.baseline:
        path = Path(args.baseline_path) if args.baseline_path else BASELINE_DIR / f"{args.profile}.json"
        if not path.is_file():
            raise UsageError(f"--baseline: no baseline file at {path} (--baseline-path names another)")
    out = Path(args.out)
    _writable(out)
    return out, _parse_claims(args)


def _baseline_checks(args, env: Env, ids: list[str]):
    """--write-baseline writes only from standard runs (all claims, no plug-in, float64 on the CPU), unless
    --baseline-path names another file."""
    if not args.write_baseline or args.baseline_path:
        return
    reasons = []
    if env.plugins:
        reasons.append("a plug-in")
    if env.dtype != "float64":
        reasons.append(f"dtype {env.dtype}")
    if env.device != "cpu":
        reasons.append(f"device {env.device}")
    if len(ids) != len(all_claims()):
        reasons.append(f"a subset of {len(ids)} claims")
    if args.all_claims:
        reasons.append("--all-claims")
    if reasons:
        raise UsageError(f"--write-baseline: the committed baseline is written only from a standard run, not with "
                         f"{', '.join(reasons)}; name another file with --baseline-path")


def main(args) -> int:
    from bilevelbench.cli import UsageError as CliUsage

    try:
        out, ids = _check_args(args)
        try:
            loaded = [load_plugin(s) for s in args.plugin]
            cast = Cast(loaded)
        except PluginError as exc:
            raise UsageError(str(exc)) from None
        env = Env(device=args.device, dtype=args.dtype, seed=args.seed, profile=args.profile,
                  plugins=tuple(s for s, _ in loaded), threads=args.threads,
                  compile="auto" if getattr(args, "compile", None) is None else args.compile)
        _baseline_checks(args, env, ids)
        executor = make_executor(args.jobs) if args.executor == "local" else None  # workers start while we plan
        p = plan(ids, cast, args.all_claims)
        if cast.specs and not p.claims:
            filled = ", ".join(r for s in cast.specs for r in s.roles)
            raise UsageError(f"no claim of the selection reaches the roles the plug-ins fill ({filled}); "
                             "--all-claims runs them anyway")
        check_arms(p, cast)
        previous = _check_out(out, args.force, args.resume, [c.id for c in p.claims], env)
        if args.executor == "dask":
            from .distributed import dask_executor

            try:
                executor = dask_executor(args.scheduler, timeout=args.dask_timeout,
                                         workers_timeout=args.dask_timeout)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
    except UsageError as exc:
        raise CliUsage(str(exc)) from exc
    if cast.specs:
        fills = "; ".join(f"{s.ref} fills {', '.join(s.roles)}" for s in cast.specs)
        print(f"plug-ins: {fills}; {len(p.claims)} claims reached, {len(p.skipped)} not applicable"
              + (" (skipped; --all-claims runs them)" if p.skipped else ""), file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    stats = RunStats()
    try:
        with TreeRss() as tree:
            verdicts, results = verify([c.id for c in p.claims], env, out, resume=args.resume, executor=executor,
                                       all_claims_flag=True, stats=stats)
    except PluginError as exc:
        raise CliUsage(str(exc)) from exc
    elapsed = time.perf_counter() - t0
    if args.resume:
        print(f"resume: reused {stats.reused} finished sweep points, computed {stats.computed}"
              + (f" ({len(stats.invalid)} stored files unusable, recomputed)" if stats.invalid else ""),
              file=sys.stderr)
    if previous is not None:
        verdicts, results = _merge_previous(previous, verdicts, results, out)
    coverage = {c: p.coverage.get(c, []) for c in (v.id for v in verdicts)}
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    try:
        write_outputs(staging, verdicts, results, env, elapsed, coverage, _memory(args.jobs, results, tree.peak_mb))
        if not args.no_report:
            from bilevelbench.reports import render

            render.render(staging, dest=staging, jobs=args.jobs)
        swap_in(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    code = exit_code(verdicts)
    if args.write_baseline:
        from .baseline import write_baseline

        path = write_baseline(args.profile, verdicts, Path(args.baseline_path) if args.baseline_path else None)
        print(f"baseline written to {path}")
    print_table(verdicts, coverage if env.plugins else None)
    print(f"results in {out}/ ({elapsed:.0f} s)")
    if args.baseline:
        from .baseline import compare, load_baseline

        try:
            base = load_baseline(args.profile, Path(args.baseline_path) if args.baseline_path else None)
        except FileNotFoundError as exc:
            raise CliUsage(str(exc)) from None
        problems = compare(verdicts, base)
        if problems:
            print(f"baseline: {len(problems)} change(s):", file=sys.stderr)
            for line in problems:
                print(f"  {line}", file=sys.stderr)
            code = code or 1
        else:
            print("baseline: no change", file=sys.stderr)
    return code

