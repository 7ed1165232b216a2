"""The ``bilevelbench`` command line: ``list``, ``verify`` and ``report`` (design.md, public surface).

Exit status: 0 on success (``verify``: no claim violated), 1 when a claim is violated (or the run changed
against ``--baseline``), 2 on bad usage, 3 when a claim ended in ``error`` (its experiment or judge raised).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

__all__ = ["main"]


class UsageError(Exception):
    """Bad usage: printed as one line, exit status 2."""


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    return str(v)


def _problems(as_json: bool) -> str:
    import bilevelbench.analytic as an

    rows = []
    for name in an.names():
        cls = an.FAMILIES[name]
        p = an.make_problem(name)
        c = p.constants
        rows.append({
            "name": name, "summary": cls.summary, "stochastic": cls.stochastic,
            "params": {k: {"default": d, "meaning": m} for k, (d, m) in cls.param_doc.items()},
            "default_instance": {"dim_x": p.dim_x, "dim_y": p.dim_y, **{
                k: getattr(c, k) for k in ("L", "mu", "kappa", "M", "tau", "rho", "L_phi", "sigma2", "hess_var")},
                "phi_star": p.phi_star},
            "regions": dict(c.regions),
        })
    if as_json:
        return json.dumps(rows, indent=2, default=str)
    out = []
    for r in rows:
        out.append(f"{r['name']}{'  (stochastic)' if r['stochastic'] else ''}: {r['summary']}")
        for k, v in r["params"].items():
            out.append(f"    {k:<12} default {_fmt(v['default']):<10} {v['meaning']}")
        inst = r["default_instance"]
        out.append("    default instance: " + ", ".join(f"{k}={_fmt(v)}" for k, v in inst.items() if v is not None))
    return "\n".join(out)


def _algorithms(as_json: bool) -> str:
    import bilevelbench.algorithms as al
    from bilevelbench.algorithms.components import COMPONENTS

    rows = [al.get(n).describe() for n in al.names()]
    comps = [{"role": c.name, "summary": c.summary, "reference": c.reference, "signature": c.signature,
              "used_by": list(c.used_by)} for c in COMPONENTS.values()]
    if as_json:
        return json.dumps({"algorithms": rows, "components": comps}, indent=2, default=str)
    out = []
    for r in rows:
        kind = "stochastic" if r["stochastic"] else "deterministic"
        out.append(f"{r['name']} [{kind}, {r['kind']}]: {r['summary']}")
        out.append(f"    source: {r['reference']}")
        if r["presets"]:
            out.append(f"    presets: {', '.join(r['presets'])}")
        if r.get("components"):
            out.append(f"    components: {', '.join(r['components'])}")
        for k, v in r["params"].items():
            out.append(f"    {k:<10} default {_fmt(v['default']):<10} {v['meaning']}")
    out.append("")
    out.append("component roles (a plug-in Component(role, fn) replaces one; fn takes the default's arguments):")
    for c in comps:
        out.append(f"{c['role']}: {c['summary']} ({c['reference']}); used by {', '.join(c['used_by'])}")
        out.append(f"    signature: {c['signature']}")
    return "\n".join(out)


def _claims(as_json: bool) -> str:
    from bilevelbench.bench import claims as cl

    rows = [c.describe() for c in cl.all_claims()]
    if as_json:
        return json.dumps(rows, indent=2, default=str)
    width = max(len(r["id"]) for r in rows)
    return "\n".join(f"{r['id']:<{width}}  {r['kind']:<11} {r['statement']}" for r in rows)


def _cmd_list(args) -> int:
    what = {"problems": _problems, "algorithms": _algorithms, "claims": _claims}[args.what]
    print(what(args.json))
    return 0


def _cmd_verify(args) -> int:
    from bilevelbench.bench import verify

    return verify.main(args)


def _cmd_report(args) -> int:
    from bilevelbench.reports import render

    return render.main(args)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``bilevelbench: error: ...``, exit 2), no usage block."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bilevelbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p_list = sub.add_parser("list", help="list problems, algorithms or claims")
    p_list.add_argument("what", choices=["problems", "algorithms", "claims"])
    p_list.add_argument("--json", action="store_true", help="machine-readable output")
    p_list.set_defaults(func=_cmd_list)

    p_ver = sub.add_parser("verify", help="run the claims' experiments and give verdicts")
    p_ver.add_argument("--profile", choices=["quick", "full"], default="quick")
    p_ver.add_argument("--claims", nargs="+", default=None,
                       help="claim IDs, space- or comma-separated (default: all)")
    p_ver.add_argument("--device", default="cpu", help="cpu or cuda")
    p_ver.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p_ver.add_argument("--out", default="bilevelbench-report", help="output folder")
    p_ver.add_argument("--resume", action="store_true",
                       help="continue the report in --out: reuse its sweep points whose settings digest matches")
    p_ver.add_argument("--force", action="store_true", help="replace the report already in --out")
    p_ver.add_argument("--seed", type=int, default=0, help="base seed of every sweep")
    p_ver.add_argument("--threads", type=int, default=1,
                       help="torch intra-op threads per sweep point (default 1: the sweeps' tensors are small)")
    p_ver.add_argument("--jobs", default=None,
                       help="worker processes running sweep points side by side, and drawing the report's figures "
                            "(default: $BILEVELBENCH_JOBS, else the CPUs this process may use; 1 runs everything "
                            "in this process); results do not depend on it")
    p_ver.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                       help="run the outer steps of stocBiO, BSA, TTSA, AID-BiO and ITD-BiO as compiled graphs "
                            "(default: only runs long enough to pay for the graph; results equal to round-off)")
    p_ver.add_argument("--plugin", action="append", default=[],
                       help="module:attr of a plug-in (an Algorithm with roles, or a Component) to audit "
                            "(repeatable)")
    p_ver.add_argument("--all-claims", action="store_true",
                       help="with --plugin: also run the claims its roles do not reach")
    p_ver.add_argument("--write-baseline", action="store_true",
                       help="rewrite bench/baselines/<profile>.json from this run (standard runs only)")
    p_ver.add_argument("--baseline", action="store_true",
                       help="compare with the baseline: any verdict change or value drift exits 1")
    p_ver.add_argument("--baseline-path", default=None, help="the baseline file to write or compare with")
    p_ver.add_argument("--no-report", action="store_true", help="skip rendering the report")
    p_ver.add_argument("--executor", default="local", choices=["local", "dask"])
    p_ver.add_argument("--scheduler", default=None, help="Dask scheduler address (with --executor dask)")
    p_ver.add_argument("--dask-timeout", type=float, default=30.0,
                       help="seconds to wait for the Dask scheduler, and then for a first worker (default 30)")
    p_ver.set_defaults(func=_cmd_verify)

    p_rep = sub.add_parser("report", help="re-render the report of a results folder, or compare two")
    p_rep.add_argument("dir", nargs="?", default=None, help="folder written by verify")
    p_rep.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"), default=None,
                       help="two folders written by verify: one report with both verdicts and values per claim, "
                            "differences first")
    p_rep.add_argument("--out", default="bilevelbench-compare", help="with --compare: the output folder")
    p_rep.add_argument("--force", action="store_true", help="with --compare: replace an existing comparison")
    p_rep.add_argument("--jobs", default=None,
                       help="worker processes drawing the figures (default: $BILEVELBENCH_JOBS, else the CPUs this "
                            "process may use)")
    p_rep.set_defaults(func=_cmd_report)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    except UsageError as exc:
        print(f"bilevelbench: error: {exc}".replace("\n", " "), file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"bilevelbench: error: {exc}".replace("\n", " "), file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader closed the pipe (``bilevelbench list algorithms | head``): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:  # Ctrl-C: the finished sweep points are on disk (each written as it finished)
        out = getattr(args, "out", None)
        where = f"; 'bilevelbench verify ... --out {out} --resume' continues" if args.func is _cmd_verify else ""
        print(f"bilevelbench: interrupted{where}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
