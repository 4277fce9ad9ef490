"""The "sol" logger, switched on by the SOL_LOG environment variable.

SOL_LOG=debug (or info, warning, ...) sets the level of the "sol" logger and,
unless the application already configured handlers for it, attaches one that
writes to stderr. The C++ core reads the same variable for its pass dumps.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("sol")


def configure_from_environment() -> None:
    level_name = os.environ.get("SOL_LOG", "").strip().upper()
    if not level_name:
        return
    level = logging.getLevelName(level_name)
    if not isinstance(level, int):  # unknown names come back as "Level X" strings
        logger.warning("SOL_LOG=%s is not a logging level; using DEBUG", level_name.lower())
        level = logging.DEBUG
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[sol %(levelname)s] %(message)s"))
        logger.addHandler(handler)
