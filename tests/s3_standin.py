"""Stand-ins for S3 on this machine (no AWS here): moto's S3 server on 127.0.0.1, spoken to
over the real S3 protocol by delta-rs and boto3, and a small HTTP proxy in front of it that
injects the faults moto cannot (503 SlowDown on chosen PUTs; a store that ignores
conditional writes, as older S3-compatible stores do). Used by tests/test_s3.py."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
             b'<Message>Please reduce your request rate.</Message></Error>')
_HOP = ("transfer-encoding", "content-length", "connection")


class FaultProxy:
    """Forwards every request to moto at ``upstream_port``, except that it

    - answers the first ``fail_puts`` PUTs whose path contains ``fail_match`` with 503
      SlowDown (without forwarding them), counting them in ``failed``;
    - with ``strip_conditional``, drops If-None-Match/If-Match from every request: the
      store then ignores conditional writes.
    """

    def __init__(self, upstream_port: int, strip_conditional: bool = False, fail_puts: int = 0,
                 fail_match: str = "/_delta_log/"):
        self.upstream_port, self.strip_conditional = upstream_port, strip_conditional
        self.fail_puts, self.fail_match, self.failed, self.forwarded_puts = fail_puts, fail_match, 0, 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in (*_HOP, "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _any(self):
                body = self._body()
                if self.command == "PUT" and proxy.fail_match in self.path:
                    with proxy._lock:
                        fail = proxy.failed < proxy.fail_puts
                        proxy.failed += fail
                    if fail:
                        self._reply(503, [("Content-Type", "application/xml")], SLOW_DOWN)
                        return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                if proxy.strip_conditional:
                    headers = {k: v for k, v in headers.items() if k.lower() not in ("if-none-match", "if-match")}
                headers["Content-Length"] = str(len(body))
                if self.command == "PUT":
                    with proxy._lock:
                        proxy.forwarded_puts += 1
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    self._reply(resp.status, resp.getheaders(), resp.read())
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
