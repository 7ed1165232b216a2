"""``tests/`` is put on sys.path so that the plug-ins of the audit tests (``bbplugins``) import by name, as a
user's ``--plugin module:attr`` does. The shared quick-profile run (``run_quick``) is in ``tests/conftest.py``,
so that the report tests resume from the same folder."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
