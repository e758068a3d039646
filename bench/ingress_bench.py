"""The ingress under load: requests/s through it against straight to the backend pod, the p99
latency it adds at half its peak, and the time from a new Ingress until its first 200.

    .venv/bin/python -m bench.ingress_bench [--rounds 5] [--seconds 5] [--json FILE]

One throw-away 2-node cluster with the ingress (state root under /tmp, name `ib<hex>`, a port
the kernel chooses). wrk runs in the lab's external host, as a client outside the cluster:

    external 172.18.0.2 --wrk--> LoadBalancer 172.18.0.200 (node-1) -> HAProxy (ingress pod,
             |                    node-1) -> nginx pod (node-2, :8080)          "ingress"
             +--wrk-------------> nginx pod (node-2, :8080)                     "direct"

The backend is nginx from Debian serving a small file (--file-size bytes), one worker, access
log off, as a pod whose command is `nginx -g 'daemon off;' -c <conf>`. For "direct" the run
adds a route on the external host to node-2's pod CIDR via node-2 (the lab has none: a real
client outside reaches pods only through Services), and lets the external host reuse ports in
TIME_WAIT (`tcp_tw_reuse`, as service_bench does for its wrk pods: with `Connection: close`
wrk ran out of ports after a few seconds, and the rate fell to 1,500/s); both go with the lab.

  peak       wrk -t2 -c--connections, kept-alive connections, --seconds each, ingress and
             direct alternately (the first of a round alternating), --rounds rounds; then the
             same with `Connection: close` (a new connection per request, as service_bench)
  latency    at --fractions of the ingress's kept-alive peak (median of the rounds; 0.25 and
             0.5 by default, the goal is at 0.5), both targets at the same rate, alternately,
             --paced-rounds of --paced-seconds. Debian's wrk has
             no constant-rate mode (that is wrk2), so a Lua script paces it (PACED_LUA): each
             of 2 threads sends on a fixed schedule over its share of --paced-connections;
             every request carries an id that nginx echoes in a response header, so a request
             is timed from when it was due, not when a connection got free to send it
             (coordinated omission, corrected as wrk2 does). Histogram of 10 us buckets. The
             ingress's added latency is the ingress's percentile minus the direct one's, per
             round (median of the rounds)
  first 200  under the paced load against bench.test: --ingresses new Ingresses, one at a
             time, each on a host of its own to the nginx Service (HAProxy has its backend:
             map entries through the Runtime API), then --reload-ingresses to a new Service
             each (a new backend: a reload). From just before the POST (time.monotonic()) until
             the first 200 seen by a probe asking every 5 ms from the external host
             (tests/integration/tools/http_load.py first200; the same clock). Baseline: the
             POST's own round trip

Goals (issue 7): p99 added <= 1 ms at half the peak; new Ingress to first 200 <= 1 s. Requests/s
are reported, through the ingress against direct. The machine (2 vCPUs, shared) runs wrk,
HAProxy, nginx and the lab at once: its load is printed before every phase, and the CPU used
during it.

The cluster is torn down at the end, whatever happens (errors, Ctrl-C, SIGTERM; a second
Ctrl-C waits for it), and the run checks that no namespace or process of it is left. Needs root,
wrk and nginx (bench/install-tools.sh installs them) and haproxy (scripts/install.sh). Not a
test: nothing asserts on timings.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
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
from bench.proxy_bench import tool_version  # noqa: E402
from bench.service_bench import Busy, Lab, in_netns, wait_for  # noqa: E402
from podnet import runtime  # noqa: E402
from podnet.client.http import Client  # noqa: E402
from podnet.cluster import addons, lifecycle  # noqa: E402
from podnet.cluster.state import ephemeral_port  # noqa: E402
from podnet.kernel import netns  # noqa: E402
from podnet.lab import names  # noqa: E402

GOAL_ADDED_P99_MS = 1.0
GOAL_FIRST_200_S = 1.0
GOAL_FRACTION = 0.5  # the p99 goal is at half the peak
PACED_THREADS = 2  # wrk threads at the paced rate, each with its own schedule
NS = "default"
HOST = "bench.test"
NGINX_PORT = 8080
PROBE = REPO / "tests" / "integration" / "tools" / "http_load.py"
Obj = dict[str, Any]

NGINX_CONF = """\
# nginx for podnet's ingress benchmark: one worker serving {www}, nothing logged.
user root;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {{
        listen {port} reuseport;
        root {www};
        location / {{ add_header X-Req $arg_i; }}
    }}
}}
"""

# wrk at a constant rate (Debian's wrk 4.1 has no -R; wrk2 is not packaged). `init` gets the
# microseconds between two requests of a thread. Each thread keeps a schedule: a request is due
# every interval; delay() runs whenever one of the thread's connections is free (after each
# answer), takes the next due time and returns the wait until then (in whole ms: wrk's
# timers); request() sends the earliest due one with `?i=<id>`, and nginx echoes the id in an
# `X-Req` header, so response() knows which request it answers and when it was due. Latency is
# from when the request was due (from when it was sent, if sooner: the rounding of the timer):
# a request that waited for a free connection counts its wait (coordinated omission, corrected
# as wrk2 does). `late` counts those, when no connection was free at the due time. Histogram
# of 10 us buckets; done() prints `PACED n=... late=... lost=... max_us=... p50_us=...
# p90_us=... p99_us=... p99.9_us=...`.
PACED_LUA = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } podnet_timespec;
int clock_gettime(int clk, podnet_timespec *tp);
]]
local ts = ffi.new("podnet_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

local interval, next_due, seq
local dues, sent = {}, {}
hist, n, late, lost = {}, 0, 0, 0

function init(args)
  interval = tonumber(args[1])
  seq = 0
end

function delay()
  local t = now_us()
  if next_due == nil then
    next_due = t + math.random() * interval
  end
  local due = next_due
  next_due = next_due + interval
  table.insert(dues, due)
  local wait = due - t
  if wait <= 0 then
    late = late + 1
    return 0
  end
  return math.floor(wait / 1000)
end

function request()
  local k = 1
  for i = 2, #dues do
    if dues[i] < dues[k] then k = i end
  end
  local t = now_us()
  local due = table.remove(dues, k) or t
  seq = seq + 1
  sent[seq] = math.min(due, t)
  return wrk.format(nil, wrk.path .. "?i=" .. seq)
end

function response(status, headers, body)
  local id = tonumber(headers["X-Req"] or headers["x-req"])
  local from = id and sent[id]
  if from == nil then
    lost = lost + 1
    return
  end
  sent[id] = nil
  local b = math.floor((now_us() - from) / 10)
  hist[b] = (hist[b] or 0) + 1
  n = n + 1
end

function done(summary, latency, requests)
  local all, total, lates, losts = {}, 0, 0, 0
  for _, t in ipairs(threads) do
    for b, c in pairs(t:get("hist")) do all[b] = (all[b] or 0) + c end
    total = total + t:get("n")
    lates = lates + t:get("late")
    losts = losts + t:get("lost")
  end
  local keys = {}
  for b in pairs(all) do table.insert(keys, b) end
  table.sort(keys)
  local out = {}
  for _, q in ipairs({50, 90, 99, 99.9}) do
    local want, seen = total * q / 100, 0
    for _, b in ipairs(keys) do
      seen = seen + all[b]
      if seen >= want then
        table.insert(out, string.format("p%s_us=%d", q, b * 10 + 5))
        break
      end
    end
  end
  io.write(string.format("PACED n=%d late=%d lost=%d max_us=%d %s\n", total, lates, losts,
                         (keys[#keys] or 0) * 10 + 5, table.concat(out, " ")))
end
"""

WRK_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
WRK_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
WRK_PCT = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
PACED = re.compile(r"^PACED (.*)$", re.M)
SYNC_LOG = re.compile(r"(reloaded haproxy|updated haproxy through the runtime API).*\((\d+) ms\)")
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


# -- the lab ------------------------------------------------------------------------------------


class IngressLab(Lab):
    """service_bench's Lab, with the ingress, nginx behind it and a way to reach the pod."""

    def __init__(self, name: str, root: Path) -> None:
        super().__init__("ingress", name, root)
        self.ip = ""  # the ingress's LoadBalancer address
        self.nginx_ip = ""
        self.external = names.external_netns(name)

    def up(self) -> None:
        lifecycle.up(self.name, self.root, wait=120.0, port=ephemeral_port("127.0.0.1"),
                     nodes=2, ingress=True, out=io.StringIO())
        self.client = Client.from_state(self.state)

    def processes_left(self) -> list[str]:
        """HAProxy and nginx masters still running from this lab's files (nginx rewrites its
        command line: `nginx: master process nginx -g daemon off; -c <conf>`)."""
        mark = str(self.root).encode()
        left = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                args = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            program = Path(args.split(b"\0")[0].decode(errors="replace")).name
            if args.startswith(b"nginx:"):
                program = "nginx"
            if mark in args and program in ("haproxy", "nginx"):
                left.append(f"{program} pid {entry.name}")
        return left


def nginx_files(root: Path, size: int) -> Path:
    """nginx's configuration, its small file and its scratch directory; the config's path."""
    base = root / "nginx"
    www, tmp = base / "www", base / "tmp"
    www.mkdir(parents=True)
    tmp.mkdir()
    (www / "index.html").write_bytes((b"podnet ingress benchmark " * (size // 25 + 1))[:size])
    conf = base / "nginx.conf"
    conf.write_text(NGINX_CONF.format(www=www, tmp=tmp, port=NGINX_PORT))
    return conf


def nginx_pod(conf: Path) -> Obj:
    probe = {"httpGet": {"path": "/index.html", "port": NGINX_PORT}, "periodSeconds": 1}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
            "spec": {"nodeName": "node-2", "terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "nginx", "image": "nginx",
                                     "command": ["nginx", "-g", "daemon off;", "-c",
                                                 str(conf)],
                                     "ports": [{"containerPort": NGINX_PORT}],
                                     "readinessProbe": probe}]}}


def nginx_service(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": "nginx"},
                     "ports": [{"port": 80, "targetPort": NGINX_PORT, "protocol": "TCP"}]}}


def ingress(name: str, host: str, svc: str) -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name},
            "spec": {"ingressClassName": addons.INGRESS_CLASS, "rules": [{
                "host": host, "http": {"paths": [{
                    "path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": svc, "port": {"number": 80}}}}]}}]}}


def start_workload(lab: IngressLab, conf: Path) -> None:
    assert lab.client is not None
    c = lab.client
    c.create(lab.res("Pod"), NS, nginx_pod(conf))
    c.create(lab.res("Service"), NS, nginx_service("nginx"))
    c.create(lab.res("Ingress"), NS, ingress("bench", HOST, "nginx"))

    def ready() -> str | None:
        pod = c.get(lab.res("Pod"), NS, "nginx")
        return pod["status"].get("podIP") if addons.pod_ready(pod) else None

    lab.nginx_ip = wait_for("nginx Ready", ready, 120)
    lab.ip = wait_for("the ingress's address", lambda: addons.ingress_address(
        c.get(lab.res("Service"), addons.INGRESS_NAMESPACE, addons.INGRESS_NAME)), 60)
    node = c.get(lab.res("Node"), None, "node-2")
    lan_ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    in_netns(lab.external, ["ip", "route", "add", node["spec"]["podCIDR"], "via", lan_ip], 30)
    # wrk with `Connection: close` opens ~10,000 connections a second; its ports must be
    # reusable from TIME_WAIT (after 1 s, by timestamps), as service_bench does for its pods.
    netns.sysctl(lab.external, "net.ipv4.tcp_tw_reuse", "1")
    netns.sysctl(lab.external, "net.ipv4.ip_local_port_range", "1024 65535")

    def answers() -> bool:
        ok = [curl_status(lab, url, host) == 200 for url, host in targets(lab).values()]
        return all(ok)

    wait_for("nginx through the ingress and directly", answers, 60, every=0.5)


def curl_status(lab: IngressLab, url: str, host: str) -> int:
    proc = subprocess.run(["ip", "netns", "exec", lab.external, "curl", "-s", "-o",
                           "/dev/null", "-m", "3", "-w", "%{http_code}", "-H", f"Host: {host}",
                           url], capture_output=True, text=True, timeout=30)
    return int(proc.stdout or 0)


def targets(lab: IngressLab) -> dict[str, tuple[str, str]]:
    """What wrk loads: name -> (URL, Host header)."""
    return {"ingress": (f"http://{lab.ip}/index.html", HOST),
            "direct": (f"http://{lab.nginx_ip}:{NGINX_PORT}/index.html", HOST)}


# -- wrk ----------------------------------------------------------------------------------------


def wrk(lab: IngressLab, target: str, seconds: float, threads: int, connections: int,
        extra: list[str] | None = None, script: list[str] | None = None) -> Obj:
    url, host = targets(lab)[target]
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency",
            "-H", f"Host: {host}", *(extra or [])]
    if script:
        argv += ["-s", script[0], url, "--", *script[1:]]
    else:
        argv.append(url)
    out = in_netns(lab.external, argv, seconds + 60)
    return parse_wrk(out)


def parse_wrk(out: str) -> Obj:
    rate = WRK_RATE.search(out)
    if not rate:
        raise RuntimeError(f"wrk printed no rate: {out}")
    errors = WRK_ERRORS.search(out)
    non2xx = WRK_NON2XX.search(out)
    result: Obj = {"requests_per_s": float(rate.group(1)),
                   "errors": sum(map(int, errors.groups())) if errors else 0,
                   "error_detail": errors.group(0) if errors else "",
                   "non_2xx": int(non2xx.group(1)) if non2xx else 0,
                   "wrk_latency_ms": {f"p{q}": round(float(v) * UNITS[u], 4)
                                      for q, v, u in WRK_PCT.findall(out)}}
    paced = PACED.search(out)
    if paced:
        fields = dict(kv.split("=") for kv in paced.group(1).split())
        result["paced"] = {k.removesuffix("_us").replace("p99.9", "p999"):
                           (int(v) / 1000 if k.endswith("_us") else int(v))
                           for k, v in fields.items()}  # ms, or counts (n, late, lost)
    return result


def peak(lab: IngressLab, args: argparse.Namespace, close: bool) -> Obj:
    out: Obj = {"ingress": [], "direct": []}
    extra = ["-H", "Connection: close"] if close else []
    for r in range(args.rounds):
        for target in (("ingress", "direct") if r % 2 == 0 else ("direct", "ingress")):
            out[target].append(wrk(lab, target, args.seconds, 2, args.connections, extra))
    return out


def paced_interval_us(rate: float) -> float:
    """Microseconds between two requests of one wrk thread, for `rate` requests/s in all."""
    return PACED_THREADS / rate * 1e6


def paced(lab: IngressLab, args: argparse.Namespace, rate: float, lua: Path) -> Obj:
    out: Obj = {"rate": rate, "connections": args.paced_connections, "ingress": [],
                "direct": []}
    for r in range(args.paced_rounds):
        for target in (("ingress", "direct") if r % 2 == 0 else ("direct", "ingress")):
            out[target].append(wrk(lab, target, args.paced_seconds, PACED_THREADS,
                                   args.paced_connections,
                                   script=[str(lua), f"{paced_interval_us(rate):.1f}"]))
    return out


# -- new Ingress to first 200 ---------------------------------------------------------------------


def first_200(lab: IngressLab, host: str, body: Obj, timeout: float = 30.0) -> Obj:
    """Create the Ingress while a probe on the external host polls `host`."""
    assert lab.client is not None
    proc = subprocess.Popen(["ip", "netns", "exec", lab.external, sys.executable, "-I", "-S",
                             str(PROBE), "first200", lab.ip, "80", host, "/index.html",
                             str(timeout)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "polling":
            raise RuntimeError(f"the probe on {host} never got an answer: {line!r}")
        t0 = time.monotonic()
        lab.client.create(lab.res("Ingress"), NS, body)
        posted = time.monotonic()
        out, err = proc.communicate(timeout=timeout + 30)
        if proc.returncode != 0:
            raise RuntimeError(f"the probe on {host} failed: {err.strip()[-2000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()  # the probe this function started
            proc.wait()
    seen = json.loads(out.strip().splitlines()[-1])
    return {"seconds": None if seen["first_200"] is None else seen["first_200"] - t0,
            "post_s": posted - t0, "tries": seen["tries"], "statuses": seen["statuses"]}


def controller_log(lab: IngressLab) -> Path:
    assert lab.client is not None
    pod = lab.client.get(lab.res("Pod"), addons.INGRESS_NAMESPACE, addons.INGRESS_NAME)
    return runtime.log_path(lab.state.node_dir(pod["spec"]["nodeName"]), pod["metadata"]["uid"],
                            addons.INGRESS_CONTAINER)


def syncs_since(log_file: Path, offset: int) -> Obj:
    """The controller's reloads and Runtime API updates logged after `offset` bytes: ms each."""
    text = log_file.read_bytes()[offset:].decode(errors="replace")
    out: Obj = {"reload_ms": [], "runtime_ms": []}
    for what, ms in SYNC_LOG.findall(text):
        out["reload_ms" if what.startswith("reloaded") else "runtime_ms"].append(int(ms))
    return out


def new_ingresses(lab: IngressLab, args: argparse.Namespace, rate: float, lua: Path) -> Obj:
    """The new Ingresses, one at a time, under the paced load (wrk in the background)."""
    assert lab.client is not None
    for i in range(args.reload_ingresses):  # their Services first: no reload yet
        lab.client.create(lab.res("Service"), NS, nginx_service(f"fresh-{i}"))
    time.sleep(1)
    log_file = controller_log(lab)
    offset = log_file.stat().st_size
    url, host = targets(lab)["ingress"]
    duration = 30 + (args.ingresses + args.reload_ingresses) * 3
    bg = subprocess.Popen(["ip", "netns", "exec", lab.external, "wrk", f"-t{PACED_THREADS}",
                           f"-c{args.paced_connections}", f"-d{duration}s", "--latency", "-H",
                           f"Host: {host}", "-s", str(lua), url, "--",
                           f"{paced_interval_us(rate):.1f}"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    out: Obj = {"runtime": [], "reload": []}
    try:
        time.sleep(2)
        for i in range(args.ingresses):
            out["runtime"].append(first_200(lab, f"new-{i}.test",
                                            ingress(f"new-{i}", f"new-{i}.test", "nginx")))
            time.sleep(0.5)
        for i in range(args.reload_ingresses):
            out["reload"].append(first_200(lab, f"reload-{i}.test", ingress(
                f"reload-{i}", f"reload-{i}.test", f"fresh-{i}")))
            time.sleep(0.5)
        bg.send_signal(signal.SIGINT)  # wrk prints its results on SIGINT
        text, _ = bg.communicate(timeout=60)
        out["background"] = parse_wrk(text)
    finally:
        if bg.poll() is None:
            bg.kill()  # the wrk this function started
            bg.wait()
    out["syncs"] = syncs_since(log_file, offset)
    return out


# -- the run --------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def measure(lab: IngressLab, args: argparse.Namespace, run: Obj) -> None:
    log(f"bringing up {lab.name} (2 nodes, the ingress) under {lab.root}")
    t0 = time.monotonic()
    lab.up()
    conf = nginx_files(lab.root, args.file_size)
    start_workload(lab, conf)
    run["up_s"] = round(time.monotonic() - t0, 1)
    lua = lab.root / "paced.lua"
    lua.write_text(PACED_LUA)
    for target in ("ingress", "direct"):  # warm-up, not counted
        wrk(lab, target, 2, 2, args.connections)

    run["load"] = {}
    run["busy"] = {}
    for phase, close in (("peak", False), ("peak_close", True)):
        run["load"][phase] = wait_quiet(args.wait_quiet_lab, args.wait_quiet_max)
        log(f"{phase}: wrk -t2 -c{args.connections}{' (Connection: close)' if close else ''}, "
            f"{args.rounds} rounds of {args.seconds:g} s to each target")
        busy = Busy()
        run[phase] = peak(lab, args, close)
        run["busy"][phase] = busy.pct()
    top = median([r["requests_per_s"] for r in run["peak"]["ingress"]])
    run["paced"] = []
    for fraction in args.fractions:
        phase = f"paced {fraction:g}"
        rate = round(top * fraction)
        run["load"][phase] = wait_quiet(args.wait_quiet_lab, args.wait_quiet_max)
        log(f"latency at {fraction:g} of the ingress's peak: {rate}/s, {args.paced_rounds} "
            f"rounds of {args.paced_seconds:g} s to each target")
        busy = Busy()
        run["paced"].append({"fraction": fraction, **paced(lab, args, rate, lua)})
        run["busy"][phase] = busy.pct()
    rate = round(top / 2)
    run["load"]["first_200"] = wait_quiet(args.wait_quiet_lab, args.wait_quiet_max)
    log(f"new Ingress to first 200 under {rate}/s: {args.ingresses} to a known backend, "
        f"{args.reload_ingresses} to new Services")
    busy = Busy()
    run["first_200"] = new_ingresses(lab, args, rate, lua)
    run["busy"]["first_200"] = busy.pct()


def summarize(run: Obj) -> Obj:
    out: Obj = {}
    for phase in ("peak", "peak_close"):
        ing = [r["requests_per_s"] for r in run[phase]["ingress"]]
        direct = [r["requests_per_s"] for r in run[phase]["direct"]]
        pairs = [a / b for a, b in zip(ing, direct, strict=True) if b]
        out[phase] = {"ingress": median(ing), "direct": median(direct), "ingress_rounds": ing,
                      "direct_rounds": direct, "ratio": round(median(pairs), 3),
                      "errors": sum(r["errors"] + r["non_2xx"]
                                    for t in ("ingress", "direct") for r in run[phase][t])}
    out["latency"] = [latency_summary(p) for p in run["paced"]]
    first: Obj = {}
    for way in ("runtime", "reload"):
        got = run["first_200"][way]
        secs = sorted(g["seconds"] for g in got if g["seconds"] is not None)
        posts = sorted(g["post_s"] for g in got)
        first[way] = {"n": len(got), "missed": len(got) - len(secs),
                      "p50_ms": round(median(secs) * 1000, 1),
                      "max_ms": round(max(secs) * 1000, 1) if secs else None,
                      "post_p50_ms": round(median(posts) * 1000, 1),
                      "met": bool(secs) and len(secs) == len(got)
                      and max(secs) <= GOAL_FIRST_200_S}
    bg = run["first_200"]["background"]
    first["background"] = {"requests_per_s": bg["requests_per_s"],
                           "errors": bg["errors"], "non_2xx": bg["non_2xx"],
                           "p99_ms": bg.get("paced", {}).get("p99")}
    first["syncs"] = run["first_200"]["syncs"]
    out["first_200"] = first
    return out


def latency_summary(paced_run: Obj) -> Obj:
    """Percentiles (ms) at one paced rate: the medians of the rounds, and the added latency,
    the median of the rounds' ingress - direct. `wrk` is wrk's own view (from the send of a
    request to its answer: no correction for coordinated omission)."""
    lat: Obj = {k: paced_run[k] for k in ("fraction", "rate", "connections")}
    for source, key, quantiles in (("paced", "corrected", ("p50", "p90", "p99", "p999")),
                                   ("wrk_latency_ms", "wrk", ("p50", "p99"))):
        lat[key] = {}
        for q in quantiles:
            ing = [r[source][q] for r in paced_run["ingress"]]
            direct = [r[source][q] for r in paced_run["direct"]]
            lat[key][q] = {"ingress": median(ing), "direct": median(direct),
                           "added": round(median([a - b for a, b in
                                                  zip(ing, direct, strict=True)]), 3),
                           "ingress_rounds": ing, "direct_rounds": direct}
    lat["achieved"] = {t: median([r["requests_per_s"] for r in paced_run[t]])
                       for t in ("ingress", "direct")}
    for key in ("late", "lost"):
        lat[key] = {t: sum(r["paced"][key] for r in paced_run[t])
                    for t in ("ingress", "direct")}
    lat["errors"] = sum(r["errors"] + r["non_2xx"] for t in ("ingress", "direct")
                        for r in paced_run[t])
    lat["met"] = (lat["corrected"]["p99"]["added"] <= GOAL_ADDED_P99_MS
                  if lat["fraction"] == GOAL_FRACTION else None)
    return lat


# -- the report -----------------------------------------------------------------------------------


def verdict(met: bool | None) -> str:
    return "" if met is None else ("met" if met else "MISSED")


def spread(values: list[float], fmt: str = ".0f") -> str:
    return f"{min(values):{fmt}}-{max(values):{fmt}}" if values else "-"


def latency_lines(lat: Obj, run: Obj) -> list[str]:
    lines = ["", f"latency at {lat['fraction']:g} of the ingress's kept-alive peak: "
             f"{lat['rate']:.0f} requests/s (wrk -t{PACED_THREADS} -c{lat['connections']}, "
             f"{run['paced_rounds']} rounds of {run['paced_seconds']:g} s each; achieved: "
             f"ingress {lat['achieved']['ingress']:.0f}/s, direct "
             f"{lat['achieved']['direct']:.0f}/s; no connection free when due: "
             f"{lat['late']['ingress']} / {lat['late']['direct']}; answers without their id: "
             f"{lat['lost']['ingress']} / {lat['lost']['direct']}), ms, median of the rounds:",
             f"  {'':22} {'ingress':>9} {'direct':>9} {'added':>9}"]
    for key, title in (("corrected", "from when due"), ("wrk", "wrk's own, from send")):
        for q, row in lat[key].items():
            lines.append(f"  {title + ' ' + q:22} {row['ingress']:9.3f} {row['direct']:9.3f} "
                         f"{row['added']:9.3f}"
                         + (f"   goal <= {GOAL_ADDED_P99_MS:g}: {verdict(lat['met'])}"
                            if key == "corrected" and q == "p99" and lat["met"] is not None
                            else ""))
    p99 = lat["corrected"]["p99"]
    lines.append(f"  p99 from when due, per round: ingress {p99['ingress_rounds']}, direct "
                 f"{p99['direct_rounds']}" + (f"; errors {lat['errors']}" if lat["errors"]
                                               else ""))
    return lines


def report(run: Obj, info: Obj) -> str:
    s = run["summary"]
    lines = [f"== podnet ingress under load: {run['lab']} (2 nodes; HAProxy on node-1, nginx "
             "on node-2), wrk from the external host ==",
             f"{info['date']}; {info['nproc']} CPUs ({info['cpu']}); kernel {info['kernel']}; "
             f"Python {info['python']}; {info['haproxy']}; {info['nginx']}; {info['wrk']}",
             f"load: `uptime` before the run: {info['uptime']}",
             f"other processes: {run['background_cpu_pct']}% of a core before the lab; before "
             "each phase (the lab's own included): " + ", ".join(
                 f"{k} {v}%" for k, v in run["load"].items()),
             "machine busy during each phase: " + ", ".join(
                 f"{k} {v}%" for k, v in run["busy"].items()),
             f"lab up with nginx: {run['up_s']} s; file {run['file_size']} bytes", ""]
    for phase, title in (("peak", "kept-alive connections"),
                         ("peak_close", "a new connection per request")):
        p = s[phase]
        lines.append(f"requests/s, {title} (wrk -t2 -c{run['connections']}, {run['rounds']} "
                     f"rounds of {run['seconds']:g} s; median, range):")
        lines.append(f"  through the ingress {p['ingress']:8.0f} ({spread(p['ingress_rounds'])})"
                     f"   straight to the pod {p['direct']:8.0f} ({spread(p['direct_rounds'])})"
                     f"   ingress/direct {p['ratio']}x"
                     + (f"   errors+non-2xx {p['errors']}" if p["errors"] else ""))
    for lat in s["latency"]:
        lines += latency_lines(lat, run)
    f = s["first_200"]
    bg = f["background"]
    lines += ["", f"new Ingress to first 200, under {bg['requests_per_s']:.0f} requests/s to "
              f"{HOST} (p99 {bg['p99_ms']} ms; errors {bg['errors']}, non-2xx "
              f"{bg['non_2xx']}):"]
    for way, title in (("runtime", "to a Service HAProxy has (Runtime API)"),
                       ("reload", "to a new Service (a reload)")):
        row = f[way]
        lines.append(f"  {title:40} n={row['n']:3}  p50 {row['p50_ms']} ms  max "
                     f"{row['max_ms']} ms  (the POST: p50 {row['post_p50_ms']} ms)"
                     + (f"  {row['missed']} not within 30 s" if row["missed"] else "")
                     + f"   goal <= {GOAL_FIRST_200_S * 1000:.0f} ms: {verdict(row['met'])}")
    syncs = f["syncs"]
    lines.append(f"  the controller meanwhile: {len(syncs['runtime_ms'])} Runtime API updates "
                 f"(median {median(syncs['runtime_ms']):.0f} ms), {len(syncs['reload_ms'])} "
                 f"reloads (median {median(syncs['reload_ms']):.0f} ms, "
                 f"{spread(syncs['reload_ms'])})")
    if run.get("left"):
        lines.append(f"LEFT BEHIND: {run['left']}")
    return "\n".join(lines)


def fractions(text: str) -> list[float]:
    values = [float(v) for v in text.split(",") if v]
    if not values or not all(0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError("fractions in (0, 1], comma-separated")
    return values


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.ingress_bench", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="peak rounds per target")
    p.add_argument("--seconds", type=float, default=5.0, help="each peak run")
    p.add_argument("--connections", type=int, default=32, help="wrk connections for the peak")
    p.add_argument("--fractions", type=fractions, default=[0.25, GOAL_FRACTION],
                   help="the paced rates, as fractions of the ingress's kept-alive peak "
                        "(comma-separated; the goal is at 0.5)")
    p.add_argument("--paced-rounds", type=int, default=3)
    p.add_argument("--paced-seconds", type=float, default=10.0)
    p.add_argument("--paced-connections", type=int, default=64,
                   help="wrk connections at the paced rate (over 2 threads)")
    p.add_argument("--ingresses", type=int, default=20,
                   help="new Ingresses to a Service HAProxy has a backend for")
    p.add_argument("--reload-ingresses", type=int, default=5,
                   help="new Ingresses to a new Service each (a reload)")
    p.add_argument("--file-size", type=int, default=612, help="bytes of the file nginx serves")
    p.add_argument("--json", type=Path)
    p.add_argument("--wait-quiet", type=float, metavar="PCT",
                   help="before the lab: wait until other processes use at most PCT%% of a "
                        "core")
    p.add_argument("--wait-quiet-lab", type=float, default=30.0, metavar="PCT",
                   help="before each phase: the same, the lab's own processes included")
    p.add_argument("--wait-quiet-max", type=float, default=300.0, metavar="SECONDS")
    args = p.parse_args(argv)
    if not 1 <= args.rounds <= 20 or not 1 <= args.seconds <= 60 or \
            not 1 <= args.paced_rounds <= 20 or not 2 <= args.paced_seconds <= 120 or \
            not 2 <= args.paced_connections <= 1000 or not 1 <= args.connections <= 1000 or \
            not 1 <= args.ingresses <= 200 or not 0 <= args.reload_ingresses <= 50 or \
            not 1 <= args.file_size <= 1 << 20:
        p.error("--rounds 1..20, --seconds 1..60, --paced-rounds 1..20, --paced-seconds 2..120, "
                "--paced-connections 2..1000, --connections 1..1000, --ingresses 1..200, "
                "--reload-ingresses 0..50, --file-size 1..1048576")
    if os.geteuid() != 0:
        p.error("this benchmark builds a lab of network namespaces: run it as root")
    for tool, how in (("wrk", "bench/install-tools.sh"), ("nginx", "bench/install-tools.sh"),
                      ("haproxy", "scripts/install.sh")):
        if shutil.which(tool) is None:
            p.error(f"{tool} is missing: run {how} (make bench-ingress does)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    for sig in SIGNALS:
        signal.signal(sig, _terminate)
    info = machine()
    info["haproxy"] = tool_version(["haproxy", "-v"]).split("\n")[0].split(" - ")[0]
    info["nginx"] = subprocess.run(["nginx", "-v"], capture_output=True,
                                   text=True).stderr.strip().removeprefix("nginx version: ")
    info["wrk"] = tool_version(["wrk", "--version"]).split("\n")[0].split(" Copyright")[0]
    info["uptime"] = tool_version(["uptime"])
    root = Path(tempfile.mkdtemp(prefix="podnet-ingbench-", dir="/tmp"))
    lab = IngressLab("ib" + secrets.token_hex(4), root)
    run: Obj = {"lab": lab.name, "rounds": args.rounds, "seconds": args.seconds,
                "connections": args.connections, "paced_rounds": args.paced_rounds,
                "paced_seconds": args.paced_seconds,
                "paced_connections": args.paced_connections,
                "file_size": args.file_size}
    try:
        try:
            run["background_cpu_pct"] = wait_quiet(args.wait_quiet, args.wait_quiet_max)
            measure(lab, args, run)
        finally:
            # A second Ctrl-C must not cut the teardown short: it is held until the end.
            signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
            try:
                log(f"tearing {lab.name} down")
                run["left"] = [*lab.down(), *lab.processes_left()]
                shutil.rmtree(root, ignore_errors=True)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    except KeyboardInterrupt:
        log(f"interrupted; {lab.name} torn down")
        return 130
    run["summary"] = summarize(run)
    print(report(run, info), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "run": run}, indent=2) + "\n")
        log(f"results written to {args.json}")
    return 1 if run["left"] else 0


if __name__ == "__main__":
    sys.exit(main())
