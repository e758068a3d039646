"""What any reverse proxy adds to the tail on this machine, without the lab: nginx serving a
small file alone, and behind HAProxy or behind nginx as a reverse proxy, on the loopback of one
scratch network namespace, at the same paced rates.

    .venv/bin/python -m bench.proxy_tail_bench [--rates 1000,5000,10000] [--json FILE]

Why it exists. The ingress benchmark's goal, p99 added <= 1 ms at half the ingress's peak,
was missed by 20-35 ms in the lab (bench/README.md). This run asks whether that is podnet's path
(the LoadBalancer DNAT, the node namespaces, the configuration podnet renders) or what one more
process in the request path costs on this machine. Here there is no lab, no veth, no nft:

    wrk --> 127.0.0.1:8080 nginx                                   "alone" (the baseline)
    wrk --> 127.0.0.1:8081 HAProxy (minimal http config) --> nginx   "haproxy"
    wrk --> 127.0.0.1:8082 nginx proxy_pass, upstream keep-alive --> nginx   "nginx-proxy"

wrk is paced by bench.ingress_bench's Lua script (latency from when a request was due,
coordinated omission corrected), 2 threads over --connections connections, --seconds per
run, the three targets in turn, --rounds rounds per rate (the order rotates every round). For
each rate and proxy: p50, p99, p99.9 (median of the rounds), and the p99 added over "alone",
the median of the per-round differences, with the ratio of the p99s. The CPU time the host
stole from this VM (/proc/stat `steal`) and the machine's busy time are printed per rate.

Everything runs as root in one namespace made for the run (`podnet-pt<hex>-node-1`), whose
processes are ended by their own pids, and is removed whatever happens; the run checks that
nothing is left. Not a test: nothing asserts on timings.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: import this checkout's podnet
    sys.path.insert(0, str(REPO))

from bench.api_bench import SIGNALS, _terminate, log, machine, wait_quiet  # noqa: E402
from bench.ingress_bench import (  # noqa: E402
    NGINX_PORT,
    PACED_LUA,
    PACED_THREADS,
    nginx_files,
    paced_interval_us,
    parse_wrk,
)
from bench.proxy_bench import tool_version  # noqa: E402
from bench.service_bench import Busy, in_netns  # noqa: E402
from podnet.cluster.lifecycle import pid_alive  # noqa: E402
from podnet.kernel import netns  # noqa: E402
from podnet.lab import names  # noqa: E402

Obj = dict[str, Any]

HAPROXY_PORT = 8081
NGINX_PROXY_PORT = 8082
TARGETS = {"alone": NGINX_PORT, "haproxy": HAPROXY_PORT, "nginx-proxy": NGINX_PROXY_PORT}

HAPROXY_CFG = """\
global
    nbthread {threads}
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend f
    bind 127.0.0.1:{port}
    default_backend b
backend b
    server s1 127.0.0.1:{backend}
"""

NGINX_PROXY_CONF = """\
user root;
worker_processes 1;
pid {tmp}/nginx-proxy.pid;
error_log {tmp}/error-proxy.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/pbody;
    proxy_temp_path {tmp}/pproxy;
    fastcgi_temp_path {tmp}/pfastcgi;
    uwsgi_temp_path {tmp}/puwsgi;
    scgi_temp_path {tmp}/pscgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    upstream backend {{ server 127.0.0.1:{backend}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def steal_ticks() -> int:
    """The `steal` column of /proc/stat's cpu line (USER_HZ ticks, all CPUs)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) if len(fields) > 8 else 0


class Scratch:
    """The run's namespace, its files and the servers in it."""

    def __init__(self, tag: str, root: Path) -> None:
        self.ns = names.node_netns(tag, names.node_name(1))
        self.root = root
        self.pids: dict[str, int] = {}

    def up(self, haproxy_threads: int) -> None:
        netns.add(self.ns)
        in_netns(self.ns, ["ip", "link", "set", "lo", "up"], 30)
        conf = nginx_files(self.root, 612)
        tmp = conf.parent / "tmp"
        (self.root / "nginx-proxy.conf").write_text(NGINX_PROXY_CONF.format(
            tmp=tmp, port=NGINX_PROXY_PORT, backend=NGINX_PORT))
        (self.root / "haproxy.cfg").write_text(HAPROXY_CFG.format(
            threads=haproxy_threads, port=HAPROXY_PORT, backend=NGINX_PORT))
        in_netns(self.ns, ["nginx", "-c", str(conf)], 30)  # daemonizes; pid in its pid file
        self.pids["nginx"] = int((tmp / "nginx.pid").read_text())
        in_netns(self.ns, ["nginx", "-c", str(self.root / "nginx-proxy.conf")], 30)
        self.pids["nginx-proxy"] = int((tmp / "nginx-proxy.pid").read_text())
        in_netns(self.ns, ["haproxy", "-D", "-p", str(self.root / "haproxy.pid"), "-f",
                           str(self.root / "haproxy.cfg")], 30)
        self.pids["haproxy"] = int((self.root / "haproxy.pid").read_text().split()[0])
        for name, port in TARGETS.items():
            self.wait_answers(name, port)

    def wait_answers(self, name: str, port: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            proc = subprocess.run(netns.exec_argv(self.ns, [
                "curl", "-s", "-o", "/dev/null", "-m", "2", "-w", "%{http_code}",
                f"http://127.0.0.1:{port}/index.html"]), capture_output=True, text=True,
                timeout=30)
            if proc.stdout == "200":
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} on :{port} does not answer 200: {proc.stdout!r}")
            time.sleep(0.2)

    def down(self) -> list[str]:
        """End our servers by their pids (masters end their workers), remove the namespace;
        what is left."""
        for pid in self.pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while any(pid_alive(p) for p in self.pids.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.pids.values():
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            netns.delete(self.ns)
        left = [f"{n} pid {p}" for n, p in self.pids.items() if pid_alive(p)]
        left += [n for n in netns.names() if n == self.ns]
        return left


def paced_run(s: Scratch, port: int, rate: float, args: argparse.Namespace, lua: Path) -> Obj:
    argv = ["wrk", f"-t{PACED_THREADS}", f"-c{args.connections}", f"-d{args.seconds:g}s",
            "--latency", "-s", str(lua), f"http://127.0.0.1:{port}/index.html", "--",
            f"{paced_interval_us(rate):.1f}"]
    steal0 = steal_ticks()
    out = parse_wrk(in_netns(s.ns, argv, args.seconds + 60))
    out["steal_ticks"] = steal_ticks() - steal0
    return out


def measure(s: Scratch, args: argparse.Namespace, run: Obj) -> None:
    lua = s.root / "paced.lua"
    lua.write_text(PACED_LUA)
    for port in TARGETS.values():  # warm-up, not counted
        in_netns(s.ns, ["wrk", "-t2", f"-c{args.connections}", "-d1s",
                        f"http://127.0.0.1:{port}/index.html"], 60)
    names_ = list(TARGETS)
    run["rates"] = []
    for rate in args.rates:
        other = wait_quiet(args.wait_quiet, args.wait_quiet_max)
        log(f"{rate:g}/s: {args.rounds} rounds of {args.seconds:g} s to each target")
        busy = Busy()
        per: Obj = {n: [] for n in names_}
        for r in range(args.rounds):
            order = names_[r % len(names_):] + names_[:r % len(names_)]
            for name in order:
                per[name].append(paced_run(s, TARGETS[name], rate, args, lua))
        run["rates"].append({"rate": rate, "other_pct_before": other,
                             "machine_busy_pct": busy.pct(), "runs": per})


def summarize(run: Obj) -> list[Obj]:
    out = []
    for r in run["rates"]:
        runs = r["runs"]
        row: Obj = {"rate": r["rate"], "machine_busy_pct": r["machine_busy_pct"],
                    "steal_ticks": sum(x["steal_ticks"] for v in runs.values() for x in v),
                    "errors": sum(x["errors"] + x["non_2xx"] + x["paced"]["lost"]
                                  for v in runs.values() for x in v)}
        for name, rs in runs.items():
            row[name] = {q: round(statistics.median(x["paced"][q] for x in rs), 3)
                         for q in ("p50", "p99", "p999")}
            row[name]["late"] = sum(x["paced"]["late"] for x in rs)
        for name in ("haproxy", "nginx-proxy"):
            diffs = [p["paced"]["p99"] - a["paced"]["p99"]
                     for p, a in zip(runs[name], runs["alone"], strict=True)]
            row[name]["p99_added_ms"] = round(statistics.median(diffs), 3)
            base = row["alone"]["p99"]
            row[name]["p99_ratio"] = round(row[name]["p99"] / base, 2) if base else None
        out.append(row)
    return out


def report(summary: list[Obj], info: Obj, args: argparse.Namespace) -> str:
    lines = [f"machine: {info.get('cpu', '?')}, {info.get('nproc', '?')} CPUs, kernel "
             f"{info.get('kernel', '?')}; {info.get('haproxy', '')}; {info.get('nginx', '')}",
             f"wrk paced, {PACED_THREADS} threads, {args.connections} connections, "
             f"{args.rounds} rounds of {args.seconds:g} s per target and rate; ms from when "
             "each request was due; medians of the rounds",
             "",
             f"{'rate/s':>8}  {'target':12} {'p50':>7} {'p99':>8} {'p99.9':>8} {'late':>6}  "
             f"{'p99 added':>10} {'p99 ratio':>9}   steal, busy"]
    for row in summary:
        for name in TARGETS:
            t = row[name]
            added = (f"{t['p99_added_ms']:10.2f} {t['p99_ratio']:9}" if "p99_added_ms" in t
                     else f"{'(baseline)':>10} {'':9}")
            tail = (f"   {row['steal_ticks'] * 1000 // os.sysconf('SC_CLK_TCK')} ms stolen, "
                    f"{row['machine_busy_pct']}% busy"
                    if name == "alone" else "")
            lines.append(f"{row['rate']:8g}  {name:12} {t['p50']:7.2f} {t['p99']:8.2f} "
                         f"{t['p999']:8.2f} {t['late']:6}  {added}{tail}")
        if row["errors"]:
            lines.append(f"{'':8}  errors, non-2xx or lost answers: {row['errors']}")
    return "\n".join(lines)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.proxy_tail_bench",
                                description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--rates", default="1000,5000,10000",
                   help="requests/s, comma-separated (each target at each rate)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--haproxy-threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument("--wait-quiet", type=float, metavar="PCT", default=None,
                   help="before each rate: wait until other processes use at most PCT%% of "
                        "a core")
    p.add_argument("--wait-quiet-max", type=float, default=300.0, metavar="SECONDS")
    args = p.parse_args(argv)
    try:
        args.rates = [float(x) for x in args.rates.split(",") if x.strip()]
    except ValueError:
        p.error(f"--rates: not numbers: {args.rates!r}")
    if not args.rates or any(not 10 <= r <= 100_000 for r in args.rates) or \
            not 1 <= args.rounds <= 20 or not 1 <= args.seconds <= 60 or \
            not 2 <= args.connections <= 1000 or not 1 <= args.haproxy_threads <= 64:
        p.error("--rates 10..100000 each, --rounds 1..20, --seconds 1..60, "
                "--connections 2..1000, --haproxy-threads 1..64")
    if os.geteuid() != 0:
        p.error("this benchmark makes a network namespace: run it as root")
    for tool in ("wrk", "nginx", "haproxy", "curl"):
        if shutil.which(tool) is None:
            p.error(f"{tool} is not installed (bench/install-tools.sh, scripts/install.sh)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    for sig in SIGNALS:
        signal.signal(sig, _terminate)
    info = machine()
    info["haproxy"] = tool_version(["haproxy", "-v"]).splitlines()[0]
    info["nginx"] = subprocess.run(["nginx", "-v"], capture_output=True, text=True,
                                   timeout=10).stderr.strip()  # nginx prints it on stderr
    info["wrk"] = tool_version(["wrk", "-v"]).splitlines()[0]
    root = Path(tempfile.mkdtemp(prefix="podnet-proxytail-", dir="/tmp"))
    s = Scratch("pt" + secrets.token_hex(4), root)
    run: Obj = {"namespace": s.ns, "rounds": args.rounds, "seconds": args.seconds,
                "connections": args.connections, "haproxy_threads": args.haproxy_threads}
    try:
        try:
            s.up(args.haproxy_threads)
            measure(s, args, run)
        finally:
            signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
            try:
                log(f"tearing down {s.ns}")
                run["left"] = s.down()
                shutil.rmtree(root, ignore_errors=True)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    except KeyboardInterrupt:
        log(f"interrupted; {s.ns} removed")
        return 130
    run["summary"] = summarize(run)
    print(report(run["summary"], info, args), flush=True)
    print(f"left after teardown: {', '.join(run['left']) or 'nothing'}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "run": run}, indent=2) + "\n")
        log(f"results written to {args.json}")
    return 1 if run["left"] else 0


if __name__ == "__main__":
    sys.exit(main())
