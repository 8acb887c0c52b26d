"""Keep credentials out of everything hardneg records or prints.

A server URL may carry a password (``http://user:password@host``) or a token in its query string
(``?api_key=...``). ``redact_url`` replaces both with ``***``; ``redact`` does it for every URL inside a
text (error lines, log messages). ``install_log_redaction`` makes every log record pass through
``redact`` (the HTTP libraries log each request URL at INFO level), so a URL with credentials is never
written to a log either. Stats, cards and stage files record ``redact_url``'d URLs only
(``GeneratorConfig.recorded``).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters that hold secrets in the APIs hardneg talks to (and in signed URLs).
SECRET_PARAMS = frozenset(
    {
        "token",
        "access_token",
        "api_key",
        "apikey",
        "api-key",
        "key",
        "sig",
        "signature",
        "password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "auth",
        "authorization",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "hf_token",
        "private_token",
        "refresh_token",
    }
)
_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>,;)\]}]+")


def redact_url(url: str) -> str:
    """``url`` with its userinfo and any secret-looking query parameter values replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_PARAMS for k, _ in pairs):
            query = urlencode([(k, MASK if k.lower() in SECRET_PARAMS else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str) -> str:
    """``text`` with every URL in it passed through ``redact_url``."""
    if "://" not in text:
        return text
    return _URL_RE.sub(lambda m: redact_url(m.group(0)), text)


_installed = False


def install_log_redaction() -> None:
    """Redact URLs in every log record from now on (idempotent; wraps the log record factory)."""
    global _installed
    if _installed:
        return
    base = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = base(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the logging module's business
            return record
        if "://" in message:
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, ()
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
