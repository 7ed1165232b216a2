"""Imported once by the fork server of ``sweep.ProcessExecutor``: every registered experiment (and so the
algorithms and problems they run), so that each forked worker starts with them loaded."""

from . import load

load()
