"""Service proxy benchmark: full sync of 10,000 Services and one Service's change, in one run.

    .venv/bin/python -m bench.proxy_bench [--services 10000] [--changes 100] [--json FILE]

Everything happens in one network namespace this run creates, `podnet-bench<hex>-node-1` (a
node's name, from podnet/lab/names.py), deleted at the end whatever happens (errors, Ctrl-C,
SIGTERM; a second Ctrl-C waits for the deletion). Root is needed.

  full sync       compile 10,000 Services x 2 endpoints (podnet.proxy.model), render the whole
                  table (podnet.proxy.render.full) and load it with one `nft -f` through
                  podnet.proxy.nft.apply, as the proxier's first sync does; goal <= 1 s
                  vs one `nft -f` loading the same number of elements into a bare named map
                  (`ipv4_addr : ipv4_addr`, no rules): the floor of any table layout
  change          one Service's EndpointSlice changes (scaled from 2 to 3 endpoints, or its 2
                  endpoints replaced) with 10,000 present, through podnet.proxy.proxier.Proxier:
                  from handing it the slice until its sync's `nft -f` has returned; goal p99
                  <= 30 ms
                  vs `nft -f` of a single no-op element add into the same table: the cost of
                  starting nft at all

Rounds of a phase alternate the order of ours and the baseline so that other load falls on
both alike. Once, the kernel's element count in every set and map is checked against the
model's. Not a test: nothing asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: import this checkout's podnet
    sys.path.insert(0, str(REPO))

from bench.api_bench import (  # noqa: E402
    SIGNALS,
    _terminate,
    busy_cpu_seconds,
    interruptible,
    log,
    machine,
    percentile,
    table,
    verdict,
    wait_quiet,
)
from podnet.kernel import netns  # noqa: E402
from podnet.lab import names  # noqa: E402
from podnet.proxy import model, nft, proxier, render  # noqa: E402

GOAL_FULL_SYNC_S = 1.0
GOAL_CHANGE_P99_MS = 30.0
NODES = 3  # endpoints are spread over node-1..node-3; the table is node-1's
Obj = dict[str, Any]


# -- the cluster's objects ----------------------------------------------------------------------


def cluster_ip(i: int) -> str:
    """The i-th ClusterIP, from 10.96.1.0 on (inside the default service CIDR 10.96.0.0/12)."""
    n = i + 256
    return f"10.96.{n // 256}.{n % 256}"


def pod_ip(j: int) -> str:
    """The j-th pod IP, 10.244.1.2 on, 250 per /24 (inside the cluster CIDR)."""
    return f"10.244.{j // 250 % 250 + 1}.{j % 250 + 2}"


def service(i: int) -> Obj:
    return {"metadata": {"namespace": "default", "name": f"s{i}"},
            "spec": {"clusterIP": cluster_ip(i), "clusterIPs": [cluster_ip(i)],
                     "ports": [{"name": "", "port": 80, "protocol": "TCP",
                                "targetPort": 8080}]}}


def endpoint_slice(i: int, ips: Sequence[str]) -> Obj:
    """Service i's one slice; endpoints on node-1..node-3 in turn, all ready."""
    return {"metadata": {"namespace": "default", "name": f"s{i}-x", "uid": f"uid-s{i}",
                         "labels": {model.SERVICE_NAME_LABEL: f"s{i}"}},
            "addressType": "IPv4", "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True},
                           "nodeName": names.node_name(1 + (i + k) % NODES)}
                          for k, ip in enumerate(ips)]}


def world(n: int, eps: int) -> tuple[list[Obj], list[Obj]]:
    services = [service(i) for i in range(n)]
    slices = [endpoint_slice(i, [pod_ip(i * eps + k) for k in range(eps)]) for i in range(n)]
    return services, slices


def changed_slice(i: int, eps: int) -> Obj:
    """The i-th change, to Service i: even i scale it to eps + 1 endpoints, odd i replace its
    endpoints with eps new ones (new pods). New IPs come from 10.244.251.0 on, unused."""
    count = eps + 1 if i % 2 == 0 else eps
    base = 251 * 250 + i * (eps + 1)
    return endpoint_slice(i, [f"10.244.{(base + k) // 250 % 5 + 251}.{(base + k) % 250 + 2}"
                              for k in range(count)])


def element_counts(ruleset: model.Ruleset) -> dict[str, int]:
    """Elements per set or map, named as in the table (affinity chains aside)."""
    out: dict[str, int] = {}
    for obj, entries in ruleset.by_object().items():
        if obj not in (model.CHAIN, model.TIMED_SET):
            for key in entries:
                name = render.table_object(obj, key)
                out[name] = out.get(name, 0) + 1
    return dict(sorted(out.items()))


# -- baselines' scripts -------------------------------------------------------------------------


def bare_map_script(table_ref: str, count: int) -> str:
    """One transaction: a table with one bare named map and `count` elements in it."""
    keys = [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(count)]
    lines = [f"table {table_ref}", f"delete table {table_ref}",
             f"table {table_ref} {{\n\tmap m {{\n\t\ttype ipv4_addr : ipv4_addr\n\t}}\n}}"]
    for i in range(0, count, render.CHUNK):
        chunk = ", ".join(f"{k} : {k}" for k in keys[i:i + render.CHUNK])
        lines.append(f"add element {table_ref} m {{ {chunk} }}")
    return "\n".join(lines) + "\n"


def noop_add_script(t: render.Table, ip: str) -> str:
    """`add` of an element that is already there: a transaction that changes nothing."""
    return f"add element {t.ref} cluster-ips {{ {ip} }}\n"


# -- timing -------------------------------------------------------------------------------------


def ms_stats(seconds: Sequence[float]) -> dict[str, float]:
    s = sorted(seconds)
    return {"n": len(s), "p50_ms": round(percentile(s, 50) * 1000, 2),
            "p90_ms": round(percentile(s, 90) * 1000, 2),
            "p99_ms": round(percentile(s, 99) * 1000, 2),
            "max_ms": round((s[-1] if s else 0.0) * 1000, 2)}


@contextlib.contextmanager
def nft_timer(into: list[float]) -> Iterator[None]:
    """Note how long each nft.apply (as the proxier calls it) takes, while inside."""
    real: Callable[..., Awaitable[None]] = nft.apply

    async def timed(ns: str, script: str, **kw: Any) -> None:
        t0 = time.perf_counter()
        try:
            await real(ns, script, **kw)
        finally:
            into.append(time.perf_counter() - t0)

    nft.apply = timed
    try:
        yield
    finally:
        nft.apply = real  # type: ignore[assignment]


def own_and_children() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class CpuWindow:
    """Other processes' CPU over a phase, in % of one core (this process and the nft it waited
    for excluded)."""

    def __init__(self) -> None:
        self.t0, self.busy0, self.own0 = time.monotonic(), busy_cpu_seconds(), own_and_children()

    def other_pct(self) -> float:
        wall = time.monotonic() - self.t0
        other = busy_cpu_seconds() - self.busy0 - (own_and_children() - self.own0)
        return round(100 * max(0.0, other) / wall, 1) if wall else 0.0


# -- the phases ---------------------------------------------------------------------------------


async def full_sync_phase(ns: str, t: render.Table, floor_ref: str, node: model.NodeInfo,
                          services: list[Obj], slices: list[Obj], rounds: int,
                          ) -> tuple[dict[str, Any], model.Ruleset]:
    """`rounds` full syncs of our table and as many loads of the bare map, alternating which
    goes first; each into a namespace with neither table (the first into a fresh one). Our
    table is left loaded."""
    cpu = CpuWindow()
    ours: list[dict[str, float]] = []
    floor: list[float] = []
    ruleset = model.Ruleset()
    bare = ""
    for r in range(rounds):
        for which in ((0, 1) if r % 2 == 0 else (1, 0)):
            if which == 0:
                if r:
                    await nft.apply(ns, render.delete(t))
                t0 = time.perf_counter()
                with proxier.gc_paused():  # as the proxier's own full sync does
                    ruleset = model.compile_services(services, slices, node)
                    t1 = time.perf_counter()
                    script = render.full(t, ruleset)
                    t2 = time.perf_counter()
                await nft.apply(ns, script)
                t3 = time.perf_counter()
                ours.append({"compile_s": t1 - t0, "render_s": t2 - t1, "nft_s": t3 - t2,
                             "total_s": t3 - t0, "script_bytes": len(script)})
            else:
                if not bare:  # round 0 runs ours first: `ruleset` is there
                    bare = bare_map_script(floor_ref,
                                           sum(element_counts(ruleset).values()))
                t0 = time.perf_counter()
                await nft.apply(ns, bare)
                floor.append(time.perf_counter() - t0)
                await nft.apply(ns, f"delete table {floor_ref}\n")
        log(f"full sync round {r + 1}/{rounds}: {ours[-1]['total_s']:.3f} s "
            f"(bare map {floor[-1]:.3f} s)")
    counts = element_counts(ruleset)
    out = {"rounds": ours, "bare_map_s": floor, "elements": counts,
           "elements_total": sum(counts.values()), "other_cpu_pct": cpu.other_pct()}
    return out, ruleset


async def change_phase(ns: str, t: render.Table, node: model.NodeInfo, services: list[Obj],
                       slices: list[Obj], changes: int, eps: int, pause: float,
                       ) -> tuple[dict[str, Any], proxier.Proxier]:
    """A Proxier holding every Service: its full sync over the loaded table, then `changes`
    one-Service changes, each beside one no-op `nft -f` (alternating which goes first)."""
    px = proxier.Proxier(ns, t, node)
    for svc in services:
        px.on_service("ADDED", svc)
    for s in slices:
        px.on_slice("ADDED", s)
    t0 = time.perf_counter()
    await px.sync()  # full: replaces the table loaded by the last round
    resync = time.perf_counter() - t0
    cpu = CpuWindow()
    total: list[float] = []
    in_nft: list[float] = []
    floor: list[float] = []
    chain_rewrites: list[int] = []
    noop = noop_add_script(t, cluster_ip(0))
    apply = nft.apply  # the floor's own calls, not counted by the timer below
    with nft_timer(in_nft):
        for i in range(changes):
            for which in ((0, 1) if i % 2 == 0 else (1, 0)):
                if which == 0:
                    before = px.ruleset.dispatch_objs()
                    new = changed_slice(i, eps)
                    a = time.perf_counter()
                    px.on_slice("MODIFIED", new)
                    await px.sync()
                    total.append(time.perf_counter() - a)
                    if px.ruleset.dispatch_objs() != before:
                        chain_rewrites.append(i)
                else:
                    a = time.perf_counter()
                    await apply(ns, noop)
                    floor.append(time.perf_counter() - a)
            if pause:
                await asyncio.sleep(pause)
    out = {"full_resync_existing_s": resync, "total_s": total, "in_nft_s": in_nft,
           "floor_s": floor,
           "chain_rewrites": chain_rewrites, "other_cpu_pct": cpu.other_pct(),
           "coalesce_ms": proxier.COALESCE * 1000}
    return out, px


def kernel_counts(ns: str, t: render.Table) -> dict[str, int]:
    """Elements per set and map of the table, as the kernel lists them."""
    out = netns.run(netns.exec_argv(ns, ["nft", "-j", "list", "table", "ip", t.name]),
                    timeout=120).stdout
    counts: dict[str, int] = {}
    for item in json.loads(out)["nftables"]:
        for kind in ("set", "map"):
            if kind in item:
                counts[item[kind]["name"]] = len(item[kind].get("elem", []))
    return {k: v for k, v in sorted(counts.items()) if v}


async def measure(args: argparse.Namespace, ns: str, cluster: str, run: dict[str, Any]) -> None:
    node = model.NodeInfo(names.node_name(1))
    t = render.Table.for_node(cluster, node)
    services, slices = world(args.services, args.endpoints)
    log(f"{args.services} Services x {args.endpoints} endpoints; table {t.ref} in {ns}")
    run["full"], _ = await full_sync_phase(ns, t, f"ip {t.name}-floor", node, services, slices,
                                           args.rounds)
    run["change"], px = await change_phase(ns, t, node, services, slices, args.changes,
                                           args.endpoints, args.pause)
    want, got = element_counts(px.ruleset), kernel_counts(ns, t)
    run["kernel_check"] = {"model": want, "kernel": got, "equal": want == got}


# -- the report ---------------------------------------------------------------------------------


def ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else 0.0


def summarize(run: dict[str, Any]) -> dict[str, Any]:
    full, ch = run["full"], run["change"]
    totals = sorted(r["total_s"] for r in full["rounds"])
    best, worst, floor = totals[0], totals[-1], min(full["bare_map_s"])
    ours, base = ms_stats(ch["total_s"]), ms_stats(ch["floor_s"])
    return {
        "full_sync_s": {"best": round(best, 3), "worst": round(worst, 3),
                        "goal": GOAL_FULL_SYNC_S, "met": worst <= GOAL_FULL_SYNC_S,
                        "baseline_best": round(floor, 3), "ratio": ratio(best, floor)},
        "full_sync_nft_s": {"best": round(min(r["nft_s"] for r in full["rounds"]), 3),
                            "ratio": ratio(min(r["nft_s"] for r in full["rounds"]), floor)},
        "change_ms": ours, "change_in_nft_ms": ms_stats(ch["in_nft_s"]), "floor_ms": base,
        "change_p50_ratio": ratio(ours["p50_ms"], base["p50_ms"]),
        "change_p99_ratio": ratio(ours["p99_ms"], base["p99_ms"]),
        "change_p99_met": ours["p99_ms"] <= GOAL_CHANGE_P99_MS,
    }


def report(run: dict[str, Any], info: dict[str, Any]) -> str:
    s, full, ch = run["summary"], run["full"], run["change"]
    fs, c, f = s["full_sync_s"], s["change_ms"], s["floor_ms"]
    n_el = full["elements_total"]
    head = [f"== podnet service proxy benchmark ({run['services']} Services x "
            f"{run['endpoints']} endpoints; namespace {run['netns']}) ==",
            f"{info['date']}; {info['nproc']} CPUs ({info['cpu']}); kernel {info['kernel']}; "
            f"Python {info['python']}; {info['nft']}; event loop {info['loop']}",
            f"Other processes used {run['background_cpu_pct']}% of a core just before the run, "
            f"{full['other_cpu_pct']}% during the full syncs and {ch['other_cpu_pct']}% during "
            "the changes.", ""]
    rows = [["figure", "measured", "goal", "baseline (same run)", "ratio", ""],
            [f"full sync, {run['rounds']} rounds (best / worst)",
             f"{fs['best']:.3f} / {fs['worst']:.3f} s", f"<= {GOAL_FULL_SYNC_S:g} s",
             f"bare map, {n_el} elements, best {fs['baseline_best']:.3f} s",
             f"{fs['ratio']:.2f}x", verdict(fs["met"])],
            ["  of which nft -f (best)", f"{s['full_sync_nft_s']['best']:.3f} s", "",
             "", f"{s['full_sync_nft_s']['ratio']:.2f}x", ""],
            [f"one Service's change, p50 (n={c['n']})", f"{c['p50_ms']:.1f} ms", "",
             f"no-op nft -f p50 {f['p50_ms']:.1f} ms", f"{s['change_p50_ratio']:.2f}x", ""],
            [f"one Service's change, p99 (n={c['n']})", f"{c['p99_ms']:.1f} ms",
             f"<= {GOAL_CHANGE_P99_MS:g} ms", f"no-op nft -f p99 {f['p99_ms']:.1f} ms",
             f"{s['change_p99_ratio']:.2f}x", verdict(s["change_p99_met"])]]
    rounds = [["round", "compile", "render", "nft -f", "total", "script", "bare map nft -f"]]
    for k, (r, b) in enumerate(zip(full["rounds"], full["bare_map_s"], strict=True)):
        rounds.append([str(k + 1), f"{r['compile_s']:.3f} s", f"{r['render_s']:.3f} s",
                       f"{r['nft_s']:.3f} s", f"{r['total_s']:.3f} s",
                       f"{r['script_bytes'] / 1e6:.1f} MB", f"{b:.3f} s"])
    nf = s["change_in_nft_ms"]
    kc = run["kernel_check"]
    tail = [
        "elements: " + ", ".join(f"{k} {v}" for k, v in full["elements"].items())
        + f" (total {n_el}); round 1 into the fresh namespace, later rounds after `delete "
        "table` (not timed), ours and the bare map in alternating order",
        f"full sync by Proxier.sync over the loaded table (replace in one transaction): "
        f"{ch['full_resync_existing_s']:.3f} s",
        f"change, all (ms): p50 {c['p50_ms']}  p90 {c['p90_ms']}  p99 {c['p99_ms']}  max "
        f"{c['max_ms']}; of which in nft -f: p50 {nf['p50_ms']}  p99 {nf['p99_ms']}  max "
        f"{nf['max_ms']}",
        f"no-op nft -f (ms): p50 {f['p50_ms']}  p90 {f['p90_ms']}  p99 {f['p99_ms']}  max "
        f"{f['max_ms']}",
        f"changes that brought an endpoint count into use (the services chain rewritten): "
        f"{len(ch['chain_rewrites'])} (change {', '.join(map(str, ch['chain_rewrites'])) or '-'})",
        f"not included: the proxier's coalescing wait of {ch['coalesce_ms']:g} ms before a sync, "
        "and the watch delivery from the API server",
        f"kernel elements == model: {'yes' if kc['equal'] else 'NO'} "
        + ("" if kc["equal"] else f"(model {kc['model']}, kernel {kc['kernel']})"),
        f"namespaces of this run left after teardown: {run['netns_left'] or 'none'}"]
    return "\n".join([*head, table(rows), "", table(rounds), "", *tail])


# -- the command ----------------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.proxy_bench",
                                description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--services", type=int, default=10_000)
    p.add_argument("--endpoints", type=int, default=2, help="endpoints per Service")
    p.add_argument("--rounds", type=int, default=3, help="full syncs (and bare-map loads)")
    p.add_argument("--changes", type=int, default=100, help="one-Service changes measured")
    p.add_argument("--pause", type=float, default=0.02, help="seconds between two changes")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                   help="the event loop (the agent runs on uvloop)")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument("--wait-quiet", type=float, metavar="PCT",
                   help="first wait until other processes use at most PCT%% of a core")
    p.add_argument("--wait-quiet-max", type=float, default=300.0, metavar="SECONDS")
    args = p.parse_args(argv)
    if not 1 <= args.services <= 50_000 or not 1 <= args.endpoints <= 10 or \
            not 1 <= args.rounds <= 10 or not 1 <= args.changes <= min(1000, args.services) \
            or not 0 <= args.pause <= 1:
        p.error("--services 1..50000, --endpoints 1..10, --rounds 1..10, "
                "--changes 1..min(1000, services), --pause 0..1")
    if os.geteuid() != 0:
        p.error("this benchmark creates a network namespace: run it as root")
    return args


def tool_version(argv: list[str]) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    return "unknown"


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    for sig in SIGNALS:
        signal.signal(sig, _terminate)
    info = machine()
    info["nft"] = tool_version(["nft", "--version"])
    info["loop"] = args.loop
    if args.loop == "uvloop":
        import uvloop  # the agent's event loop (podnet.daemon)

        uvloop.install()
    cluster = "bench" + secrets.token_hex(4)
    ns = names.node_netns(cluster, names.node_name(1))
    run: dict[str, Any] = {"services": args.services, "endpoints": args.endpoints,
                           "rounds": args.rounds, "netns": ns}
    try:
        try:
            run["background_cpu_pct"] = wait_quiet(args.wait_quiet, args.wait_quiet_max)
            netns.add(ns)
            asyncio.run(interruptible(measure(args, ns, cluster, run)))
        finally:
            # A second Ctrl-C must not cut the teardown short: it is held until the end.
            signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
            try:
                netns.delete(ns)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    except KeyboardInterrupt:
        log(f"interrupted; namespace {ns} deleted")
        return 130
    run["netns_left"] = [n for n in netns.names() if names.owns_netns(cluster, n)]
    run["summary"] = summarize(run)
    print(report(run, info), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "run": run}, indent=2) + "\n")
        log(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
