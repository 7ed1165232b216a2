"""Claims of Ji, Yang, Liang, "Provably Faster Algorithms for Bilevel Optimization and Applications to
Meta-Learning", arXiv (shared/papers/ji-yang-liang-arxiv-provably-faster-deterbio-stocbio.txt).

Families and why. Lemma 2 and Proposition 3 involve tau and rho: ``logistic-lower`` has exact tau, rho > 0 on
a declared region (x in a box, y in a ball) whose x-part is convex, so a Lipschitz ratio on any pair of the
box is covered by the lemma; ``quadratic`` (tau = rho = 0) is the reference. Theorem 1 uses the rate sweep
of the deterministic claims (nonconvex quadratic, Phi(x0) - inf Phi = 1). Proposition 4 and Theorem 2 use
``stochastic-quadratic`` with the per-sample constants (see :mod:`.icml21_stochastic`), Theorem 3 the
``meta-learning`` family.
"""

from __future__ import annotations

import math

import numpy as np
import torch

import bilevelbench.bounds as bd
from bilevelbench.algorithms.deterministic import inner_gd, itd_reverse
from bilevelbench.algorithms.oracle import CountedOracle
from bilevelbench.algorithms.stochastic_solvers import decaying_batches, draw_batches, hinv_horner
from bilevelbench.analytic.rng import as_streams

from .claims import Claim, Sweep, register_claim
from .experiment import make, run_scored, start_at_gap
from .figures import series, spec
from .icml21 import judge_16_lphi_bound
from .icml21_stochastic import EST_FAMILY, judge_mc_rows, mc_bias, meta_problem, q_figure, region_point, stoch_problem
from .rates import rate_sweep
from .result import Verdict, judge_scaling, judge_upper
from .stats import Fit, mean_bound

P = "arxiv20"
_EPS64 = float(np.finfo(np.float64).eps)


# ---------------------------------------------------------------------- Lemma 2
LEMMA2_CONFIGS = ({"dim_x": 2, "dim_y": 4, "kappa": 10.0, "w": 1.0},
                  {"dim_x": 3, "dim_y": 3, "kappa": 20.0, "w": 0.2})  # w = 0.2: M < 1, printed form smaller


def _box(p, n, gen):
    u = torch.rand(n, p.R, p.dim_x, generator=gen, dtype=torch.float64)
    return (p.x_min + (p.x_max - p.x_min) * u).to(p.dtype)


def _ratio(p, x, xp):
    return (p._hypergradient(x) - p._hypergradient(xp)).norm(dim=-1) / (x - xp).norm(dim=-1)


def lemma2_measure(key: dict, env, seed: int) -> list[dict]:
    """Largest ||grad Phi(x) - grad Phi(x')|| / ||x - x'|| over (a) random pairs of the box, (b) pairs
    (x, x + s v) with v the top eigenvector of the Hessian of Phi (central differences of the exact
    hypergradient) at the random points, (c) the same after a few steps of projected ascent of that
    eigenvalue (finite-difference gradient). Every reported ratio is a true pair ratio (a lower bound on the
    Lipschitz constant), never a finite-difference estimate."""
    p = make("logistic-lower", env, batch=key["R"], seed=seed, dim_x=key["dim_x"], dim_y=key["dim_y"],
             kappa=key["kappa"], w=key["w"])
    gen = torch.Generator().manual_seed(seed)
    xs, xps = _box(p, key["pairs"], gen), _box(p, key["pairs"], gen)
    best = torch.zeros(p.R, dtype=p.dtype)
    for x, xp in zip(xs, xps, strict=True):
        best = torch.maximum(best, _ratio(p, x, xp))
    rand_best = best.clone()
    h, s = 1e-5, 1e-3

    def top(x):
        Hm = torch.stack([(p._hypergradient(x + h * e) - p._hypergradient(x - h * e)) / (2 * h)
                          for e in torch.eye(p.dim_x, dtype=p.dtype)], -1)
        ev, vec = torch.linalg.eigh(0.5 * (Hm + Hm.transpose(-1, -2)))
        i = ev.abs().argmax(-1)
        return ev.abs().gather(-1, i[:, None]).squeeze(-1), vec[torch.arange(p.R), :, i]

    def clamp(x):
        return x.clamp(p.x_min, p.x_max)

    for x in xs[: key["starts"]]:
        for _ in range(key["ascent"] + 1):
            lam, v = top(x)
            xa = clamp(x - s / 2 * v)
            best = torch.maximum(best, _ratio(p, xa, clamp(xa + s * v)))
            grad = torch.stack([(top(clamp(x + h * 10 * e))[0] - top(clamp(x - h * 10 * e))[0]) / (20 * h)
                                for e in torch.eye(p.dim_x, dtype=p.dtype)], -1)
            x = clamp(x + 0.1 * (p.x_max - p.x_min) * grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-300))
    c = p.constants
    printed = bd.BOUNDS["arxiv20.lemma2"](c.L, c.mu, c.M, c.tau, c.rho)
    rederived = bd.BOUNDS["arxiv20.lemma2.rederived"](c.L, c.mu, c.M, c.tau, c.rho)
    return [{"config": f"dx{key['dim_x']}-dy{key['dim_y']}-k{key['kappa']:g}-w{key['w']:g}", "instance": r,
             "kappa": c.kappa, "M": c.M, "tau": c.tau, "rho": c.rho, "sup_ratio": float(best[r]),
             "random_ratio": float(rand_best[r]), "printed": printed, "rederived": rederived}
            for r in range(p.R)]


def _judge_lemma2(frames, env) -> Verdict:
    df = frames["lip/arxiv20.lemma2"]
    # the hypergradient is exact to ~1e-12 relative (Newton to round-off, dense solve): the measured ratio
    # carries that error over pair distances >= 1e-3, so 1e-6 relative is a safe round-off allowance
    ratio = (df["sup_ratio"] / df["printed"]).to_numpy()
    w = int(np.argmax(ratio))
    v = judge_upper("arxiv20.lemma2", float(df["printed"].iloc[w]), float(df["sup_ratio"].iloc[w]),
                    float(df["sup_ratio"].iloc[w]), float(df["sup_ratio"].iloc[w]),
                    "largest measured ||grad Phi(x) - grad Phi(x')||/||x - x'|| against eq. (11) as printed",
                    rtol=1e-6)
    re = (df["sup_ratio"] / df["rederived"]).max()
    per = df.groupby("config").agg(sup=("sup_ratio", "max"), rnd=("random_ratio", "max"), printed=("printed", "max"),
                                   rederived=("rederived", "max"), M=("M", "max"), tau=("tau", "max"))
    v.reason += (f". Re-derived form (tau M/mu): worst ratio {re:.3g} ({'violated' if re > 1 + 1e-6 else 'holds'}). "
                 + "; ".join(f"{k}: sup {r.sup:.4g} (random pairs {r.rnd:.4g}), printed {r.printed:.4g}, re-derived "
                             f"{r.rederived:.4g}, M {r.M:.3g}" for k, r in per.iterrows())
                 + ". Both forms hold by orders of magnitude: the measured sup is far below either bound, so the "
                   "tau M^2/mu vs tau M/mu discrepancy cannot show on these instances.")
    v.details["figure"] = spec("semilogy", "arxiv20.lemma2: Lipschitz constant of grad Phi", "configuration index",
                               "Lipschitz constant", [
                                   series("measured sup", range(len(per)), per["sup"]),
                                   series("eq. (11) printed", range(len(per)), per["printed"], style="bound"),
                                   series("re-derived", range(len(per)), per["rederived"], style="bound")])
    return v


register_claim(Claim(
    id="arxiv20.lemma2", paper=P, kind="inequality",
    statement="||grad Phi(x) - grad Phi(x')|| <= L_Phi ||x - x'|| with L_Phi = L + (2L^2 + tau M^2)/mu + (rho L M + "
              "L^3 + tau M L)/mu^2 + rho L^2 M/mu^3 (eq. 11); printed form judged, re-derived tau M/mu reported",
    experiment="logistic-lower (tau, rho > 0, exact on a box x ball; the x-box is convex so every pair is covered), "
               "two configurations (one with w = 0.2 so that M < 1 and the printed form is the smaller), R "
               "instances: random pairs, pairs along the top Hessian eigenvector, and a few projected-ascent steps "
               "on that eigenvalue",
    sweeps=lambda env: [Sweep("lip/arxiv20.lemma2", lemma2_measure, tuple(
        {**c, "R": 2 if env.profile == "quick" else 4, "pairs": 32 if env.profile == "quick" else 128,
         "starts": 2 if env.profile == "quick" else 6, "ascent": 2 if env.profile == "quick" else 5}
        for c in LEMMA2_CONFIGS))],
    judge=_judge_lemma2, bound="arxiv20.lemma2"))


# ---------------------------------------------------------------------- Proposition 3
PROP3_FAMILIES = (("logistic-lower", {"dim_x": 2, "dim_y": 4, "kappa": 10.0}),
                  ("logistic-lower", {"dim_x": 3, "dim_y": 3, "kappa": 20.0}),
                  ("quadratic", {"dim_x": 5, "dim_y": 5, "kappa": 10.0}))


def _prop3_start(p, seed):
    """x and y_0 inside the region where the constants hold, with every GD iterate inside it too:
    ||y_t - y*|| <= ||y_0 - y*||, so ||y_t|| <= 2||y*|| + ||y_0|| must stay below the radius."""
    gen = torch.Generator().manual_seed(seed)
    if p.name == "logistic-lower":
        x = _box(p, 1, gen)[0]
        room = p.radius - 2 * p.constants.extra["y_star_sup"]
        d = torch.randn(p.R, p.dim_y, generator=gen, dtype=torch.float64)
        y0 = room * torch.rand(p.R, 1, generator=gen, dtype=torch.float64) * d / d.norm(dim=-1, keepdim=True)
        return x, y0.to(p.dtype)
    x, y = region_point(p, seed, scale=0.2)
    return x, p._y_star(x) + y


def prop3_measure(key: dict, env, seed: int) -> list[dict]:
    """ITD hypergradient error after T = 0..T_max inner GD steps (alpha = 1/L) from y_0, against the exact
    grad Phi(x), with the Prop. 3 bound at ||y_0 - y*(x)||."""
    p = make(key["family"], env, batch=key["R"], seed=seed, **key["params"])
    c = p.constants
    x, y0 = _prop3_start(p, seed)
    alpha = 1.0 / c.L
    truth = p._hypergradient(x)
    ys_star = p._y_star(x)
    dist0 = (y0 - ys_star).norm(dim=-1)
    in_region = ((ys_star.norm(dim=-1) + dist0) <= c.extra["radius"] * (1 + 1e-12))
    o = CountedOracle(p)
    _, ys = inner_gd(o, x, y0, key["T_max"], alpha, keep=True)
    ys.append(inner_gd(o, x, ys[-1], 1, alpha))
    rows = []
    for T in range(key["T_max"] + 1):
        est = itd_reverse(o, x, ys[:T], ys[T], alpha)
        err = (est - truth).norm(dim=-1)
        for r in range(p.R):
            b = bd.BOUNDS["arxiv20.prop3"](c.L, c.mu, c.M, c.tau, c.rho, alpha, T, float(dist0[r]))
            # round-off of the recursion and of the truth: a few hundred ulps of the largest term
            tol = 1e3 * _EPS64 * (float(truth[r].norm()) + c.L * c.M / c.mu)
            rows.append({"family": key["family"], "config": str(key["params"]), "instance": r, "T": T,
                         "err": float(err[r]), "bound": b, "tol": tol, "dist0": float(dist0[r]),
                         "alpha_mu": alpha * c.mu, "in_region": bool(in_region[r])})
    return rows


def _prop3_sweeps(env):
    T_max = 40 if env.profile == "quick" else 120
    return [Sweep("itd-error/arxiv20.prop3", prop3_measure, tuple(
        {"family": f, "params": pr, "R": 4 if env.profile == "quick" else 16, "T_max": T_max}
        for f, pr in PROP3_FAMILIES))]


def _judge_prop3(frames, env) -> Verdict:
    df = frames["itd-error/arxiv20.prop3"]
    df = df[df["in_region"]]
    if df.empty:
        return Verdict("arxiv20.prop3", "inconclusive", reason="no start inside the region")
    m = ((df["err"] - df["tol"]).clip(lower=0) / df["bound"]).to_numpy()
    w = int(np.argmax(m))
    v = judge_upper("arxiv20.prop3", 1.0, float(m[w]), float(m[w]), float(m[w]),
                    f"ITD error minus round-off allowance over the Prop. 3 bound, worst of {len(df)} (T, x, y_0) "
                    f"rows on {df['config'].nunique()} configurations")
    v.reason += f" (worst at {df['family'].iloc[w]}, T = {int(df['T'].iloc[w])})"
    v.details["figure"] = q_figure("arxiv20.prop3", df, "T", {"err": "ITD error (max over runs)",
                                                             "bound": "Prop. 3 bound (max)"},
                                   "arxiv20.prop3: ITD hypergradient error against T", "||error||")
    return v


register_claim(Claim(
    id="arxiv20.prop3", paper=P, kind="inequality",
    statement="deterBiO/ITD hypergradient error <= (L(L+mu)(1-alpha mu)^(T/2)/mu + 2M(tau mu + L rho)/mu^2 "
              "(1-alpha mu)^((T-1)/2)) ||y_0 - y*|| + L M (1-alpha mu)^T/mu, for every T, x, y_0",
    experiment="logistic-lower (two configurations, tau, rho > 0) and quadratic (tau = rho = 0), R random x and y_0 "
               "in the region (every GD iterate stays in it); inner_gd + itd_reverse with alpha = 1/L for T = 0..T_max,"
               " error against the exact grad Phi; allowance 1e3 ulps of the largest term for round-off",
    sweeps=_prop3_sweeps, judge=_judge_prop3, roles=("itd",), bound="arxiv20.prop3"))


def _judge_prop3_rate(frames, env) -> Verdict:
    df = frames["itd-error/arxiv20.prop3"]
    df = df[df["in_region"] & (df["err"] > 1e3 * df["tol"])]  # well above round-off
    worst, fits = None, {}
    for cfg, g in df.groupby("config"):
        g = g[g["T"] >= g["T"].max() / 2]  # the asymptotic part of the decay
        if g["T"].nunique() < 3:
            continue
        T, le = g["T"].to_numpy(float), np.log(g["err"].to_numpy())
        A = np.vstack([T, np.ones_like(T)]).T
        slope = float(np.linalg.lstsq(A, le, rcond=None)[0][0])
        rng, inst = np.random.default_rng(0), g["instance"].to_numpy()
        ids = np.unique(inst)
        boots = []
        for _ in range(300):
            pick = np.concatenate([np.flatnonzero(inst == i) for i in rng.choice(ids, ids.size)])
            if np.unique(T[pick]).size > 1:
                boots.append(float(np.linalg.lstsq(A[pick], le[pick], rcond=None)[0][0]))
        lo, hi = np.quantile(boots, [0.025, 0.975])
        pred = math.log(bd.BOUNDS["arxiv20.prop3.rate"](float(g["alpha_mu"].iloc[0]), 1.0))
        v = judge_scaling("arxiv20.prop3.rate", pred, Fit(slope, float(lo), float(hi), math.nan, len(g)),
                          f"{g['family'].iloc[0]} {cfg}: slope of log error in T (predicted log sqrt(1 - alpha mu))")
        fits[cfg] = v
        if worst is None or v.tightness < worst.tightness:
            worst = v
    if worst is None:
        return Verdict("arxiv20.prop3.rate", "inconclusive", reason="errors reach round-off too early to fit")
    final = "violated" if any(v.verdict == "violated" for v in fits.values()) else "consistent"
    reason = " | ".join(v.reason for v in fits.values()) + (
        " The asymptotic rate is (1 - alpha mu) per step (the y-error enters linearly), faster than the bound's "
        "square root: consistent, and the bound's rate is not tight.")
    figs = [spec("semilogy", "arxiv20.prop3.rate: error decay in T", "T", "mean ITD error",
                 [series(cfg, g.groupby("T")["err"].mean().index, g.groupby("T")["err"].mean().values, style="line")
                  for cfg, g in frames["itd-error/arxiv20.prop3"].groupby("config")])]
    return Verdict("arxiv20.prop3.rate", final, worst.predicted, worst.measured, worst.ci_low, worst.ci_high,
                   worst.tightness, reason, {"figures": figs, "fits": {k: v.row() for k, v in fits.items()}})


register_claim(Claim(
    id="arxiv20.prop3.rate", paper=P, kind="scaling",
    statement="that error decays geometrically in T at a rate no slower than (1 - alpha mu)^(1/2) per step",
    experiment="the arxiv20.prop3 runs: least-squares slope of log error against T on the second half of the T "
               "range (errors above round-off), bootstrap over instances, per configuration, against "
               "log sqrt(1 - alpha mu)",
    sweeps=_prop3_sweeps, judge=_judge_prop3_rate, roles=("itd",), bound="arxiv20.prop3.rate"))


# ---------------------------------------------------------------------- Theorem 1
def _thm1_sweeps(env):
    sw = rate_sweep("rate/deterbio-arxiv20.thm1", role="itd", algorithm="deterbio", preset="arxiv20.thm1", env=env,
                    preset_args={"eps": 0.0})
    # Theorem 1's T (Delta = (2 radius)^2) is several times ICML Theorem 2's D, and K grows like L_Phi/eps:
    # kappa <= 8 keeps the full profile within its budget (an inequality needs no wide kappa range)
    return [Sweep(sw.name, sw.measure, tuple(k for k in sw.keys if k["kappa"] <= 8))]


def _judge_thm1(frames, env) -> Verdict:
    return judge_16_lphi_bound("arxiv20.thm1.bound", frames["rate/deterbio-arxiv20.thm1/kappa"])


register_claim(Claim(
    id="arxiv20.thm1.bound", paper=P, kind="inequality",
    statement="deterBiO with beta = 1/(4 L_Phi) and T as in Theorem 1: (1/K) sum ||grad Phi||^2 <= 16 L_Phi "
              "(Phi(x_0) - inf Phi)/K + 2 eps/3",
    experiment="nonconvex quadratic, kappa grid, R seeds, Phi(x0) - inf Phi = 1, y_k^0 = 0 (fresh start), preset "
               "arxiv20.thm1 (T from eq. (26) with Delta = (2 radius)^2), eps the profile's target; every K checked",
    sweeps=_thm1_sweeps, judge=_judge_thm1, roles=("itd",), bound="arxiv20.thm1.bound"))


# ---------------------------------------------------------------------- Proposition 4
def hinv_measure(key: dict, env, seed: int) -> list[dict]:
    """arXiv Prop. 4: bias ||E H_inv - H^-1|| (spectral) and MSE E||H_inv - H^-1||^2 of eq. (5) with
    |B_j| = B Q (1 - eta mu)^(j-1), eta = 1/L (L the per-sample Hessian bound); the matrix H_inv is applied
    to the d unit vectors with the same batches. R instances x n_mc draws."""
    p = stoch_problem(env, seed, key["R"], key["kappa"], key["dim"], key["noise"], 0.0, key["n"])
    L, mu = float(p.constants.extra["L_sample_yy"]), p.constants.mu
    eta = 1.0 / L
    x, y = region_point(p, seed)
    H_inv = torch.linalg.inv(p._hess_yy(x, y))
    o = CountedOracle(p)
    streams = as_streams(seed, p.R, p.device)
    sizes = decaying_batches(key["B"], key["Q"], eta, mu)
    eye = torch.eye(p.dim_y, dtype=p.dtype, device=p.device)
    s1 = torch.zeros_like(H_inv)
    s2 = torch.zeros(p.R, dtype=p.dtype, device=p.device)
    sq = []
    for _ in range(key["n_mc"]):
        batches = draw_batches(o, "g", sizes, streams)
        cols = [hinv_horner(lambda u, idx: o.hvp(x, y, u, idx), eye[k].expand(p.R, -1), batches, eta)
                for k in range(p.dim_y)]
        Hm = torch.stack(cols, -1)
        s1 += Hm
        s2 += (Hm * Hm).sum((-2, -1))
        sq.append(torch.linalg.matrix_norm(Hm - H_inv, ord=2) ** 2)
    n = key["n_mc"]
    bias, half, _ = mc_bias(s1, s2 - (s1 * s1).sum((-2, -1)) / n, n, H_inv)
    sq = torch.stack(sq).cpu().numpy()
    b_bias = bd.BOUNDS["arxiv20.prop4.bias"](L, mu, eta, key["Q"])
    b_mse = bd.BOUNDS["arxiv20.prop4.mse"](L, mu, eta, key["Q"], key["B"])
    rows = []
    for r in range(p.R):
        mb = mean_bound(sq[:, r])
        rows.append({"instance": r, "Q": key["Q"], "B": key["B"], "eta": eta, "L": L, "mu": mu, "n_mc": n,
                     "bias": float(bias[r]), "bias_lo": float(bias[r] - half[r]), "bias_hi": float(bias[r] + half[r]),
                     "bias_bound": b_bias, "mse": mb.mean, "mse_lo": mb.low, "mse_hi": mb.high, "mse_bound": b_mse})
    return rows


def _judge_prop4(frames, env) -> Verdict:
    df = frames["mc/arxiv20.prop4"]
    vb = judge_mc_rows("arxiv20.prop4", df, "bias", "bias_lo", "bias_hi", "bias_bound",
                       "bias ||E H_inv - H^-1|| (eq. 6 as printed)")
    vm = judge_mc_rows("arxiv20.prop4", df, "mse", "mse_lo", "mse_hi", "mse_bound", "MSE E||H_inv - H^-1||^2 (eq. 7)")
    order = ("violated", "inconclusive", "holds")
    f = min((vb, vm), key=lambda v: order.index(v.verdict))
    out = Verdict("arxiv20.prop4", f.verdict, f.predicted, f.measured, f.ci_low, f.ci_high, f.tightness,
                  f"eq. (6) {vb.verdict}: {vb.reason} | eq. (7) {vm.verdict}: {vm.reason}. Per-sample L = "
                  f"{df['L'].iloc[0]:.3g}, eta = 1/L. The exact bias is (1 - eta mu)^(Q+1)/mu (eq. 28), a factor "
                  f"(1 - eta mu) = {1 - df['mu'].iloc[0] * df['eta'].iloc[0]:.3g} below the printed bound.")
    out.details["figures"] = [q_figure("arxiv20.prop4", df, "Q", {"bias": "bias (MC)", "bias_bound": "eq. (6)"},
                                       "arxiv20.prop4: bias of H_inv against Q", "||E H_inv - H^-1||"),
                              q_figure("arxiv20.prop4", df, "Q", {"mse": "MSE (MC)", "mse_bound": "eq. (7)"},
                                       "arxiv20.prop4: MSE of H_inv against Q", "E||H_inv - H^-1||^2")]
    return out


register_claim(Claim(
    id="arxiv20.prop4", paper=P, kind="inequality",
    statement="Hessian-inverse estimator eq. (5), |B_j| = B Q (1 - eta mu)^(j-1): ||E H_inv - H^-1|| <= mu^-1 "
              "(1 - eta mu)^Q; E||H_inv - H^-1||^2 <= 2 eta^2 L^2/(mu^2 B) + 2 (1 - eta mu)^(2Q+2)/mu^2",
    experiment="stochastic-quadratic (kappa 2, d = 5, noise 0.3), eta = 1/L with L the exact per-sample Hessian "
               "bound; Q in {2, 8}, B = 8; H_inv formed column by column with shared batches; R instances x n_mc "
               "draws; bias with a Laurent-Massart 99% half-width on the Monte Carlo error of the mean",
    sweeps=lambda env: [Sweep("mc/arxiv20.prop4", hinv_measure, tuple(
        {**EST_FAMILY, "R": 4 if env.profile == "quick" else 8, "n_mc": 200 if env.profile == "quick" else 1000,
         "Q": q, "B": 8.0} for q in (2, 8)))],
    judge=_judge_prop4, roles=("stochastic-aid",), bound="arxiv20.prop4.bias"))


# ---------------------------------------------------------------------- Theorem 2
def thm2_measure(key: dict, env, seed: int) -> list[dict]:
    """stocBiO (arXiv form) with the Theorem 2 parameters read per sample (L = max(L, per-sample L),
    M likewise): beta = 1/(4 L_Phi), eta = 1/L (the theorem: eta < 1/L; 0.999/L), alpha = 2/(L + mu), T from
    the theorem; explicit batch sizes; (1/K) sum_k ||grad Phi(x_k)||^2 per run for every K, with eq. (8)."""
    p = stoch_problem(env, seed, key["R"], key["kappa"], key["dim"], key["noise"], key["noise_f"], key["n"])
    c = p.constants
    L = max(c.L, float(c.extra["L_assumption2"]))
    M, mu = max(c.M, float(c.extra["M_assumption2"])), c.mu
    L_phi = bd.BOUNDS["arxiv20.lemma2"](L, mu, M, c.tau, c.rho)
    beta = 1.0 / (4 * L_phi)
    T = max(1, math.ceil(bd.BOUNDS["arxiv20.thm2.T"](L, mu, M, c.tau, c.rho, beta) - 1e-12))
    x0 = start_at_gap(p, 1.0, seed=seed)
    y0 = torch.zeros(p.R, p.dim_y, dtype=p.dtype, device=p.device)
    bs = {k: key[k] for k in ("S", "D_f", "D_g", "B", "Q")}
    eta = 0.999 / L
    tr = run_scored("stocbio", p, key["K"], env, x0=x0, y0=y0, generator=seed, form="arxiv", beta=beta, eta=eta,
                    alpha=2.0 / (L + mu), N=T, mu=mu, **bs)
    g = tr.metrics["grad_phi_sq"].numpy()[:-1]  # x_0 .. x_{K-1}
    avg = np.cumsum(g, 0) / np.arange(1, g.shape[0] + 1)[:, None]
    dist0 = float(((y0 - p._y_star(x0)) ** 2).sum(-1).max())
    rows = []
    for K in range(1, g.shape[0] + 1):
        mb = mean_bound(avg[K - 1])
        rows.append({"K": K, "mean": mb.mean, "low": mb.low, "high": mb.high, "T": T, "L": L, "M": M,
                     "bound": bd.BOUNDS["arxiv20.thm2.bound"](K, L, mu, M, c.tau, c.rho, L_phi, 1.0, dist0, eta,
                                                              key["Q"], c.sigma2, key["S"], key["D_g"], key["D_f"],
                                                              int(key["B"]))})
    return rows


def _judge_thm2(frames, env) -> Verdict:
    df = frames["mc/arxiv20.thm2"]
    v = judge_mc_rows("arxiv20.thm2.bound", df, "mean", "low", "high", "bound",
                      "(1/K) sum E||grad Phi(x_k)||^2 (Monte Carlo over R runs) against eq. (8), every K")
    v.reason += (f". Constants read per sample: L = {df['L'].iloc[0]:.3g}, M = {df['M'].iloc[0]:.3g}, T = "
                 f"{int(df['T'].iloc[0])}; the explicit constants (52, 40, 44, ...) make eq. (8) loose by the ratio "
                 "shown.")
    v.details["figure"] = spec("loglog", "arxiv20.thm2.bound: averaged stationarity against K", "K",
                               "(1/K) sum E||grad Phi||^2",
                               [series("stocBiO (MC mean)", df["K"], df["mean"], ylow=df["low"], yhigh=df["high"],
                                       style="band", algorithm="stocbio"),
                                series("eq. (8)", df["K"], df["bound"], style="bound")])
    return v


register_claim(Claim(
    id="arxiv20.thm2.bound", paper=P, kind="inequality",
    statement="stocBiO eq. (8), in expectation, with all constants explicit",
    experiment="stochastic-quadratic (kappa 2, d = 5, noise 0.3 in G and F, gap 1, y_0 = 0), stocBiO arXiv form with "
               "the Theorem 2 parameters computed from the per-sample constants; S = D_g = D_f = 16, B = 4, Q = 8; "
               "R runs batched; every K of the averaged criterion against eq. (8) with sigma^2 of the region",
    sweeps=lambda env: [Sweep("mc/arxiv20.thm2", thm2_measure, ({
        **EST_FAMILY, "R": 16 if env.profile == "quick" else 64, "K": 100 if env.profile == "quick" else 400,
        "S": 16, "D_f": 16, "D_g": 16, "B": 4, "Q": 8},))],
    judge=_judge_thm2, roles=("stochastic-aid",), bound="arxiv20.thm2.bound"))


# ---------------------------------------------------------------------- Theorem 3 (meta-learning)
def thm3_measure(key: dict, env, seed: int) -> list[dict]:
    """deterBiO with task sampling (arXiv Alg. 1 on L_S(.; B), L_D(.; B)), preset arxiv20.thm3 (beta =
    1/(4 L_Phi), T of Theorem 1 with alpha = 1/L_task); averaged criterion per K, Monte Carlo over R runs;
    Phi(x0) - inf Phi <= Phi(x0) (the losses are >= 0)."""
    import bilevelbench.algorithms as al
    from bilevelbench.algorithms.base import resolve_params

    p = meta_problem(env, seed, key["R"])
    x0 = p.default_x0()
    pa = {"eps": key["eps"], "tasks": key["tasks"]}
    T_theorem = resolve_params(al.get("meta-itd-bio"), p, "arxiv20.thm3", {"preset_args": pa})["N"]
    # the theorem's T (alpha mu ~ 1e-4 on this family) can be far beyond a profile's budget: cap it and say so
    tr = run_scored("meta-itd-bio", p, key["K"], env, x0=x0, generator=seed, preset="arxiv20.thm3",
                    preset_args=pa, N=min(T_theorem, key["T_cap"]))
    c = p.constants
    gap = float(p._phi(x0).max()) - float(c.extra.get("phi_lower_bound", 0.0))
    g = tr.metrics["grad_phi_sq"].numpy()[:-1]
    avg = np.cumsum(g, 0) / np.arange(1, g.shape[0] + 1)[:, None]
    M = max(c.M, float(c.extra.get("M_task", c.M)))
    rows = []
    for K in range(1, g.shape[0] + 1):
        mb = mean_bound(avg[K - 1])
        b = bd.BOUNDS["arxiv20.thm3.bound"](K, c.L_phi, gap, key["eps"], c.L, c.mu, M, key["tasks"])
        rows.append({"K": K, "mean": mb.mean, "low": mb.low, "high": mb.high, "tasks": key["tasks"],
                     "N": tr.params["N"], "T_theorem": T_theorem, "bound": b})
    return rows


def _judge_thm3(frames, env) -> Verdict:
    df = frames["mc/arxiv20.thm3"]
    v = judge_mc_rows("arxiv20.thm3.bound", df, "mean", "low", "high", "bound",
                      "(1/K) sum E||grad Phi(x_k)||^2 (Monte Carlo over R runs) against Theorem 3, every K")
    v.reason += (f". Task batch |B| = {int(df['tasks'].iloc[0])}, T = {int(df['N'].iloc[0])}; on this family the "
                 "region's L_Phi is ~1e9, so beta = 1/(4 L_Phi) barely moves x and the bound is loose by the "
                 "ratio shown: the check is valid but weak.")
    T_th, T_run = int(df["T_theorem"].iloc[0]), int(df["N"].iloc[0])
    if T_run < T_th:
        v.verdict = "inconclusive"
        v.reason = (f"Theorem 3 needs T = {T_th} inner steps per outer step on this family (alpha mu = mu/L_task "
                    f"~ 1e-4): too costly for the profile, so the run used T = {T_run} and the theorem's hypothesis "
                    f"is not met. Measured anyway: {v.reason}")
    v.details["figure"] = spec("loglog", "arxiv20.thm3.bound: averaged stationarity against K", "K",
                               "(1/K) sum E||grad Phi||^2",
                               [series("meta deterBiO (MC mean)", df["K"], df["mean"], ylow=df["low"], yhigh=df["high"],
                                       style="band", algorithm="meta-itd-bio"),
                                series("Theorem 3", df["K"], df["bound"], style="bound")])
    return v


register_claim(Claim(
    id="arxiv20.thm3.bound", paper=P, kind="inequality",
    statement="meta-learning with task sampling: (1/K) sum E||grad Phi||^2 <= 16 L_Phi (Phi_0 - inf Phi)/K + 2 eps/3 "
              "+ (1 + L/mu)^2 M^2/(8 |B|)",
    experiment="meta-learning family (16 tasks, p = 2, d = 3, kappa_ref 2), deterBiO with task sampling (preset "
               "arxiv20.thm3, eps = 1: T from Theorem 1 with alpha = 1/L_task, capped at 200 (quick) / 2000 (full): "
               "the theorem's T is ~2.5e5 here, and a capped run ends inconclusive), |B| = 4 tasks per step, R runs;"
               " M = max(M, M_task) (the theorem takes M per task)",
    sweeps=lambda env: [Sweep("mc/arxiv20.thm3", thm3_measure, ({
        "R": 8 if env.profile == "quick" else 32, "K": 20 if env.profile == "quick" else 100, "eps": 1.0,
        "tasks": 4, "T_cap": 200 if env.profile == "quick" else 2000},))],
    judge=_judge_thm3, roles=("stochastic-itd",), bound="arxiv20.thm3.bound"))
