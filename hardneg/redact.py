"""One secret policy: every URL is parsed once, and everything recorded or printed goes through ``redact``.

A server URL may carry a password (``http://user:p;a#s/s@host``), a token in its query string
(``?api_key=...``, ``?X-Api-Key=...``, ``?sessionid=...``) or in its fragment. ``parse_url`` parses a URL
once into a ``Url`` (userinfo, host, port, path, query, fragment; any characters in the password, IPv6
hosts, percent-encoding) and remembers its secret parts; ``Url.shown`` is the only form a URL is ever shown
in, and ``Url.endpoint(route)`` the only form a request is sent to (the base URL's path and query kept).

The rules, deny by default:

- userinfo (user and password) is always ``***``;
- a query value is kept only for the known harmless parameters in ``SAFE_PARAMS`` (``model``,
  ``api-version``, ...); every other value is ``***``, and a bare token without ``=`` is ``***`` itself;
- a fragment is ``***`` (fragments carry OAuth tokens);
- ``redact(text)`` replaces every secret any parsed URL carried (and the API key read from ``api_key_env``,
  ``register_secret``), in its raw, percent-decoded and percent-encoded forms, wherever it appears (a
  library's error message that quotes part of a URL, a URL broken by a space in its password), then passes
  every URL found in the text through the same rules.

``install_log_redaction`` makes every log record pass through ``redact`` (the HTTP libraries log each
request URL at INFO level). Stats, cards, stage files and error lines hold ``redact``'d text only.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

MASK = "***"
# Query parameters whose values are shown; every other value is masked (deny by default).
SAFE_PARAMS = frozenset(
    {"model", "api-version", "api_version", "version", "deployment", "format", "stream", "lang", "region"}
)
MIN_SECRET_CHARS = (
    6  # shorter secrets are masked inside URLs only (replacing "ab" everywhere would garble text)
)
_SECRETS: set[str] = set()
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# What follows the userinfo: a host (name, IPv4 or [IPv6]) and an optional port, then the end or / ? #.
_HOST_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+(?:%[^\]]*)?\]|[^\s/?#@\[\]:]*)(?::(\d*))?(?=[/?#]|$)")
# A URL inside a text: up to whitespace, a quote or an angle bracket (passwords may hold ; , ) # /).
_URL_IN_TEXT_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_TRAILING = ".,;:)]}"


@dataclass(frozen=True)
class Url:
    """A URL parsed once: the parts a request needs and the redacted form that is shown."""

    scheme: str
    userinfo: str | None  # as given (percent-encoded or not); never shown
    host: str  # as given: a name, an IPv4 address or a bracketed IPv6 address
    port: int | None
    path: str
    query: str
    fragment: str | None

    @property
    def hostname(self) -> str:
        """The host to connect to (IPv6 without brackets)."""
        return self.host[1:-1].split("%")[0] if self.host.startswith("[") else self.host

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}" + (f":{self.port}" if self.port is not None else "")

    @property
    def credentials(self) -> tuple[str, str] | None:
        """(user, password), percent-decoded, for HTTP basic auth; None without userinfo."""
        if self.userinfo is None:
            return None
        user, _, password = self.userinfo.partition(":")
        return unquote(user), unquote(password)

    def endpoint(self, route: str) -> str:
        """The URL of an API route under this base URL: the base path and query are kept
        (``http://h/proxy?api_key=K`` + ``/v1/chat/completions`` -> ``http://h/proxy/v1/chat/completions?api_key=K``)."""
        query = f"?{self.query}" if self.query else ""
        return f"{self.origin}{self.path.rstrip('/')}{route}{query}"

    @property
    def shown(self) -> str:
        """The only form in which this URL is recorded or printed (see the module docstring)."""
        auth = f"{MASK}@" if self.userinfo is not None else ""
        port = f":{self.port}" if self.port is not None else ""
        query = f"?{_redact_query(self.query)}" if self.query else ""
        fragment = f"#{MASK}" if self.fragment else ""
        return f"{self.scheme}://{auth}{self.host}{port}{self.path}{query}{fragment}"


class UrlError(ValueError):
    """Not a URL of the form scheme://[userinfo@]host[:port][/path][?query][#fragment]."""


_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-\[\]]{0,63}$")


def _query_fields(query: str) -> list[tuple[str, str | None]]:
    """(name, value) of each ``&``-separated query field as given (value None for a bare token)."""
    fields = []
    for part in query.split("&"):
        if part:
            key, eq, value = part.partition("=")
            fields.append((key, value if eq else None))
    return fields


def _redact_query(query: str) -> str:
    shown = []
    for key, value in _query_fields(query):
        if not _NAME_RE.match(unquote(key)):
            shown.append(MASK)  # a bare token (`?sk-abc`) or a name that is not a plain name
        elif unquote(key).lower() in SAFE_PARAMS:
            shown.append(key if value is None else f"{key}={value}")
        else:
            shown.append(f"{key}={MASK}" if value is not None else MASK)
    return "&".join(shown)


def _split_userinfo(rest: str) -> tuple[str | None, str]:
    """(userinfo, the rest from the host on). The userinfo ends at the first '@' followed by a host and the
    end or one of / ? #, so a password may hold any character ('@' ';' '#' '/' '?' included)."""
    start = 0
    while (at := rest.find("@", start)) >= 0:
        user = rest[:at].split(":", 1)[0]
        if any(c in user for c in "/?#"):  # an '@' in the path or query of a URL without userinfo
            return None, rest
        if _HOST_RE.match(rest[at + 1 :]) and rest[at + 1 : at + 2] not in ("", "/", "?", "#"):
            return rest[:at], rest[at + 1 :]
        start = at + 1
    return None, rest


@functools.lru_cache(maxsize=1024)
def parse_url(text: str) -> Url:
    """Parse ``text`` once into a ``Url`` and remember its secret parts for ``redact``; ``UrlError`` when
    it is not a URL (the message never shows the input)."""
    scheme = _SCHEME_RE.match(text)
    if not scheme:
        raise UrlError("the URL has no scheme://")
    userinfo, rest = _split_userinfo(text[scheme.end() :])
    host = _HOST_RE.match(rest)
    if not host or not host.group(1):
        raise UrlError("the URL has no host")
    rest = rest[host.end() :]
    rest, hash_, fragment = rest.partition("#")
    path, _, query = rest.partition("?")
    port = host.group(2)
    if port and int(port) > 65535:
        raise UrlError("the URL's port is above 65535")
    url = Url(
        scheme.group(1).lower(),
        userinfo,
        host.group(1),
        int(port) if port else None,
        path,
        query,
        fragment if hash_ else None,
    )
    secrets = [userinfo, *(url.credentials or ()), fragment or None]
    for key, value in _query_fields(query):
        if not _NAME_RE.match(unquote(key)):
            secrets += [key, value]
        elif unquote(key).lower() not in SAFE_PARAMS:
            secrets.append(value)
    for secret in secrets:
        register_secret(secret)
    return url


def register_secret(secret: str | None) -> None:
    """Scrub ``secret`` (and its percent-encoded / decoded forms) from everything ``redact`` sees from now on."""
    if not secret:
        return
    for form in (secret, unquote(secret), quote(secret, safe=""), quote(secret, safe="/:@")):
        if len(form) >= MIN_SECRET_CHARS and form != MASK:
            _SECRETS.add(form)


def redact_url(url: str) -> str:
    """``url`` as it may be shown (``Url.shown``); ``***`` for what cannot be parsed as a URL."""
    try:
        return parse_url(url).shown
    except UrlError:
        return MASK


def _redact_match(match: re.Match) -> str:
    text = match.group(0)
    tail = len(text) - len(text.rstrip(_TRAILING))  # punctuation after a URL in a sentence
    return redact_url(text[: len(text) - tail]) + text[len(text) - tail :]


def redact(text: str) -> str:
    """``text`` with every URL in it shown as ``Url.shown`` and every remembered secret replaced by ``***``."""
    for secret in sorted(_SECRETS, key=len, reverse=True):  # first: a URL pass could split a known secret
        if secret in text:
            text = text.replace(secret, MASK)
    if "://" in text:
        text = _URL_IN_TEXT_RE.sub(_redact_match, text)
    return text


_installed = False


def install_log_redaction() -> None:
    """Redact every log record from now on (idempotent; wraps the log record factory)."""
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
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
