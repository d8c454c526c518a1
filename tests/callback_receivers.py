"""Callback receivers on loopback for the callback hardening tests: one that trickles its answer a
byte at a time, one that answers with a redirect, one that records what it gets."""

from __future__ import annotations

import http.server
import json
import select
import socket
import socketserver
import threading
import time


class Trickler:
    """Reads each request, then sends an HTTP answer one byte every `every_s` seconds for as long
    as the client stays; counts the connections open now and at most."""

    def __init__(self, host: str = "127.0.0.1", every_s: float = 2.0) -> None:
        self.every_s = every_s
        self.requests = 0
        self.open = 0
        self.peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._serve(self.request)

        socketserver.ThreadingTCPServer.daemon_threads = True
        self._server = socketserver.ThreadingTCPServer((host, 0), Handler)
        self.host, self.port = host, self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(30)
        seen = b""
        while b"\r\n\r\n" not in seen:
            chunk = sock.recv(4096)
            if not chunk:
                return
            seen += chunk
        with self._lock:
            self.requests += 1
            self.open += 1
            self.peak = max(self.peak, self.open)
        try:
            for byte in b"HTTP/1.1 200 OK\r\n" * 1000:
                readable, _, _ = select.select([sock], [], [], self.every_s)
                if self._stop.is_set() or (readable and not sock.recv(1)):
                    return  # the client closed: what its deadline is for
                sock.sendall(bytes([byte]))
        except OSError:
            pass  # the client reset the connection
        finally:
            with self._lock:
                self.open -= 1

    def wait_open(self, count: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.open < count:
            time.sleep(0.1)
        return self.open

    def wait_drained(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.open > 0:
            time.sleep(0.1)
        return self.open

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()


class Recorder:
    """Answers every POST with `status` (and `location`, for a redirect) and records (path, body)."""

    def __init__(self, host: str = "127.0.0.1", status: int = 200, location: str = "") -> None:
        self.posts: list[tuple[str, dict]] = []
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def do_GET(self) -> None:  # noqa: N802 - a followed 302 arrives as a GET
                self._answer(b"")

            def _answer(self, body: bytes) -> None:
                outer.hits += 1
                outer.posts.append((self.path, json.loads(body) if body else {}))
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.host, self.port = host, self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def url(self, path: str = "/hook", host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
