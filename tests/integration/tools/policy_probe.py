"""Policy prober, run inside a pod's namespaces:

    python3 -I -S policy_probe.py [-t SECONDS] [-p FIRST_UDP_PORT] TARGET...

TARGET is IP:PORT/PROTO (PROTO tcp or udp). Every target is tried at once, in one thread
(non-blocking sockets, one poll loop), and the prober prints one JSON object:

    {"10.244.1.5:80/tcp": true, "10.244.2.7:81/udp": false, "10.244.3.2:80/tcp": "timeout"}

  true     the echo server answered: TCP connected and `GET /policy-probe` came back 200 with
           the echo's JSON naming the target's IP and port; UDP: the datagram came back as sent
  false    rejected the way a policy rejects: ICMP admin-prohibited, which Linux reports as
           EHOSTUNREACH (on connect for TCP, on the connected socket for UDP)
  "text"   anything else: "timeout" (no answer within -t seconds of waiting, 1.5 by default:
           time the prober spends off the CPU does not count), another
           errno ("ECONNREFUSED": nothing listens), or a wrong answer ("bad answer: ...")

A UDP datagram is sent again every 0.2 s until the echo or the deadline: a datagram lost once
is no verdict. With -p, the UDP sockets are bound to source ports FIRST, FIRST+1, ... in target
order: the caller moves FIRST on every round so that no round reuses a UDP 5-tuple that an
earlier round left in conntrack (an entry from an allowed round would let a now-denied datagram
through as "established"; a new TCP SYN replaces its old entry, so TCP needs no such care).
Stdlib only, so it starts fast inside any namespace.
"""

import errno
import json
import os
import select
import socket
import sys
import time

RESEND = 0.2
REQUEST = "GET /policy-probe HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n"
DENIED = (errno.EHOSTUNREACH,)


def err_text(code):
    return errno.errorcode.get(code, str(code))


class Probe:
    """One target: a socket and what it is waiting for."""

    def __init__(self, target, source_port=None):
        self.target = target
        addr, proto = target.rsplit("/", 1)
        ip, port = addr.rsplit(":", 1)
        self.ip, self.port, self.proto = ip, int(port), proto.lower()
        if self.proto not in ("tcp", "udp"):
            raise SystemExit(f"policy_probe: {target}: protocol must be tcp or udp")
        self.result = None
        self.buf = b""
        self.token = os.urandom(12).hex().encode()
        self.sent_at = 0.0
        kind = socket.SOCK_STREAM if self.proto == "tcp" else socket.SOCK_DGRAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.setblocking(False)
        if source_port is not None and self.proto == "udp":
            self.sock.bind(("0.0.0.0", source_port))
        self.connected = False

    def fileno(self):
        return self.sock.fileno()

    def start(self, now):
        if self.proto == "tcp":
            code = self.sock.connect_ex((self.ip, self.port))
            if code not in (0, errno.EINPROGRESS):
                self.fail(code)
            return
        try:
            self.sock.connect((self.ip, self.port))
            self.send_datagram(now)
        except OSError as e:
            self.fail(e.errno)

    def send_datagram(self, now):
        self.sent_at = now
        self.sock.send(self.token)

    def fail(self, code):
        self.result = False if code in DENIED else err_text(code)

    def events(self):
        if self.proto == "tcp" and not self.connected:
            return select.POLLOUT
        return select.POLLIN

    def on_event(self, ev, now):
        if self.proto == "udp":
            self.on_udp(now)
        elif not self.connected:
            self.on_connected()
        else:
            self.on_http()

    def on_udp(self, now):
        try:
            data = self.sock.recv(65535)
        except BlockingIOError:
            return
        except OSError as e:
            self.fail(e.errno)
            return
        self.result = True if data == self.token else f"bad answer: {data[:60]!r}"

    def on_connected(self):
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.fail(code)
            return
        self.connected = True
        try:
            self.sock.send(REQUEST.format(ip=self.ip).encode())
        except OSError as e:
            self.fail(e.errno)

    def on_http(self):
        try:
            chunk = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            self.fail(e.errno)
            return
        if chunk:
            self.buf += chunk
            return
        self.result = self.check_http()

    def check_http(self):
        head, _, body = self.buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200 "):
            return f"bad answer: {head[:60]!r}"
        try:
            doc = json.loads(body)
        except ValueError:
            return f"bad answer: {body[:60]!r}"
        if doc.get("podIP") != self.ip or doc.get("port") != self.port:
            return f"bad answer: {doc.get('podIP')}:{doc.get('port')}"
        return True

    def due(self, now):
        """Resend a UDP datagram that got no echo yet."""
        if self.proto == "udp" and self.result is None and now - self.sent_at >= RESEND:
            try:
                self.send_datagram(now)
            except OSError as e:
                self.fail(e.errno)


def run(targets, timeout, first_port=None):
    now = time.monotonic()
    probes = {}
    udp = 0
    for t in targets:
        port = None
        if first_port is not None and t.lower().endswith("/udp"):
            port, udp = first_port + udp, udp + 1
        p = Probe(t, port)
        p.start(now)
        probes[p.fileno()] = p
    spent = 0.0  # seconds of the timeout used up waiting in poll (see below)
    poll = select.poll()
    waiting = {}

    def refresh():
        for fd, p in probes.items():
            want = p.events() if p.result is None else 0
            if waiting.get(fd) != want:
                if fd in waiting:
                    poll.unregister(fd)
                    del waiting[fd]
                if want:
                    poll.register(fd, want)
                    waiting[fd] = want

    while True:
        refresh()
        if not waiting or spent >= timeout:
            break
        wait = min(timeout - spent, RESEND / 2)
        before = time.monotonic()
        events = poll.poll(wait * 1000)
        # A poll counts for at most what it asked for: when the machine is loaded and the
        # prober gets no CPU for a while, the answers wait in the sockets; the stall must not
        # turn them into timeouts.
        spent += min(time.monotonic() - before, wait)
        for fd, ev in events:
            probes[fd].on_event(ev, time.monotonic())
        now = time.monotonic()
        for p in probes.values():
            p.due(now)
    out = {}
    for p in probes.values():
        out[p.target] = "timeout" if p.result is None else p.result
        p.sock.close()
    return out


def main(argv):
    timeout, first_port = 1.5, None
    while argv[:1] in (["-t"], ["-p"]):
        if argv[0] == "-t":
            timeout = float(argv[1])
        else:
            first_port = int(argv[1])
        argv = argv[2:]
    print(json.dumps(run(argv, timeout, first_port)))


main(sys.argv[1:])
