"""`python -m podnet.ingress.main`: the ingress controller process (what the podnet-ingress pod
runs). It starts HAProxy as its child and keeps it configured (podnet.ingress.controller).

    python -m podnet.ingress.main --api unix:///path/api.sock --token-file PATH \\
        --state-dir DIR [--publish-service NS/NAME] [--ingress-class podnet] \\
        [--controller-name podnet.dev/ingress-controller] [--http-port 80] \\
        [--https-port 443] [--health-port 10254] [--haproxy-health-port 10255]

DIR holds haproxy.cfg, the map files, the certificates and the stats socket (its path must fit
a unix socket's 107 bytes). The health port serves /healthz (200 once HAProxy serves the first
configuration) and /metrics; a port of 0 turns it off. SIGTERM and SIGINT stop the controller
and HAProxy, which finishes the requests it has first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from podnet import daemon
from podnet.client.aio import AsyncClient
from podnet.dns.server import serve_http
from podnet.ingress import routes
from podnet.ingress.controller import (
    COALESCE,
    STOP_GRACE,
    Controller,
    IngressError,
    Options,
    parse_service_ref,
)

log = logging.getLogger("podnet.ingress")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m podnet.ingress.main",
                                description="podnet's ingress controller (HAProxy)")
    p.add_argument("--api", required=True,
                   help="the API server: unix:///path/api.sock or https://host:port")
    p.add_argument("--token-file", required=True, help="a file holding the bearer token")
    p.add_argument("--ca-file", default=None, help="the API's CA (for an https --api)")
    p.add_argument("--state-dir", required=True, type=Path,
                   help="where HAProxy's configuration, maps, certificates and socket live")
    p.add_argument("--publish-service", default=None, metavar="NAMESPACE/NAME",
                   help="the Service whose LoadBalancer address goes into the Ingresses' "
                        "status")
    p.add_argument("--ingress-class", default=routes.CLASS_NAME,
                   help="the class name the deprecated kubernetes.io/ingress.class "
                        "annotation must carry")
    p.add_argument("--controller-name", default=routes.CONTROLLER,
                   help="the spec.controller of the IngressClasses handled here")
    p.add_argument("--http-port", type=int, default=80)
    p.add_argument("--https-port", type=int, default=443, help="0: no HTTPS")
    p.add_argument("--health-port", type=int, default=10254,
                   help="/healthz and /metrics (0: off)")
    p.add_argument("--haproxy-health-port", type=int, default=10255,
                   help="HAProxy's own /healthz")
    p.add_argument("--bind-address", default="", help="HAProxy's listening address (all)")
    p.add_argument("--haproxy", default="haproxy", help="the HAProxy binary")
    p.add_argument("--coalesce", type=float, default=COALESCE,
                   help="seconds a change waits for the rest of its burst")
    p.add_argument("--stop-grace", type=float, default=STOP_GRACE,
                   help="seconds HAProxy gets to finish requests in flight when stopping")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def options(args: argparse.Namespace) -> Options:
    publish = None
    if args.publish_service:
        try:
            publish = parse_service_ref(args.publish_service)
        except ValueError as e:
            raise SystemExit(f"bad --publish-service {e}") from None
    binary = shutil.which(args.haproxy)
    if binary is None:
        raise SystemExit(f"{args.haproxy}: not found; install HAProxy (Debian: apt-get install "
                         "haproxy; scripts/install.sh does)")
    return Options(state_dir=args.state_dir.resolve(), publish_service=publish,
                   class_name=args.ingress_class, controller=args.controller_name,
                   http_port=args.http_port, https_port=args.https_port or None,
                   haproxy_health_port=args.haproxy_health_port,
                   bind_address=args.bind_address, haproxy_binary=binary,
                   coalesce=args.coalesce, stop_grace=args.stop_grace)


async def run(args: argparse.Namespace) -> None:
    opts = options(args)
    token = Path(args.token_file).read_text().strip()
    client = AsyncClient(args.api, token=token, ca_file=args.ca_file)
    controller = Controller(client, opts)
    closers: list[Any] = []
    if args.health_port:
        closers.append(await serve_http("0.0.0.0", args.health_port, controller.http_routes()))
    log.info("ingress controller for class %s (%s), state in %s, publishing %s",
             opts.class_name, opts.controller, opts.state_dir,
             "/".join(opts.publish_service) if opts.publish_service else "nothing")

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    main = loop.create_task(controller.run())
    done = loop.create_task(stop.wait())
    try:
        await asyncio.wait([main, done], return_when=asyncio.FIRST_COMPLETED)
        if main.done():
            main.result()  # an IngressError ends the process with an error
        log.info("stopping")
    finally:
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await main
        done.cancel()
        for c in closers:
            c.close()
        await client.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        # The controller mostly starts processes and talks to sockets: asyncio's own loop.
        return daemon.run(run(args), args.log_level, fast_loop=False)
    except IngressError as e:
        log.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
