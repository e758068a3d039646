"""How long one nft transaction takes to apply: in-process (libnftables: podnet.kernel.libnft,
what podnet.proxy.nft.apply uses) against an `ip netns exec … nft -f -` process
(podnet.proxy.nft.apply_process), in one run.

    .venv/bin/python -m bench.nft_apply_bench [--elements 20000] [--changes 200] [--json FILE]

One network namespace, `podnet-bench<hex>-node-1`, made for the run and deleted at the end
whatever happens (errors, Ctrl-C, SIGTERM). Needs root. Not a test: nothing asserts.

The table is the proxy's kind of dispatch, but self-contained (podnet.proxy's own rendering is
not used, so this keeps working while that changes): a named concatenated map
`ipv4_addr . inet_service . ipv4_addr . inet_service` holding `--elements` endpoints
(20,000: 10,000 Services x 2) and a set of the 10,000 service IPs, loaded once each way (the
process's copy deleted first). Then, alternating the order one by one, each way:

  change   one Service's endpoints replaced: delete its 2 map elements, add 3 new ones (what
           one EndpointSlice change does to the map)
  no-op    add an element that is there already (the cost of applying anything at all)

Each transaction is undone, untimed, before the next, so the table stays the same size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: import this checkout's podnet
    sys.path.insert(0, str(REPO))

from bench.api_bench import (  # noqa: E402
    SIGNALS,
    _terminate,
    interruptible,
    log,
    machine,
    percentile,
    wait_quiet,
)
from bench.proxy_bench import tool_version  # noqa: E402
from podnet.kernel import libnft, netns  # noqa: E402
from podnet.lab import names  # noqa: E402
from podnet.proxy import nft  # noqa: E402

TABLE = "podnet-bench"
CHUNK = 1000
Apply = Callable[[str, str], Awaitable[None]]


def vip(i: int) -> str:
    n = i + 256
    return f"10.96.{n // 256 % 256}.{n % 256}"


def endpoint(j: int) -> str:
    return f"10.244.{j // 250 % 250 + 1}.{j % 250 + 2}"


def element(i: int, ep: str) -> str:
    return f"{vip(i)} . 80 . {ep} . 8080"


def table_script(services: int, per_service: int) -> str:
    lines = [f"table ip {TABLE}", f"delete table ip {TABLE}",
             f"table ip {TABLE} {{\n\tset vips {{ type ipv4_addr; }}\n"
             f"\tmap eps {{ type ipv4_addr . inet_service . ipv4_addr . inet_service : "
             f"ipv4_addr; }}\n}}"]
    elems = [f"{element(i, endpoint(i * per_service + k))} : {endpoint(i * per_service + k)}"
             for i in range(services) for k in range(per_service)]
    for c in range(0, len(elems), CHUNK):
        lines.append(f"add element ip {TABLE} eps {{ {', '.join(elems[c:c + CHUNK])} }}")
    ips = [vip(i) for i in range(services)]
    for c in range(0, len(ips), CHUNK):
        lines.append(f"add element ip {TABLE} vips {{ {', '.join(ips[c:c + CHUNK])} }}")
    return "\n".join(lines) + "\n"


def change_scripts(i: int, per_service: int) -> tuple[str, str]:
    """Service i's endpoints replaced by 3 new ones, and the way back."""
    old = [endpoint(i * per_service + k) for k in range(per_service)]
    new = [f"10.250.{i // 200 % 250}.{i % 200 + k}" for k in range(3)]

    def swap(out: list[str], into: list[str]) -> str:
        gone = ", ".join(element(i, ep) for ep in out)
        added = ", ".join(f"{element(i, ep)} : {ep}" for ep in into)
        return (f"delete element ip {TABLE} eps {{ {gone} }}\n"
                f"add element ip {TABLE} eps {{ {added} }}\n")

    return swap(old, new), swap(new, old)


def stats(seconds: list[float]) -> dict[str, float]:
    s = sorted(seconds)
    return {"n": len(s), "p50_ms": round(percentile(s, 50) * 1000, 3),
            "p90_ms": round(percentile(s, 90) * 1000, 3),
            "p99_ms": round(percentile(s, 99) * 1000, 3),
            "max_ms": round(s[-1] * 1000, 3) if s else 0.0}


async def measure(ns: str, args: argparse.Namespace, run: dict[str, Any]) -> None:
    async def in_process(ns: str, script: str) -> None:
        await libnft.arun(ns, script)

    ways: dict[str, Apply] = {"process": nft.apply_process, "library": in_process}
    t0 = time.perf_counter()
    script = table_script(args.elements // 2, 2)
    await nft.apply_process(ns, script, timeout=300)
    run["load_process_s"] = round(time.perf_counter() - t0, 3)
    await nft.apply_process(ns, f"delete table ip {TABLE}\n")
    t0 = time.perf_counter()
    await libnft.arun(ns, script, timeout=300)
    run["load_library_s"] = round(time.perf_counter() - t0, 3)
    log(f"table loaded: {args.elements} map elements ({run['load_process_s']} s by process, "
        f"{run['load_library_s']} s in-process)")
    times: dict[str, dict[str, list[float]]] = {w: {"change": [], "noop": []} for w in ways}
    noop = f"add element ip {TABLE} vips {{ {vip(0)} }}\n"
    for n in range(args.changes):
        order = list(ways) if n % 2 == 0 else list(reversed(ways))
        for way in order:
            fn = ways[way]
            forward, back = change_scripts(n % (args.elements // 2), 2)
            t = time.perf_counter()
            await fn(ns, forward)
            times[way]["change"].append(time.perf_counter() - t)
            await fn(ns, back)
            t = time.perf_counter()
            await fn(ns, noop)
            times[way]["noop"].append(time.perf_counter() - t)
        if args.pause:
            await asyncio.sleep(args.pause)
    run["times"] = {w: {k: stats(v) for k, v in d.items()} for w, d in times.items()}


def report(run: dict[str, Any], info: dict[str, Any]) -> str:
    t = run["times"]
    lines = [f"== nft apply: in-process (libnftables) vs an nft process, "
             f"{run['elements']} map elements, {run['changes']} of each ==",
             f"{info['date']}; {info['nproc']} CPUs ({info['cpu']}); kernel {info['kernel']}; "
             f"{info['nft']}; event loop {info['loop']}; other processes "
             f"{run['background_cpu_pct']}% of a core before the run",
             f"load of the table: process {run['load_process_s']} s, "
             f"in-process {run['load_library_s']} s", ""]
    for what in ("change", "noop"):
        p, lib = t["process"][what], t["library"][what]
        lines.append(f"{what:7} process  p50 {p['p50_ms']:7.3f}  p90 {p['p90_ms']:7.3f}  "
                     f"p99 {p['p99_ms']:7.3f}  max {p['max_ms']:7.3f} ms")
        lines.append(f"{'':7} library  p50 {lib['p50_ms']:7.3f}  p90 {lib['p90_ms']:7.3f}  "
                     f"p99 {lib['p99_ms']:7.3f}  max {lib['max_ms']:7.3f} ms   "
                     f"(library/process: p50 "
                     f"{lib['p50_ms'] / p['p50_ms'] if p['p50_ms'] else 0:.3f}x, p99 "
                     f"{lib['p99_ms'] / p['p99_ms'] if p['p99_ms'] else 0:.3f}x)")
    return "\n".join(lines)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.nft_apply_bench", description=__doc__.split("\n")[0])
    p.add_argument("--elements", type=int, default=20_000)
    p.add_argument("--changes", type=int, default=200)
    p.add_argument("--pause", type=float, default=0.005, metavar="SECONDS")
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--json", type=Path)
    p.add_argument("--wait-quiet", type=float, metavar="PCT")
    p.add_argument("--wait-quiet-max", type=float, default=300.0, metavar="SECONDS")
    args = p.parse_args(argv)
    if not 2 <= args.elements <= 100_000 or not 1 <= args.changes <= 5000:
        p.error("--elements 2..100000, --changes 1..5000")
    if os.geteuid() != 0:
        p.error("this benchmark creates a network namespace: run it as root")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    for sig in SIGNALS:
        signal.signal(sig, _terminate)
    if not libnft.available():
        log(f"libnftables is not usable: {libnft.load_error()}")
        return 1
    info = machine()
    info["nft"] = tool_version(["nft", "--version"])
    info["loop"] = args.loop
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    cluster = "bench" + secrets.token_hex(4)
    ns = names.node_netns(cluster, names.node_name(1))
    run: dict[str, Any] = {"elements": args.elements, "changes": args.changes, "netns": ns}
    try:
        try:
            run["background_cpu_pct"] = wait_quiet(args.wait_quiet, args.wait_quiet_max)
            netns.add(ns)
            asyncio.run(interruptible(measure(ns, args, run)))
        finally:
            signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
            try:
                libnft.close(ns)
                netns.delete(ns)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    except KeyboardInterrupt:
        log(f"interrupted; namespace {ns} deleted")
        return 130
    print(report(run, info), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "run": run}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
