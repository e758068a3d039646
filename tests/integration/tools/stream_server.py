"""A slow streaming HTTP server: the backend of the ingress tests' long-lived connection.
Run as a pod's command: `python3 -I -S stream_server.py PORT`. Stdlib only.

  GET /stream?chunks=N&interval=S   200, `Transfer-Encoding: chunked`: N chunks
                                    (`chunk i of N <pod>`), one every S seconds, then the
                                    last (empty) chunk
  anything else                     200 `ok` (readiness)

One thread per connection; SIGTERM ends it.
"""

import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

POD = os.environ.get("HOSTNAME") or os.uname().nodename


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path != "/stream":
            body = b"ok\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        query = parse_qs(url.query)
        chunks = int(query.get("chunks", ["10"])[0])
        interval = float(query.get("interval", ["0.1"])[0])
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(1, chunks + 1):
            data = f"chunk {i} of {chunks} {POD}\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            time.sleep(interval)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def log_message(self, format, *args):
        sys.stdout.write(f"{self.address_string()} {format % args}\n")
        sys.stdout.flush()


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    print(f"stream server on port {sys.argv[1]}", flush=True)
    server.serve_forever()


main()
