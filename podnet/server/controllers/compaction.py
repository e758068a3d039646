"""Compaction, as kube-apiserver schedules it: every interval, compact up to the revision seen
at the previous tick, so history younger than one interval is always kept for watches that
resume."""

from __future__ import annotations

import asyncio
import logging

from podnet.store import Store

log = logging.getLogger("podnet.compaction")


async def compact_forever(store: Store, interval: float) -> None:
    last = store.revision
    while True:
        await asyncio.sleep(interval)
        if last > store.compacted_revision:
            await store.compact(last)
            log.info("compacted up to revision %d", last)
        last = store.revision
