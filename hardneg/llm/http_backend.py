"""HTTP generation against TGI and OpenAI-compatible servers, on one pooled ``aiohttp`` session.

The client is kept lean so that it never limits the server: keep-alive connections (one pool sized to
``concurrency``), one JSON encode/decode per request; ``benchmarks/generation_http.py`` measures its
overhead against a server that answers instantly (huggingface_hub's AsyncInferenceClient managed ~200
requests/s on one core there).

- ``api="chat"``: ``/v1/chat/completions`` (vLLM, llama.cpp server, SGLang, Ollama, TGI, ``transformers
  serve``, hosted APIs). The rendered prompt is sent as one user message.
- ``api="tgi"``: TGI's ``/generate`` route; completion prompts are sent verbatim (``details`` gives the token
  counts).

At most ``concurrency`` requests are in flight (all URLs together); request ``i`` goes to
``urls[i % len(urls)]`` and each retry moves to the next URL, so replicas share the load and a dead
replica is routed around. 429, 5xx, timeouts and refused connections are retried up to
``max_retries`` times with exponential backoff and full jitter; when they run out the error names
the URL. The API key is read from the environment variable named by ``api_key_env`` and is never
logged or recorded.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import socket
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from yarl import URL

from hardneg.errors import first_line
from hardneg.llm import EMPTY_REPLY, Generation, Generator, GeneratorConfig, Sampling, apply_stop
from hardneg.redact import UrlError, install_log_redaction, parse_url, redact, register_secret

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 20.0
RETRY_AFTER_MAX_S = 120.0  # a server's Retry-After is honoured up to this many seconds
# A generation reply is a few kilobytes; a larger one is a misbehaving server or proxy, refused unread.
MAX_REPLY_BYTES = 16 * 2**20


# Server URLs that answered a connection in this process: each is probed once (the pre-flight check, then
# the backend and any judge on the same servers find it here).
_REACHED: set[str] = set()


def check_reachable(url: str, timeout: float = 5.0) -> None:
    """Fail fast with a clear line when nothing listens at ``url`` (the line never shows credentials).
    A URL that answered once in this process is not probed again."""
    if url in _REACHED:
        return
    parsed = server_url(url)
    shown = parsed.shown
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
    except OSError as err:
        raise RuntimeError(
            f"cannot reach LLM server at {shown} ({err.strerror or err}); fix: start the server (TGI, vLLM, "
            "transformers serve ...) or correct --urls"
        ) from None
    _REACHED.add(url)


def server_url(url: str):
    """``url`` parsed once (``hardneg.redact.parse_url``) and checked to be an http(s) server URL."""
    try:
        parsed = parse_url(url)
    except UrlError as err:
        raise ValueError(f"a server URL is not a URL ({err}); fix: pass e.g. http://127.0.0.1:8080") from None
    if parsed.scheme not in ("http", "https"):
        raise ValueError(
            f"server URL '{parsed.shown}' is not an http(s) URL; fix: pass e.g. http://127.0.0.1:8080"
        )
    return parsed


def retry_delay(attempt: int, retry_after: str | None) -> float:
    """Seconds to wait before retry ``attempt + 1``: exponential backoff with full jitter, or the server's
    ``Retry-After`` (seconds or an HTTP date) when it asks for longer, capped at ``RETRY_AFTER_MAX_S``."""
    delay = random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt))
    if retry_after:
        try:
            wait = float(retry_after)
        except ValueError:
            try:
                wait = parsedate_to_datetime(retry_after).timestamp() - time.time()
            except (TypeError, ValueError, IndexError, OverflowError):
                wait = 0.0
        if wait == wait:  # not NaN
            delay = max(delay, min(max(wait, 0.0), RETRY_AFTER_MAX_S))
    return delay


class _Retryable(Exception):
    """A failure worth retrying on the next URL: 408/425/429/5xx, a timeout or a dropped connection."""

    def __init__(self, message: str, retry_after: str | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class _Rejected(Exception):
    """A failure that retrying cannot fix (4xx other than the retryable ones, a malformed reply)."""


async def _read_bounded(resp) -> str:
    """The reply body as text, refused (``_Rejected``) past ``MAX_REPLY_BYTES``, before it is read whole."""
    declared = resp.content_length
    if declared is not None and declared > MAX_REPLY_BYTES:
        raise _Rejected(
            f"the reply declares {declared} bytes, over the {MAX_REPLY_BYTES} bytes a reply may have"
        )
    body = bytearray()
    async for chunk in resp.content.iter_chunked(2**16):
        body += chunk
        if len(body) > MAX_REPLY_BYTES:
            raise _Rejected(f"the reply is over the {MAX_REPLY_BYTES} bytes a reply may have")
    return body.decode(resp.charset or "utf-8", errors="replace")


class HttpGenerator(Generator):
    """Generation against one or more HTTP servers; see the module docstring."""

    def __init__(self, config: GeneratorConfig):
        self.config = config
        install_log_redaction()
        self.servers = [server_url(u) for u in config.urls]
        self.shown_urls = [s.shown for s in self.servers]  # what messages and stats show
        config.preflight()  # a no-op for servers the pre-flight check already reached in this process
        key = os.environ.get(config.api_key_env)
        register_secret(key)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}  # never logged or recorded

    def cache_settings(self) -> dict[str, Any]:
        c = self.config
        return (
            {"model": c.model, "backend": "http", "api": c.api}
            | ({"max_new_tokens": c.max_new_tokens} if c.max_new_tokens else {})
            | self.thinking_settings()
        )

    def info(self) -> dict[str, Any]:
        # URLs are recorded (they name the machines used) without credentials; the API key never is.
        return self.cache_settings() | {"urls": list(self.shown_urls), "concurrency": self.config.concurrency}

    def _generate(
        self, prompts: list[str], *, chat: bool, stop: list[str], sampling: Sampling, progress: bool
    ) -> list[Generation]:
        """Send every prompt (bounded concurrency, retries) and return completions in prompt order."""
        max_new, temperature, top_p, seeds = sampling
        params = {
            "stop": list(stop),
            "max_new_tokens": max_new,
            "temperature": temperature,
            "top_p": top_p,
        }
        coro = self._run(prompts, seeds, params)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro)
        # Called from inside a running event loop (e.g. a notebook): run in a helper thread.
        box: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: box.update(result=asyncio.run(coro)))
        thread.start()
        thread.join()
        return box["result"]

    async def _run(self, prompts: list[str], seeds: list[int], params: dict) -> list[Generation]:
        # One connection pool for all URLs, sized to the concurrency: connections are reused (keep-alive).
        connector = aiohttp.TCPConnector(limit=self.config.concurrency, limit_per_host=0, ttl_dns_cache=300)
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        limit = asyncio.Semaphore(self.config.concurrency)
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, headers=self._headers, json_serialize=json.dumps
        ) as session:
            return list(
                await asyncio.gather(
                    *(
                        self._one(session, i, p, s, params, limit)
                        for i, (p, s) in enumerate(zip(prompts, seeds, strict=True))
                    )
                )
            )

    async def _one(self, session, index: int, prompt: str, seed: int, params: dict, limit) -> Generation:
        last: BaseException | None = None
        for attempt in range(self.config.max_retries + 1):
            server = self.servers[(index + attempt) % len(self.servers)]
            retry_after = None
            async with limit:
                start = time.perf_counter()
                try:
                    gen = await self._request(session, server, prompt, seed, params)
                    gen.latency_s = time.perf_counter() - start
                    return gen
                except _Rejected as err:
                    why = redact(first_line(err))
                    if "chat_template_kwargs" in why:
                        fix = "pass --send_chat_template_kwargs false (the server does not accept that field)"
                    elif "bytes a reply may have" in why:
                        fix = "check the server or the proxy in front of it (a generation reply is a few kilobytes)"
                    else:
                        fix = "check --model (the name the server serves) and the sampling settings"
                    raise RuntimeError(
                        f"LLM server {server.shown} rejected a request: {why}; fix: {fix}"
                    ) from None
                except _Retryable as err:
                    last, retry_after = err, err.retry_after
                except (TimeoutError, OSError, aiohttp.ClientError) as err:
                    last = err
            if attempt < self.config.max_retries:
                await asyncio.sleep(retry_delay(attempt, retry_after))
        raise RuntimeError(
            f"LLM server {self.shown_urls[(index + self.config.max_retries) % len(self.servers)]} failed after "
            f"{self.config.max_retries + 1} attempts ({type(last).__name__}: {redact(first_line(last)) if last else ''}); "
            "fix: check that the server is up, or raise --timeout / --max_retries"
        )

    async def _post(self, session, server, route: str, body: dict) -> dict:
        # The base URL's path and query are kept (encoded=True: sent as given); its userinfo is basic auth
        # (unless an API key is set: a server takes one Authorization header).
        headers = None
        if server.credentials and "Authorization" not in self._headers:
            token = base64.b64encode(":".join(server.credentials).encode("utf-8")).decode("ascii")
            headers = {"Authorization": f"Basic {token}"}
        async with session.post(
            URL(server.endpoint(route), encoded=True), json=body, headers=headers
        ) as resp:
            if resp.status in RETRY_STATUS:
                raise _Retryable(f"HTTP {resp.status} from {server.shown}", resp.headers.get("Retry-After"))
            text = await _read_bounded(resp)
            if resp.status >= 400:
                raise _Rejected(
                    f"HTTP {resp.status}: {text.strip().splitlines()[0][:300] if text.strip() else ''}"
                )
            try:
                return json.loads(text)
            except ValueError:
                raise _Rejected(f"the reply is not JSON: {text[:200]!r}") from None

    async def _request(self, session, server, prompt: str, seed: int, params: dict) -> Generation:
        greedy = params["temperature"] <= 0
        if self.config.api == "chat":
            body = {
                "model": self.config.model,
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": params["max_new_tokens"],
                "temperature": 0.0 if greedy else params["temperature"],
                "seed": seed,
            }
            if template_kwargs := self.chat_template_kwargs():  # none: hosted APIs reject unknown fields
                body["chat_template_kwargs"] = template_kwargs
            if not greedy:
                body["top_p"] = params["top_p"]
            if params["stop"]:
                body["stop"] = params["stop"]
            out = await self._post(session, server, "/v1/chat/completions", body)
            try:
                choice = out["choices"][0]
                content = choice["message"].get("content") or ""
            except (KeyError, IndexError, TypeError, AttributeError):
                raise _Rejected(f"the reply has no choices[0].message: {str(out)[:200]}") from None
            text = apply_stop(content.lstrip(), params["stop"])  # servers differ on keeping the stop string
            usage = out.get("usage") or {}
            reason = "length" if choice.get("finish_reason") == "length" else "stop"
            return Generation(
                text,
                int(usage.get("prompt_tokens") or 0),
                int(usage.get("completion_tokens") or 0),
                0.0,
                reason,
                fault=EMPTY_REPLY if not content.strip() and reason == "stop" else None,
            )
        parameters = {
            "details": True,
            "decoder_input_details": True,  # the prefill tokens give the prompt token count
            "max_new_tokens": params["max_new_tokens"],
            "do_sample": not greedy,
            "seed": seed,
            "stop": params["stop"],
        }
        if not greedy:
            parameters["temperature"] = params["temperature"]
            if params["top_p"] < 1:
                parameters["top_p"] = params["top_p"]
        out = await self._post(session, server, "/generate", {"inputs": prompt, "parameters": parameters})
        if isinstance(out, list):
            out = out[0] if out else {}
        details = out.get("details") or {}
        reason = "length" if "length" in str(details.get("finish_reason") or "stop") else "stop"
        raw = str(out.get("generated_text") or "")
        return Generation(
            apply_stop(raw.lstrip(), params["stop"]),
            len(details.get("prefill") or []),
            int(details.get("generated_tokens") or 0),
            0.0,
            reason,
            fault=EMPTY_REPLY if not raw.strip() and reason == "stop" else None,
        )
