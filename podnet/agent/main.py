"""`podnet agent --state-dir DIR --node NAME`: the node agent of one node of one cluster."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from podnet import daemon
from podnet.agent.agent import Agent
from podnet.cluster.state import ClusterState


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="podnet agent", description=__doc__)
    p.add_argument("--state-dir", required=True, type=Path)
    p.add_argument("--node", required=True)
    p.add_argument("--backend", choices=["host-gw", "vxlan"], default=None,
                   help="how nodes reach each other's pods (default: the cluster's setting)")
    p.add_argument("--cni", choices=["podnet", "ptp"], default=None,
                   help="podnet's CNI plugin, or Debian's ptp + host-local in its place")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    state = ClusterState.from_dir(args.state_dir)
    config = json.loads(state.cluster_json.read_text())
    backend = args.backend or config.get("backend") or "host-gw"
    cni = args.cni or config.get("cni") or "podnet"
    agent = Agent(state, args.node, backend=backend, cni=cni)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = asyncio.create_task(agent.run())
    waiter = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if runner in done:
            runner.result()  # raise what stopped it
    finally:
        runner.cancel()
        waiter.cancel()
        await agent.stop()


def main(argv: list[str]) -> int:
    args = parse(argv)
    return daemon.run(serve(args), args.log_level, fast_loop=False)
