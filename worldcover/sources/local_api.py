"""A real STAC API on loopback for a local archive, served by ``rustac serve``.

The simulated archive (``worldcover.sim``) is served this way so that the
real pystac-client and odc-stac code paths run offline. rustac's memory
backend implements core + item-search (bbox, datetime, collections, ids,
POST with paging) but not the filter or query extensions, so callers filter
cloud cover client-side when the server does not advertise them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from worldcover import storage
from worldcover.errors import DataError, InputError
from worldcover.sim.publish import fetch_catalogue

LOOPBACK = "127.0.0.1"


def archive_hrefs(archive: Path) -> list[Path]:
    """Collection and item-collection files of a local archive (``stac/collections``, ``stac/items``)."""
    root = Path(archive)
    if not root.is_dir():
        raise InputError(f"STAC archive {str(root)!r} is not a directory")
    collections = sorted((root / "stac" / "collections").glob("*.json"))
    items = sorted((root / "stac" / "items").glob("*.json"))
    if not items:
        raise InputError(
            f"STAC archive {str(root)!r} has no stac/items/*.json: expected the output of `worldcover sim generate`"
        )
    return collections + items


def rustac_executable() -> str:
    """The ``rustac`` command shipped by the rustac wheel (next to this interpreter first)."""
    beside = Path(sys.executable).with_name("rustac")
    if beside.exists():
        return str(beside)
    found = shutil.which("rustac")
    if not found:
        raise DataError("the `rustac` command was not found: install the rustac wheel (pip install rustac)")
    return found


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_port_free(host: str, port: int) -> int:
    """Refuse a port something already listens on: rustac would fail to bind, and the old server
    would answer our readiness probe in its place (serving another archive)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # SO_REUSEADDR as the server sets it: connections in TIME_WAIT do not count, a listener does
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise InputError(f"port {port} on {host} is in use (another server is listening there): "
                             "stop it, pick another --port, or pass --port 0 for a free one") from None
    return port


def _check_loopback(host: str) -> str:
    if not host.startswith("127.") and host not in ("localhost", "::1"):
        raise InputError(f"invalid host {host!r}: the local STAC API only binds to loopback (127.0.0.0/8)")
    return host


class LocalStacApi:
    """``rustac serve`` over a local archive, as a context manager.

    >>> with LocalStacApi("sim-archive") as api:  # doctest: +SKIP
    ...     Client.open(api.url).search(...)
    """

    def __init__(self, archive: str | os.PathLike, host: str = LOOPBACK, port: int | None = None,
                 startup_timeout: float = 30.0) -> None:
        self.source = str(archive)
        self._fetched: tempfile.TemporaryDirectory | None = None
        self.archive = Path(archive) if not storage.is_remote(archive) else Path()
        self.host = _check_loopback(host)
        self.port = check_port_free(self.host, port) if port else free_port(self.host)
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen | None = None
        self._log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LocalStacApi:
        if storage.is_remote(self.source):  # a published archive: serve a local copy of its catalogue
            self._fetched = tempfile.TemporaryDirectory(prefix="worldcover-stac-")
            self.archive = fetch_catalogue(self.source, self._fetched.name)
        hrefs = archive_hrefs(self.archive)
        cmd = [rustac_executable(), "serve", "--addr", f"{self.host}:{self.port}", *map(str, hrefs)]
        self._log = self.archive / "stac" / f".serve-{self.port}.log"
        with open(self._log, "wb") as log:  # the child holds its own copy of the descriptor
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                tail = self._log.read_text(errors="replace")[-500:] if self._log else ""
                raise DataError(f"rustac serve exited with code {self._proc.returncode}: {tail.strip()}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as resp:
                    # the answer counts only while our server runs: another one may hold the port
                    if resp.status == 200 and json.load(resp).get("type") == "Catalog" \
                            and self._proc is not None and self._proc.poll() is None:
                        return
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                pass
            time.sleep(0.1)
        self.stop()
        raise DataError(f"rustac serve did not answer on {self.url} within {self.startup_timeout:.0f} s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._log is not None:
            self._log.unlink(missing_ok=True)
        if self._fetched is not None:
            self._fetched.cleanup()
            self._fetched = None

    def __enter__(self) -> LocalStacApi:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait(self) -> int:
        """Block until the server exits (used by ``worldcover stac serve``)."""
        assert self._proc is not None
        return self._proc.wait()
