"""`podnet server --state-dir DIR`: the API server of one cluster.

It reads DIR/cluster.json (address, port, ranges, LoadBalancer pool), DIR/token and DIR/pki,
keeps its data in DIR/store.db, and serves HTTPS until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import ssl
import time
from pathlib import Path

from aiohttp import web

from podnet import daemon
from podnet.api.allocation import Ranges
from podnet.cluster.state import ClusterConfig, parse_lb_pool
from podnet.server.controllers.compaction import compact_forever
from podnet.server.controllers.endpointslice import EndpointSliceController
from podnet.server.controllers.loadbalancer import LoadBalancerController
from podnet.server.controllers.namespace import NamespaceController
from podnet.server.controllers.nodeipam import NodeIpamController
from podnet.server.controllers.scheduler import Scheduler
from podnet.server.http import Api
from podnet.server.registry import Registry
from podnet.store.sqlite import SqliteStore

log = logging.getLogger("podnet.server")
SHUTDOWN_LIMIT = 3.0  # seconds the HTTP server gets to close its connections on SIGTERM


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="podnet server", description=__doc__)
    p.add_argument("--state-dir", required=True, type=Path)
    p.add_argument("--compaction-interval", type=float,
                   default=float(os.environ.get("PODNET_COMPACTION_INTERVAL", "300")),
                   help="seconds between compactions of the store's history (default 300, or "
                   "$PODNET_COMPACTION_INTERVAL)")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    state: Path = args.state_dir
    config = json.loads((state / "cluster.json").read_text())
    token = (state / "token").read_text().strip()
    bind, port = config.get("bind", "127.0.0.1"), int(config["port"])
    ranges = Ranges.parse(config.get("service_cidr", "10.96.0.0/12"),
                          config.get("node_port_range", "30000-32767"))
    lb_pool = parse_lb_pool(ClusterConfig.from_dict(config).load_balancer_pool)
    store = SqliteStore(state / "store.db")
    registry = Registry(store, ranges)
    await registry.start()
    await registry.ensure_kubernetes_service(port)
    api = Api(registry, token, server_address=f"{bind}:{port}")

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(state / "pki" / "server.crt", state / "pki" / "server.key")
    runner = web.AppRunner(api.app(), access_log=None, handle_signals=False,
                           shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, bind, port, ssl_context=tls, reuse_address=True, backlog=1024)
    await site.start()
    # Pods (the cluster DNS) reach the API through a unix socket: their namespaces have no
    # route to the host's loopback, and podnet does not listen anywhere else.
    sock = state / "api.sock"
    sock.unlink(missing_ok=True)
    unix_site = web.UnixSite(runner, str(sock))
    await unix_site.start()
    sock.chmod(0o600)
    tasks = [asyncio.create_task(NamespaceController(registry).run()),
             asyncio.create_task(compact_forever(store, args.compaction_interval)),
             asyncio.create_task(NodeIpamController(
                 registry, config.get("cluster_cidr", "10.244.0.0/16"),
                 int(config.get("node_cidr_mask", 24))).run()),
             asyncio.create_task(Scheduler(registry).run()),
             asyncio.create_task(EndpointSliceController(registry).run()),
             asyncio.create_task(LoadBalancerController(registry, lb_pool).run())]
    # What start-up allocated lives as long as the server: keep it out of the collector's
    # full passes, which otherwise show up as latency spikes.
    gc.collect()
    gc.freeze()
    api.ready = True
    log.info("serving the API on https://%s:%d (store revision %d)", bind, port, store.revision)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    api.ready = False
    started = time.monotonic()
    for t in tasks:
        t.cancel()
    store.end_watches()  # open watch streams finish, so the HTTP server can stop at once
    try:
        # Every acknowledged write is already in the WAL, so a slow goodbye to clients must
        # not hold the process: one CI run saw a SIGTERM'd server still alive after 10 s.
        await asyncio.wait_for(runner.cleanup(), SHUTDOWN_LIMIT)
    except TimeoutError:
        log.warning("the HTTP server did not stop within %.0f s; exiting anyway",
                    SHUTDOWN_LIMIT)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 1.0)
    await store.close()
    log.info("stopped in %.2f s", time.monotonic() - started)


def main(argv: list[str]) -> int:
    args = parse(argv)
    return daemon.run(serve(args), args.log_level)
