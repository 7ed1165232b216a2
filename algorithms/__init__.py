"""The papers' bilevel optimizers over counted oracles.

``run(name, problem, steps, x0=None, preset=None, generator=None, **params) -> Trace``;
``names()`` lists the registered algorithms; ``get(name).describe()`` gives their metadata.
"""

# The algorithm modules register themselves on import.
from . import amigo, deterministic, momentum, penalty, sid, soba, stochastic  # noqa: F401
from .base import REGISTRY, Algorithm, Context, DivergenceWarning, Param, Trace, get, names, register, run
from .oracle import BACKENDS, CountedOracle, Counts

__all__ = ["BACKENDS", "CountedOracle", "Counts", "Algorithm", "Context", "DivergenceWarning", "Param", "Trace",
           "REGISTRY", "get", "names", "register", "run"]
