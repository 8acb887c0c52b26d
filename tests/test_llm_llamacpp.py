"""The llamacpp backend (optional extra ``hardneg[llamacpp]``), with real generation on the embedded GGUF."""

from __future__ import annotations

import pytest

from hardneg.corpus import passage_text
from hardneg.llm import GeneratorConfig, load_generator
from hardneg.prompts import load_prompt


@pytest.fixture(scope="module")
def gen(llm_id):
    pytest.importorskip("llama_cpp")
    return load_generator(GeneratorConfig(model=llm_id, backend="llamacpp", n_ctx=1024))


@pytest.fixture(scope="module")
def prompts(_cranfield_corpus):
    template = load_prompt("query_fewshot")
    rows = _cranfield_corpus.select(range(5))
    return [template.render(passage=" ".join(passage_text(r["title"], r["text"]).split()[:40])) for r in rows]


def texts(outs):
    return [o.text for o in outs]


def test_greedy_is_repeatable_and_well_formed(gen, prompts):
    a = gen.generate(prompts, stop=["\n"], max_new_tokens=16)
    b = gen.generate(prompts, stop=["\n"], max_new_tokens=16)
    assert texts(a) == texts(b)
    assert all(o.text.strip() and "\n" not in o.text for o in a)
    assert len(set(texts(a))) == len(prompts)  # one query per passage, not one answer for all
    assert all(o.prompt_tokens > 100 and 0 < o.completion_tokens <= 16 and o.latency_s > 0 for o in a)
    assert {o.finish_reason for o in a} <= {"stop", "length"}
    # Without a stop string the token budget is what ends every output.
    long = gen.generate(prompts[:1], max_new_tokens=5)
    assert long[0].completion_tokens == 5 and long[0].finish_reason == "length"


def test_order_calls_and_prefix_reuse_do_not_change_greedy_outputs(gen, prompts):
    ref = texts(gen.generate(prompts, stop=["\n"], max_new_tokens=16))
    # Reversed order, and each prompt alone (its own call: a different shared prefix and split point).
    assert texts(gen.generate(prompts[::-1], stop=["\n"], max_new_tokens=16)) == ref[::-1]
    assert [gen.generate([p], stop=["\n"], max_new_tokens=16)[0].text for p in prompts] == ref
    # No reuse at all: a cold cache and the whole prompt evaluated in one go by plain llama-cpp-python.
    gen.llm.reset()
    gen._prefix = []
    plain = gen.llm.create_completion(prompts[2], max_tokens=16, temperature=0.0, stop=["\n"])
    assert plain["choices"][0]["text"] == ref[2]
    # And the prefix is kept across calls: the next call evaluates only the suffixes.
    gen.generate(prompts[:2], stop=["\n"], max_new_tokens=4)
    kept = list(gen._prefix)
    assert len(kept) > 100
    gen.generate(prompts[2:4], stop=["\n"], max_new_tokens=4)
    assert gen._prefix == kept


def test_seeded_sampling_is_per_item(gen, prompts):
    a = gen.generate(prompts[:3], stop=["\n"], max_new_tokens=12, temperature=0.9, seeds=[1, 2, 3])
    b = gen.generate(prompts[2:3], stop=["\n"], max_new_tokens=12, temperature=0.9, seeds=[3])
    c = gen.generate(prompts[:3], stop=["\n"], max_new_tokens=12, temperature=0.9, seeds=[11, 12, 13])
    assert b[0].text == a[2].text  # same seed, different call and position -> same sample
    assert texts(a) != texts(c)


def test_chat_prompts_use_the_gguf_chat_template(gen):
    outs = gen.generate(["Name one planet of the solar system."], chat=True, max_new_tokens=12)
    assert outs[0].text.strip() and "<|im_start|>" not in outs[0].text
    # Completion prompts never parse special tokens from the text (a passage cannot inject them).
    ids = gen._encode(["<|im_start|>user"], chat=False)[0]
    assert gen.llm.tokenize(b"<|im_start|>", add_bos=False, special=True)[0] not in ids


def test_provenance_and_cache_key(gen):
    import llama_cpp

    s = gen.cache_settings()
    assert s["backend"] == "llamacpp" and s["llama_cpp_version"] == llama_cpp.__version__
    assert len(s["gguf_sha256"]) == 16 and "SmolLM2-135M" in s["model"]
    assert gen.info()["n_threads"] >= 1 and gen.info()["n_ctx"] == 1024


def test_bad_input_is_one_clear_line(gen, prompts, tmp_path):
    with pytest.raises(ValueError, match=r"> n_ctx=1024; fix: raise --n_ctx"):
        gen.generate([prompts[0] * 8], max_new_tokens=8)
    with pytest.raises(ValueError, match="needs a GGUF file"):
        load_generator(GeneratorConfig(model=str(tmp_path), backend="llamacpp"))
    with pytest.raises(FileNotFoundError, match="not found; fix"):
        load_generator(GeneratorConfig(model=str(tmp_path), gguf_file="x.gguf", backend="llamacpp"))
    with pytest.raises(RuntimeError, match="cannot fetch 'x.gguf' from Hub repo 'no-org/no-repo'"):
        load_generator(GeneratorConfig(model="no-org/no-repo", gguf_file="x.gguf", backend="llamacpp"))


def test_queries_pipeline_runs_on_llamacpp(gen, _cranfield_corpus, tmp_path):
    from hardneg.queries import generate_queries

    queries, stats = generate_queries(
        _cranfield_corpus.select(range(4)), gen, cache_dir=tmp_path, max_retries=0, progress=False
    )
    assert len(queries) + stats["dropped"] == 4 and len(queries) >= 2
    assert set(queries["backend"]) == {"llamacpp"}
    assert stats["params"]["generator"]["backend"] == "llamacpp"
    again, stats2 = generate_queries(
        _cranfield_corpus.select(range(4)), gen, cache_dir=tmp_path, max_retries=0, progress=False
    )
    assert stats2["cached_this_run"] == 4 and again["query"] == queries["query"]
