"""Control-plane benchmark of the podnet API server: creates/s, watch delivery latency and RSS.

    .venv/bin/python -m bench.api_bench [--json FILE] [--pin [off|on|both]] [--kind secrets]

It brings up a throw-away cluster (state root under /tmp, random name, a port of the kernel's
choosing), loads it over HTTPS on 127.0.0.1 with keep-alive aiohttp connections, prints a table
and always tears the cluster down (also on errors, Ctrl-C and SIGTERM). All load is bounded in
count and in time. Each figure is printed with a baseline measured in the same run, and the
ratio to it:

  creates/s       best sustained rate of POSTs over 1, 4 and 16 connections
                  vs single-row INSERT transactions into raw SQLite (WAL, synchronous=NORMAL)
  watch latency   100 watchers on one collection, objects created at a steady rate; each object
                  carries the time.monotonic() of its send in an annotation, and the same process
                  notes time.monotonic() when each watcher reads the event
                  vs the round trip of an authenticated GET /api/v1/namespaces/default
  RSS             VmRSS of the server, idle after start-up and after the load
                  vs a bare `python -c 'import aiohttp, uvloop, orjson'` process

This is not a test: nothing asserts on timings. The machine's cores are shared between the
server and the load generator; --pin puts the server on core 0 and this process on core 1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import io
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: import this checkout's podnet
    sys.path.insert(0, str(REPO))

from podnet.cluster import lifecycle  # noqa: E402
from podnet.cluster.state import ClusterState, ephemeral_port  # noqa: E402
from podnet.store import Compare, Put  # noqa: E402
from podnet.store.sqlite import SqliteStore  # noqa: E402

GOAL_CREATES_PER_S = 1000.0
GOAL_WATCH_P99_MS = 50.0
GOAL_IDLE_RSS_MB = 100.0
KINE_RAW_SQLITE_ANCHOR = 7000.0  # writes/s: kine's raw SQLite path on this kind of machine
# (a published figure, printed for reference; the ratio that counts is against the SQLite
# baseline measured in the same run)

SIGNALS = (signal.SIGINT, signal.SIGTERM)
SENT = "bench.podnet.dev/sent"  # annotation: time.monotonic() just before the POST was sent
SEQ = "bench.podnet.dev/seq"  # label: the object's sequence number in its run
BARE_RUNTIME = ("import aiohttp, uvloop, orjson, sys, time; print('ready', flush=True); "
                "time.sleep(60)")
PODNET_IMPORTS = ("import podnet.server.main, sys, time; print('ready', flush=True); "
                  "time.sleep(60)")


def log(msg: str) -> None:
    """Progress, on stderr (the results go to stdout)."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# -- the machine and its processes ----------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "nproc": os.cpu_count() or 0, "cpu": model, "kernel": platform.release(),
            "python": platform.python_version(), "aiohttp": aiohttp.__version__,
            "sqlite": sqlite3.sqlite_version}


def status_kb(pid: int, key: str = "VmRSS") -> int:
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM...), 0 when the process is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process (all its threads); zeros when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0, 0.0
    fields = stat.rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    return sum(cpu_times(pid))


def own_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def busy_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy (all processes, all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def pin(pid: int, cpus: set[int]) -> None:
    """Set the CPU affinity of every thread of `pid` (what `taskset -a -p` does)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cpus)


@dataclass
class CpuMeter:
    """CPU use over a phase, in % of one core: the server, this process (the load generator),
    and everything else on the machine (other processes competing for the cores)."""

    server_pid: int
    wall: float = 0.0
    server: float = 0.0
    server_sys: float = 0.0  # the part of `server` spent in the kernel (socket and file I/O)
    client: float = 0.0
    other: float = 0.0

    @contextlib.contextmanager
    def measure(self) -> Iterator[CpuMeter]:
        w, (su, ss), c = time.monotonic(), cpu_times(self.server_pid), own_cpu_seconds()
        b = busy_cpu_seconds()
        try:
            yield self
        finally:
            self.wall = time.monotonic() - w
            eu, es = cpu_times(self.server_pid)
            self.server, self.server_sys = (eu - su) + (es - ss), es - ss
            self.client = own_cpu_seconds() - c
            self.other = max(0.0, busy_cpu_seconds() - b - self.server - self.client)

    def pct(self) -> dict[str, float]:
        wall = self.wall or 1e-9
        return {"server_cpu_pct": round(100 * self.server / wall, 1),
                "server_sys_pct": round(100 * self.server_sys / wall, 1),
                "client_cpu_pct": round(100 * self.client / wall, 1),
                "other_cpu_pct": round(100 * self.other / wall, 1)}


# -- statistics -----------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending list; 0 when empty."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def ms_summary(seconds: Sequence[float]) -> dict[str, float]:
    s = sorted(seconds)
    return {"n": len(s), "p50_ms": round(percentile(s, 50) * 1000, 3),
            "p90_ms": round(percentile(s, 90) * 1000, 3),
            "p99_ms": round(percentile(s, 99) * 1000, 3),
            "p999_ms": round(percentile(s, 99.9) * 1000, 3),
            "max_ms": round((s[-1] if s else 0.0) * 1000, 3)}


def sustained_rate(done_at: Sequence[float], trim: float = 0.1) -> float:
    """Completions per second between the 10% and the 90% mark (no warm-up, no tail)."""
    t = sorted(done_at)
    if len(t) < 10:
        return 0.0
    lo, hi = int(len(t) * trim), int(len(t) * (1 - trim)) - 1
    span = t[hi] - t[lo]
    return (hi - lo) / span if span > 0 else 0.0


def worst_window(done_at: Sequence[float], start: float, width: float = 1.0) -> float:
    """The lowest completions/s over whole `width`-second windows from `start`."""
    if not done_at:
        return 0.0
    buckets = Counter(int((t - start) // width) for t in done_at)
    full = int((max(done_at) - start) // width)  # the last, partial window is left out
    if full < 1:
        return 0.0
    return min(buckets.get(i, 0) for i in range(full)) / width


# -- objects --------------------------------------------------------------------------------------


def make_object(kind: str, seq: int, sent: float | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"b{seq:06d}", "labels": {"app": "bench", SEQ: str(seq)}}
    if sent is not None:
        meta["annotations"] = {SENT: f"{sent:.6f}"}
    if kind == "secrets":
        return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
                "data": {"password": base64.b64encode(secrets.token_bytes(24)).decode()}}
    if kind == "configmaps":
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                "data": {"key": "value-" + secrets.token_hex(12)}}
    if kind == "services":
        return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
                "spec": {"selector": {"app": "bench"},
                         "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
    raise ValueError(f"unsupported kind {kind}")


def stored_value(kind: str) -> bytes:
    """About what the store keeps for one object: the body plus the fields the server adds."""
    obj = make_object(kind, 1, time.monotonic())
    obj["metadata"].update({"namespace": "bench-c1", "uid": "0" * 36,
                            "creationTimestamp": "2025-01-01T00:00:00Z"})
    return orjson.dumps(obj)


# -- baselines that need no server ----------------------------------------------------------------


def _sqlite(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def raw_sqlite_inserts(path: Path, n: int, value: bytes, limit_s: float) -> float:
    """Writes/s of single-row INSERT transactions into a table shaped like the store's kv."""
    db = _sqlite(path)
    try:
        db.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, create_rev INTEGER NOT NULL, "
                   "mod_rev INTEGER NOT NULL, value BLOB NOT NULL) WITHOUT ROWID")
        start = time.perf_counter()
        deadline = start + limit_s
        done = 0
        for i in range(n):
            db.execute("BEGIN")
            db.execute("INSERT INTO kv VALUES (?, ?, ?, ?)",
                       (f"/registry/secrets/bench/b{i:07d}", i + 1, i + 1, value))
            db.execute("COMMIT")
            done += 1
            if i % 256 == 0 and time.perf_counter() > deadline:
                break
        return done / (time.perf_counter() - start)
    finally:
        db.close()


def store_shaped_sqlite(path: Path, n: int, value: bytes, limit_s: float) -> float:
    """Writes/s of the SQL the store runs for one create: read the key, write kv and log, bump
    the revision, all in one BEGIN IMMEDIATE transaction (no Python layer around it)."""
    db = _sqlite(path)
    try:
        db.executescript("""
            CREATE TABLE log (key TEXT NOT NULL, rev INTEGER NOT NULL, create_rev INTEGER NOT
              NULL, deleted INTEGER NOT NULL, value BLOB NOT NULL, PRIMARY KEY (key, rev))
              WITHOUT ROWID;
            CREATE INDEX log_by_rev ON log (rev);
            CREATE TABLE kv (key TEXT PRIMARY KEY, create_rev INTEGER NOT NULL,
              mod_rev INTEGER NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;
            CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
            INSERT INTO meta VALUES ('revision', 0);""")
        start = time.perf_counter()
        deadline = start + limit_s
        done = 0
        for i in range(n):
            key, rev = f"/registry/secrets/bench/b{i:07d}", i + 1
            db.execute("BEGIN IMMEDIATE")
            db.execute("SELECT key, value, create_rev, mod_rev FROM kv WHERE key = ?",
                       (key,)).fetchone()
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?)", (key, rev, rev, value))
            db.execute("INSERT OR REPLACE INTO log VALUES (?, ?, ?, 0, ?)",
                       (key, rev, rev, value))
            db.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (rev,))
            db.execute("COMMIT")
            done += 1
            if i % 256 == 0 and time.perf_counter() > deadline:
                break
        return done / (time.perf_counter() - start)
    finally:
        db.close()


async def podnet_store_txns(path: Path, n: int, value: bytes, limit_s: float) -> float:
    """Writes/s of podnet's own SqliteStore.txn (create-if-absent), in-process, no HTTP."""
    store = SqliteStore(path)
    try:
        start = time.perf_counter()
        deadline = start + limit_s
        done = 0
        for i in range(n):
            key = f"/registry/secrets/bench/b{i:07d}"
            r = await store.txn([Compare(key, 0)], [Put(key, value)])
            done += r.succeeded
            if i % 256 == 0 and time.perf_counter() > deadline:
                break
        return done / (time.perf_counter() - start)
    finally:
        await store.close()


def idle_rss_kb(code: str, settle: float = 0.5) -> int:
    """VmRSS of `python -c code` once it has printed its first line (its imports are done)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env, text=True)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(settle)
        return status_kb(proc.pid)
    finally:
        proc.kill()
        proc.wait(timeout=10)


# -- talking to the server ------------------------------------------------------------------------


@dataclass
class Api:
    base: str
    token: str
    tls: ssl.SSLContext

    @classmethod
    def from_state(cls, state: ClusterState) -> Api:
        config = state.load()
        tls = ssl.create_default_context(cafile=str(state.ca_crt))
        return cls(config.server_url, state.read_token(), tls)

    def session(self, connections: int) -> aiohttp.ClientSession:
        """Keep-alive connections, at most `connections` at once (0: no limit)."""
        conn = aiohttp.TCPConnector(limit=connections, ssl=self.tls, force_close=False)
        return aiohttp.ClientSession(
            connector=conn, timeout=aiohttp.ClientTimeout(total=60),
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json",
                     "User-Agent": "podnet-bench"})

    def collection(self, kind: str, ns: str) -> str:
        return f"{self.base}/api/v1/namespaces/{ns}/{kind}"


async def create_namespace(api: Api, ns: str) -> None:
    async with api.session(1) as s, s.post(
            f"{api.base}/api/v1/namespaces", data=orjson.dumps({"metadata": {"name": ns}}),
            headers={"Content-Type": "application/json"}) as r:
        body = await r.read()
        if r.status != 201:
            raise RuntimeError(f"creating namespace {ns}: {r.status} {body[:300]!r}")


async def get_rtt(api: Api, samples: int, warmup: int = 50) -> dict[str, float]:
    """Round trips of GET /api/v1/namespaces/default, one after the other, one connection."""
    url = f"{api.base}/api/v1/namespaces/default"
    times: list[float] = []
    async with api.session(1) as s:
        for i in range(warmup + samples):
            t0 = time.monotonic()
            async with s.get(url) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"GET {url}: {r.status}")
            if i >= warmup:
                times.append(time.monotonic() - t0)
    return ms_summary(times)


# -- creates/s ------------------------------------------------------------------------------------


@dataclass
class CreateRun:
    concurrency: int
    requested: int
    created: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    rate_total: float = 0.0  # created / wall time of the whole run
    rate_sustained: float = 0.0  # between the 10% and 90% completion marks
    rate_worst_1s: float = 0.0
    latency: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    server_cpu_ms_per_create: float = 0.0
    stopped_early: bool = False


async def create_run(api: Api, kind: str, ns: str, n: int, concurrency: int,
                     limit_s: float, server_pid: int) -> CreateRun:
    """POST `n` objects as fast as `concurrency` keep-alive connections allow (closed loop)."""
    run = CreateRun(concurrency, n)
    url = api.collection(kind, ns)
    counter = iter(range(n))
    done_at: list[float] = []
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    headers = {"Content-Type": "application/json"}
    deadline = time.monotonic() + limit_s

    async def worker(s: aiohttp.ClientSession) -> None:
        for i in counter:
            if time.monotonic() > deadline:
                run.stopped_early = True
                return
            body = orjson.dumps(make_object(kind, i))
            t0 = time.monotonic()
            try:
                async with s.post(url, data=body, headers=headers) as r:
                    await r.read()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError) as e:
                errors[type(e).__name__] += 1
                continue
            t1 = time.monotonic()
            if status == 201:
                done_at.append(t1)
                latencies.append(t1 - t0)
            else:
                errors[str(status)] += 1

    meter = CpuMeter(server_pid)
    async with api.session(concurrency) as s:
        with meter.measure():
            start = time.monotonic()
            await asyncio.gather(*(worker(s) for _ in range(concurrency)))
            run.seconds = time.monotonic() - start
    run.created = len(done_at)
    run.errors = dict(errors)
    run.rate_total = run.created / run.seconds if run.seconds else 0.0
    run.rate_sustained = sustained_rate(done_at)
    run.rate_worst_1s = worst_window(done_at, start)
    run.latency = ms_summary(latencies)
    run.cpu = meter.pct()
    run.server_cpu_ms_per_create = round(1000 * meter.server / max(run.created, 1), 3)
    return run


# -- watch latency --------------------------------------------------------------------------------


@dataclass
class WatchRun:
    watchers: int
    rate: float
    seconds: float
    objects_sent: int = 0
    objects_created: int = 0
    create_errors: dict[str, int] = field(default_factory=dict)
    achieved_rate: float = 0.0
    max_send_lag_ms: float = 0.0  # how far the paced sender fell behind its schedule
    deliveries_expected: int = 0
    deliveries: int = 0
    watchers_connected: int = 0
    watcher_errors: dict[str, int] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)  # per (watcher, event)
    latency_all_watchers: dict[str, float] = field(default_factory=dict)  # per event: the last
    post_latency: dict[str, float] = field(default_factory=dict)  # POST round trips meanwhile
    cpu: dict[str, float] = field(default_factory=dict)


class Watcher:
    """One watch stream; notes arrival - send for every ADDED event."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.seqs: list[int] = []
        self.connected = False

    async def run(self, s: aiohttp.ClientSession, url: str, rv: str, timeout_s: int,
                  connected: Callable[[], None]) -> None:
        params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": str(timeout_s)}
        async with s.get(url, params=params,
                         timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as r:
            if r.status != 200:
                raise RuntimeError(f"watch {url}: {r.status} {(await r.read())[:300]!r}")
            self.connected = True
            connected()
            while True:
                line = await r.content.readline()
                arrived = time.monotonic()
                if not line:
                    return
                ev = orjson.loads(line)
                if ev.get("type") != "ADDED":
                    continue
                meta = ev["object"]["metadata"]
                self.latencies.append(arrived - float(meta["annotations"][SENT]))
                self.seqs.append(int(meta["labels"][SEQ]))


async def paced_creates(api: Api, kind: str, ns: str, n: int, rate: float, run: WatchRun,
                        post_latencies: list[float], max_inflight: int = 64) -> None:
    """POST `n` objects at `rate`/s (open loop: a slow answer does not delay the next send)."""
    url = api.collection(kind, ns)
    headers = {"Content-Type": "application/json"}
    errors: Counter[str] = Counter()
    inflight = asyncio.Semaphore(max_inflight)
    lag = 0.0

    async def one(s: aiohttp.ClientSession, i: int) -> None:
        try:
            sent = time.monotonic()
            body = orjson.dumps(make_object(kind, i, sent))
            async with s.post(url, data=body, headers=headers) as r:
                await r.read()
                if r.status == 201:
                    run.objects_created += 1
                    post_latencies.append(time.monotonic() - sent)
                else:
                    errors[str(r.status)] += 1
        except (aiohttp.ClientError, TimeoutError) as e:
            errors[type(e).__name__] += 1
        finally:
            inflight.release()

    async with api.session(8) as s:
        tasks = []
        start = time.monotonic()
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                lag = max(lag, -delay)
            await inflight.acquire()
            tasks.append(asyncio.create_task(one(s, i)))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start
    run.objects_sent = n
    run.achieved_rate = round(run.objects_created / elapsed, 1) if elapsed else 0.0
    run.max_send_lag_ms = round(lag * 1000, 1)
    run.create_errors = dict(errors)


async def current_rv(api: Api, kind: str, ns: str) -> str:
    async with api.session(1) as s, s.get(api.collection(kind, ns),
                                          params={"limit": "1"}) as r:
        return str((await r.json())["metadata"]["resourceVersion"])


async def wait_connected(event: asyncio.Event, tasks: list[asyncio.Task[None]],
                         timeout: float) -> None:
    """Wait for `event` (every watch stream is open); fail at once if a watcher ends first."""
    waiter = asyncio.create_task(event.wait())
    try:
        done, _ = await asyncio.wait([waiter, *tasks], timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if waiter in done:
        return
    for t in done:
        t.result()  # raises what ended the watcher
    raise RuntimeError("a watch stream ended before every watcher was connected" if done else
                       f"the watchers were not all connected within {timeout:g}s")


async def watch_run(api: Api, kind: str, ns: str, watchers: int, rate: float, seconds: float,
                    server_pid: int, grace_s: float = 15.0) -> WatchRun:
    run = WatchRun(watchers, rate, seconds)
    n = max(1, int(rate * seconds))
    rv = await current_rv(api, kind, ns)
    url = api.collection(kind, ns)
    ws = [Watcher() for _ in range(watchers)]
    all_connected = asyncio.Event()
    count = 0

    def connected() -> None:
        nonlocal count
        count += 1
        if count == watchers:
            all_connected.set()

    post_latencies: list[float] = []
    meter = CpuMeter(server_pid)
    async with api.session(0) as s:
        tasks = [asyncio.create_task(w.run(s, url, rv, int(seconds + grace_s + 60), connected))
                 for w in ws]
        try:
            await wait_connected(all_connected, tasks, 30.0)
            await asyncio.sleep(0.5)  # the server registers each watch after sending headers
            with meter.measure():
                await paced_creates(api, kind, ns, n, rate, run, post_latencies)
                deadline = time.monotonic() + grace_s
                while time.monotonic() < deadline and any(
                        len(w.latencies) < run.objects_created for w in ws):
                    await asyncio.sleep(0.05)
        finally:
            for t in tasks:
                t.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
    run.watcher_errors = dict(Counter(type(r).__name__ for r in results
                                      if isinstance(r, BaseException)
                                      and not isinstance(r, asyncio.CancelledError)))
    run.watchers_connected = sum(w.connected for w in ws)
    run.deliveries_expected = run.objects_created * watchers
    run.deliveries = sum(len(w.latencies) for w in ws)
    run.latency = ms_summary([x for w in ws for x in w.latencies])
    last: dict[int, float] = {}
    for w in ws:
        for seq, lat in zip(w.seqs, w.latencies, strict=True):
            last[seq] = max(lat, last.get(seq, 0.0))
    run.latency_all_watchers = ms_summary(list(last.values()))
    run.post_latency = ms_summary(post_latencies)
    run.cpu = meter.pct()
    return run


# -- profiling the server (optional) --------------------------------------------------------------


class Profiler:
    """py-spy sampling the server during a phase (folded stacks), when --profile DIR is given.
    py-spy is started by us, as our child, and stopped with SIGINT (it then writes its file)."""

    def __init__(self, binary: str | None, out_dir: Path | None, pid: int) -> None:
        self.binary, self.out_dir, self.pid = binary, out_dir, pid
        self.files: dict[str, str] = {}

    @contextlib.asynccontextmanager
    async def phase(self, name: str) -> AsyncIterator[None]:
        if self.binary is None or self.out_dir is None:
            yield
            return
        path = self.out_dir / f"{name}.folded"
        proc = subprocess.Popen(
            [self.binary, "record", "--pid", str(self.pid), "--rate", "200", "--format", "raw",
             "--nonblocking", "--output", str(path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await asyncio.sleep(1.0)  # attaching takes a moment
            yield
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            if path.exists():
                self.files[name] = str(path)


def _frame(frame: str) -> tuple[str, bool]:
    """`func (path/to/file.py:123)` -> (`func (to/file.py)`, whether it is podnet's own code
    below the entry points): one entry per function."""
    func, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    ours = "podnet/" in where and not where.endswith(("cli/main.py", "server/main.py"))
    return (f"{func} ({'/'.join(where.split('/')[-2:])})" if where else func), ours


def hot_spots(folded: Path, top: int = 15) -> dict[str, Any]:
    """Where the server spent its samples, in % of all samples: the functions on top of the
    stack (self; native code, such as TLS and socket writes, counts for the Python function
    that called it), and podnet's own functions anywhere in the stack (inclusive)."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if f]
        total += n
        if frames:
            own[frames[-1][0]] += n
        for f in {name for name, ours in frames if ours}:
            incl[f] += n
    if not total:
        return {"samples": 0, "self": [], "inclusive": []}

    def pcts(c: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * k / total, 1)) for f, k in c.most_common(top)]

    return {"samples": total, "self": pcts(own), "inclusive": pcts(incl)}


# -- one run against one cluster ------------------------------------------------------------------


def mb(kb: int) -> float:
    return round(kb / 1024, 1)


async def load(api: Api, args: argparse.Namespace, server_pid: int,
               out: dict[str, Any]) -> None:
    prof = Profiler(args.py_spy if args.profile else None, args.profile, server_pid)
    log(f"GET round trips ({args.rtt_samples})")
    out["get_rtt"] = await get_rtt(api, args.rtt_samples)
    out["creates"] = []
    for c in args.concurrency:
        ns = f"bench-c{c}"
        await create_namespace(api, ns)
        log(f"creating {args.creates} {args.kind} over {c} connection(s)")
        async with prof.phase(f"creates-c{c}"):
            run = await create_run(api, args.kind, ns, args.creates, c, args.max_seconds,
                                   server_pid)
        log(f"  {run.created} created in {run.seconds:.1f}s: {run.rate_sustained:.0f}/s "
            f"sustained, server CPU {run.cpu['server_cpu_pct']}%, errors {run.errors}")
        out["creates"].append(asdict(run))
    out["rss_kb"]["after_creates"] = status_kb(server_pid)
    if args.single_watcher_seconds > 0:
        await create_namespace(api, "bench-watch1")
        log(f"watch floor: 1 watcher, {args.watch_rate:g} creates/s for "
            f"{args.single_watcher_seconds:g}s")
        one = await watch_run(api, args.kind, "bench-watch1", 1, args.watch_rate,
                              args.single_watcher_seconds, server_pid)
        out["watch_single"] = asdict(one)
    await create_namespace(api, "bench-watch")
    log(f"watch: {args.watchers} watchers, {args.watch_rate:g} creates/s for "
        f"{args.watch_seconds:g}s")
    async with prof.phase("watch"):
        wrun = await watch_run(api, args.kind, "bench-watch", args.watchers, args.watch_rate,
                               args.watch_seconds, server_pid)
    log(f"  {wrun.deliveries}/{wrun.deliveries_expected} deliveries, p50 "
        f"{wrun.latency['p50_ms']} ms, p99 {wrun.latency['p99_ms']} ms")
    out["watch"] = asdict(wrun)
    await asyncio.sleep(1.0)
    out["rss_kb"]["after_load"] = status_kb(server_pid)
    out["rss_kb"]["peak"] = status_kb(server_pid, "VmHWM")
    if prof.files:
        out["profile"] = {name: {"file": f, **hot_spots(Path(f))}
                          for name, f in prof.files.items()}


def baselines(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    value = stored_value(args.kind)
    n, limit = args.sqlite_writes, args.max_seconds
    log(f"baselines: SQLite write paths ({n} writes each, {len(value)}-byte values)")
    raw = raw_sqlite_inserts(scratch / "raw.db", n, value, limit)
    shaped = store_shaped_sqlite(scratch / "shaped.db", n, value, limit)
    store = asyncio.run(podnet_store_txns(scratch / "store.db", n, value, limit))
    log("baselines: idle RSS of a bare runtime")
    return {"value_bytes": len(value),
            "sqlite_insert_per_s": round(raw, 1),
            "sqlite_store_shaped_per_s": round(shaped, 1),
            "podnet_store_txn_per_s": round(store, 1),
            "bare_runtime_rss_kb": idle_rss_kb(BARE_RUNTIME),
            "podnet_imports_rss_kb": idle_rss_kb(PODNET_IMPORTS)}


def background_cpu_pct(seconds: float = 2.0) -> float:
    """CPU the rest of the machine uses while this process sleeps (other people's work), in %
    of one core: load that will compete with the server and skew the figures."""
    b, c = busy_cpu_seconds(), own_cpu_seconds()
    time.sleep(seconds)
    return round(100 * max(0.0, busy_cpu_seconds() - b - (own_cpu_seconds() - c)) / seconds, 1)


def wait_quiet(threshold: float | None, max_wait: float) -> float:
    """Wait (at most `max_wait` seconds) until other processes use at most `threshold`% of a
    core; returns the last reading. Without a threshold: one reading, no wait."""
    deadline = time.monotonic() + max_wait
    while True:
        bg = background_cpu_pct()
        if threshold is None or bg <= threshold:
            return bg
        if time.monotonic() >= deadline:
            log(f"the machine did not get quiet: other processes use {bg}% of a core")
            return bg
        log(f"other processes use {bg}% of a core; waiting for <= {threshold:g}%")


def run_once(args: argparse.Namespace, pinned: bool) -> dict[str, Any]:
    """Baselines, a fresh cluster, the load, and the cluster torn down whatever happens."""
    out: dict[str, Any] = {"pinned": pinned, "kind": args.kind, "rss_kb": {}}
    saved_affinity = os.sched_getaffinity(0)
    root = Path(tempfile.mkdtemp(prefix="podnet-bench-", dir="/tmp"))
    name = "bench" + secrets.token_hex(4)
    try:
        if pinned:
            pin(os.getpid(), {1})
        out["background_cpu_pct"] = wait_quiet(args.wait_quiet, args.wait_quiet_max)
        scratch = root / "baseline"
        scratch.mkdir()
        out["baselines"] = baselines(args, scratch)
        shutil.rmtree(scratch)
        log(f"bringing up cluster {name} under {root}")
        state = lifecycle.up(name, root, wait=30.0, port=ephemeral_port("127.0.0.1"),
                             out=io.StringIO())
        pid = state.read_pid()
        if pid is None:
            raise RuntimeError("the server wrote no pid file")
        out["server_pid"] = pid
        if pinned:
            pin(pid, {0})
        time.sleep(args.settle)
        out["rss_kb"]["idle"] = status_kb(pid)
        asyncio.run(interruptible(load(Api.from_state(state), args, pid, out)))
    finally:
        # A second Ctrl-C must not cut the teardown short: it is held until the end.
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            teardown(name, root)
        finally:
            if pinned:
                pin(os.getpid(), saved_affinity)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    return out


def teardown(name: str, root: Path) -> None:
    """Stop the cluster and remove its state root, whatever state it is in."""
    try:
        lifecycle.down(name, root, out=io.StringIO())
    finally:
        # Servers of this run only: the run's own state dir is on their command line.
        for p in lifecycle.find_servers(ClusterState.locate(name, root)):
            lifecycle.stop_process(p)
        shutil.rmtree(root, ignore_errors=True)


# -- the report -----------------------------------------------------------------------------------


def summarize(run: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of one run, with goals, baselines and ratios."""
    b = run["baselines"]
    best = max(run["creates"], key=lambda c: c["rate_sustained"])
    w, rtt = run["watch"], run["get_rtt"]
    idle, bare = run["rss_kb"]["idle"], b["bare_runtime_rss_kb"]
    raw = b["sqlite_insert_per_s"]

    def ratio(a: float, c: float) -> float:
        return round(a / c, 3) if c else 0.0

    return {
        "creates_per_s": {"value": round(best["rate_sustained"], 1),
                          "concurrency": best["concurrency"], "goal": GOAL_CREATES_PER_S,
                          "met": best["rate_sustained"] >= GOAL_CREATES_PER_S,
                          "baseline": raw, "ratio": ratio(best["rate_sustained"], raw),
                          "kine_anchor": KINE_RAW_SQLITE_ANCHOR,
                          "ratio_vs_kine_anchor": ratio(best["rate_sustained"],
                                                        KINE_RAW_SQLITE_ANCHOR)},
        "watch_p50_ms": {"value": w["latency"]["p50_ms"], "baseline": rtt["p50_ms"],
                         "ratio": ratio(w["latency"]["p50_ms"], rtt["p50_ms"])},
        "watch_p99_ms": {"value": w["latency"]["p99_ms"], "goal": GOAL_WATCH_P99_MS,
                         "met": 0 < w["latency"]["p99_ms"] <= GOAL_WATCH_P99_MS
                         and w["deliveries"] == w["deliveries_expected"],
                         "baseline": rtt["p99_ms"],
                         "ratio": ratio(w["latency"]["p99_ms"], rtt["p99_ms"])},
        "idle_rss_mb": {"value": mb(idle), "goal": GOAL_IDLE_RSS_MB,
                        "met": mb(idle) <= GOAL_IDLE_RSS_MB, "baseline": mb(bare),
                        "ratio": ratio(idle, bare)},
        "loaded_rss_mb": {"value": mb(run["rss_kb"]["after_load"]), "baseline": mb(bare),
                          "ratio": ratio(run["rss_kb"]["after_load"], bare)},
    }


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [_row(rows[0], widths), _row(["-" * w for w in widths], widths)]
    return "\n".join(lines + [_row(r, widths) for r in rows[1:]])


def verdict(met: bool | None) -> str:
    return "" if met is None else ("met" if met else "MISSED")


def single_watcher_line(run: dict[str, Any]) -> list[str]:
    one = run.get("watch_single")
    if not one:
        return []
    lat = one["latency"]
    return [f"  one watcher alone:   p50 {lat['p50_ms']}  p99 {lat['p99_ms']}  max "
            f"{lat['max_ms']} ({one['deliveries']}/{one['deliveries_expected']} deliveries at "
            f"{one['achieved_rate']:g}/s; server CPU {one['cpu']['server_cpu_pct']}%)"]


def report(run: dict[str, Any], info: dict[str, Any]) -> str:
    s = run["summary"]
    b = run["baselines"]
    c, w50, w99 = s["creates_per_s"], s["watch_p50_ms"], s["watch_p99_ms"]
    idle, loaded = s["idle_rss_mb"], s["loaded_rss_mb"]
    nw = run["watch"]["watchers"]
    mode = "server on core 0, load generator on core 1" if run["pinned"] else "unpinned"
    head = [f"== podnet API benchmark ({run['kind']}; {mode}) ==",
            f"{info['date']}; {info['nproc']} CPUs ({info['cpu']}); kernel {info['kernel']}; "
            f"Python {info['python']}; SQLite {info['sqlite']}",
            f"NOTE: the load generator runs on this machine and competes with the server for "
            f"its {info['nproc']} cores" + (" (pinned apart)." if run["pinned"] else ".")
            + f" Other processes used {run['background_cpu_pct']}% of a core just before the "
            "run (see 'other CPU' below).", ""]
    main = [["figure", "measured", "goal", "baseline (same run)", "ratio", ""],
            [f"creates/s, best sustained (c={c['concurrency']})", f"{c['value']:.0f}/s",
             f">= {GOAL_CREATES_PER_S:.0f}/s", f"raw SQLite INSERT txn {c['baseline']:.0f}/s",
             f"{c['ratio']:.3f}x", verdict(c["met"])],
            ["", "", "", f"kine's raw SQLite anchor ~{c['kine_anchor']:.0f}/s",
             f"{c['ratio_vs_kine_anchor']:.3f}x", ""],
            [f"watch latency p50 ({nw} watchers)", f"{w50['value']:.2f} ms", "",
             f"GET round trip p50 {w50['baseline']:.2f} ms", f"{w50['ratio']:.1f}x", ""],
            [f"watch latency p99 ({nw} watchers)", f"{w99['value']:.2f} ms",
             f"<= {GOAL_WATCH_P99_MS:.0f} ms", f"GET round trip p99 {w99['baseline']:.2f} ms",
             f"{w99['ratio']:.1f}x", verdict(w99["met"])],
            ["server RSS, idle after start-up", f"{idle['value']:.1f} MB",
             f"<= {GOAL_IDLE_RSS_MB:.0f} MB", f"bare runtime {idle['baseline']:.1f} MB",
             f"{idle['ratio']:.2f}x", verdict(idle["met"])],
            ["server RSS, after the load", f"{loaded['value']:.1f} MB", "",
             f"bare runtime {loaded['baseline']:.1f} MB", f"{loaded['ratio']:.2f}x", ""]]
    curve = [["connections", "created", "errors", "seconds", "overall/s", "sustained/s",
              "worst 1s", "POST p50", "POST p99", "server CPU", "bench CPU", "other CPU",
              "server CPU/create"]]
    for r in run["creates"]:
        curve.append([str(r["concurrency"]), f"{r['created']}/{r['requested']}",
                      str(sum(r["errors"].values())), f"{r['seconds']:.1f}",
                      f"{r['rate_total']:.0f}", f"{r['rate_sustained']:.0f}",
                      f"{r['rate_worst_1s']:.0f}", f"{r['latency']['p50_ms']:.2f} ms",
                      f"{r['latency']['p99_ms']:.2f} ms",
                      f"{r['cpu']['server_cpu_pct']:.0f}% ({r['cpu']['server_sys_pct']:.0f}% sys)",
                      f"{r['cpu']['client_cpu_pct']:.0f}%", f"{r['cpu']['other_cpu_pct']:.0f}%",
                      f"{r['server_cpu_ms_per_create']:.2f} ms"])
    wr = run["watch"]
    lat, last = wr["latency"], wr["latency_all_watchers"]
    watch = [
        f"watch: {wr['watchers_connected']}/{wr['watchers']} watchers connected; "
        f"{wr['objects_created']}/{wr['objects_sent']} objects created at "
        f"{wr['achieved_rate']:g}/s (asked {wr['rate']:g}/s for {wr['seconds']:g}s, sender "
        f"lag max {wr['max_send_lag_ms']:g} ms, errors {wr['create_errors'] or 'none'})",
        f"  deliveries {wr['deliveries']}/{wr['deliveries_expected']}; watcher errors "
        f"{wr['watcher_errors'] or 'none'}",
        f"  per delivery (ms):   p50 {lat['p50_ms']}  p90 {lat['p90_ms']}  p99 "
        f"{lat['p99_ms']}  p99.9 {lat['p999_ms']}  max {lat['max_ms']}",
        f"  until all watchers:  p50 {last['p50_ms']}  p99 {last['p99_ms']}  max "
        f"{last['max_ms']}",
        f"  POSTs meanwhile:     p50 {wr['post_latency']['p50_ms']}  p99 "
        f"{wr['post_latency']['p99_ms']}",
        *single_watcher_line(run),
        f"  CPU: server {wr['cpu']['server_cpu_pct']}% ({wr['cpu']['server_sys_pct']}% in the "
        f"kernel), bench {wr['cpu']['client_cpu_pct']}%, "
        f"other processes {wr['cpu']['other_cpu_pct']}% of one core",
        "  (latency = time.monotonic() at the watcher's read minus at the send, "
        "both in this process)"]
    rss = run["rss_kb"]
    other = [
        f"SQLite write paths, {b['value_bytes']}-byte values, one transaction per write: raw "
        f"INSERT {b['sqlite_insert_per_s']:.0f}/s; the store's SQL for a create "
        f"{b['sqlite_store_shaped_per_s']:.0f}/s; podnet SqliteStore.txn "
        f"{b['podnet_store_txn_per_s']:.0f}/s (kine's raw SQLite anchor: "
        f"~{KINE_RAW_SQLITE_ANCHOR:.0f}/s)",
        f"RSS: server idle {mb(rss['idle'])} MB, after creates {mb(rss['after_creates'])} MB, "
        f"after watch {mb(rss['after_load'])} MB, peak {mb(rss['peak'])} MB; bare runtime "
        f"{mb(b['bare_runtime_rss_kb'])} MB; a process that only imports podnet.server "
        f"{mb(b['podnet_imports_rss_kb'])} MB",
        f"GET round trip (idle server, one connection): p50 {run['get_rtt']['p50_ms']} ms, "
        f"p99 {run['get_rtt']['p99_ms']} ms"]
    prof = []
    for phase, p in (run.get("profile") or {}).items():
        prof += ["", f"server profile, {phase} (py-spy, % of {p['samples']} samples; "
                 f"{p['file']}):",
                 "  self:      " + "; ".join(f"{f} {x}%" for f, x in p["self"][:10]),
                 "  podnet code, inclusive: "
                 + "; ".join(f"{f} {x}%" for f, x in p["inclusive"][:15])]
    return "\n".join([*head, table(main), "", "creates, by number of keep-alive connections:",
                      table(curve), "", *watch, "", *other, *prof])


# -- the command ----------------------------------------------------------------------------------


def positive_ints(text: str) -> list[int]:
    values = [int(x) for x in text.split(",") if x.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.api_bench",
                                description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument("--pin", nargs="?", const="on", default="off", choices=("off", "on", "both"),
                   help="on: server on core 0, this process on core 1; both: run unpinned, "
                   "then pinned (a fresh cluster each)")
    p.add_argument("--kind", default="secrets", choices=("secrets", "configmaps", "services"))
    p.add_argument("--creates", type=int, default=5000, help="objects per concurrency level")
    p.add_argument("--concurrency", type=positive_ints, default=[1, 4, 16],
                   help="keep-alive connections to try, comma-separated (default 1,4,16)")
    p.add_argument("--max-seconds", type=float, default=120.0,
                   help="stop any one create run or SQLite baseline after this long")
    p.add_argument("--watchers", type=int, default=100)
    p.add_argument("--watch-rate", type=float, default=100.0, help="creates/s during the watch")
    p.add_argument("--watch-seconds", type=float, default=15.0)
    p.add_argument("--single-watcher-seconds", type=float, default=5.0, metavar="SECONDS",
                   help="first, the same paced creates with one watcher for this long: the "
                   "latency without fan-out (0: skip)")
    p.add_argument("--rtt-samples", type=int, default=1000)
    p.add_argument("--sqlite-writes", type=int, default=20000)
    p.add_argument("--wait-quiet", type=float, metavar="PCT",
                   help="before each run, wait until other processes use at most PCT%% of a "
                   "core (the machine may be shared)")
    p.add_argument("--wait-quiet-max", type=float, default=300.0, metavar="SECONDS",
                   help="give up waiting for quiet after this long, and run anyway")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="sample the server with py-spy during each phase and write folded "
                   "stacks to DIR (this perturbs the figures: use a separate run)")
    p.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy", metavar="BIN",
                   help="the py-spy binary for --profile (default: py-spy on PATH)")
    p.add_argument("--settle", type=float, default=2.0,
                   help="seconds to wait after start-up before reading the idle RSS")
    args = p.parse_args(argv)
    if args.creates < 10 or args.watchers < 1 or args.watch_rate <= 0 or \
            args.watch_seconds <= 0 or args.rtt_samples < 1 or args.sqlite_writes < 1:
        p.error("counts, rates and durations must be positive (and --creates at least 10)")
    if args.creates * len(args.concurrency) > 200_000 or args.watch_rate * args.watch_seconds \
            > 20_000 or args.watchers > 1000:
        p.error("that much load is more than this benchmark is meant to generate")
    if args.profile is not None:
        if shutil.which(args.py_spy) is None:
            p.error(f"--profile needs py-spy ({args.py_spy} not found; pip install py-spy into "
                    "a venv of its own and pass --py-spy PATH)")
        args.profile.mkdir(parents=True, exist_ok=True)
    if args.pin != "off" and len(os.sched_getaffinity(0)) < 2:
        p.error("--pin needs at least two usable CPUs")
    return args


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


async def interruptible(coro: Awaitable[None]) -> None:
    """Run `coro`; SIGINT or SIGTERM cancel it (so every `finally` and `async with` closes
    connections and tasks) and then raise KeyboardInterrupt."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    interrupted = False

    def stop() -> None:
        nonlocal interrupted
        interrupted = True
        task.cancel()

    for sig in SIGNALS:
        loop.add_signal_handler(sig, stop)
    try:
        await coro
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt("interrupted") from None
        raise
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
            signal.signal(sig, _terminate)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    for sig in SIGNALS:  # also when started with SIGINT ignored (`&` in a script)
        signal.signal(sig, _terminate)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    info = machine()
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.pin]
    runs = []
    try:
        for pinned in modes:
            run = run_once(args, pinned)
            run["summary"] = summarize(run)
            runs.append(run)
            print(report(run, info), flush=True)
            print(flush=True)
    except KeyboardInterrupt:
        log("interrupted; the cluster was torn down")
        return 130
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "runs": runs}, indent=2) + "\n")
        log(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
