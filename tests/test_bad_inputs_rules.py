"""Bad inputs, round two (issue 23): each rule closes a whole class of bad input, and each has cases beyond
the ones the issue named. docs/errors.md ("Rules") lists the rules with these tests.

1. a stage is finished only when its result is valid (faults are never cached; training reuse is keyed on
   what was trained);
2. outputs that would overwrite an input or another tool's folder are refused before anything runs;
3. one secret policy for every URL form;
4. every option validated when parsed;
5. bounds on what comes back (reply size, reject log, Retry-After, a lock per output folder);
6. errors under the launcher printed once, without the launcher's traceback;
7. disk full in the generation cache: one line.

Fake LLM servers listen on 127.0.0.1 only (``test_bad_inputs.FakeLLM``).
"""

# ruff: noqa: F811 - the fixtures imported from test_bad_inputs / test_train are test arguments here
from __future__ import annotations

import base64
import dataclasses
import email.utils
import errno
import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
import typing
from dataclasses import replace
from pathlib import Path
from subprocess import CalledProcessError
from types import SimpleNamespace

import pytest
from test_bad_inputs import (  # noqa: F401 - fixtures used below
    BUILD,
    PASSAGES,
    _free_port,
    _http_build_args,
    _local_http_allowed,
    _write_corpus,
    dataset_folder,
    fake_llm,
    run_stage,
)
from test_train import cranfield_triplets, tiny_config, write_dataset_folder  # noqa: F401

from hardneg.build import BuildConfig
from hardneg.config import ConfigError, error_line, output_locks, parse
from hardneg.eval_config import EvalConfig
from hardneg.explore import ExploreConfig
from hardneg.generation import GenerationCache, GenerationFault, run_generation, write_rejects
from hardneg.llm import EMPTY_REPLY, Generation, Generator, GeneratorConfig, load_generator
from hardneg.options import field_bounds, own_fields
from hardneg.prompts import load_prompt
from hardneg.publish import PublishConfig
from hardneg.queries import QueriesConfig
from hardneg.redact import redact, redact_url
from hardneg.report import ReportConfig
from hardneg.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def one_error(code: int, err: str) -> str:
    """The one ``error:`` line of a failed stage (exit code 2, no traceback)."""
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "; fix: " in lines[0], lines[0]
    return lines[0]


def _recorder(ran: list):
    return lambda *configs: ran.append(configs)


# -- rule 1: a stage is finished only when its result is valid ------------------------------------------


def test_empty_replies_are_a_fault_not_a_finished_stage(fake_llm, tmp_path, monkeypatch, capsys):
    """Before: the 0-row queries stage was saved as finished and every rerun failed with 'generate queries
    first'. Now nothing is saved, the line names the fault and its count, and the rerun recovers."""
    server = fake_llm("empty")
    args = _http_build_args(tmp_path, server.url, "--num_passages", "3", "--max_retries", "0")
    line = one_error(*run_stage(monkeypatch, capsys, *BUILD, args)[::2])
    assert "queries: 3 of 3 items got no answer because the generator faulted: 9 x empty reply" in line
    assert "9 of the 9 requests" in line and "generate queries first" not in line
    stages = tmp_path / "run" / "stages"
    assert not (stages / "queries").exists() and not (tmp_path / "run" / "dataset").exists()
    server.mode = "ok"  # the server is fixed: the rerun asks again instead of reusing an empty stage
    code, _, err = run_stage(monkeypatch, capsys, *BUILD, args)
    assert code == 0, err
    assert json.loads((stages / "queries" / "stats.json").read_text())["stats"]["rows"] == 3


def test_a_fault_that_a_retry_answers_is_counted_and_never_cached(fake_llm, tmp_path, monkeypatch, capsys):
    server = fake_llm("flaky")  # the first two replies are empty
    args = _http_build_args(tmp_path, server.url, "--num_passages", "3", "--max_retries", "0")
    code, _, err = run_stage(monkeypatch, capsys, *BUILD, args)
    assert code == 0, err
    stats = json.loads((tmp_path / "run" / "stages" / "queries" / "stats.json").read_text())["stats"]
    assert stats["rows"] == 3 and stats["faults"] == {EMPTY_REPLY: 2}
    db = sqlite3.connect(tmp_path / "run" / "cache" / "generation.sqlite")
    values = [json.loads(v) for (v,) in db.execute("SELECT value FROM generations")]
    db.close()
    assert values and not any(v.get("fault") or not v["text"].strip() for v in values)


class _Faulty(Generator):
    """A backend whose every reply is a fault (as the HTTP backend marks an empty 200 reply)."""

    def __init__(self):
        self.config = GeneratorConfig()

    def _generate(self, prompts, *, chat, stop, sampling, progress):
        return [Generation("", 0, 0, 0.0, fault=EMPTY_REPLY) for _ in prompts]

    def info(self):
        return {"model": "stub", "backend": "stub"}

    def cache_settings(self):
        return {"model": "stub"}


@pytest.mark.parametrize("prompt", ["query_zeroshot", "llm_hn", "llm_pos_hn", "llm_perturb_hn", "fn_judge"])
def test_every_generation_stage_stops_on_faults_and_caches_none(prompt, tmp_path):
    """Queries, every LLM negative method and the repair judge go through run_generation: one rule."""
    template = load_prompt(prompt)
    items = [{"id": str(i), **{k: f"{k} text number {i}" for k in template.inputs}} for i in range(4)]
    items = [it | {"passage": it.get("passage", it.get("positive", "p"))} for it in items]
    with pytest.raises(GenerationFault, match=r"4 of 4 items got no answer.*12 x empty reply"):
        run_generation(
            items, generator=_Faulty(), prompt=template, method=prompt, cache_dir=tmp_path, progress=False
        )
    cache = GenerationCache(tmp_path / "generation.sqlite")
    assert len(cache) == 0
    cache.close()


def test_a_stage_that_keeps_no_row_is_not_saved(fake_llm, tmp_path, monkeypatch, capsys):
    server = fake_llm("oneword")  # every answer is rejected by hygiene ('empty': fewer than 2 words)
    args = _http_build_args(tmp_path, server.url, "--num_passages", "3")
    line = one_error(*run_stage(monkeypatch, capsys, *BUILD, args)[::2])
    assert "stage 'queries' kept no row of its 3 input(s) (removed: empty: 9)" in line
    assert not (tmp_path / "run" / "stages" / "queries").exists()


def test_finished_seed_is_reused_only_for_what_it_was_trained_on(tmp_path, cranfield_triplets, capsys):
    """Before: a rerun with another --dataset_config or a rebuilt --dataset said 'already trained, skipped'
    and the old model was evaluated under the new name."""
    from hardneg.train import SUMMARY_FILE, seed_dir, train, train_seeds

    data = tmp_path / "dataset"
    reversed_rows = cranfield_triplets.select(range(len(cranfield_triplets) - 1, -1, -1))
    write_dataset_folder(data, {"bm25_hn": cranfield_triplets, "llm_hn": reversed_rows})
    config = tiny_config(data, tmp_path / "m", seeds=[0], max_steps=1, warmup_ratio=0.0)
    assert train_seeds(config) == [seed_dir(tmp_path / "m", 0)]
    assert train_seeds(replace(config, run_name="renamed", logging_steps=5)) == [seed_dir(tmp_path / "m", 0)]
    assert "already trained (1 steps), skipped" in capsys.readouterr().out  # run-only options: reused
    refused = {
        "dataset_config": (replace(config, dataset_config="llm_hn"), "trained with dataset_config bm25_hn"),
        "options": (replace(config, learning_rate=3e-4), "trained with learning_rate 0.0001"),
        "max_train_samples": (replace(config, max_train_samples=16), "trained with max_train_samples 8"),
    }
    for other, fragment in refused.values():
        with pytest.raises(ConfigError, match=fragment):
            train_seeds(other)
    write_dataset_folder(data, {"bm25_hn": reversed_rows, "llm_hn": cranfield_triplets})  # rebuilt in place
    with pytest.raises(ConfigError, match="trained on rows with fingerprint .*, but the dataset now has"):
        train_seeds(config)
    summary = seed_dir(tmp_path / "m", 0) / SUMMARY_FILE
    legacy = json.loads(summary.read_text())
    legacy.pop("trained_on")
    summary.write_text(json.dumps(legacy))
    with pytest.raises(ConfigError, match="does not record what it was trained on"):
        train_seeds(config)
    # kept checkpoints are resumed only for the training they belong to
    one = replace(config, seeds=[], output_dir=str(tmp_path / "k"), keep_checkpoints=True, save_steps=1)
    train(one)
    with pytest.raises(ConfigError, match="holds checkpoints trained with dataset_config bm25_hn"):
        train(replace(one, dataset_config="llm_hn"))


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--max_steps", "0"], "max_steps 0 would train nothing"),
        (["--max_steps", "-2"], "--max_steps -2 is below -1"),
        (["--num_train_epochs", "0"], "num_train_epochs 0.0 would train nothing"),
        (["--seeds", "0", "1"], "need a budget in optimizer steps"),
    ],
)
def test_training_budget_that_trains_nothing_is_refused(args, fragment):
    """Before: --max_steps 0 with seeds: [] trained 1 step in epoch mode and recorded 0."""
    with pytest.raises(ConfigError) as info:
        parse(TrainConfig, args=args)
    assert fragment in str(info.value) and "fix: " in str(info.value)


# -- rule 2: outputs that would overwrite an input or another tool's folder -----------------------------


def _model_folder(root: Path, marker: str = "modules.json") -> Path:
    folder = root / "model"
    folder.mkdir()
    (folder / marker).write_text("[]")
    return folder


OUTPUT_CASES = {
    # case: (config types, args builder (dataset folder, tmp) -> args, fragment)
    "train_into_dataset": (
        (TrainConfig,),
        lambda ds, tmp: ["--dataset", str(ds), "--output_dir", str(ds)],
        "would overwrite --dataset",
    ),
    "train_inside_dataset": (
        (TrainConfig,),
        lambda ds, tmp: ["--dataset", str(ds), "--output_dir", str(ds / "models" / "m")],
        "is inside the dataset folder",
    ),
    "train_into_other_dataset": (
        (TrainConfig,),
        lambda ds, tmp: ["--dataset", "org/name", "--output_dir", str(ds)],
        "is a dataset folder (it holds build_stats.json)",
    ),
    "train_over_base_model": (
        (TrainConfig,),
        lambda ds, tmp: [
            "--dataset",
            str(ds),
            "--model",
            str(m := _model_folder(tmp)),
            "--output_dir",
            str(m),
        ],
        "would overwrite --model",
    ),
    "train_into_run_folder": (
        (TrainConfig,),
        lambda ds, tmp: ["--dataset", str(ds), "--output_dir", str(_run_folder(tmp))],
        "is a run folder (it holds stages)",
    ),
    "build_into_dataset": (
        (BuildConfig, GeneratorConfig),
        lambda ds, tmp: ["--output_dir", str(ds)],
        "is a dataset folder",
    ),
    "build_into_model": (
        (BuildConfig, GeneratorConfig),
        lambda ds, tmp: ["--output_dir", str(_model_folder(tmp, "training_summary.json"))],
        "is a model folder (it holds training_summary.json)",
    ),
    "build_over_its_corpus": (
        (BuildConfig, GeneratorConfig),
        lambda ds, tmp: ["--corpus", str(c := _write_corpus(tmp / "c.jsonl")), "--output_dir", str(c)],
        "would overwrite --corpus",
    ),
    "evaluate_into_model": (
        (EvalConfig,),
        lambda ds, tmp: ["--run_dir", str(_model_folder(tmp))],
        "is a model folder (it holds modules.json)",
    ),
    "explore_inside_dataset": (
        (ExploreConfig,),
        lambda ds, tmp: ["--dataset", str(ds), "--output", str(ds / "explore.html")],
        "is inside the dataset folder",
    ),
    "explore_over_its_dataset_card": (
        (ExploreConfig,),
        lambda ds, tmp: ["--dataset", str(ds), "--output", str(ds / "README.md")],
        "is inside the dataset folder",
    ),
    "queries_into_dataset": (
        (QueriesConfig, GeneratorConfig),
        lambda ds, tmp: ["--output_dir", str(ds)],
        "is a dataset folder",
    ),
    "report_into_model": (
        (ReportConfig,),
        lambda ds, tmp: ["--run_dir", str(_model_folder(tmp))],
        "is a model folder",
    ),
}


def _run_folder(root: Path) -> Path:
    (root / "run" / "stages").mkdir(parents=True)
    return root / "run"


@pytest.mark.parametrize("case", list(OUTPUT_CASES))
def test_output_that_overwrites_an_input_or_another_tools_folder(
    case, dataset_folder, tmp_path, monkeypatch, capsys
):
    types, make_args, fragment = OUTPUT_CASES[case]
    before = {p: p.stat().st_mtime_ns for p in dataset_folder.rglob("*")}
    ran: list = []
    code, _, err = run_stage(monkeypatch, capsys, _recorder(ran), types, make_args(dataset_folder, tmp_path))
    assert fragment in one_error(code, err) and ran == []
    assert {p: p.stat().st_mtime_ns for p in dataset_folder.rglob("*")} == before


def test_folder_markers_are_the_files_the_tools_write(tmp_path, cranfield_triplets):
    """FOLDER_KINDS names the files the build, training and sentence-transformers write (one definition each)."""
    from hardneg.config import FOLDER_KINDS, folder_kind
    from hardneg.dataset_folder import BUILD_STATS_FILE
    from hardneg.train import SUMMARY_FILE

    assert FOLDER_KINDS["dataset"] == (BUILD_STATS_FILE,) and SUMMARY_FILE in FOLDER_KINDS["model"]
    for config_cls in (BuildConfig, TrainConfig, EvalConfig, ReportConfig, QueriesConfig):
        assert getattr(config_cls, "OUTPUT_KIND", None), config_cls  # every folder-writing stage declares it
    assert folder_kind(tmp_path) is None


def test_outputs_beside_their_inputs_still_run(dataset_folder, tmp_path, monkeypatch, capsys):
    """The usual layouts pass: models and results inside a run folder, the explorer's page in its run folder."""
    run = _run_folder(tmp_path)
    ran: list = []
    for types, args in (
        ((TrainConfig,), ["--dataset", str(dataset_folder), "--output_dir", str(run / "models" / "bm25_hn")]),
        ((EvalConfig,), ["--run_dir", str(run)]),
        ((BuildConfig, GeneratorConfig), ["--output_dir", str(run)]),
        (
            (ExploreConfig,),
            ["--dataset", str(dataset_folder), "--run_dir", str(run), "--output", str(run / "e.html")],
        ),
    ):
        code, _, err = run_stage(monkeypatch, capsys, _recorder(ran), types, args)
        assert code == 0, err
    assert len(ran) == 4


# -- rule 3: one secret policy ---------------------------------------------------------------------------

# (URL with {port}, the secrets it carries as they may appear: raw, percent-decoded)
SECRET_URLS = [
    ("http://bob:Pw;semi#hash/slash@127.0.0.1:{port}", ("Pw;semi#hash/slash", "Pw;semi")),
    ("http://alice:Pct%40enc%2Fpw99@127.0.0.1:{port}/", ("Pct%40enc%2Fpw99", "Pct@enc/pw99")),
    ("http://tokenuser0042@127.0.0.1:{port}", ("tokenuser0042",)),
    ("http://127.0.0.1:{port}/?api_key=ApiKeyValue01", ("ApiKeyValue01",)),
    ("http://127.0.0.1:{port}/?api_token=ApiTokenValue02&model=fake", ("ApiTokenValue02",)),
    ("http://127.0.0.1:{port}/?access_key=AccessKeyValue03", ("AccessKeyValue03",)),
    ("http://127.0.0.1:{port}/?X-Api-Key=XApiKeyValue04", ("XApiKeyValue04",)),
    ("http://127.0.0.1:{port}/proxy/?sessionid=SessionValue05", ("SessionValue05",)),
    ("http://127.0.0.1:{port}/?token=Tok%2BPlus06", ("Tok%2BPlus06", "Tok+Plus06")),
    ("http://127.0.0.1:{port}/#access_token=FragmentValue07", ("FragmentValue07",)),
    ("http://127.0.0.1:{port}/?BareTokenValue08", ("BareTokenValue08",)),
    ("http://127.0.0.1:{port}/?sig=Sig%20Space09&api-version=2024", ("Sig%20Space09", "Sig Space09")),
]
ENV_KEY = "EnvApiKeyValue10"


def _leaks(text: str) -> list[str]:
    return [s for _, secrets in SECRET_URLS for s in secrets if s in text] + (
        [ENV_KEY] if ENV_KEY in text else []
    )


def test_no_secret_in_any_url_form_reaches_a_file_or_the_output(
    fake_llm, tmp_path, monkeypatch, capsys, caplog
):
    """Twelve URL forms used round-robin by one build (queries + llm_hn + bm25_hn), then a publish dry run
    and a failing build: no secret in any written file (card, build_stats.json, recipes, stage stats,
    rejects, cache), in stdout/stderr or in the logs; every request kept its base path and query."""
    from hardneg.publish import publish_dataset

    server = fake_llm("ok")
    urls = [u.format(port=server.port) for u, _ in SECRET_URLS]
    corpus = _write_corpus(
        tmp_path / "c.jsonl", [{"_id": f"d{i}", "text": f"{PASSAGES[i % 6]} Case {i}."} for i in range(12)]
    )
    out = tmp_path / "run"
    caplog.set_level(logging.INFO)
    args = [
        *("--corpus", str(corpus), "--output_dir", str(out), "--methods", "llm_hn", "bm25_hn"),
        *("--false_negative_scorer", "none", "--backend", "http", "--num_passages", "12", "--urls", *urls),
    ]
    code, stdout, stderr = run_stage(monkeypatch, capsys, *BUILD, args)
    assert code == 0, stderr
    result = publish_dataset(out / "dataset", "org/name", "1.0.0")
    print(result.summary(), result.card)
    for url in urls:  # a library that logs request URLs goes through the redacting log record factory
        logging.getLogger("httpx").info("HTTP Request: POST %s", url)
    # an error line: the same URLs, the server gone, an API key in the environment
    monkeypatch.setenv("HARDNEG_API_KEY", ENV_KEY)
    closed = [u.replace(str(server.port), str(_free_port())) for u in urls]
    (tmp_path / "e").mkdir()
    args = _http_build_args(tmp_path / "e", closed[0], "--num_passages", "2")
    code, _, err = run_stage(monkeypatch, capsys, *BUILD, [*args, "--urls", *closed])
    assert code == 2 and "cannot reach LLM server at http://***@127.0.0.1" in err, err
    printed = stdout + stderr + err + "".join(capsys.readouterr())
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "c.jsonl"]
    names = {p.name for p in files}
    assert {"build_stats.json", "README.md", "build.yaml", "stats.json", "generation.sqlite"} <= names, names
    assert not _leaks(printed) and not _leaks(caplog.text) and not _leaks(result.card)
    leaked = {str(p): _leaks(p.read_bytes().decode("utf-8", "replace")) for p in files}
    assert not any(leaked.values()), leaked
    shown = json.loads((out / "dataset" / "build_stats.json").read_text())["generator"]["settings"]["urls"]
    assert shown[0] == f"http://***@127.0.0.1:{server.port}" and "api_key=***" in shown[3]
    assert "model=fake" in shown[4] and "api-version=2024" in shown[11] and shown[9].endswith("/#***")
    # requests: the base path and query kept, the route in the path, userinfo sent as basic auth
    assert f"/v1/chat/completions?api_key={'ApiKeyValue01'}" in server.paths
    assert "/proxy/v1/chat/completions?sessionid=SessionValue05" in server.paths
    assert not any("?" in p.split("/v1/chat/completions")[0] for p in server.paths), server.paths
    basic = "Basic " + base64.b64encode(b"bob:Pw;semi#hash/slash").decode()
    assert basic in server.auth


@pytest.mark.parametrize(
    "url,shown,secret",
    [
        ("http://u:p;a#s/s@h:1/v1?model=m", "http://***@h:1/v1?model=m", "p;a#s/s"),
        ("https://[::1]:8443/v1?api_key=IPv6Secret", "https://[::1]:8443/v1?api_key=***", "IPv6Secret"),
        (
            "http://[fe80::1%25eth0]:80/?token=ScopeSecret",
            "http://[fe80::1%25eth0]:80/?token=***",
            "ScopeSecret",
        ),
        (
            "http://h/?X-Amz-Signature=AmzSig123&version=2",
            "http://h/?X-Amz-Signature=***&version=2",
            "AmzSig123",
        ),
        ("http://h/?a=1&a=SecondValue", "http://h/?a=***&a=***", "SecondValue"),
        ("http://h/?api%5Fkey=EncodedName", "http://h/?api%5Fkey=***", "EncodedName"),
        ("http://h/?=NoNameValue", "http://h/?***", "NoNameValue"),
        ("http://us%3Aer:pw@h", "http://***@h", "us%3Aer"),
        ("HTTP://User:UpperScheme@h", "http://***@h", "UpperScheme"),
        ("http://h#FragOnly123", "http://h#***", "FragOnly123"),
    ],
)
def test_redact_url_forms(url, shown, secret):
    assert redact_url(url) == shown
    for text in (f"error at {url}; fix: x", f"({url})", f"'{url}'", f"see <{url}>."):
        assert secret not in redact(text), text
    # a secret the URL carried is scrubbed wherever it appears again, even outside a URL
    assert secret not in redact(f"the password {secret} was refused")


def test_password_with_a_space_is_scrubbed_once_parsed():
    url = "http://bob:two words here@127.0.0.1:1"
    GeneratorConfig(backend="http", urls=[url])  # parsed once, when the option is read
    assert "two words here" not in redact(f"cannot reach {url}") and "words here" not in redact(url)


def test_url_that_is_not_a_url_is_refused_without_echoing_it():
    with pytest.raises(ValueError, match="is not a server URL") as info:
        GeneratorConfig(backend="http", urls=["127.0.0.1:8080?api_key=NoSchemeSecret"])
    assert "NoSchemeSecret" not in str(info.value)
    assert redact_url("not a url SecretText") == "***"


# -- rule 4: every option validated when parsed ---------------------------------------------------------

SCRIPTS = [
    (BuildConfig, GeneratorConfig),
    (TrainConfig,),
    (EvalConfig,),
    (ReportConfig,),
    (ExploreConfig,),
    (PublishConfig,),
    (QueriesConfig, GeneratorConfig),
]


def _numeric_fields() -> list[tuple[tuple[type, ...], dataclasses.Field, type]]:
    out = []
    for types in SCRIPTS:
        for t in types:
            hints = typing.get_type_hints(t)
            for f in dataclasses.fields(t):
                text = str(hints[f.name])
                kind = int if "int" in text else float if "float" in text else None
                # a mapping option (learning_rate_mapping: {regex: rate}) is not a number
                kind = None if "dict" in text else kind
                if kind and "bool" not in text and (types, f.name) not in {(s, g.name) for s, g, _ in out}:
                    out.append((types, f, kind))
    return out


NUMERIC = _numeric_fields()


@pytest.mark.parametrize(
    "types,f,kind", NUMERIC, ids=[f"{types[0].__name__}.{f.name}" for types, f, _ in NUMERIC]
)
def test_every_numeric_option_refuses_non_finite_overflowing_and_out_of_range_values(types, f, kind):
    """Generic: every current and future numeric option of every script (found from the dataclass types)."""
    bad = ["nan", "inf", "-inf"] if kind is float else ["1" + "0" * 22, "-" + "9" * 25]
    low, high = field_bounds(f, kind, own=any(f.name in own_fields(t) for t in types))
    if low is not None:
        bad.append(str(low - 1))
    if high is not None:
        bad.append(str(high + (1 if kind is int else 0.5)))
    for value in bad:
        with pytest.raises(ConfigError, match=f"--{f.name} ") as info:
            parse(*types, args=[f"--{f.name}={value}"])
        assert "fix: " in str(info.value) and len(str(info.value)) < 300, value


@pytest.mark.parametrize(
    "recipe,fragment",
    [
        ("num_passages: 3\nmethods: [bm25_hn]\nnum_passages: 5\n", "'num_passages' is given twice in"),
        ("methods:\n  bm25_hn: {range_max: 5, range_max: 9}\n", "'range_max' is given twice"),
        (
            "range_max: 5\n",
            "fix: write methods: {bm25_hn: {range_max: 5}, ce_hn: {range_max: 5}, dense_hn: {",
        ),
        (
            "method_options: {bm25_hn: {range_max: 5}}\n",
            "method_options is now part of methods; fix: write methods:",
        ),
        ("temperature: .nan\n", "--temperature nan is not a finite number"),
        ("timeout: .inf\n", "--timeout inf is not a finite number"),
        ("seed: 123456789012345678901234\n", "--seed 123456789012...(24 digits) is out of its range"),
        ("methods: {bm25_hn: {max_score: .inf}}\n", "--methods.bm25_hn.max_score holds inf"),
        (
            "query_max_new_tokens: 0\n",
            "--query_max_new_tokens 0 is below 1; fix: give --query_max_new_tokens a value >= 1",
        ),
        (
            "methods: {hybrid_hn: {hybrid_llm_ratio: 1.5}}\n",
            "--hybrid_llm_ratio 1.5 is out of its range 0..1; fix: give --hybrid_llm_ratio a value from 0 to 1",
        ),
        ("top_p: 0\n", "0 < top_p <= 1"),
    ],
)
def test_recipe_values_are_checked_like_the_command_line(recipe, fragment, tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe)
    with pytest.raises((ConfigError, ValueError)) as info:
        parse(BuildConfig, GeneratorConfig, args=["--config", str(path)])
    assert fragment in str(info.value) and "fix: " in str(info.value)


def test_duplicate_key_names_both_lines(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("seed: 1\nnum_passages: 3\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"'seed' is given twice in '.*recipe.yaml' \(lines 1 and 3\)"):
        parse(BuildConfig, GeneratorConfig, args=["--config", str(path)])


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--seed", "1" * 23], "--seed 111111111111...(23 digits) is out of its range 0..4294967295"),
        (["--temperature", "nan"], "--temperature nan is not a finite number"),
        (["--timeout", "nan"], "--timeout nan is not a finite number"),
        (
            ["--query_max_new_tokens", "0"],
            "--query_max_new_tokens 0 is below 1; fix: give --query_max_new_tokens a value >= 1",
        ),
        (["--methods", '{"bm25_hn": {"range_max": NaN}}'], "methods holds NaN"),
        (["--llm_hn_prompt", "x.yaml"], "fix: write methods: {llm_hn: {prompt: x.yaml}}"),
        (["--concurrency", "0"], "--concurrency 0 is below 1"),
    ],
)
def test_bad_values_stop_the_build_before_any_request(
    args, fragment, fake_llm, tmp_path, monkeypatch, capsys
):
    """Before: a 23-digit --seed ended in an OverflowError traceback after generation had run; --temperature
    nan was sent as NaN (invalid JSON) and recorded."""
    server = fake_llm("ok")
    build_args = _http_build_args(tmp_path, server.url, "--num_passages", "2", *args)
    line = one_error(*run_stage(monkeypatch, capsys, *BUILD, build_args)[::2])
    assert fragment in line and server.bodies == [] and not (tmp_path / "run").exists()


# -- rule 5: bounds on what comes back ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["huge", "huge_stream"])
def test_oversized_reply_is_refused_unread(mode, fake_llm, monkeypatch):
    """Before: 100 MB replies were read whole (3.1 GB peak)."""
    import hardneg.llm.http_backend as http

    monkeypatch.setattr(http, "MAX_REPLY_BYTES", 2**20)
    server = fake_llm(mode)
    server.huge_bytes = 3 * 2**20
    gen = load_generator(GeneratorConfig(backend="http", model="m", urls=[server.url], max_retries=0))
    with pytest.raises(RuntimeError, match=r"over the 1048576 bytes a reply may have; fix: check the server"):
        gen.generate(["a prompt"])


def test_retry_after_is_honoured(fake_llm):
    """Before: 429 with Retry-After: 30 was retried four times in two seconds."""
    server = fake_llm("busy")
    gen = load_generator(GeneratorConfig(backend="http", model="m", urls=[server.url], max_retries=1))
    assert gen.generate(["a prompt"])[0].text
    assert len(server.times) == 2 and server.times[1] - server.times[0] >= 0.9


def test_retry_after_is_parsed_and_capped():
    from hardneg.llm.http_backend import BACKOFF_BASE_S, RETRY_AFTER_MAX_S, retry_delay

    assert retry_delay(0, "3600") == RETRY_AFTER_MAX_S
    in_5s = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3 <= retry_delay(0, in_5s) <= 5.5
    for garbage in ("soon", "-5", "nan", "", None, "Wed, 99 Foo 2026"):
        assert 0 <= retry_delay(0, garbage) <= BACKOFF_BASE_S


def test_reject_log_is_bounded(tmp_path, monkeypatch):
    """Before: a 1.26 GB rejects file. Each text is cut, the file is capped, the rows left out are counted."""
    import hardneg.generation as generation

    monkeypatch.setattr(generation, "REJECT_LOG_BYTES", 8192)

    class Rambling(_Faulty):
        def _generate(self, prompts, *, chat, stop, sampling, progress):
            return [Generation("drag " + "x" * 20_000, 0, 0, 0.0, "length") for _ in prompts]

    items = [{"id": str(i), "passage": f"passage {i}"} for i in range(40)]
    results, stats = run_generation(
        items, generator=Rambling(), prompt=load_prompt("query_zeroshot"), method="queries",
        cache_dir=tmp_path, max_retries=0, progress=False,
    )  # fmt: skip
    path = tmp_path / "rejects" / "queries.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert path.stat().st_size <= 8192 and all(len(r["raw"]) <= generation.REJECT_TEXT_CHARS for r in rows)
    assert stats["rejects_not_logged"] == 40 - len(rows) > 0 and results == [None] * 40
    assert write_rejects(tmp_path / "empty.jsonl", []) == 0


def test_a_second_run_into_a_locked_folder_is_one_line(dataset_folder, tmp_path, monkeypatch, capsys):
    """Before: three builds into one folder raced (one died on a raw [Errno 2])."""
    out = tmp_path / "run"
    ran: list = []
    build_types = (BuildConfig, GeneratorConfig)
    with output_locks((BuildConfig(output_dir=str(out)),)):  # a build that is running
        line = one_error(
            *run_stage(monkeypatch, capsys, _recorder(ran), build_types, ["--output_dir", str(out)])[::2]
        )
        assert f"another run is writing into --output_dir '{out}'" in line
        eval_line = one_error(
            *run_stage(monkeypatch, capsys, _recorder(ran), (EvalConfig,), ["--run_dir", str(out)])[::2]
        )
        assert "another run is writing into --run_dir" in eval_line
        code, _, err = run_stage(
            monkeypatch, capsys, _recorder(ran), build_types, ["--output_dir", str(tmp_path / "b")]
        )
        assert code == 0 and len(ran) == 1, err  # another folder is free
        monkeypatch.setenv("RANK", "1")  # the other processes of the same launch do not lock
        assert run_stage(monkeypatch, capsys, _recorder(ran), build_types, ["--output_dir", str(out)])[0] == 0
        monkeypatch.setenv("RANK", "0")
    assert not out.exists()  # the lock sits beside the folder: a refused run creates nothing

    def fails(*_):
        raise ValueError("boom; fix: none")

    assert run_stage(monkeypatch, capsys, fails, build_types, ["--output_dir", str(out)])[0] == 2
    assert run_stage(monkeypatch, capsys, _recorder(ran), build_types, ["--output_dir", str(out)])[0] == 0
    assert len(ran) == 3  # the lock went with the failed run


# -- rule 6: errors under the launcher printed once ------------------------------------------------------


def test_launcher_exit_code_is_the_failed_process_code():
    from hardneg.launch import _exit_code

    assert _exit_code(CalledProcessError(2, ["python"])) == 2
    assert (
        _exit_code(
            SimpleNamespace(failures={1: SimpleNamespace(exitcode=130), 0: SimpleNamespace(exitcode=2)})
        )
        == 2
    )
    assert _exit_code(SimpleNamespace(failures={})) == 1


@pytest.mark.integration
def test_data_error_found_after_the_preflight_is_printed_once(tmp_path):
    """`make train`: the pre-flight passes (the dataset folder exists), then the launched process finds an
    empty anchor in row 5. Before: the line twice and accelerate's CalledProcessError traceback."""
    from datasets import Dataset

    if subprocess.run(["make", "--version"], capture_output=True).returncode != 0:
        pytest.skip("make is not installed")
    rows = {c: [f"{c} text number {i}" for i in range(16)] for c in ("anchor", "positive", "negative")}
    rows["anchor"][5] = "  "
    write_dataset_folder(tmp_path / "run" / "dataset", {"bm25_hn": Dataset.from_dict(rows)})
    venv = Path(sys.executable).parent.parent
    done = subprocess.run(
        ["make", "-C", str(ROOT), "-o", f"{venv}/.installed", f"VENV={venv}", "train", f"RUN_DIR={tmp_path / 'run'}",
         "METHODS=bm25_hn", "SEEDS="],
        capture_output=True, text=True, timeout=300, env=os.environ | {"PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "row 5 has an empty 'anchor'" in errors[0], done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "CalledProcessError" not in done.stderr, done.stderr[-3000:]
    assert "Error 2" in done.stderr  # make reports the process's own exit code, 2


# -- rule 7: disk full -----------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs, filled but for 16 KiB (skipped where tmpfs cannot be mounted)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()[:100]}")
    try:
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"x" * 4096)
        except OSError as err:
            assert err.errno == errno.ENOSPC
        finally:
            os.close(fd)
        os.truncate(mount / "filler", os.path.getsize(mount / "filler") - 16 * 1024)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_disk_full_in_the_generation_cache_is_one_line(small_disk, fake_llm, tmp_path, monkeypatch, capsys):
    """Before: an sqlite traceback. The cache folder is on a full disk; the build says so in one line."""
    server = fake_llm("ok")
    args = _http_build_args(tmp_path, server.url, "--num_passages", "6")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "cache").symlink_to(small_disk)
    line = one_error(*run_stage(monkeypatch, capsys, *BUILD, args)[::2])
    assert "cannot use the generation cache" in line and "bytes free" in line, line
    assert "fix: free disk space" in line


@pytest.mark.parametrize(
    "damage,fragment",
    [(b"this is not an sqlite file" * 100, "fix: delete"), (b"", None)],
)
def test_damaged_generation_cache_is_one_line(damage, fragment, tmp_path):
    path = tmp_path / "generation.sqlite"
    path.write_bytes(damage)
    if fragment is None:  # an empty file is a new database
        GenerationCache(path).close()
        return
    with pytest.raises(OSError, match=f"cannot use the generation cache {path}.*{fragment}"):
        cache = GenerationCache(path)
        cache.get_many(["k"])


def test_disk_full_on_any_write_is_one_line_with_its_fix():
    line = error_line(OSError(errno.ENOSPC, "No space left on device", "/runs/demo/dataset/x.parquet"))
    assert line.startswith("cannot write '/runs/demo/dataset/x.parquet' (No space left on device); fix: free")
