"""Credentials never leak: fake secrets are injected into the environment of real runs, and every
artefact is searched for them.

Runs (all subprocesses, the real console entry, secrets in the environment):

1. the demo, reduced (1 tile, 1 block of 60 px, two months of data): simulation, loopback STAC API,
   local dask campaign (tiles, merge, validation report), Argo rendering, promotion gate;
2. ``campaign render`` of the same stage for Argo;
3. ``campaign submit`` and ``campaign status`` (token from the environment, then from --token-file)
   against a loopback HTTP server that answers every call with 403 and echoes the request's
   Authorization header and body back in its error message, with ``WORLDCOVER_DEBUG=1`` and
   Python logging at DEBUG; then against a closed port;
4. ``tile run --source sentinelhub`` with the Sentinel Hub endpoints configured (the user's
   sentinelhub ``config.toml``) to that same echoing server: the OAuth token request carries the
   client secret, and the tile fails.

Searched: every file under the test's folder (outputs, archive, rendered YAML, reports, FAILED.json,
failed_tiles.json, logs), and every captured stdout/stderr, for each secret raw, URL-quoted and
base64-encoded. Nothing may be found.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tests.helpers import DEFAULT_MODEL as MODEL
from tests.loopback import LoopbackServer

SECRETS = {
    "ARGO_TOKEN": "argo-SEKRET-7f3a9c1d",
    "SH_CLIENT_ID": "shid-SEKRET-51ab",
    "SH_CLIENT_SECRET": "shsecret-SEKRET-9e/2+x=",
    "AWS_ACCESS_KEY_ID": "AKIASEKRET0000XYZ",
    "AWS_SECRET_ACCESS_KEY": "aws/SEKRET+key=abc123",
    "AWS_SESSION_TOKEN": "awssess-SEKRET-77",
    "PC_SDK_SUBSCRIPTION_KEY": "pckey-SEKRET-42",
}
TOKEN_FILE_SECRET = "tokfile-SEKRET-99"
ALL_SECRETS = [*SECRETS.values(), TOKEN_FILE_SECRET]


def forms(secret: str) -> set[bytes]:
    """The ways a secret could show up in a file or a stream."""
    out = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1],
           base64.b64encode(secret.encode()).decode(), base64.b64encode(f"Bearer {secret}".encode()).decode()}
    return {s.encode() for s in out}


def find_secrets(blob: bytes) -> list[str]:
    return [s for s in ALL_SECRETS if any(f in blob for f in forms(s))]


class EchoingServer(LoopbackServer):
    """Answers every request with 403 and the request's Authorization header and body in the message."""

    def __init__(self):
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode(errors="replace") if length else ""
                auth = self.headers.get("Authorization", "")
                server.requests.append({"method": self.command, "path": self.path, "auth": auth, "body": body})
                data = json.dumps({"code": 7, "error": "forbidden",
                                   "message": f"forbidden for {auth} with {body[:2000]}"}).encode()
                self.send_response(403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        super().__init__(Handler)


LOGGED_CLI = ("import logging, sys; logging.basicConfig(level=logging.DEBUG); "
              "from worldcover.cli import main; sys.argv[0] = 'worldcover'; main()")


@pytest.mark.slow  # a whole campaign with secrets set: ~60 s
def test_no_secret_in_any_artefact(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "WORLDCOVER_DEBUG"}
    env.update(SECRETS)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    token_file = tmp_path / "argo-token"
    token_file.write_text(TOKEN_FILE_SECRET + "\n")
    streams: dict[str, bytes] = {}

    def run(name: str, args: list[str], rc: int | tuple[int, ...], extra_env: dict | None = None,
            timeout: int = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run(args, cwd=tmp_path, env={**env, **(extra_env or {})}, capture_output=True,
                              timeout=timeout)
        streams[name] = proc.stdout + b"\n" + proc.stderr
        expected = (rc,) if isinstance(rc, int) else rc
        assert proc.returncode in expected, f"{name}: rc {proc.returncode}: {proc.stderr.decode()[-3000:]}"
        return proc

    out = tmp_path / "demo"
    run("demo", [sys.executable, "-m", "worldcover.demo", "--out", str(out), "--tiles", "1", "--blocks", "1",
                 "--block-size", "60", "--period", "2021-05-01,2021-06-30"], 0)
    summary = json.loads((out / "demo-summary.json").read_text())
    assert summary["failed_tiles"] == [] and Path(summary["report"]).exists()
    tile = summary["tiles"][0]
    run("render", [sys.executable, "-m", "worldcover", "campaign", "render", "--stage", "1pct", "--tiles", tile,
                   "--out", str(tmp_path / "argo-render")], 0)
    assert list((tmp_path / "argo-render").rglob("*.yaml"))

    with EchoingServer() as server:
        submit = ["campaign", "submit", "--stage", "1pct", "--tiles", tile, "--argo-server", server.url,
                  "--namespace", "leaky", "--out-root", "s3://worldcover/campaigns"]
        p = run("submit (env token, debug)", [sys.executable, "-c", LOGGED_CLI, *submit], 2,
                {"WORLDCOVER_DEBUG": "1"})
        assert b"error: " in p.stderr and b"Traceback" not in p.stderr
        run("status (token file)", [sys.executable, "-c", LOGGED_CLI, "campaign", "status", "wc-1pct-2021",
                                    "--argo-server", server.url, "--namespace", "leaky", "--token-file",
                                    str(token_file)], 2)
        # the server did receive the credentials (so the echo had something to leak)
        auths = {r["auth"] for r in server.requests}
        assert f"Bearer {SECRETS['ARGO_TOKEN']}" in auths and f"Bearer {TOKEN_FILE_SECRET}" in auths

        port = server.httpd.server_address[1]
        (tmp_path / "config" / "sentinelhub").mkdir(parents=True)
        (tmp_path / "config" / "sentinelhub" / "config.toml").write_text(
            f'[default-profile]\nsh_base_url = "{server.url}"\n'
            f'sh_token_url = "{server.url}/oauth/token"\nmax_download_attempts = 1\ndownload_sleep_time = 0\n')
        sh_out = tmp_path / "sh-out"
        n_before = len(server.requests)
        run("tile run (sentinelhub)", [sys.executable, "-c", LOGGED_CLI, "tile", "run", "N45E003", "--year", "2021",
                                       "--source", "sentinelhub", "--model", str(MODEL), "--out", str(sh_out),
                                       "--blocks", "r300c300", "--block-size", "60"], (1, 2),
            {"OAUTHLIB_INSECURE_TRANSPORT": "1"})  # oauthlib refuses plain http, even on loopback
        sh_calls = server.requests[n_before:]
        assert sh_calls, "the Sentinel Hub client never called the configured endpoint"
        assert any(SECRETS["SH_CLIENT_SECRET"] in r["body"] or quote_plus(SECRETS["SH_CLIENT_SECRET"]) in r["body"]
                   or SECRETS["SH_CLIENT_SECRET"] in r["auth"] or "Basic" in r["auth"] for r in sh_calls)
        failure = sh_out / "tiles" / "N45E003" / "FAILED.json"
        assert failure.exists() and json.loads(failure.read_text())["error"]
    # a server that is not there
    closed = [x if x != server.url else f"http://127.0.0.1:{port}" for x in submit]
    run("submit (closed port)", [sys.executable, "-m", "worldcover", *closed], 2, {"WORLDCOVER_DEBUG": "1"})

    found, searched = {}, 0
    for f in sorted(p for p in tmp_path.rglob("*") if p.is_file()):
        if f == token_file:
            continue
        searched += 1
        hits = find_secrets(f.read_bytes())
        if hits:
            found[str(f.relative_to(tmp_path))] = hits
    for name, blob in streams.items():
        hits = find_secrets(blob)
        if hits:
            found[f"<{name} output>"] = hits
    assert searched > 100  # archive, tiles, blocks, mosaic, report, YAML, failure records
    assert found == {}, f"secrets found in: {found}"
    print(json.dumps({"files_searched": searched, "streams_searched": len(streams), "secrets": len(ALL_SECRETS),
                      "forms_per_secret": len(forms(ALL_SECRETS[0])), "found": found}))


def test_log_records_and_messages_are_redacted(monkeypatch, caplog):
    """The safety net itself: any logger, any secret variable, raw or URL-encoded, and registered tokens."""
    import logging

    from worldcover import credentials

    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    credentials.install()
    secret = SECRETS["SH_CLIENT_SECRET"]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("requests_oauthlib.oauth2_session").debug("data %s", {"client_secret": secret})
        logging.getLogger("urllib3").debug("body=%s", quote_plus(secret))
        try:
            raise RuntimeError(f"server said: {SECRETS['ARGO_TOKEN']}")
        except RuntimeError:
            logging.getLogger("x").exception("failed")
        credentials.register("Bearer " + TOKEN_FILE_SECRET)
        logging.getLogger("hera").warning("token %s", TOKEN_FILE_SECRET)
    text = caplog.text + "".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "***" in text and find_secrets(text.encode()) == []
    assert credentials.redact(f"a {secret} b") == "a *** b"
    assert credentials.redact("no secret here") == "no secret here"
