"""The SQLite store against the etcd-shaped contract of podnet.store.base."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from podnet.store import Compacted, Compare, Delete, Put
from podnet.store.sqlite import SqliteStore


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteStore(tmp_path / "store.db")
    yield s
    asyncio.run(s.close())


def run(coro):
    return asyncio.run(coro)


def test_create_only_if_absent_and_revisions_increase(store):
    r1 = run(store.txn([Compare("/a", 0)], [Put("/a", b"1")]))
    assert (r1.succeeded, r1.revision) == (True, 1)
    again = run(store.txn([Compare("/a", 0)], [Put("/a", b"x")]))
    assert not again.succeeded
    assert again.current["/a"].value == b"1"
    assert run(store.get("/a")).value == b"1"
    assert store.revision == 1


def test_update_needs_the_current_revision(store):
    run(store.txn([], [Put("/a", b"1")]))
    stale = run(store.txn([Compare("/a", 0)], [Put("/a", b"2")]))
    assert not stale.succeeded
    ok = run(store.txn([Compare("/a", 1)], [Put("/a", b"2")]))
    assert ok.succeeded and ok.revision == 2
    kv = run(store.get("/a"))
    assert (kv.value, kv.create_revision, kv.mod_revision) == (b"2", 1, 2)


def test_all_ops_of_a_txn_share_one_revision(store):
    r = run(store.txn([], [Put("/a", b"1"), Put("/b", b"2"), Put("/c", b"3")]))
    assert r.revision == 1
    assert {kv.mod_revision for kv in run(store.range("/")).kvs} == {1}


def test_range_prefix_limit_and_old_revisions(store):
    for i in range(5):
        run(store.txn([], [Put(f"/p/{i}", str(i).encode())]))
    run(store.txn([], [Put("/q/x", b"x")]))
    run(store.txn([], [Delete("/p/0")]))
    now = run(store.range("/p/"))
    assert [kv.key for kv in now.kvs] == ["/p/1", "/p/2", "/p/3", "/p/4"]
    page = run(store.range("/p/", limit=2))
    assert [kv.key for kv in page.kvs] == ["/p/1", "/p/2"] and page.more
    rest = run(store.range("/p/", limit=2, start_after="/p/2"))
    assert [kv.key for kv in rest.kvs] == ["/p/3", "/p/4"] and not rest.more
    at3 = run(store.range("/p/", revision=3))
    assert [kv.key for kv in at3.kvs] == ["/p/0", "/p/1", "/p/2"] and at3.revision == 3
    assert run(store.get("/p/0", revision=6)).value == b"0"
    assert run(store.get("/p/0")) is None


def test_compaction_forgets_history_but_not_live_keys(store):
    run(store.txn([], [Put("/a", b"1")]))
    run(store.txn([], [Put("/a", b"2")]))
    run(store.txn([], [Put("/b", b"1")]))
    run(store.txn([], [Delete("/b")]))
    run(store.compact(3))
    with pytest.raises(Compacted):
        run(store.range("/", revision=2))
    with pytest.raises(Compacted):
        store.watch("/", 3)
    assert [kv.value for kv in run(store.range("/", revision=3)).kvs] == [b"2", b"1"]
    assert [kv.key for kv in run(store.range("/")).kvs] == ["/a"]


def test_reopen_keeps_data_and_revision(tmp_path: Path):
    s = SqliteStore(tmp_path / "db")
    run(s.txn([], [Put("/a", b"1")]))
    run(s.txn([], [Put("/a", b"2")]))
    run(s.compact(1))
    run(s.close())
    s2 = SqliteStore(tmp_path / "db")
    try:
        assert s2.revision == 2 and s2.compacted_revision == 1
        assert run(s2.get("/a")).value == b"2"
        assert run(s2.txn([], [Put("/b", b"1")])).revision == 3
    finally:
        run(s2.close())


def test_watch_replays_history_then_goes_live_in_order(store):
    async def scenario():
        await store.txn([], [Put("/w/a", b"1")])
        await store.txn([], [Put("/other", b"x")])
        await store.txn([], [Put("/w/a", b"2")])
        w = store.watch("/w/", 2)
        await store.txn([], [Delete("/w/a")])
        await store.txn([], [Put("/w/b", b"3")])
        got = []
        async for batch in w:
            got.extend((e.type, e.kv.key, e.kv.value, e.revision,
                        e.prev.value if e.prev else None) for e in batch)
            if len(got) == 3:
                w.close()
        return got

    assert run(scenario()) == [
        ("PUT", "/w/a", b"2", 3, b"1"),
        ("DELETE", "/w/a", b"2", 4, b"2"),
        ("PUT", "/w/b", b"3", 5, None),
    ]


def test_watch_from_now_sees_only_new_changes(store):
    async def scenario():
        await store.txn([], [Put("/w/a", b"1")])
        w = store.watch("/w/", 0)
        await store.txn([], [Put("/w/a", b"2")])
        async for batch in w:
            w.close()
            return [(e.kv.value, e.revision) for e in batch]
        return []

    assert run(scenario()) == [(b"2", 2)]


def test_revision_survives_compacting_away_the_newest_tombstone(tmp_path: Path):
    s = SqliteStore(tmp_path / "db")
    run(s.txn([], [Put("/a", b"1")]))
    run(s.txn([], [Delete("/a")]))
    run(s.compact(2))  # removes the tombstone at revision 2: the log is empty
    run(s.close())
    s2 = SqliteStore(tmp_path / "db")
    try:
        assert s2.revision == 2
        assert run(s2.txn([], [Put("/b", b"1")])).revision == 3
    finally:
        run(s2.close())
