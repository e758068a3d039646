"""HTTP load and probes for the ingress tests, run in the external host's namespace:
`python3 -I -S http_load.py MODE ...`. Stdlib only (CI has no wrk), strict, and it says what
went wrong and when: every error and every unexpected status is counted, the first few kept
with their time (time.monotonic(), one clock for every process of the machine).

  load CONFIG_JSON   closed-loop HTTP/1.1 clients until stdin is closed; prints `running`
                     once every client has had an answer, then one line of JSON:
                     {"requests": n, "seconds": s, "by": {worker: {status: n}},
                      "errors": n, "error_samples": [{t, worker, kind, detail}...],
                      "unexpected": n, "unexpected_samples": [{t, worker, status, body}...],
                      "certs": {sha256[:16]: {"n", "first", "last"}},
                      "pods": {worker: {pod: n}}}
      CONFIG_JSON = {"ip": ..., "timeout": 5, "cafile": PATH or null, "pods": bool,
                     "workers": [{"name", "host", "path", "port", "tls", "connections",
                                  "per_connection", "expect": [status...]}]}
      per_connection 0 keeps each connection for as long as the server does; N sends
      `Connection: close` with the Nth request, so a new connection (and TLS handshake)
      follows. An error is anything but a whole answer to a request sent: a refused or
      failed connect, a reset, the connection closed before the answer was complete
      (also right after a request on a kept-alive connection, which wrk counts as a read
      error too), a timeout, a TLS failure. A connection the server closes after an answer
      that said `Connection: close` is not one.
  first200 IP PORT HOST PATH TIMEOUT
                     a request every 5 ms on a kept-alive connection (a new one whenever the
                     server closes it) until one answers 200; prints `polling` after the first
                     answer, then {"first_200": t or null, "tries": n, "statuses": {...},
                     "errors": n}
  stream IP PORT HOST PATH
                     one GET whose answer is chunked; prints `streaming` when the first chunk
                     has arrived, then {"status", "chunks", "complete", "max_gap", "seconds",
                     "error"} (complete: the last, empty chunk arrived)
"""

import asyncio
import hashlib
import json
import ssl
import sys
import time

SAMPLES = 20


class BadAnswer(Exception):
    pass


class Answer:
    __slots__ = ("body", "close", "status")

    def __init__(self, status, body, close):
        self.status, self.body, self.close = status, body, close


async def read_answer(reader):
    """One HTTP/1.1 answer; BadAnswer or asyncio.IncompleteReadError when it is not whole."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise BadAnswer(f"status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    close = headers.get("connection", "").lower() == "close" or parts[0] == "HTTP/1.0"
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body, close = await reader.read(), True
    return Answer(int(parts[1]), body, close)


def request(host, path, close):
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: podnet-http-load\r\n"
            + ("Connection: close\r\n" if close else "") + "\r\n").encode()


def tls_context(cafile):
    if cafile:
        return ssl.create_default_context(cafile=cafile)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def open_connection(ip, port, host, ctx, timeout):
    return await asyncio.wait_for(asyncio.open_connection(
        ip, port, ssl=ctx, server_hostname=host if ctx else None, limit=1 << 20), timeout)


def error_kind(e):
    if isinstance(e, asyncio.IncompleteReadError):
        return "eof" if not e.partial else "truncated"
    if isinstance(e, TimeoutError):
        return "timeout"
    if isinstance(e, ssl.SSLError):
        return "tls"
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, ConnectionResetError):
        return "reset"
    return type(e).__name__


# -- load ---------------------------------------------------------------------------------------


class Load:
    def __init__(self, cfg):
        self.cfg = cfg
        self.stop = asyncio.Event()
        self.requests = 0
        self.by = {w["name"]: {} for w in cfg["workers"]}
        self.pods = {w["name"]: {} for w in cfg["workers"]}
        self.errors = 0
        self.error_samples = []
        self.unexpected = 0
        self.unexpected_samples = []
        self.certs = {}
        self.waiting = sum(w["connections"] for w in cfg["workers"])
        self.all_answered = asyncio.Event()
        self.ctx = tls_context(cfg.get("cafile"))

    def error(self, worker, e):
        self.errors += 1
        if len(self.error_samples) < SAMPLES:
            self.error_samples.append({"t": time.monotonic(), "worker": worker["name"],
                                       "kind": error_kind(e), "detail": repr(e)[:300]})

    def answered(self, worker, answer):
        self.requests += 1
        counts = self.by[worker["name"]]
        counts[str(answer.status)] = counts.get(str(answer.status), 0) + 1
        if answer.status not in worker.get("expect", [200]):
            self.unexpected += 1
            if len(self.unexpected_samples) < SAMPLES:
                self.unexpected_samples.append({
                    "t": time.monotonic(), "worker": worker["name"], "status": answer.status,
                    "body": answer.body[:200].decode("latin-1")})
        elif self.cfg.get("pods") and answer.status == 200:
            pod = json.loads(answer.body).get("pod", "?")
            seen = self.pods[worker["name"]]
            seen[pod] = seen.get(pod, 0) + 1

    def handshake(self, writer):
        obj = writer.get_extra_info("ssl_object")
        if obj is None:
            return
        digest = hashlib.sha256(obj.getpeercert(binary_form=True)).hexdigest()[:16]
        now = time.monotonic()
        seen = self.certs.setdefault(digest, {"n": 0, "first": now, "last": now})
        seen["n"] += 1
        seen["last"] = now

    async def client(self, worker):
        timeout = self.cfg.get("timeout", 5.0)
        ctx = self.ctx if worker.get("tls") else None
        port = worker.get("port", 443 if ctx else 80)
        per_conn = worker.get("per_connection", 0)
        first = True
        while not self.stop.is_set():
            writer = None
            try:
                reader, writer = await open_connection(self.cfg["ip"], port, worker["host"],
                                                       ctx, timeout)
                self.handshake(writer)
                sent = 0
                while not self.stop.is_set():
                    sent += 1
                    last = per_conn and sent >= per_conn
                    writer.write(request(worker["host"], worker.get("path", "/"), last))
                    answer = await asyncio.wait_for(read_answer(reader), timeout)
                    self.answered(worker, answer)
                    if first:
                        first = False
                        self.waiting -= 1
                        if not self.waiting:
                            self.all_answered.set()
                    if answer.close or last:
                        break
            except Exception as e:  # every failure is counted, by kind
                self.error(worker, e)
                await asyncio.sleep(0.01)
            finally:
                if writer is not None:
                    writer.close()

    async def run(self):
        loop = asyncio.get_running_loop()
        loop.add_reader(sys.stdin.fileno(), self.on_stdin)
        started = time.monotonic()
        tasks = [asyncio.create_task(self.client(w))
                 for w in self.cfg["workers"] for _ in range(w["connections"])]

        async def announce():
            try:
                await asyncio.wait_for(self.all_answered.wait(), 60)
            except TimeoutError:
                pass
            print("running", flush=True)
        note = asyncio.create_task(announce())
        await self.stop.wait()
        note.cancel()
        await asyncio.wait(tasks, timeout=self.cfg.get("timeout", 5.0) + 1)
        for t in tasks:
            t.cancel()
        return {"requests": self.requests, "seconds": time.monotonic() - started,
                "by": self.by, "errors": self.errors, "error_samples": self.error_samples,
                "unexpected": self.unexpected, "unexpected_samples": self.unexpected_samples,
                "certs": self.certs, "pods": self.pods}

    def on_stdin(self):
        import os

        if not os.read(sys.stdin.fileno(), 4096):
            asyncio.get_running_loop().remove_reader(sys.stdin.fileno())
            self.stop.set()


# -- probes -------------------------------------------------------------------------------------


async def first200(ip, port, host, path, timeout):
    deadline = time.monotonic() + timeout
    tries, errors, statuses, announced = 0, 0, {}, False
    writer = None
    while time.monotonic() < deadline:
        try:
            if writer is None:
                reader, writer = await open_connection(ip, port, host, None, 5)
            tries += 1
            writer.write(request(host, path, False))
            answer = await asyncio.wait_for(read_answer(reader), 5)
            now = time.monotonic()
            statuses[str(answer.status)] = statuses.get(str(answer.status), 0) + 1
            if not announced:
                print("polling", flush=True)
                announced = True
            if answer.status == 200:
                writer.close()
                return {"first_200": now, "tries": tries, "statuses": statuses,
                        "errors": errors}
            if answer.close:
                writer.close()
                writer = None
        except Exception:  # counted; the probe goes on
            errors += 1
            if writer is not None:
                writer.close()
            writer = None
        await asyncio.sleep(0.005)
    return {"first_200": None, "tries": tries, "statuses": statuses, "errors": errors}


async def stream(ip, port, host, path):
    out = {"status": None, "chunks": 0, "complete": False, "max_gap": 0.0, "seconds": 0.0,
           "error": None}
    started = time.monotonic()
    try:
        reader, writer = await open_connection(ip, port, host, None, 5)
        writer.write(request(host, path, True))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        out["status"] = int(head.split(b" ", 2)[1])
        if b"transfer-encoding: chunked" not in head.lower():
            raise BadAnswer(f"not chunked: {head[:300]!r}")
        last = time.monotonic()
        while True:
            size = int((await asyncio.wait_for(reader.readuntil(b"\r\n"), 30)).split(b";")[0],
                       16)
            await asyncio.wait_for(reader.readexactly(size + 2), 30)
            now = time.monotonic()
            if size == 0:
                out["complete"] = True
                break
            out["chunks"] += 1
            if out["chunks"] == 1:
                print("streaming", flush=True)
            else:
                out["max_gap"] = max(out["max_gap"], now - last)
            last = now
        writer.close()
    except Exception as e:  # reported
        out["error"] = f"{error_kind(e)}: {e!r}"[:300]
    out["seconds"] = time.monotonic() - started
    return out


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "load":
        result = asyncio.run(Load(json.loads(args[0])).run())
    elif mode == "first200":
        result = asyncio.run(first200(args[0], int(args[1]), args[2], args[3], float(args[4])))
    elif mode == "stream":
        result = asyncio.run(stream(args[0], int(args[1]), args[2], args[3]))
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(result), flush=True)


main()
