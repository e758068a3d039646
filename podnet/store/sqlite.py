"""The default store: SQLite in WAL mode, one file in the cluster's state directory.

Layout:
  log(key, rev, create_rev, deleted, value)  every version of every key; history for reads at old
                                             revisions and for watches that resume
  kv(key, create_rev, mod_rev, value)        the current value of each live key, for fast reads
  meta(name, value)                          'compacted', and a floor for the revision

Durability: each transaction is one SQLite transaction. With WAL and synchronous=NORMAL a commit
is written to the WAL file before it returns, so it survives the server being killed (kill -9);
only a power loss can drop the last commits, as the WAL is fsynced at checkpoints. Set
`durable=True` (synchronous=FULL) to fsync every commit.

The server is the only writer and calls the store from its event loop. SQLite calls are short
and synchronous, so a transaction and the publication of its events happen without any other
request interleaving, and watchers see revisions strictly in order.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from podnet.store.base import (
    Compacted,
    Compare,
    Delete,
    Event,
    KeyValue,
    Put,
    RangeResult,
    Store,
    TxnResult,
    Watch,
    WatchClosed,
    prefix_end,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    key TEXT NOT NULL, rev INTEGER NOT NULL, create_rev INTEGER NOT NULL,
    deleted INTEGER NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (key, rev)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS log_by_rev ON log (rev);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY, create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL,
    value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('compacted', 0);
"""

# A watcher that falls this many batches behind is closed; its client re-watches from the last
# revision it saw (Kubernetes clients do this on their own).
WATCH_BACKLOG = 10_000


class _SqliteWatch(Watch):
    def __init__(self, store: SqliteStore, prefix: str) -> None:
        self._store = store
        self.prefix = prefix
        self._queue: collections.deque[list[Event]] = collections.deque()
        self._wakeup = asyncio.Event()
        self._closed: str | None = None
        self._progress = False

    def tick(self) -> None:
        """Called by the store's ticker: an idle watch gets a progress notification."""
        if not self._queue:
            self._progress = True
            self._wakeup.set()

    def push(self, events: list[Event]) -> None:
        if self._closed:
            return
        if len(self._queue) >= WATCH_BACKLOG:
            self._closed = "watcher fell too far behind"
            self._store._drop(self)
        else:
            self._queue.append(events)
        self._wakeup.set()

    def replay(self, batches: list[list[Event]]) -> None:
        self._queue.extend(batches)
        self._wakeup.set()

    def close(self, reason: str = "closed") -> None:
        if not self._closed:
            self._closed = reason
            self._store._drop(self)
        self._wakeup.set()

    async def _iterate(self) -> AsyncIterator[list[Event]]:
        while True:
            while self._queue:
                yield self._queue.popleft()
            if self._closed:
                if self._closed != "closed":
                    raise WatchClosed(self._closed)
                return
            self._wakeup.clear()
            await self._wakeup.wait()
            if not self._queue and not self._closed and self._progress:
                self._progress = False
                yield []  # progress: every change up to store.revision was delivered

    def __aiter__(self) -> AsyncIterator[list[Event]]:
        return self._iterate()


class SqliteStore(Store):
    def __init__(self, path: str | Path, *, durable: bool = False) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        meta = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
        # The revision is the newest in the log; meta keeps a floor for when compaction has
        # removed the newest rows (tombstones), so a write costs no extra page.
        newest = self._db.execute("SELECT MAX(rev) FROM log").fetchone()[0] or 0
        self._rev: int = max(meta["revision"], newest)
        self._compacted: int = meta["compacted"]
        self._watches: list[_SqliteWatch] = []
        self.progress_interval = 1.0
        self._ticker: asyncio.Task[None] | None = None

    @property
    def revision(self) -> int:
        return self._rev

    @property
    def compacted_revision(self) -> int:
        return self._compacted

    # -- reads ---------------------------------------------------------------------------------

    def _check_revision(self, revision: int) -> None:
        if revision and revision < self._compacted:
            raise Compacted(revision, self._compacted)

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        if not revision or revision >= self._rev:
            row = self._db.execute(
                "SELECT key, value, create_rev, mod_rev FROM kv WHERE key = ?", (key,)).fetchone()
            return KeyValue(*row) if row else None
        self._check_revision(revision)
        row = self._db.execute(
            "SELECT key, value, create_rev, rev, deleted FROM log WHERE key = ? AND rev <= ? "
            "ORDER BY rev DESC LIMIT 1", (key, revision)).fetchone()
        if not row or row[4]:
            return None
        return KeyValue(row[0], row[1], row[2], row[3])

    async def range(self, prefix: str, *, revision: int = 0, limit: int = 0,
                    start_after: str = "") -> RangeResult:
        lo, hi = prefix, prefix_end(prefix)
        fetch = limit + 1 if limit else -1
        if not revision or revision >= self._rev:
            at = self._rev
            rows = self._db.execute(
                "SELECT key, value, create_rev, mod_rev FROM kv WHERE key >= ? AND key < ? "
                "AND key > ? ORDER BY key LIMIT ?", (lo, hi, start_after, fetch)).fetchall()
            kvs = [KeyValue(*r) for r in rows]
        else:
            self._check_revision(revision)
            at = revision
            rows = self._db.execute(
                "SELECT key, value, create_rev, rev, deleted FROM log AS l "
                "WHERE key >= ? AND key < ? AND key > ? AND rev = "
                "(SELECT MAX(rev) FROM log WHERE key = l.key AND rev <= ?) "
                "ORDER BY key", (lo, hi, start_after, revision)).fetchall()
            kvs = [KeyValue(r[0], r[1], r[2], r[3]) for r in rows if not r[4]]
            if limit:
                kvs = kvs[:fetch]
        more = bool(limit) and len(kvs) > limit
        return RangeResult(kvs[:limit] if more else kvs, at, more)

    # -- writes --------------------------------------------------------------------------------

    async def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> TxnResult:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            current: dict[str, KeyValue | None] = {}
            ok = True
            for c in compares:
                kv = self._current(c.key)
                current[c.key] = kv
                if (kv.mod_revision if kv else 0) != c.mod_revision:
                    ok = False
            if not ok or not ops:
                db.execute("ROLLBACK")
                return TxnResult(ok, self._rev, current)
            rev = self._rev + 1
            events: list[Event] = []
            for op in ops:
                prev = current[op.key] if op.key in current else self._current(op.key)
                if isinstance(op, Put):
                    create = prev.create_revision if prev else rev
                    db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?)",
                               (op.key, create, rev, op.value))
                    db.execute("INSERT OR REPLACE INTO log VALUES (?, ?, ?, 0, ?)",
                               (op.key, rev, create, op.value))
                    kv = KeyValue(op.key, op.value, create, rev)
                    events.append(Event("PUT", kv, prev))
                elif prev is not None:
                    db.execute("DELETE FROM kv WHERE key = ?", (op.key,))
                    db.execute("INSERT OR REPLACE INTO log VALUES (?, ?, ?, 1, ?)",
                               (op.key, rev, prev.create_revision, prev.value))
                    kv = KeyValue(op.key, prev.value, prev.create_revision, rev)
                    events.append(Event("DELETE", kv, prev))
                current[op.key] = None if isinstance(op, Delete) else kv
            if not events:
                db.execute("ROLLBACK")
                return TxnResult(True, self._rev, {})
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._rev = rev
        self._publish(events)
        return TxnResult(True, rev, {})

    def _current(self, key: str) -> KeyValue | None:
        row = self._db.execute(
            "SELECT key, value, create_rev, mod_rev FROM kv WHERE key = ?", (key,)).fetchone()
        return KeyValue(*row) if row else None

    async def compact(self, revision: int) -> None:
        revision = min(revision, self._rev)
        if revision <= self._compacted:
            return
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            # Keep, for each key, its newest version at or before `revision` if it is live;
            # drop everything older, and tombstones.
            db.execute(
                "DELETE FROM log WHERE rev <= ? AND (deleted = 1 OR rev < "
                "(SELECT MAX(rev) FROM log AS n WHERE n.key = log.key AND n.rev <= ?))",
                (revision, revision))
            db.execute("UPDATE meta SET value = ? WHERE name = 'compacted'", (revision,))
            db.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (self._rev,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._compacted = revision

    # -- watches -------------------------------------------------------------------------------

    def watch(self, prefix: str, start_revision: int) -> Watch:
        if start_revision and start_revision <= self._compacted:
            raise Compacted(start_revision, self._compacted)
        w = _SqliteWatch(self, prefix)
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick())
        if start_revision and start_revision <= self._rev:
            # Replay history, then go live. No await happens between the read and the
            # registration, so no revision can be missed or seen twice.
            w.replay(self._history(prefix, start_revision))
        self._watches.append(w)
        return w

    def _history(self, prefix: str, start: int) -> list[list[Event]]:
        rows = self._db.execute(
            "SELECT l.key, l.rev, l.create_rev, l.deleted, l.value, p.rev, p.create_rev, "
            "p.value, p.deleted FROM log AS l LEFT JOIN log AS p ON p.key = l.key AND p.rev = "
            "(SELECT MAX(rev) FROM log WHERE key = l.key AND rev < l.rev) "
            "WHERE l.rev >= ? AND l.key >= ? AND l.key < ? ORDER BY l.rev, l.key",
            (start, prefix, prefix_end(prefix))).fetchall()
        batches: list[list[Event]] = []
        last = -1
        for key, rev, create, deleted, value, prev_rev, prev_create, prev_value, prev_del in rows:
            prev = (KeyValue(key, prev_value, prev_create, prev_rev)
                    if prev_rev is not None and not prev_del else None)
            ev = Event("DELETE" if deleted else "PUT", KeyValue(key, value, create, rev), prev)
            if rev != last:
                batches.append([])
                last = rev
            batches[-1].append(ev)
        return batches

    async def _tick(self) -> None:
        # One timer for all watches, rather than one per watch per wait.
        while True:
            await asyncio.sleep(self.progress_interval)
            for w in list(self._watches):
                w.tick()

    def _publish(self, events: list[Event]) -> None:
        for w in list(self._watches):
            mine = [e for e in events if e.kv.key.startswith(w.prefix)]
            if mine:
                w.push(mine)

    def _drop(self, w: _SqliteWatch) -> None:
        if w in self._watches:
            self._watches.remove(w)

    def end_watches(self) -> None:
        for w in list(self._watches):
            w.close("the server is stopping")
        if self._ticker is not None:
            self._ticker.cancel()

    async def close(self) -> None:
        self.end_watches()
        self._db.close()
