"""The papers' complexity tables as data: one record per (paper, source item, algorithm, metric).

Each record holds the order as a sympy expression in ``kappa``, ``eps`` (and ``K`` for convergence-rate
rows). Where the paper writes O~ (hiding logarithms), the log factor is written into the expression and
``log_hidden`` is set: ICML/arXiv O~ hides log(1/eps) (the arXiv proofs give the exact factor: log(1/eps)
for deterBiO, Theorem 1; log(kappa^2/eps) for stocBiO's Hessian count, Theorem 2); the Loops paper's O~
hides ln(kappa/eps) factors of unstated power, read as one factor. TTSA's poly(kappa) (the authors of
TTSA give no kappa dependence) is the symbol ``poly_kappa``: its kappa exponent is None.

Accessors: :func:`kappa_exponent`, :func:`eps_exponent` (exponent of 1/eps), both the largest over the
additive terms and ignoring log factors. :func:`table_rows`, :func:`format_table`, :func:`to_records`
feed ``bilevelbench list claims``. Every row is also a bound ``table:<key>`` (order only: hidden
constant ``c``, default 1) in :data:`bilevelbench.bounds.BOUNDS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp

from ._common import bound, check_kappa, count, pos, theta

__all__ = [
    "kappa",
    "eps",
    "K",
    "poly_kappa",
    "ComplexityRow",
    "table_rows",
    "rows_where",
    "kappa_exponent",
    "eps_exponent",
    "format_table",
    "to_records",
    "row_bound_name",
    "row_names",
    "kappa_exponents",
    "METRIC_KINDS",
]

kappa, eps, K = sp.symbols("kappa eps K", positive=True)
poly_kappa = sp.Symbol("poly_kappa", positive=True)

_ICML_LOG = sp.log(1 / eps)  # ICML/arXiv: "O~: omit log 1/eps terms"
_LOOPS_LOG = sp.log(kappa / eps)  # Loops: "O~: hide ln(kappa/eps) factors"
_DET_LOG = "log factor from Theorem 1: KT = O(kappa^4 eps^-1 log 1/eps)"
_ONE_LOG = "one ln(kappa/eps) factor assumed (power not stated)"


@dataclass(frozen=True)
class ComplexityRow:
    """One complexity statement of a paper.

    paper: 'icml21' | 'arxiv20' | 'loops22'; item: where it is printed ('Table 1', 'Corollary 3', ...);
    algorithm: as the paper names it; metric: Gc(f), JV(g), MV, rate (convergence rate in K), ...;
    order: sympy expression (log factors included); printed: the statement as printed;
    log_hidden: the paper writes O~ and the log factor in ``order`` is our reading;
    bound: 'upper' (O) or 'lower' (Omega); params: the parameter choices the statement assumes;
    theorem: the theorem or corollary that proves it; note: ambiguities and how we read them.
    """

    paper: str
    item: str
    algorithm: str
    metric: str
    order: sp.Expr
    printed: str
    log_hidden: bool = False
    bound: str = "upper"
    params: str = ""
    theorem: str = ""
    note: str = ""

    @property
    def key(self) -> str:
        """Unique key 'paper:item:algorithm:metric'."""
        return f"{self.paper}:{self.item}:{self.algorithm}:{self.metric}"


def _degree(expr: sp.Expr, sym: sp.Symbol) -> float:
    """Largest exponent of ``sym`` over the additive terms of ``expr`` (log factors ignored)."""
    best = None
    for term in sp.Add.make_args(sp.expand(expr)):
        e = term.as_powers_dict().get(sym, 0)
        best = e if best is None else sp.Max(best, e)
    return float(best)


def kappa_exponent(row: ComplexityRow) -> float | None:
    """Exponent of kappa in the row's order (largest over terms), None when the paper gives poly(kappa)."""
    if row.order.has(poly_kappa):
        return None
    return _degree(row.order, kappa)


def eps_exponent(row: ComplexityRow) -> float:
    """Exponent of 1/eps in the row's order (largest over terms; 0 for a rate with no eps term)."""
    return _degree(row.order.subs(eps, 1 / eps), eps)


def _rows_icml21() -> list[ComplexityRow]:
    rows = []
    gw = "AID-BiO (Ghadimi & Wang, 2018)"
    aid, itd = "AID-BiO (this paper)", "ITD-BiO (this paper)"
    p_aid = "alpha <= 1/L, beta = 1/(8 L_Phi), D = Theta(kappa), N = Theta(sqrt kappa) CG steps, warm starts"
    p_itd = "alpha <= 1/L, beta = 1/(4 L_Phi), D = Theta(kappa log 1/eps)"
    t1 = [
        (gw, "Gc(f)", kappa**4 / eps, "O(k^4 e^-1)", False, "increasing D (Ghadimi-Wang eq. 2.30)", ""),
        (gw, "Gc(g)", kappa**5 * eps ** sp.Rational(-5, 4), "O(k^5 e^-5/4)", False,
         "increasing D (Ghadimi-Wang eq. 2.30)", ""),
        (gw, "JV(g)", kappa**4 / eps, "O(k^4 e^-1)", False, "increasing D (Ghadimi-Wang eq. 2.30)", ""),
        (gw, "HV(g)", kappa ** sp.Rational(9, 2) / eps * _ICML_LOG, "O~(k^4.5 e^-1)", True,
         "increasing D (Ghadimi-Wang eq. 2.30)", ""),
        (aid, "Gc(f)", kappa**3 / eps, "O(k^3 e^-1)", False, p_aid, "Theorem 1"),
        (aid, "Gc(g)", kappa**4 / eps, "O(k^4 e^-1)", False, p_aid, "Theorem 1"),
        (aid, "JV(g)", kappa**3 / eps, "O(k^3 e^-1)", False, p_aid, "Theorem 1"),
        (aid, "HV(g)", kappa ** sp.Rational(7, 2) / eps, "O(k^3.5 e^-1)", False, p_aid, "Theorem 1"),
        (itd, "Gc(f)", kappa**3 / eps, "O(k^3 e^-1)", False, p_itd, "Theorem 2"),
        (itd, "Gc(g)", kappa**4 / eps * _ICML_LOG, "O~(k^4 e^-1)", True, p_itd, "Theorem 2"),
        (itd, "JV(g)", kappa**4 / eps * _ICML_LOG, "O~(k^4 e^-1)", True, p_itd, "Theorem 2"),
        (itd, "HV(g)", kappa**4 / eps * _ICML_LOG, "O~(k^4 e^-1)", True, p_itd, "Theorem 2"),
    ]
    for algo, metric, order, printed, logs, params, thm in t1:
        rows.append(ComplexityRow("icml21", "Table 1", algo, metric, order, printed, logs, params=params,
                                  theorem=thm))
    ttsa, bsa, sto = "TTSA (Hong et al., 2020)", "BSA (Ghadimi & Wang, 2018)", "stocBiO (this paper)"
    p_sto = ("beta = 1/(4 L_Phi), eta < 1/L, D = Theta(kappa log kappa), Q = Theta(kappa log(kappa^2/eps)),"
             " S = O(kappa^5/eps), D_g = D_f = B = O(kappa^2/eps)")
    t2 = [(ttsa, m, poly_kappa * eps ** sp.Rational(-5, 2), "O(poly(k) e^-5/2)", False, "single samples", "")
          for m in ("Gc(F)", "Gc(G)", "JV(G)", "HV(G)")]
    t2 += [
        (bsa, "Gc(F)", kappa**6 / eps**2, "O(k^6 e^-2)", False, "single samples", ""),
        (bsa, "Gc(G)", kappa**9 / eps**3, "O(k^9 e^-3)", False, "single samples", ""),
        (bsa, "JV(G)", kappa**6 / eps**2, "O(k^6 e^-2)", False, "single samples", ""),
        (bsa, "HV(G)", kappa**6 / eps**2 * _ICML_LOG, "O~(k^6 e^-2)", True, "single samples", ""),
        (sto, "Gc(F)", kappa**5 / eps**2, "O(k^5 e^-2)", False, p_sto, "Theorem 3"),
        (sto, "Gc(G)", kappa**9 / eps**2, "O(k^9 e^-2)", False, p_sto, "Theorem 3"),
        (sto, "JV(G)", kappa**5 / eps**2, "O(k^5 e^-2)", False, p_sto, "Theorem 3"),
        (sto, "HV(G)", kappa**6 / eps**2 * sp.log(kappa**2 / eps), "O~(k^6 e^-2)", True, p_sto, "Theorem 3"),
    ]
    for algo, metric, order, printed, logs, params, thm in t2:
        note = ("the log factor log(kappa^2/eps) is arXiv Theorem 2's; ICML's O~ says log 1/eps"
                if algo == sto and metric == "HV(G)" else "")
        note = "Hong et al. give no kappa dependence (footnote of Table 2)" if algo == ttsa else note
        rows.append(ComplexityRow("icml21", "Table 2", algo, metric, order, printed, logs, params=params,
                                  theorem=thm, note=note))
    p3 = "eta <= 1/L, Q = O(log 1/eps), B = O(1/eps), D_f = O(1/eps)"
    rows.append(ComplexityRow("icml21", "Proposition 3", "v_Q, |B_{Q+1-j}| = B Q (1-eta mu)^(j-1)",
                              "HV samples", _ICML_LOG / eps, "O(e^-1 log 1/e)", params=p3,
                              theorem="Proposition 3"))
    rows.append(ComplexityRow("icml21", "Proposition 3", "v_Q, equal batch sizes", "HV samples",
                              _ICML_LOG**2 / eps, "O(e^-1 (log 1/e)^2)", params=p3, theorem="Proposition 3",
                              note="the paper's remark; no proof printed"))
    return rows


def _rows_arxiv20() -> list[ComplexityRow]:
    rows = []
    ba, det = "BA (Ghadimi & Wang, 2018)", "deterBiO (ours)"
    p_det = "alpha <= 1/L, beta = 1/(4 L_Phi), T = Theta(kappa log 1/eps) (Theorem 1)"
    t1 = [
        (ba, "Gc(f)", kappa**4 / eps, "O(k^4 e^-1)", False, ""),
        (ba, "Gc(g)", kappa**5 * eps ** sp.Rational(-5, 4), "O(k^5 e^-5/4)", False, ""),
        (ba, "Hxy(g)", kappa**4 / eps, "O(k^4 e^-1)", False, ""),
        (ba, "Hyyinv(g)", kappa**4 / eps, "O(k^4 e^-1)", False, ""),
        (det, "Gc(f)", kappa**3 / eps, "O(k^3 e^-1)", False, "Theorem 1"),
        (det, "Gc(g)", kappa**4 / eps * _ICML_LOG, "O~(k^4 e^-1)", True, "Theorem 1"),
        (det, "Hxy(g)", kappa**4 / eps * _ICML_LOG, "O~(k^4 e^-1)", True, "Theorem 1"),
        (det, "Hyy(g)", kappa**4 / eps * _ICML_LOG, "O~(k^4 e^-1)", True, "Theorem 1"),
    ]
    for algo, metric, order, printed, logs, thm in t1:
        rows.append(ComplexityRow("arxiv20", "Table 1", algo, metric, order, printed, logs,
                                  params=p_det if algo == det else "exact Hessian inverses", theorem=thm,
                                  note=_DET_LOG if logs else ""))
    ttsa, bsa, sto = "TTSA (Hong et al., 2020)", "BSA (Ghadimi & Wang, 2018)", "stocBiO (ours)"
    p_sto = ("beta = 1/(4 L_Phi), eta < 1/L, alpha = 2/(L+mu), T = Theta(kappa), Q = kappa log(kappa^2/eps),"
             " S = O(kappa^5/eps), D_g = D_f = B = O(kappa^2/eps) (Theorem 2 proof)")
    t2 = [(ttsa, m, poly_kappa * eps ** sp.Rational(-5, 2), "O(poly(k) e^-5/2)", False, "")
          for m in ("Gc(F)", "Gc(G)", "Hxy(G)", "Hyy(G)")]
    t2 += [
        (bsa, "Gc(F)", kappa**6 / eps**2, "O(k^6 e^-2)", False, ""),
        (bsa, "Gc(G)", kappa**9 / eps**3, "O(k^9 e^-3)", False, ""),
        (bsa, "Hxy(G)", kappa**6 / eps**2, "O(k^6 e^-2)", False, ""),
        (bsa, "Hyy(G)", kappa**6 / eps**2 * _ICML_LOG, "O~(k^6 e^-2)", True, ""),
        (sto, "Gc(F)", kappa**5 / eps**2, "O(k^5 e^-2)", False, "Theorem 2"),
        (sto, "Gc(G)", kappa**9 / eps**2, "O(k^9 e^-2)", False, "Theorem 2"),
        (sto, "Hxy(G)", kappa**5 / eps**2, "O(k^5 e^-2)", False, "Theorem 2"),
        (sto, "Hyy(G)", kappa**6 / eps**2 * sp.log(kappa**2 / eps), "O~(k^6 e^-2)", True, "Theorem 2"),
    ]
    for algo, metric, order, printed, logs, thm in t2:
        rows.append(ComplexityRow("arxiv20", "Table 2", algo, metric, order, printed, logs,
                                  params=p_sto if algo == sto else "single samples", theorem=thm))
    return rows


def _loops_gc_mv(item, algo, mv, gc, params, thm, note=""):
    """Two rows (MV and Gc) of a Loops statement, each ~O(kappa^a eps^-b) with one ln(kappa/eps) factor."""
    out = []
    for metric, (k_pow, e_pow) in (("MV", mv), ("Gc", gc)):
        order = kappa**k_pow * eps ** (-e_pow) * _LOOPS_LOG
        printed = f"O~(k^{k_pow} e^-{e_pow})"
        out.append(ComplexityRow("loops22", item, algo, metric, order, printed, True, params=params,
                                 theorem=thm, note=note or _ONE_LOG))
    return out


def _rate(item, algo, order, printed, params, thm, bound_="upper", note=""):
    return ComplexityRow("loops22", item, algo, "rate", order, printed, False, bound=bound_, params=params,
                         theorem=thm, note=note)


def _rows_loops22() -> list[ComplexityRow]:
    rows = []
    one = sp.Integer(1)
    table1 = [
        ("BA [10]", (5, 1), (5, sp.Rational(5, 4)), "Q = Theta(kappa ln kappa), N = (k+1)^(1/4)/2", "",
         "Table 1 lists BA's Q and N in the Q, N columns as printed"),
        ("AID-BiO [19]", (4, 1), (4, 1), "Q = Theta(kappa ln kappa), N = Theta(kappa ln kappa)", "", ""),
        ("N-Q-loop AID", (4, 1), (4, 1), "Q = Theta(kappa ln kappa), N = Theta(kappa ln kappa)",
         "Corollary 3", "Table 1 prints Q = Theta(kappa ln kappa), Corollary 3 Q = Theta(kappa ln(kappa/eps))"),
        ("Q-loop AID", (6, 1), (5, 1), "Q = Theta(kappa ln kappa), N = 1", "Corollary 4",
         "Table 1 prints Q = Theta(kappa ln kappa), Corollary 4 Q = Theta(kappa ln(kappa/eps))"),
        ("N-loop AID", (4, 1), (5, 1), "Q = O(1), N = Theta(kappa ln kappa)", "Corollary 1", ""),
        ("No-loop AID", (6, 1), (6, 1), "Q = O(1), N = 1", "Corollary 2", ""),
    ]
    for algo, mv, gc, params, thm, note in table1:
        rows += _loops_gc_mv("Table 1", algo, mv, gc, params, thm, note)
    nn = "N = Theta(kappa ln kappa)"
    for algo, thm, note in (("ITD-BiO [19]", "", ""),
                            ("N-N-loop ITD", "Corollary 5",
                             "Table 2 prints N = Theta(kappa ln kappa),"
                             " Corollary 5 N = Theta(kappa ln(kappa/eps))")):
        rows.append(_rate("Table 2", algo, kappa**3 / K + eps, "O(k^3/K + e)", nn, thm, note=note))
        rows += _loops_gc_mv("Table 2", algo, (4, 1), (4, 1), nn, thm, note)
    rows.append(_rate("Table 2", "No-loop ITD", kappa**3 / K + kappa**3, "O(k^3/K + k^3)", "N = Theta(1)",
                      "Corollary 6", note="MV and Gc: N/A (non-vanishing error)"))
    rows.append(_rate("Table 2", "Lower bound", kappa**2 * one, "Omega(k^2)", "N = Theta(1)", "Theorem 4",
                      bound_="lower", note="alpha <= 1/L, beta <= 1/L_Phi; (1 - alpha mu)^(2N) = Theta(1)"))
    cors = [
        ("Corollary 1", "N-loop AID", kappa**4 / K + kappa**3 / K, "O(k^4/K + k^3/K)", (4, 1), (5, 1),
         "N = Theta(kappa ln kappa), Q = Theta(1), eta = alpha = 1/L, lambda = 1"),
        ("Corollary 2", "No-loop AID", kappa**6 / K + kappa**5 / K, "O(k^6/K + k^5/K)", (6, 1), (6, 1),
         "N = 1, Q = Theta(1), alpha = 1/L, lambda = alpha mu/2,"
         " eta = min{alpha mu^2/(128 Q^2 L^2), alpha/4, 1/(mu Q)}"),
        ("Corollary 3", "N-Q-loop AID", kappa**3 / K + eps, "O(k^3/K + e)", (4, 1), (4, 1),
         "N = Theta(kappa ln kappa), Q = Theta(kappa ln(kappa/eps)), eta = alpha = 1/L, lambda = 1,"
         " beta = Theta(kappa^-3), v_k^0 = 0"),
        ("Corollary 4", "Q-loop AID", kappa**5 / K + kappa**4 / K + eps, "O(k^5/K + k^4/K + e)",
         (6, 1), (5, 1), "N = 1, Q = Theta(kappa ln(kappa/eps)), alpha = eta = 1/L, lambda = alpha mu/2,"
         " beta = Theta(kappa^-4), v_k^0 = 0"),
        ("Corollary 5", "N-N-loop ITD", kappa**3 / K + eps, "O(k^3/K + e)", (4, 1), (4, 1),
         "N = Theta(kappa ln(kappa/eps)), alpha = 1/(2L), beta = min{sqrt(alpha mu/(40 w)),"
         " sqrt((1 - alpha mu)/(2 w)), 1/(8 L_Phi)}"),
    ]
    for item, algo, rate, printed, mv, gc, params in cors:
        rows.append(_rate(item, algo, rate, printed, params, item))
        rows += _loops_gc_mv(item, algo, mv, gc, params, item)
    rows.append(_rate("Corollary 6", "No-loop ITD", kappa**3 / K + kappa**3,
                      "O(k^3/K + M^2 L^2/(alpha mu^3))",
                      "N = Theta(1), alpha = 1/(2NL), beta = min{sqrt(alpha mu/(40 w)),"
                      " sqrt((1 - alpha mu)/(2 w)), 1/(8 L_Phi)}", "Corollary 6",
                      note="M^2 L^2/(alpha mu^3) = 2 N M^2 kappa^3 with alpha = 1/(2NL); M, N = Theta(1)"))
    return rows


@cache
def table_rows() -> tuple[ComplexityRow, ...]:
    """Every complexity row of ICML Tables 1-2 (+ Proposition 3's sample counts), arXiv Tables 1-2,
    Loops Tables 1-2 and Corollaries 1-6."""
    rows = _rows_icml21() + _rows_arxiv20() + _rows_loops22()
    keys = [r.key for r in rows]
    if len(set(keys)) != len(keys):  # pragma: no cover - guards the data above
        raise RuntimeError("duplicate complexity rows")
    return tuple(rows)


def rows_where(paper: str | None = None, item: str | None = None, algorithm: str | None = None,
               metric: str | None = None) -> list[ComplexityRow]:
    """Rows matching every given field exactly."""
    want = {"paper": paper, "item": item, "algorithm": algorithm, "metric": metric}
    return [r for r in table_rows() if all(v is None or getattr(r, k) == v for k, v in want.items())]


def _fmt_exp(x: float | None) -> str:
    if x is None:
        return "poly"
    return f"{x:g}"


def to_records(rows=None) -> list[dict]:
    """Rows as plain dicts (strings and numbers), for the CLI, CSV and reports."""
    rows = table_rows() if rows is None else rows
    return [{"key": r.key, "paper": r.paper, "item": r.item, "algorithm": r.algorithm, "metric": r.metric,
             "bound": r.bound, "order": str(r.order), "printed": r.printed,
             "kappa_exponent": kappa_exponent(r), "eps_exponent": eps_exponent(r), "log_hidden": r.log_hidden,
             "params": r.params, "theorem": r.theorem, "note": r.note} for r in rows]


def format_table(rows=None) -> str:
    """A plain-text table: paper, item, algorithm, metric, order as printed, kappa and 1/eps exponents."""
    recs = to_records(rows)
    cols = [("paper", "paper"), ("item", "item"), ("algorithm", "algorithm"), ("metric", "metric"),
            ("printed", "order"), ("kappa_exponent", "kappa^"), ("eps_exponent", "(1/eps)^"),
            ("log_hidden", "O~")]
    cells = [[h for _, h in cols]]
    for rec in recs:
        cells.append([_fmt_exp(rec[k]) if k.endswith("exponent") else ("yes" if rec[k] is True else
                      ("" if rec[k] is False else str(rec[k]))) for k, _ in cols])
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


#: count kind of bench's tables (bench.experiments.common.COUNT_KINDS, and Loops' Gc, MV) per metric name
METRIC_KINDS = {"Gc(f)": "gc_f", "Gc(F)": "gc_f", "Gc(g)": "gc_g", "Gc(G)": "gc_g", "JV(g)": "jv",
                "JV(G)": "jv", "HV(g)": "hv", "HV(G)": "hv", "MV": "mv", "Gc": "gc"}


def kappa_exponents(paper: str, item: str, algorithm: str) -> dict[str, float]:
    """The kappa exponent of every count metric of one algorithm's rows, keyed by count kind ('gc_f',
    'gc_g', 'jv', 'hv', 'mv', 'gc'), in the rows' order: what the scaling claims predict."""
    out = {}
    for r in rows_where(paper=paper, item=item, algorithm=algorithm):
        if r.metric in METRIC_KINDS and (e := kappa_exponent(r)) is not None:
            out[METRIC_KINDS[r.metric]] = e
    if not out:
        raise ValueError(f"no count rows for {paper} {item} {algorithm!r}")
    return out


def row_names(paper: str, item: str | None = None, algorithm: str | None = None,
              metric: str | None = None) -> list[str]:
    """Bound names (``BOUNDS``) of the matching rows: what a claim lists as its prediction."""
    names = [row_bound_name(r) for r in rows_where(paper=paper, item=item, algorithm=algorithm, metric=metric)]
    if not names:
        raise ValueError(f"no complexity rows match {paper} {item} {algorithm} {metric}")
    return names


def row_bound_name(row: ComplexityRow) -> str:
    """Name of the row's bound in the registry."""
    return f"table:{row.key}"


def _make_row_bound(row: ComplexityRow):
    evaluable = not row.order.has(poly_kappa)
    fn_order = sp.lambdify((kappa, eps, K), row.order, "math") if evaluable else None

    def order_bound(kappa_value, eps_value=None, K_value=None, c=1.0) -> float:
        if fn_order is None:
            raise ValueError(f"{row.key}: the paper gives poly(kappa) only; no value can be computed")
        kv = check_kappa(kappa_value)
        ev = pos("eps", eps_value) if row.order.has(eps) else 1.0
        Kv = count("K", K_value, minimum=1) if row.order.has(K) else 1
        return theta(c) * float(fn_order(kv, ev, Kv))

    order_bound.__doc__ = (f"{row.paper} {row.item}, {row.algorithm}, {row.metric}: c * ({row.order}),"
                           f" printed {row.printed}; hidden constant c (default 1).")
    kind = "order-lower" if row.bound == "lower" else "order-upper"
    src = f"{row.paper} {row.item}" + (f" ({row.theorem})" if row.theorem and row.theorem != row.item else "")
    return bound(row_bound_name(row), src, kind, f"{row.metric} = {row.printed}")(order_bound)


for _row in table_rows():
    _make_row_bound(_row)
