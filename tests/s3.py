"""A real S3 API on loopback for the tests: moto's standalone server on a free 127.0.0.1 port.

``S3Server`` starts ``python -m moto.server``, waits until it answers, and
stops it; ``env()`` gives the standard variables (``AWS_ENDPOINT_URL``,
keys, region) that boto3, s3fs and, through :func:`worldcover.storage.configure_gdal`,
GDAL read. The fixtures in conftest.py set them for a test and create a bucket.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ACCESS_KEY = "wc-test-access-key"
SECRET_KEY = "wc-test-secret-key-not-real"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """moto's S3 server as a subprocess on loopback (``with S3Server() as s3: ...``)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The environment a client (our code, GDAL, a pod) needs to reach this server."""
        port = self.port
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            # GDAL's own names (storage.configure_gdal derives them in our processes; set here for
            # processes that read them before importing worldcover)
            "AWS_S3_ENDPOINT": f"127.0.0.1:{port}",
            "AWS_HTTPS": "NO",
            "AWS_VIRTUAL_HOSTING": "FALSE",
        }

    def start(self) -> S3Server:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited with code {self.proc.returncode} on port {self.port}")
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).read()
                return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"moto server did not answer on {self.endpoint} within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port (moto keeps no state: buckets are gone)."""
        self.stop()
        self.start()

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset API)."""
        req = urllib.request.Request(self.endpoint + "/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def make_bucket(name: str) -> None:
    """Create a bucket with the current environment's endpoint and keys."""
    import boto3

    boto3.client("s3").create_bucket(Bucket=name)


class FaultyProxy:
    """An HTTP proxy on loopback in front of the S3 server that can fail requests on purpose.

    ``fail(method, pattern, times)`` answers matching requests (method, and a regex
    searched in the request path) with HTTP 500 ``times`` times (``None``: until
    cleared); ``stop()``/``start()`` make the endpoint unreachable and reachable again
    on the same port while the objects behind it stay in the server.
    """

    def __init__(self, upstream: S3Server) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.rules: list[list] = []
        self.failed: list[str] = []
        self._server = None
        self._thread = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = self.upstream.env()
        env.update(AWS_ENDPOINT_URL=self.endpoint, AWS_S3_ENDPOINT=f"127.0.0.1:{self.port}")
        return env

    def fail(self, method: str, pattern: str, times: int | None = None) -> None:
        import re

        self.rules.append([method.upper(), re.compile(pattern), times])

    def clear(self) -> None:
        self.rules.clear()

    def _should_fail(self, method: str, path: str) -> bool:
        for rule in self.rules:
            m, pattern, times = rule
            if m == method and pattern.search(path) and (times is None or times > 0):
                if times is not None:
                    rule[2] = times - 1
                self.failed.append(f"{method} {path}")
                return True
        return False

    def start(self) -> FaultyProxy:
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return bytes(out)
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                if not self.server.up:  # stopped: a kept-alive connection is dropped too, as a lost endpoint drops it
                    self.close_connection = True
                    return
                body = self._body()
                if proxy._should_fail(self.command, self.path):
                    msg = b"<Error><Code>InternalError</Code><Message>injected by the test</Message></Error>"
                    self.send_response(500)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                hop_by_hop = ("transfer-encoding", "connection")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in hop_by_hop}
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream.port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status, resp.reason)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(k, v)
                    # a HEAD answer carries the object's length, not that of its (empty) body
                    length = resp.getheader("Content-Length") if self.command == "HEAD" else None
                    self.send_header("Content-Length", length or str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.up = True
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.up = False
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultyProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
