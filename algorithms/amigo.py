"""AmIGO (Arbel and Mairal, ICLR 2022, "Amortized Implicit Differentiation for Stochastic Bilevel
Optimization"), with SGD inner solvers (AmIGO-GD; research notes [C]).

Per outer step k, with T and M constant ("amortized": independent of the target accuracy, abstract [R]):
    y <- T SGD steps y - alpha grad_y G(x_k, y; B_t), warm-started from the previous y;
    z <- M SGD steps z - eta (grad_yy G(x_k, y; B'_t) z - grad_y F(x_k, y; D)) on 1/2 z'Hz - grad_y f'z,
         warm-started from the previous z (z approximates [grad_yy g]^-1 grad_y f);
    x <- x - gamma (grad_x F(x_k, y; D) - grad_x grad_y G(x_k, y; B'') z).
One F batch D per outer step serves grad_y F and grad_x F. ``warm=False`` restarts y from y_0 and z from 0
every outer step (the baseline of the warm-start comparison).
Cost per outer step: T S Gc(g), M S HV, 2 S_f Gc(f), S JV (``bounds.costs``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import modern_presets as mp
from .base import Algorithm, Param, register
from .directions import check_batches, draw, draw_many

__all__ = ["AmigoState"]


@dataclass
class AmigoState:
    x: torch.Tensor
    y: torch.Tensor
    z: torch.Tensor
    estimate: torch.Tensor | None = None


def _init(ctx):
    check_batches(ctx.oracle.problem, ctx.params, "amigo")
    return AmigoState(x=ctx.x0.clone(), y=ctx.y0.clone(), z=torch.zeros_like(ctx.y0))


def _step(ctx, s: AmigoState, k: int) -> AmigoState:
    p, o = ctx.params, ctx.oracle
    x, S = s.x, p["S"]
    y = s.y if p["warm"] else ctx.y0
    for b in draw_many(ctx, "g", S, p["T"]):
        y = y - p["alpha"] * o.grad_y_g(x, y, b)
    bf = draw(ctx, "f", p["S_f"])
    gy, gx = o.grad_y_f(x, y, bf), o.grad_x_f(x, y, bf)
    z = s.z if p["warm"] else torch.zeros_like(s.z)
    for b in draw_many(ctx, "g", S, p["M"]):
        z = z - p["eta"] * (o.hvp(x, y, z, b) - gy)
    est = gx - o.jvp(x, y, z, draw(ctx, "g", S))
    return AmigoState(x=x - p["gamma"] * est, y=y, z=z, estimate=est)


_POS = dict(kind=float, minimum=0.0)
_INT0 = dict(kind=int, minimum=0, strict=False)
_BATCH = dict(kind=int, minimum=1, strict=False, optional=True)

register(Algorithm(
    name="amigo", paper="amigo22",
    reference="Arbel and Mairal, ICLR 2022, AmIGO (Alg. 1 with SGD inner solvers, warm starts); T, M constant "
    "(abstract); theorem constants [M]",
    stochastic=True, kind="stochastic-aid",
    summary="AmIGO: warm-started T SGD steps on y and M SGD steps on the linear system z, then an outer SGD step",
    params={
        "alpha": Param(mp.one_over_L_sample_yy, "inner SGD step on y", **_POS),
        "eta": Param(mp.one_over_L_sample_yy, "SGD step on the linear system z", **_POS),
        "gamma": Param(mp.amigo_gamma, "outer step on x", **_POS),
        "T": Param(10, "inner SGD steps on y per outer step", **_INT0),
        "M": Param(10, "SGD steps on z per outer step", **_INT0),
        "S": Param(1, "G batch size (None: the full objective)", **_BATCH),
        "S_f": Param(1, "F batch size (None: the full objective)", **_BATCH),
        "warm": Param(True, "warm-start y and z from the previous outer step (False: y_0 and 0)", kind=bool),
    },
    init=_init, step=_step, presets=mp.AMIGO_PRESETS, theory=mp.SOBA_CHECKS, roles=("amigo",),
))
