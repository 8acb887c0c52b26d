"""Prompt templates and the local transformers backend, with the real embedded SmolLM2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hardneg.corpus import passage_text
from hardneg.llm import GeneratorConfig, load_generator
from hardneg.prompts import available_prompts, load_prompt


@pytest.fixture(scope="module")
def generator(llm_id):
    return load_generator(GeneratorConfig(model=llm_id, batch_size=4))


@pytest.fixture(scope="module")
def prompts(_cranfield_corpus):
    template = load_prompt("query_fewshot")
    rows = _cranfield_corpus.select(range(5))
    return [template.render(passage=" ".join(passage_text(r["title"], r["text"]).split()[:40])) for r in rows]


def test_shipped_prompts_load_with_version_and_hash():
    names = available_prompts()
    assert {"query_fewshot", "query_zeroshot", "llm_hn", "llm_pos_hn"} <= set(names)
    for name in names:
        p = load_prompt(name)
        assert p.version and len(p.sha256) == 64 and p.text
        assert p.provenance() == {"name": p.name, "version": p.version, "sha256": p.sha256, "text": p.text}
    assert load_prompt("llm_hn").inputs == ("query",)
    assert load_prompt("llm_pos_hn").inputs == ("query", "positive")


def test_user_template_file_and_bad_files(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text('name: mine\nversion: "7"\nkind: query\ntext: "Doc: {passage}\\nQ:"\n')
    p = load_prompt(f)
    assert (p.name, p.version, p.inputs) == ("mine", "7", ("passage",))
    f2 = tmp_path / "mine2.yaml"
    f2.write_text('name: mine\nversion: "7"\nkind: query\ntext: "Document: {passage}\\nQ:"\n')
    assert load_prompt(f2).sha256 != p.sha256  # the hash follows the text
    # Values are inserted verbatim: braces and placeholder-like text in a passage are never expanded.
    assert p.render(passage="a {query} b {") == "Doc: a {query} b {\nQ:"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntext: hi\n")
    with pytest.raises(ValueError, match="must be a YAML mapping with keys"):
        load_prompt(bad)
    with pytest.raises(FileNotFoundError, match="not found; fix"):
        load_prompt("no_such_prompt")


def test_config_errors_are_one_clear_line(monkeypatch):
    with pytest.raises(ValueError, match="unknown backend 'tgi'; fix"):
        GeneratorConfig(backend="tgi")
    with pytest.raises(ValueError, match="needs at least one server URL"):
        GeneratorConfig(backend="http")
    # The HTTP client does not go through huggingface_hub: HF_HUB_OFFLINE=1 (set by conftest) does not block it.
    with pytest.raises(RuntimeError, match="cannot reach LLM server at http://127.0.0.1:9"):
        load_generator(GeneratorConfig(backend="http", urls=["http://127.0.0.1:9"]))


@pytest.mark.parametrize(
    ("backend", "package", "hint"),
    [
        (
            "llamacpp",
            "llama_cpp",
            "backend=llamacpp needs llama-cpp-python; fix: pip install 'hardneg[llamacpp]'",
        ),
        ("vllm", "vllm", "backend=vllm needs vLLM; fix: pip install 'hardneg[vllm]'"),
    ],
)
def test_optional_backend_imported_only_when_chosen_and_missing_package_is_one_line(backend, package, hint):
    code = (
        f"import sys\nsys.modules['{package}'] = None  # as if the optional package were not installed\n"
        "from hardneg.llm import GeneratorConfig, load_generator\n"
        "import hardneg.queries, hardneg.negatives.llm, hardneg.generation\n"
        f"assert 'hardneg.llm.{backend}_backend' not in sys.modules\n"
        f"try:\n    load_generator(GeneratorConfig(backend='{backend}'))\n"
        "except RuntimeError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert hint in out.stdout
    assert len(out.stdout.strip().splitlines()) == 1


def test_unknown_model_id_is_one_clear_line():
    with pytest.raises(ValueError, match="unknown embedded model"):
        load_generator(GeneratorConfig(model="embedded:nope"))
    with pytest.raises(RuntimeError, match="cannot load LLM 'no-such-org/no-such-model'"):
        load_generator(GeneratorConfig(model="no-such-org/no-such-model"))


def test_greedy_rows_do_not_depend_on_batch_size_and_match_plain_generate(generator, prompts):
    outs4 = generator.generate(prompts, stop=["\n"], max_new_tokens=16)
    generator.config.batch_size = 1
    try:
        outs1 = generator.generate(prompts, stop=["\n"], max_new_tokens=16)
    finally:
        generator.config.batch_size = 4
    assert [o.text for o in outs4] == [o.text for o in outs1]
    assert all(o.text.strip() for o in outs4)
    assert all(o.prompt_tokens > 100 and 0 < o.completion_tokens <= 16 for o in outs4)
    # The shared-prefix, padded batch gives what plain one-prompt generate gives.
    import torch

    tok, model = generator.tokenizer, generator.model
    stop_ids = sorted(generator._stop_tokens(["\n"])[0] | {tok.eos_token_id})
    enc = tok(prompts[0], return_tensors="pt")
    with torch.inference_mode():
        ref = model.generate(
            **enc, max_new_tokens=16, do_sample=False, eos_token_id=stop_ids, pad_token_id=tok.pad_token_id
        )
    assert (
        tok.decode(ref[0, enc.input_ids.shape[1] :], skip_special_tokens=True).split("\n")[0] == outs4[0].text
    )


def test_prefill_in_length_groups_equals_one_padded_batch(generator, prompts, monkeypatch):
    import os.path

    from hardneg.llm import transformers_backend as tb

    ids = generator._encode(prompts, chat=False)
    n_prefix = len(os.path.commonprefix(ids))
    groups = tb._length_groups([len(x) - n_prefix for x in ids[:4]], tb.PREFILL_PAD_TOLERANCE)
    assert len(groups) > 1  # these prompts really are prefilled in several groups
    assert sorted(i for g in groups for i in g) == [0, 1, 2, 3]
    grouped = generator.generate(prompts, stop=["\n"], max_new_tokens=16)
    monkeypatch.setattr(tb, "PREFILL_PAD_TOLERANCE", float("inf"))  # one padded group per batch
    padded = generator.generate(prompts, stop=["\n"], max_new_tokens=16)
    assert [(o.text, o.completion_tokens) for o in grouped] == [(o.text, o.completion_tokens) for o in padded]


def test_seeded_sampling_is_per_row(generator, prompts):
    a = generator.generate(prompts[:3], stop=["\n"], max_new_tokens=12, temperature=0.9, seeds=[1, 2, 3])
    b = generator.generate(prompts[2:3], stop=["\n"], max_new_tokens=12, temperature=0.9, seeds=[3])
    c = generator.generate(prompts[:3], stop=["\n"], max_new_tokens=12, temperature=0.9, seeds=[11, 12, 13])
    assert b[0].text == a[2].text  # same seed, different batch -> same sample
    assert [x.text for x in a] != [x.text for x in c]
