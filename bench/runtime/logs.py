"""How bench speaks: its own lines on stdout, libraries quiet below WARNING (the CLI, workers and Ray trials alike)."""
from __future__ import annotations

import sys


def setup_logging() -> None:
    """bench's messages on stdout, as plain lines; libraries below WARNING stay quiet."""
    import logging

    class StdoutHandler(logging.StreamHandler):
        """Writes to whatever sys.stdout is at the time (a test's capture, a redirected stream)."""

        stream = property(lambda self: sys.stdout, lambda self, value: None)

    logger = logging.getLogger("bench")
    if not any(isinstance(h, logging.StreamHandler) and type(h).__name__ == "StdoutHandler" for h in logger.handlers):
        handler = StdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
