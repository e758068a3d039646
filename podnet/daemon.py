"""What podnet's long-running processes (the API server, the node agents) share: logging to
their log file's stream, and an asyncio loop on uvloop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any


def run(main: Coroutine[Any, Any, None], log_level: str) -> int:
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency; this is a fallback
        pass
    asyncio.run(main)
    return 0
