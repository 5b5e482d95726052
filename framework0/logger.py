"""Logging that behaves the same in a script, a test and a Jupyter kernel."""

from __future__ import annotations

import logging
import sys

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def get_logger(name: str, debug: bool = False) -> logging.Logger:
    """Return a logger writing to stderr; ``debug=True`` lowers its level to DEBUG.

    Calling it again for the same name never adds a second handler, so re-running a
    notebook cell does not duplicate every log line.
    """
    logger = logging.getLogger(name)
    if not any(getattr(h, "_framework0", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler._framework0 = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    return logger
