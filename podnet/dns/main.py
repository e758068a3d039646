"""`python -m podnet.dns.main`: the cluster DNS server process (what the kube-dns pods run).

    python -m podnet.dns.main --api unix:///path/api.sock --token-file PATH \\
        [--listen 0.0.0.0] [--port 53] [--zone cluster.local] [--upstream IP[:PORT] ...] \\
        [--pod-records insecure|disabled] [--health-port 8080] [--ready-port 8181] \\
        [--metrics-port 9153] [--service-cidr CIDR] [--cluster-cidr CIDR]

Without --upstream, the nameservers of /etc/resolv.conf (as this process sees it) are used;
with none there, names outside the cluster zone get SERVFAIL. A port of 0 turns that HTTP
endpoint off. Runs on uvloop; SIGTERM and SIGINT stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from podnet import daemon
from podnet.api.resources import Resource, lookup
from podnet.client.aio import AsyncClient, Reflector
from podnet.dns.forward import (
    Forwarder,
    Upstream,
    parse_upstream,
    resolv_conf_nameservers,
    upstream_text,
)
from podnet.dns.index import DnsConfig
from podnet.dns.metrics import Metrics
from podnet.dns.server import DnsServer, listen, serve_http

log = logging.getLogger("podnet.dns")


def _res(name: str) -> Resource:
    r = lookup(name)
    assert r is not None, name
    return r


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m podnet.dns.main",
                                description="podnet's cluster DNS server")
    p.add_argument("--api", required=True,
                   help="the API server: unix:///path/api.sock or https://host:port")
    p.add_argument("--token-file", required=True, help="a file holding the bearer token")
    p.add_argument("--ca-file", default=None, help="the API's CA (for an https --api)")
    p.add_argument("--listen", default="0.0.0.0", help="the address to serve DNS on")
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--zone", default="cluster.local")
    p.add_argument("--upstream", action="append", default=[], metavar="IP[:PORT]",
                   help="a resolver for names outside the zone (repeatable; default: the "
                        "nameservers of /etc/resolv.conf)")
    p.add_argument("--resolv-conf", default="/etc/resolv.conf", help=argparse.SUPPRESS)
    p.add_argument("--pod-records", choices=("insecure", "disabled", "verified"),
                   default="insecure")
    p.add_argument("--ttl", type=int, default=30, help="the TTL of cluster records")
    p.add_argument("--health-port", type=int, default=8080)
    p.add_argument("--ready-port", type=int, default=8181)
    p.add_argument("--metrics-port", type=int, default=9153)
    p.add_argument("--service-cidr", action="append", default=[],
                   help="the Service CIDR (repeatable or comma-separated): its reverse zone "
                        "is served here")
    p.add_argument("--cluster-cidr", action="append", default=[],
                   help="the pod CIDR (repeatable or comma-separated): its reverse zone is "
                        "served here")
    p.add_argument("--forward-timeout", type=float, default=1.5,
                   help="seconds to wait for one upstream before trying the next")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def _cidrs(values: list[str], default: tuple[str, ...]) -> tuple[str, ...]:
    out = tuple(v.strip() for text in values for v in text.split(",") if v.strip())
    return out or default


def upstreams(args: argparse.Namespace) -> list[Upstream]:
    texts = list(args.upstream)
    if not texts:
        try:
            texts = resolv_conf_nameservers(Path(args.resolv_conf).read_text())
        except OSError as e:
            log.warning("cannot read %s: %s", args.resolv_conf, e)
    out = []
    for t in texts:
        try:
            out.append(parse_upstream(t))
        except ValueError:
            raise SystemExit(f"bad --upstream {t!r}: want IP, IP:PORT or [IPv6]:PORT") from None
    return out


async def run(args: argparse.Namespace) -> None:
    defaults = DnsConfig()
    config = DnsConfig(zone=args.zone.strip(".").lower(), ttl=args.ttl,
                       pod_records=args.pod_records,
                       service_cidrs=_cidrs(args.service_cidr, defaults.service_cidrs),
                       pod_cidrs=_cidrs(args.cluster_cidr, defaults.pod_cidrs))
    metrics = Metrics()
    ups = upstreams(args)
    forwarder = Forwarder(ups, metrics, timeout=args.forward_timeout)
    server = DnsServer(config, forwarder, metrics)
    token = Path(args.token_file).read_text().strip()
    client = AsyncClient(args.api, token=token, ca_file=args.ca_file)

    closers: list[Any] = await listen(server, args.listen, args.port)
    for port, what in ((args.health_port, "/health"), (args.ready_port, "/ready"),
                       (args.metrics_port, "/metrics")):
        if port:
            routes = server.http_routes()
            closers.append(await serve_http(args.listen, port, {what: routes[what]}))
    log.info("serving %s on %s:%d (udp, tcp); upstreams %s", config.zone, args.listen,
             args.port, ", ".join(map(upstream_text, ups)) or "none")

    o = server.objects
    reflectors = [Reflector(client, _res("services"), None, o.on_service),
                  Reflector(client, _res("endpointslices"), None, o.on_slice),
                  Reflector(client, _res("pods"), None, o.on_pod),
                  Reflector(client, _res("namespaces"), None, o.on_namespace)]
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(r.run()) for r in reflectors]
    tasks.append(loop.create_task(server.sync([r.synced for r in reflectors])))
    forwarder.start_probes()

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    done = loop.create_task(stop.wait())
    await asyncio.wait([done, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for t in tasks:
        if t.done() and not t.cancelled() and t.exception() is not None:
            log.error("a task stopped: %r", t.exception())
    log.info("stopping")
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(BaseException):
            await t
    await forwarder.close()
    for c in closers:
        c.close()
    await client.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return daemon.run(run(args), args.log_level, fast_loop=True)


if __name__ == "__main__":
    sys.exit(main())
