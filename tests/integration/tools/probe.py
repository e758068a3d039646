"""Reachability probe, run inside a namespace: `python3 -I -S probe.py PORT IP...`.

For each IP: an ICMP echo (the system ping) and an HTTP GET to podnet's echo server on PORT.
Prints one JSON object: {ip: {"icmp": bool, "http": the echo server's JSON or null}}.
Stdlib only, so it starts fast inside any namespace.
"""

import json
import subprocess
import sys
import urllib.request


def http(ip: str, port: str) -> object:
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/probe", timeout=3) as resp:
            return json.loads(resp.read())
    except OSError:
        return None


def main() -> None:
    port, ips = sys.argv[1], sys.argv[2:]
    pings = {ip: subprocess.Popen(["ping", "-c1", "-W2", "-q", ip], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for ip in ips}
    out = {ip: {"http": http(ip, port)} for ip in ips}
    for ip, p in pings.items():
        out[ip]["icmp"] = p.wait() == 0
    print(json.dumps(out))


main()
