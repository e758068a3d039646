"""The API's unix socket: what processes in pods use, since their network namespaces have no
route to the host's loopback where the API listens."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from podnet.lab import names

pytestmark = pytest.mark.integration
EXPECTED = ["default", "kube-node-lease", "kube-public", "kube-system"]

LIST = r'''
import asyncio, json, sys
from podnet.client.aio import AsyncClient
from podnet.api.resources import RESOURCES
NS = next(r for r in RESOURCES if r.kind == "Namespace")

async def main():
    out = {}
    for token in (sys.argv[2], "wrong"):
        c = AsyncClient("unix://" + sys.argv[1], token=token)
        try:
            items = (await c.list(NS, None))["items"]
            out[token == sys.argv[2] and "right" or "wrong"] = sorted(
                i["metadata"]["name"] for i in items)
        except Exception as e:
            out[token == sys.argv[2] and "right" or "wrong"] = getattr(e, "status", repr(e))
        finally:
            await c.close()
    print(json.dumps(out))

asyncio.run(main())
'''


def test_a_process_in_a_node_namespace_reaches_the_api_through_the_unix_socket(make_lab):
    lab = make_lab(nodes=1)
    sock = lab.state.api_socket
    assert sock.is_socket() and (sock.stat().st_mode & 0o777) == 0o600
    node = names.node_netns(lab.name, "node-1")
    # The TCP address is not reachable from there ...
    tcp = subprocess.run(["ip", "netns", "exec", node, sys.executable, "-c",
                          "import socket,sys; socket.create_connection(('127.0.0.1', "
                          f"{lab.port}), timeout=2)"], capture_output=True, text=True)
    assert tcp.returncode != 0 and "ConnectionRefused" in tcp.stderr
    # ... the unix socket is, with the cluster's token (and only with it).
    out = subprocess.run(["ip", "netns", "exec", node, sys.executable, "-c", LIST, str(sock),
                          lab.state.read_token()], capture_output=True, text=True, check=True,
                         timeout=60)
    got = json.loads(out.stdout)
    assert got["right"] == EXPECTED, got
    assert got["wrong"] == 401, got
