"""HTTP backend against a real OpenAI-compatible server (`transformers serve`) on 127.0.0.1, with the
embedded SmolLM2; includes stopping the server mid-run and restarting it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from hardneg.assets import resolve_llm
from hardneg.llm import GeneratorConfig, load_generator
from hardneg.llm.transformers_backend import dequantised_gguf_folder
from hardneg.queries import generate_queries

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _hub_online_for_local_servers(monkeypatch):
    # huggingface_hub's offline mode blocks every request, even to 127.0.0.1; the Hub itself stays
    # unreachable because conftest points HF_ENDPOINT at a closed port.
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


SERVE = shutil.which("transformers", path=str(Path(os.sys.executable).parent))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`transformers serve <folder>` as a child process; start/stop at will on a fixed port."""

    def __init__(self, folder: Path, port: int, log: Path):
        self.folder, self.port, self.log = folder, port, log
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> None:
        env = os.environ | {"OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
        cmd = [
            SERVE,
            "serve",
            str(self.folder),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--device",
            "cpu",
        ]
        self.proc = subprocess.Popen(cmd, env=env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        if wait:
            self.wait()

    def wait(self, timeout: float = 180) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError("transformers serve did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if SERVE is None:
        pytest.skip("the `transformers` CLI is not installed")
    ref = resolve_llm("embedded:smollm2")
    folder = dequantised_gguf_folder(ref.name_or_path, ref.gguf_file)
    srv = Server(folder, _free_port(), tmp_path_factory.mktemp("serve") / "serve.log")
    srv.start()
    yield srv
    srv.stop()


def _config(server: Server, **kw) -> GeneratorConfig:
    return GeneratorConfig(backend="http", model=str(server.folder), urls=[server.url], timeout=120, **kw)


def test_queries_through_an_openai_compatible_server(server, tiny_corpus, tmp_path):
    gen = load_generator(_config(server, concurrency=2))
    queries, stats = generate_queries(
        tiny_corpus.select(range(3)),
        gen,
        prompt="query_zeroshot",
        cache_dir=tmp_path,
        max_new_tokens=24,
        progress=False,
    )
    assert len(queries) + stats["dropped"] == 3 and len(queries) >= 1
    row = queries[0]
    assert row["backend"] == "http" and row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert "EMPTY" not in str(stats["params"]) and server.url in stats["params"]["generator"]["urls"]
    again, stats2 = generate_queries(
        tiny_corpus.select(range(3)),
        gen,
        prompt="query_zeroshot",
        cache_dir=tmp_path,
        max_new_tokens=24,
        progress=False,
    )
    assert stats2["generated_this_run"] == 0 and again.to_list() == queries.to_list()


def test_server_stopped_mid_run_and_restarted_run_completes(server):
    gen = load_generator(_config(server, concurrency=1, max_retries=12))
    prompts = [f"Write a search query about topic number {i}: wing flutter." for i in range(4)]
    box: dict = {}
    worker = threading.Thread(target=lambda: box.update(out=gen.generate(prompts, max_new_tokens=8)))
    log_before = server.log.read_text(errors="replace").count("POST /v1/chat/completions")
    worker.start()
    deadline = time.time() + 120
    while server.log.read_text(errors="replace").count("POST /v1/chat/completions") <= log_before:
        assert time.time() < deadline and worker.is_alive()
        time.sleep(0.2)
    assert worker.is_alive()
    server.stop()  # mid-run: at least one request answered, others still to come
    time.sleep(2)
    server.start(wait=False)
    worker.join(timeout=400)
    assert not worker.is_alive()
    outs = box["out"]
    assert len(outs) == 4 and all(o.completion_tokens > 0 for o in outs)
    server.wait()


def test_unreachable_server_fails_after_retries_naming_the_url(tmp_path):
    port = _free_port()
    with socket.socket() as s:  # something listens (so the start-up check passes) but never answers HTTP
        s.bind(("127.0.0.1", port))
        s.listen()
        gen = load_generator(
            GeneratorConfig(
                backend="http", model="m", urls=[f"http://127.0.0.1:{port}"], timeout=0.5, max_retries=1
            )
        )
        with pytest.raises(RuntimeError, match=f"LLM server http://127.0.0.1:{port} failed after 2 attempts"):
            gen.generate(["hello"], max_new_tokens=4)
