"""The peer benchmark's solver structure in JAX, ported to our problems: the reference of the speed ratios.

benchopt/benchmark_bilevel (the "peer") runs its stochastic solvers as one ``jax.jit`` of a ``lax.scan`` over
outer iterations, with inner loops and Neumann products as ``lax.fori_loop`` and every derivative by JAX
autodiff of the per-batch objectives (``jax.grad``; Hessian- and Jacobian-vector products as ``jax.vjp`` of
the inner gradient). Its own problem carries dense per-sample matrices, so timing its code on its problem
compares different arithmetic. This module writes that structure (read, not copied: the peer's
``solvers/{stocbio,bsa,ttsa}.py``, ``benchmark_utils/{sgd_inner,hessian_approximation,minibatch_sampler}.py``)
for OUR problems: ``stochastic-quadratic`` (rank-one per-sample terms, ``analytic/stochastic.py``) and the
deterministic ``quadratic`` family, so that both sides do the same arithmetic per outer iteration:

- stocBiO: N SGD steps (batch S) on y, grad F on an outer batch, Q Neumann steps each on a fresh inner batch
  (the peer's ``shia``: v <- v - eta H v, s <- s + v, returns eta s), the cross term on a fresh inner batch;
- BSA: the peer's order (estimate at the current y, x step, then N SGD steps on y); Neumann length p uniform
  on {0..b-1} applied by ``fori_loop(0, p)`` (the peer's ``hia``), scale b eta;
- TTSA: one SGD step on y, the same randomized estimate at the new y, the cross term on the y step's batch;
- AID-BiO: N GD steps, Q conjugate-gradient steps from the previous v (HVP by autodiff), one JVP;
- ITD-BiO: ``jax.value_and_grad`` through N unrolled GD steps (the peer's ``jaxopt_ITD`` with ``unroll``).

Batches are the peer's: contiguous slices ``[start, start + size)`` of the sample tables (``dynamic_slice``),
``start`` from a shuffled order of the n/size batches. The peer draws p with ``randint(0, n_steps)``; here
b = n_hia_steps + 1 terms are used so that p has the same law as ours (uniform on {0..b-1}).

Optional: needs ``jax`` (``pip install bilevelbench[peer]``, not installed by CI). ``python -m
bilevelbench.bench.peer_jax`` prints the per-iteration times of every port at the benchmark configuration.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

__all__ = ["PeerStep", "stochastic_functions", "deterministic_functions", "stocbio", "bsa", "ttsa", "aid_bio",
           "itd_bio", "time_per_iteration", "check_port"]


def _jax():
    import jax

    jax.config.update("jax_enable_x64", True)  # float64 as ours (before any array is created)
    return jax


def _np(t):
    """Instance 0 of a problem tensor as a NumPy float64 array."""
    return t[0].detach().cpu().double().numpy()


@dataclass
class PeerStep:
    """A jitted ``run(carry, n) -> carry`` of n outer iterations (``lax.scan``, the peer's ``one_epoch``) and
    its initial carry; ``carry['outer_var']``, ``carry['inner_var']`` are x and y."""

    name: str
    run: object
    carry: dict

    def __call__(self, n: int):
        self.carry = self.run(self.carry, n)
        return self.carry


# ---------------------------------------------------------------------------------------------- problems
def stochastic_functions(problem):
    """(f_inner(y, x, start, size), f_outer(y, x, start, size), n_g, n_f, dims) for instance 0 of a
    ``stochastic-quadratic`` problem: the batch means G and F of ``analytic/stochastic.py`` on the samples
    start..start+size-1, written as JAX functions (module docstring of analytic/stochastic.py):
    G = 1/2 y'H0 y - t/2 x'Gam x - y'(B x + e + t eps_i) + t/2 (x_i'y - q_i'x)^2,
    F = w/2 [(1 - t_f)||y - c||^2 + t_f (a_j'(y - c))^2] + h(x) + t_f xi_j'(x - x_c)."""
    jax = _jax()
    jnp = jax.numpy
    d = problem._d64
    H0, Gam, B, e = (jnp.asarray(d[k][0].numpy()) for k in ("H0", "Gam", "B", "e"))
    Xg, Qg, Eg = (jnp.asarray(d[k][0].numpy()) for k in ("Xg", "Qg", "Eg"))
    Af, Xif, c, xc = (jnp.asarray(d[k][0].numpy()) for k in ("Af", "Xif", "c", "x_opt"))
    t, tf, w, lam, nc = problem.noise, problem.noise_f, problem.w, problem.lam, problem.nc

    def h(x):
        u = x - xc
        return 0.5 * lam * u @ u + nc * jnp.sum(u * u / (1 + u * u))

    def f_inner(y, x, start, size):
        X = jax.lax.dynamic_slice(Xg, (start, 0), (size, Xg.shape[1]))
        Q = jax.lax.dynamic_slice(Qg, (start, 0), (size, Qg.shape[1]))
        E = jax.lax.dynamic_slice(Eg, (start, 0), (size, Eg.shape[1]))
        r = X @ y - Q @ x
        return (0.5 * y @ (H0 @ y) - 0.5 * t * x @ (Gam @ x) - y @ (B @ x + e + t * E.mean(0))
                + 0.5 * t * jnp.mean(r * r))

    def f_outer(y, x, start, size):
        A = jax.lax.dynamic_slice(Af, (start, 0), (size, Af.shape[1]))
        Xi = jax.lax.dynamic_slice(Xif, (start, 0), (size, Xif.shape[1]))
        u = y - c
        p = A @ u
        return (0.5 * w * ((1 - tf) * u @ u + tf * jnp.mean(p * p)) + h(x)
                + tf * Xi.mean(0) @ (x - xc))

    return f_inner, f_outer, problem.n_g, problem.n_f, (problem.dim_x, problem.dim_y)


def deterministic_functions(problem):
    """(g(y, x), f(y, x), dims) for instance 0 of a ``quadratic`` problem (analytic/quadratic.py):
    g = 1/2 y'Ay - y'(Bx + e), f = w/2 ||y - c||^2 + h(x)."""
    jax = _jax()
    jnp = jax.numpy
    A, B, e, c, xc = (jnp.asarray(_np(getattr(problem, k))) for k in ("A", "B", "e", "c", "x_opt"))
    w, lam, nc = problem.w, problem.lam, problem.nc

    def g(y, x):
        return 0.5 * y @ (A @ y) - y @ (B @ x + e)

    def f(y, x):
        u, v = y - c, x - xc
        return 0.5 * w * u @ u + 0.5 * lam * v @ v + nc * jnp.sum(v * v / (1 + v * v))

    return g, f, (problem.dim_x, problem.dim_y)


# ---------------------------------------------------------------------------------------------- sampling
def _sampler(n: int, size: int):
    """The peer's minibatch sampler: batch starts ``size * order[i]`` over a permutation of the
    n // size batches, reshuffled (new key) after each pass. Returns (draw(state) -> (start, state), state)."""
    jax = _jax()
    jnp = jax.numpy
    batches = max(1, n // size)

    def draw(state):
        start = size * state["order"][state["i"]]
        last = state["i"] + 1 == batches
        key, sub = jax.random.split(state["key"])
        order = jax.lax.cond(last, lambda: jax.random.permutation(sub, batches), lambda: state["order"])
        return start, {"i": jnp.where(last, 0, state["i"] + 1), "order": order, "key": key}

    def init(seed):
        return {"i": jnp.asarray(0), "order": jnp.arange(batches), "key": jax.random.PRNGKey(seed)}

    return draw, init


# ---------------------------------------------------------------------------------------------- stochastic
def _stochastic_parts(problem, S: int, D: int):
    """The pieces the three stochastic ports share: inner gradient, outer gradients, HVP and cross term by
    autodiff on a batch start, SGD on y, the two samplers and the initial carry."""
    jax = _jax()
    jnp = jax.numpy
    f_inner, f_outer, n_g, n_f, dims = stochastic_functions(problem)
    grad_in = jax.grad(lambda y, x, s: f_inner(y, x, s, S))
    grad_out = jax.grad(lambda y, x, s: f_outer(y, x, s, D), argnums=(0, 1))
    draw_in, init_in = _sampler(n_g, S)
    draw_out, init_out = _sampler(n_f, D)

    def hvp(y, x, v, s):
        return jax.vjp(lambda z: grad_in(z, x, s), y)[1](v)[0]

    def cross(y, x, v, s):
        return jax.vjp(lambda a: grad_in(y, a, s), x)[1](v)[0]

    def sgd(y, x, st, lr, steps):
        def body(_, a):
            st, y = a
            s, st = draw_in(st)
            return st, y - lr * grad_in(y, x, s)
        st, y = jax.lax.fori_loop(0, steps, body, (st, y))
        return y, st

    def carry0(seed):
        return {"inner_var": jnp.zeros(dims[1]), "outer_var": jnp.zeros(dims[0]),
                "s_in": init_in(seed), "s_out": init_out(seed + 1), "key": jax.random.PRNGKey(seed + 2)}

    return dict(grad_in=grad_in, grad_out=grad_out, hvp=hvp, cross=cross, sgd=sgd, draw_in=draw_in,
                draw_out=draw_out, carry0=carry0)


def _hia(P, y, x, v, st, eta, b, key):
    """Randomized truncated Neumann product b eta prod_{i<=p} (I - eta H_i) v, p uniform on {0..b-1},
    applied by a loop of p iterations (Ghadimi and Wang 2018 Alg. 3; the peer's ``hia``)."""
    jax = _jax()
    key, sub = jax.random.split(key)
    p = jax.random.randint(sub, (), 0, b)

    def body(_, a):
        st, v = a
        s, st = P["draw_in"](st)
        return st, v - eta * P["hvp"](y, x, v, s)
    st, v = jax.lax.fori_loop(0, p, body, (st, v))
    return b * eta * v, st, key


def _epoch(step, name, carry):
    """The peer's ``one_epoch``: n outer iterations as one jitted ``lax.scan``."""
    jax = _jax()

    def run(carry, n):
        return jax.lax.scan(lambda c, _: (step(c), None), carry, None, length=n)[0]
    return PeerStep(name, jax.jit(run, static_argnums=1), carry)


def stocbio(problem, *, alpha, beta, eta, N=10, Q=10, S=64, D=64, seed=0) -> PeerStep:
    """stocBiO in the peer's structure (module docstring), constant steps alpha (y), eta (Neumann), beta (x)."""
    jax = _jax()
    P = _stochastic_parts(problem, S, D)

    def step(c):
        c = dict(c)
        x = c["outer_var"]
        y, c["s_in"] = P["sgd"](c["inner_var"], x, c["s_in"], alpha, N)
        so, c["s_out"] = P["draw_out"](c["s_out"])
        gy, gx = P["grad_out"](y, x, so)

        def neumann(_, a):
            st, v, acc = a
            s, st = P["draw_in"](st)
            v = v - eta * P["hvp"](y, x, v, s)
            return st, v, acc + v
        c["s_in"], _, acc = jax.lax.fori_loop(0, Q, neumann, (c["s_in"], gy, gy))
        s, c["s_in"] = P["draw_in"](c["s_in"])
        c["outer_var"] = x - beta * (gx - P["cross"](y, x, eta * acc, s))
        c["inner_var"] = y
        return c

    return _epoch(step, "stocbio", P["carry0"](seed))


def bsa(problem, *, alpha, beta, eta, N=10, b=11, S=64, D=64, seed=0) -> PeerStep:
    """BSA in the peer's structure and order (estimate, x step, then N SGD steps), constant steps."""
    P = _stochastic_parts(problem, S, D)

    def step(c):
        c = dict(c)
        y, x = c["inner_var"], c["outer_var"]
        so, c["s_out"] = P["draw_out"](c["s_out"])
        gy, gx = P["grad_out"](y, x, so)
        v, c["s_in"], c["key"] = _hia(P, y, x, gy, c["s_in"], eta, b, c["key"])
        s, c["s_in"] = P["draw_in"](c["s_in"])
        c["outer_var"] = x - beta * (gx - P["cross"](y, x, v, s))
        c["inner_var"], c["s_in"] = P["sgd"](y, c["outer_var"], c["s_in"], alpha, N)
        return c

    return _epoch(step, "bsa", P["carry0"](seed))


def ttsa(problem, *, alpha, beta, eta, b=11, S=64, D=64, seed=0) -> PeerStep:
    """TTSA in the peer's structure: one SGD step on y, the randomized estimate at the new y, the cross term
    on the y step's batch, constant steps."""
    P = _stochastic_parts(problem, S, D)

    def step(c):
        c = dict(c)
        x = c["outer_var"]
        s, c["s_in"] = P["draw_in"](c["s_in"])
        y = c["inner_var"] - alpha * P["grad_in"](c["inner_var"], x, s)
        so, c["s_out"] = P["draw_out"](c["s_out"])
        gy, gx = P["grad_out"](y, x, so)
        v, c["s_in"], c["key"] = _hia(P, y, x, gy, c["s_in"], eta, b, c["key"])
        c["outer_var"] = x - beta * (gx - P["cross"](y, x, v, s))
        c["inner_var"] = y
        return c

    return _epoch(step, "ttsa", P["carry0"](seed))


# ---------------------------------------------------------------------------------------------- deterministic
def _deterministic_parts(problem):
    jax = _jax()
    jnp = jax.numpy
    g, f, dims = deterministic_functions(problem)
    grad_g = jax.grad(g)
    grad_f = jax.grad(f, argnums=(0, 1))

    def gd(y, x, lr, steps):
        return jax.lax.fori_loop(0, steps, lambda _, y: y - lr * grad_g(y, x), y)

    def carry0():
        return {"inner_var": jnp.zeros(dims[1]), "outer_var": jnp.zeros(dims[0]), "v": jnp.zeros(dims[1])}

    return g, f, grad_g, grad_f, gd, carry0


def aid_bio(problem, *, alpha, beta, N=10, Q=10) -> PeerStep:
    """AID-BiO: N GD steps on y (warm start), Q conjugate-gradient steps on grad_yy g v = grad_y f from the
    previous v (HVP by autodiff), estimate grad_x f - grad_x grad_y g v (ICML 2021 Alg. 1, our parameters)."""
    jax = _jax()
    jnp = jax.numpy
    g, f, grad_g, grad_f, gd, carry0 = _deterministic_parts(problem)

    def step(c):
        x = c["outer_var"]
        y = gd(c["inner_var"], x, alpha, N)
        gy, gx = grad_f(y, x)

        def H(v):
            return jax.vjp(lambda z: grad_g(z, x), y)[1](v)[0]

        def cg(_, a):
            v, r, p, rs = a
            Hp = H(p)
            step_ = rs / jnp.where(rs > 0, p @ Hp, 1.0)
            v, r = v + step_ * p, r - step_ * Hp
            rs_new = r @ r
            return v, r, r + rs_new / jnp.where(rs > 0, rs, 1.0) * p, rs_new
        r0 = gy - H(c["v"])
        v = jax.lax.fori_loop(0, Q, cg, (c["v"], r0, r0, r0 @ r0))[0]
        cross = jax.vjp(lambda a: grad_g(y, a), x)[1](v)[0]
        return {"inner_var": y, "outer_var": x - beta * (gx - cross), "v": v}

    return _epoch(step, "aid-bio", carry0())


def itd_bio(problem, *, alpha, beta, N=10) -> PeerStep:
    """ITD-BiO: the gradient of f(x, y^N(x)) through N unrolled GD steps from the previous y
    (``jax.value_and_grad``, the peer's ``jaxopt_ITD`` with ``unroll=True``)."""
    jax = _jax()
    g, f, grad_g, grad_f, gd, carry0 = _deterministic_parts(problem)

    def step(c):
        y0 = c["inner_var"]

        def value(x):
            y = y0
            for _ in range(N):  # unrolled, as jaxopt's unroll=True
                y = y - alpha * grad_g(y, x)
            return f(y, x), y
        (_, y), gx = jax.value_and_grad(value, has_aux=True)(c["outer_var"])
        return {"inner_var": y, "outer_var": c["outer_var"] - beta * gx, "v": c["v"]}

    return _epoch(step, "itd-bio", carry0())


# ---------------------------------------------------------------------------------------------- measuring
def time_per_iteration(step: PeerStep, n: int = 128, repeat: int = 5) -> tuple[float, list[float]]:
    """(median seconds per outer iteration, all of them) over ``repeat`` calls of n iterations (one jitted
    scan each, the peer's ``eval_freq`` = 128), after a call that compiles; results waited for."""
    jax = _jax()
    jax.block_until_ready(step(n))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(step(n))
        times.append((time.perf_counter() - t0) / n)
    times.sort()
    return times[len(times) // 2], times


def check_port(problem, atol: float = 1e-12) -> float:
    """Largest difference between the port's autodiff gradients and our closed forms (grad_y G, grad_x G,
    grad_y F, grad_x F, HVP, JVP) on the batch of samples 0..S-1 at a random point: the port computes our
    problem (float64 round-off). Raises AssertionError beyond ``atol`` times the gradients' scale."""
    import numpy as np
    import torch

    jax = _jax()
    jnp = jax.numpy
    f_inner, f_outer, *_ = stochastic_functions(problem)
    S = min(problem.n_g, problem.n_f, 64)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, problem.dim_x, generator=gen, dtype=torch.float64)
    y = torch.randn(1, problem.dim_y, generator=gen, dtype=torch.float64)
    v = torch.randn(1, problem.dim_y, generator=gen, dtype=torch.float64)
    idx = torch.arange(S).unsqueeze(0)
    xj, yj, vj = (jnp.asarray(t[0].numpy()) for t in (x, y, v))
    gi = jax.grad(lambda y, x: f_inner(y, x, 0, S), argnums=(0, 1))
    go = jax.grad(lambda y, x: f_outer(y, x, 0, S), argnums=(0, 1))
    pairs = [(gi(yj, xj)[0], problem._grad_y_G(x, y, idx)), (gi(yj, xj)[1], problem._grad_x_G(x, y, idx)),
             (go(yj, xj)[0], problem._grad_y_F(x, y, idx)), (go(yj, xj)[1], problem._grad_x_F(x, y, idx)),
             (jax.vjp(lambda z: gi(z, xj)[0], yj)[1](vj)[0], problem._hvp_G(x, y, v, idx)),
             (jax.vjp(lambda a: gi(yj, a)[0], xj)[1](vj)[0], problem._jvp_G(x, y, v, idx))]
    worst = 0.0
    for port, ours in pairs:
        ours = ours[0].numpy()
        worst = max(worst, float(np.abs(np.asarray(port) - ours).max() / max(1.0, np.abs(ours).max())))
    assert worst <= atol, f"the JAX port differs from the closed forms by {worst:.3g} (relative)"
    return worst


def _main():  # pragma: no cover - a measurement script
    import torch

    from ..algorithms.base import get, resolve_params
    from ..analytic import make_problem

    torch.set_num_threads(1)
    sq = make_problem("stochastic-quadratic", dim_x=100, dim_y=100, n_f=128, n_g=128)
    print(f"port check: max relative difference {check_port(sq):.2e}")
    p = resolve_params(get("stocbio"), sq, None, {})
    st = dict(alpha=p["alpha"], beta=p["beta"], eta=p["eta"])
    q = make_problem("quadratic", dim_x=100, dim_y=100)
    pq = resolve_params(get("aid-bio"), q, None, {})
    ports = [stocbio(sq, **st), bsa(sq, **st), ttsa(sq, **st),
             aid_bio(q, alpha=pq["alpha"], beta=pq["beta"]), itd_bio(q, alpha=pq["alpha"], beta=pq["beta"])]
    for port in ports:
        med, times = time_per_iteration(port)
        print(f"{port.name:8s} {1e3 * med:.3f} ms per outer iteration (min {1e3 * times[0]:.3f}); "
              f"finite: {bool(math.isfinite(float(port.carry['outer_var'].sum())))}")


if __name__ == "__main__":  # pragma: no cover
    _main()
