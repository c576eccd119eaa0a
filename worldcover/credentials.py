"""Credentials hygiene: which environment variables hold secrets, and redaction of their values.

Secrets reach the process only from the environment (``ARGO_TOKEN``, the
Sentinel Hub client, S3 keys, the Planetary Computer key) or from a token
file. Our own code never prints them; this module is the safety net for
what we do not control: third-party log records (``requests_oauthlib`` logs
the OAuth client secret at DEBUG level), exception messages that echo a
server's reply, and error text we store (``FAILED.json``) or print.

:func:`install` wraps the logging record factory so that every log record
created in the process has the values of these variables, and of any
:func:`register`-ed secret, replaced by ``***``. The processes' entry points
call it (the command line, the demo, a dask worker's step, an Argo pod's
runner entrypoint); ``import worldcover`` alone changes no process-wide state,
and a script opts in with ``worldcover.install_log_redaction()``.
"""

from __future__ import annotations

import logging
import os
import threading

SECRET_ENV_VARS = (
    "ARGO_TOKEN",
    "SH_CLIENT_ID",
    "SH_CLIENT_SECRET",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "PC_SDK_SUBSCRIPTION_KEY",
)
MIN_LENGTH = 4  # shorter values would redact ordinary words
MASK = "***"

_registered: set[str] = set()
_lock = threading.Lock()
_installed = False


def register(*values: str | None) -> None:
    """Also redact these values (e.g. a token read from a file)."""
    with _lock:
        for v in values:
            if v and len(v) >= MIN_LENGTH:
                _registered.add(v)
                if v.startswith("Bearer "):
                    _registered.add(v[len("Bearer "):])


def known_secrets() -> list[str]:
    """The secret values to redact now, longest first (so no part of a longer one survives)."""
    values = {os.environ.get(k, "") for k in SECRET_ENV_VARS} | _registered
    return sorted((v for v in values if len(v) >= MIN_LENGTH), key=len, reverse=True)


def _variants(secret: str) -> list[str]:
    from urllib.parse import quote, quote_plus

    return list(dict.fromkeys([secret, quote_plus(secret), quote(secret, safe="")]))


def redact(text: str) -> str:
    """``text`` with every known secret (raw or URL-encoded) replaced by ``***``."""
    if not isinstance(text, str) or not text:
        return text
    for secret in known_secrets():
        for form in _variants(secret):
            if form in text:
                text = text.replace(form, MASK)
    return text


def _redact_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string is the logging module's to report
        return record
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        record.exc_text = redact(text)
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    return record


def install() -> None:
    """Redact secrets from every log record created from now on (idempotent, chains the old factory)."""
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args, **kwargs):
            return _redact_record(previous(*args, **kwargs))

        logging.setLogRecordFactory(factory)
        _installed = True
