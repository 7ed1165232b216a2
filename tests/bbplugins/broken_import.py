"""A plug-in module whose import fails (a user's typo): --plugin must say so in one line, exit 2."""

raise RuntimeError("this plug-in module fails at import")
