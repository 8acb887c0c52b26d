"""HTTP generation through ``huggingface_hub.AsyncInferenceClient``: TGI and OpenAI-compatible servers.

- ``api="chat"``: ``/v1/chat/completions`` (vLLM, llama.cpp server, SGLang, Ollama, TGI, ``transformers
  serve``, hosted APIs). The rendered prompt is sent as one user message.
- ``api="tgi"``: TGI's text-generation route; completion prompts are sent verbatim (``details=True``
  gives the token counts).

At most ``concurrency`` requests are in flight (all URLs together); request ``i`` goes to
``urls[i % len(urls)]`` and each retry moves to the next URL, so replicas share the load and a dead
replica is routed around. 429, 5xx, timeouts and refused connections are retried up to
``max_retries`` times with exponential backoff and full jitter; when they run out the error names
the URL. The API key is read from the environment variable named by ``api_key_env`` and is never
logged or recorded.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import threading
import time
from typing import Any
from urllib.parse import urlparse

from hardneg.errors import first_line
from hardneg.llm import Generation, Generator, GeneratorConfig, Sampling
from hardneg.redact import install_log_redaction, redact, redact_url
from hardneg.revisions import offline_variable

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 20.0


def check_reachable(url: str, timeout: float = 5.0) -> None:
    """Fail fast with a clear line when nothing listens at ``url`` (the line never shows credentials)."""
    parsed = urlparse(url)
    shown = redact_url(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"server URL '{shown}' is not an http(s) URL; fix: pass e.g. http://127.0.0.1:8080")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
    except OSError as err:
        raise RuntimeError(
            f"cannot reach LLM server at {shown} ({err.strerror or err}); fix: start the server (TGI, vLLM, "
            "transformers serve ...) or correct --urls"
        ) from None


def _retryable(err: BaseException) -> bool:
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError

    if isinstance(err, (InferenceTimeoutError, TimeoutError, ConnectionError, httpx2.TransportError)):
        return True
    if isinstance(err, HfHubHTTPError):
        status = getattr(err.response, "status_code", None)
        return status in RETRY_STATUS
    return False


class HttpGenerator(Generator):
    """Generation against one or more HTTP servers; see the module docstring."""

    def __init__(self, config: GeneratorConfig):
        self.config = config
        self.urls = [u.rstrip("/") for u in config.urls]
        from huggingface_hub import constants

        if constants.is_offline_mode():
            raise RuntimeError(
                f"{offline_variable() or 'HF_HUB_OFFLINE'}=1 makes huggingface_hub refuse every HTTP request, including "
                f"to your own LLM servers; fix: unset {offline_variable() or 'HF_HUB_OFFLINE'} for backend=http (point "
                "HF_ENDPOINT elsewhere to keep the Hub out)"
            )
        install_log_redaction()  # httpx logs every request URL at INFO level
        self.shown_urls = [redact_url(u) for u in self.urls]  # what messages and stats show
        for url in self.urls:
            check_reachable(url)
        # Without a configured key send a placeholder: huggingface_hub would otherwise attach the user's
        # stored HF token to requests for an arbitrary server.
        self._api_key = os.environ.get(config.api_key_env) or "EMPTY"

    def cache_settings(self) -> dict[str, Any]:
        c = self.config
        return {"model": c.model, "backend": "http", "api": c.api} | (
            {"max_new_tokens": c.max_new_tokens} if c.max_new_tokens else {}
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
        from huggingface_hub import AsyncInferenceClient

        clients = [
            AsyncInferenceClient(base_url=url, api_key=self._api_key, timeout=self.config.timeout)
            for url in self.urls
        ]
        limit = asyncio.Semaphore(self.config.concurrency)
        try:
            return list(
                await asyncio.gather(
                    *(
                        self._one(clients, i, p, s, params, limit)
                        for i, (p, s) in enumerate(zip(prompts, seeds, strict=True))
                    )
                )
            )
        finally:
            for client in clients:
                await client.close()

    async def _one(self, clients, index: int, prompt: str, seed: int, params: dict, limit) -> Generation:
        last: BaseException | None = None
        for attempt in range(self.config.max_retries + 1):
            k = (index + attempt) % len(clients)
            async with limit:
                start = time.perf_counter()
                try:
                    gen = await self._request(clients[k], prompt, seed, params)
                    gen.latency_s = time.perf_counter() - start
                    return gen
                except Exception as err:  # noqa: BLE001 - classified right below
                    if not _retryable(err):
                        raise RuntimeError(
                            f"LLM server {self.shown_urls[k]} rejected a request: {redact(first_line(err))}; fix: check "
                            "--model (the name the server serves) and the sampling settings"
                        ) from None
                    last = err
            delay = random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt))  # full jitter
            await asyncio.sleep(delay)
        raise RuntimeError(
            f"LLM server {self.shown_urls[(index + self.config.max_retries) % len(self.urls)]} failed after "
            f"{self.config.max_retries + 1} attempts ({type(last).__name__}: {redact(first_line(last)) if last else ''}); "
            "fix: check that the server is up, or raise --timeout / --max_retries"
        )

    async def _request(self, client, prompt: str, seed: int, params: dict) -> Generation:
        greedy = params["temperature"] <= 0
        if self.config.api == "chat":
            out = await client.chat_completion(
                [{"role": "user", "content": prompt}],
                model=self.config.model,
                max_tokens=params["max_new_tokens"],
                temperature=0.0 if greedy else params["temperature"],
                top_p=None if greedy else params["top_p"],
                seed=seed,
                stop=params["stop"] or None,
            )
            choice = out.choices[0]
            text = (choice.message.content or "").lstrip()
            for s in params["stop"]:  # servers differ on whether the stop string is kept
                text = text.split(s)[0] if s in text else text
            usage = out.usage
            return Generation(
                text,
                int(getattr(usage, "prompt_tokens", 0) or 0),
                int(getattr(usage, "completion_tokens", 0) or 0),
                0.0,
                choice.finish_reason or "stop",
            )
        out = await client.text_generation(
            prompt,
            details=True,
            decoder_input_details=True,  # the prefill tokens give the prompt token count
            max_new_tokens=params["max_new_tokens"],
            do_sample=not greedy,
            temperature=None if greedy else params["temperature"],
            top_p=None if greedy or params["top_p"] >= 1 else params["top_p"],
            seed=seed,
            stop=params["stop"] or None,
        )
        text = out.generated_text.lstrip()
        for s in params["stop"]:
            text = text.split(s)[0] if s in text else text
        details = out.details
        reason = str(getattr(details, "finish_reason", "stop") or "stop")
        return Generation(
            text,
            int(len(getattr(details, "prefill", None) or [])),
            int(getattr(details, "generated_tokens", 0) or 0),
            0.0,
            "length" if "length" in reason else "stop",
        )
