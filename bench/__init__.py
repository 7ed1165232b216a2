"""The verification engine (``bilevelbench verify``).

``experiments/`` says what is run and measured (typed sweep keys and rows, the roles each arm runs),
``claims/`` what is claimed (one module per paper: statement, experiments, bounds, judge), ``judging`` the
verdict rules, ``roles`` who plays each role (plug-ins substituted in one place), ``sweep`` the points on
disk (digests, resume), ``verify`` the engine and its command line.
"""
