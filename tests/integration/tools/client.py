"""Service client, run inside a namespace: `python3 -I -S client.py MODE IP PORT ...`.

  http IP PORT COUNT           -> {"pods": {pod: n}, "clients": [ip...], "errors": {kind: n}}
                                  (a new connection per request to podnet's echo server)
  sticky IP PORT ROUNDS PAUSE  -> {"rounds": [[pod...] per round]} (5 requests a round)
  connect IP PORT              -> {"error": errno name or null, "seconds": float}
  get IP PORT                  -> {"status": int, "body": {...}} or {"error": ...} (GET /healthz)
  udp IP PORT SECONDS          -> {"sent": n, "replies": [seconds since start of each reply]}
                                  (one socket, source port 40053, a datagram every 0.2 s)

Stdlib only, so it starts fast inside any namespace.
"""

import errno
import json
import socket
import sys
import time


def request(ip: str, port: int, path: str = "/") -> tuple[int, dict]:
    s = socket.create_connection((ip, port), timeout=3)
    s.sendall(b"GET " + path.encode() + b" HTTP/1.0\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, body = data.split(b"\r\n\r\n", 1)
    return int(head.split()[1]), json.loads(body)


def connect(ip: str, port: int) -> dict:
    t = time.monotonic()
    err = None
    try:
        socket.create_connection((ip, port), timeout=3).close()
    except TimeoutError:
        err = "TIMEOUT"
    except OSError as e:
        err = errno.errorcode.get(e.errno or 0, str(e.errno))
    return {"error": err, "seconds": time.monotonic() - t}


def get(ip: str, port: int) -> dict:
    try:
        status, body = request(ip, port, "/healthz")
        return {"status": status, "body": body}
    except Exception as e:
        return {"error": type(e).__name__}


def sticky(ip: str, port: int, rounds: int, pause: float) -> dict:
    out = []
    for r in range(rounds):
        if r:
            time.sleep(pause)
        out.append([request(ip, port)[1]["pod"] for _ in range(5)])
    return {"rounds": out}


def udp(ip: str, port: int, seconds: float) -> dict:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 40053))  # one source port for the whole run: one conntrack entry
    s.settimeout(0.2)
    start = time.monotonic()
    sent = 0
    replies = []
    while time.monotonic() - start < seconds:
        s.sendto(b"ping %d" % sent, (ip, port))
        sent += 1
        try:
            s.recvfrom(2048)
            replies.append(round(time.monotonic() - start, 2))
            time.sleep(0.2)
        except (TimeoutError, ConnectionRefusedError):
            pass
    return {"sent": sent, "replies": replies}


def http(ip: str, port: int, count: int) -> dict:
    pods: dict[str, int] = {}
    clients: set[str] = set()
    errors: dict[str, int] = {}
    for _ in range(count):
        try:
            _, body = request(ip, port)
            pods[body["pod"]] = pods.get(body["pod"], 0) + 1
            clients.add(body["client"]["ip"])
        except Exception as e:
            errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
    return {"pods": pods, "clients": sorted(clients), "errors": errors}


def main() -> None:
    mode, ip, port, rest = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    if mode == "connect":
        out = connect(ip, port)
    elif mode == "get":
        out = get(ip, port)
    elif mode == "sticky":
        out = sticky(ip, port, int(rest[0]), float(rest[1]))
    elif mode == "udp":
        out = udp(ip, port, float(rest[0]))
    else:
        out = http(ip, port, int(rest[0]))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
