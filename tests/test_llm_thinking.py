"""Reasoning models: the thinking switch reaches the chat template, reasoning blocks are stripped before
hygiene, and stop strings never cut a reply to ``<think>``. The server test runs a real ``transformers
serve`` on a copy of the embedded SmolLM2 whose chat template gets a Qwen3-style ``enable_thinking`` switch."""

from __future__ import annotations

import json

import pytest

from hardneg.llm import Generation, Generator, GeneratorConfig, strip_reasoning
from hardneg.llm.bounding import TEMPLATE_MARGIN_TOKENS


@pytest.mark.parametrize(
    ("raw", "answer"),
    [
        ("<think>\nplan it\n</think>\n\nwing flutter", "wing flutter"),  # complete block
        ("plan it\n</think>\n\nwing flutter", "wing flutter"),  # opener was in the prompt (template prefill)
        ("<think>\nstill thinking when the budget ran out", ""),  # unterminated: nothing answered
        ("<think></think>a<think>b</think> c", "a c"),
        ("wing flutter at Mach 2", "wing flutter at Mach 2"),  # nothing to strip
    ],
)
def test_strip_reasoning(raw, answer):
    text, stripped = strip_reasoning(raw)
    assert text == answer and stripped == (0 if raw == answer else len(raw) - len(answer))


class _IgnoresSwitch(Generator):
    """A model whose template ignores enable_thinking: it always thinks; a server-side newline stop cuts the
    reply to '<think>'."""

    def __init__(self, **kw):
        self.config = GeneratorConfig(**kw)
        self.calls: list[tuple[list[str], int]] = []

    def _generate(self, prompts, *, chat, stop, sampling, progress):
        self.calls.append((list(stop), sampling.max_new_tokens))
        raw = "<think>\nthe user wants a query\n</think>\n\nwing flutter\nmore text"
        return [Generation(raw.split(stop[0])[0] if stop else raw, 5, 9, 0.1, "length") for _ in prompts]


@pytest.mark.parametrize("enable_thinking", [False, True])
def test_stop_strings_never_cut_a_reply_to_think(enable_thinking):
    gen = _IgnoresSwitch(enable_thinking=enable_thinking, thinking_tokens=100)
    out = gen.generate(["p1", "p2"], chat=True, stop=["\n"], max_new_tokens=8)
    assert [o.text for o in out] == ["wing flutter"] * 2
    assert all(o.reasoning_chars > 0 and o.finish_reason == "stop" for o in out)
    # Off: one call with the stop, then the cut rows again without it; on: one call without stops.
    expected = [([], 108)] if enable_thinking else [(["\n"], 8), ([], 108)]
    assert gen.calls == expected


def test_switch_can_be_left_out_of_every_chat_template():
    """``send_chat_template_kwargs=False``: the local template gets no enable_thinking variable (HTTP: no
    field, tests/test_bad_inputs.py); stage keys of builds that keep the default do not change."""
    from hardneg.llm.transformers_backend import TransformersGenerator

    class Tokenizer:  # records the variables the chat template is given
        def __init__(self):
            self.variables: list[dict] = []

        def apply_chat_template(self, messages, tokenize, add_generation_prompt, **variables):
            self.variables.append(variables)
            return messages[0]["content"]

        def __call__(self, text, add_special_tokens):
            return {"input_ids": [ord(c) for c in text]}

    for send, expected in [(True, {"enable_thinking": False}), (False, {})]:
        gen = object.__new__(TransformersGenerator)  # no model: only the template call is under test
        gen.config, gen.tokenizer = GeneratorConfig(send_chat_template_kwargs=send), Tokenizer()
        assert gen._encode(["ab"], chat=True) == [[97, 98]] and gen.tokenizer.variables == [expected]

    default, omitted = GeneratorConfig(), GeneratorConfig(send_chat_template_kwargs=False)
    assert "send_chat_template_kwargs" not in default.output_settings()  # keys of existing builds unchanged
    assert omitted.output_settings() == default.output_settings() | {"send_chat_template_kwargs": False}
    assert omitted.recorded()["send_chat_template_kwargs"] is False
    # The generation cache key changes too (the model may now think), and only then.
    assert _IgnoresSwitch().thinking_settings() == {}
    assert _IgnoresSwitch(send_chat_template_kwargs=False).thinking_settings() == {
        "send_chat_template_kwargs": False
    }
    # Reasoning is still stripped and counted when the switch is not sent.
    gen = _IgnoresSwitch(send_chat_template_kwargs=False, thinking_tokens=100)
    out = gen.generate(["p"], chat=True, stop=["\n"], max_new_tokens=8)
    assert out[0].text == "wing flutter" and out[0].reasoning_chars > 0


def test_switch_option_parses_from_cli_and_yaml(tmp_path):
    from hardneg.config import parse

    assert parse(GeneratorConfig, args=[])[0].send_chat_template_kwargs is True
    for args in (["--send_chat_template_kwargs", "false"], ["--no_send_chat_template_kwargs"]):
        assert parse(GeneratorConfig, args=args)[0].send_chat_template_kwargs is False
    recipe = tmp_path / "r.yaml"
    recipe.write_text("send_chat_template_kwargs: false\nenable_thinking: true\n")
    (cfg,) = parse(GeneratorConfig, args=["--config", str(recipe)])
    assert cfg.send_chat_template_kwargs is False and cfg.enable_thinking is True


# Qwen3's switch on SmolLM2's format. Thinking on (the default, as in Qwen3): three demonstrations whose replies
# start with a reasoning block, and the generation prompt opens one (`<think>\n`), so even a 135M model writes
# reasoning first. Off: Qwen3's empty block, and no demonstrations.
THINKING_TEMPLATE = (
    "{%- set thinking = enable_thinking is not defined or enable_thinking -%}"
    "{{- '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' -}}"
    "{%- if thinking -%}{%- for q, a in [['Write a search query for: The wing of an aircraft produces lift.', "
    "'aircraft wing lift'], ['Write a search query for: Paris is the capital of France.', 'capital of France'], "
    "['Write a search query for: Water boils at 100 degrees.', 'boiling point of water']] -%}"
    "{{- '<|im_start|>user\\n' + q + '<|im_end|>\\n<|im_start|>assistant\\n<think>\\nI will write a short query."
    "\\n</think>\\n\\n' + a + '<|im_end|>\\n' -}}{%- endfor -%}{%- endif -%}"
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}"
    "{%- if thinking -%}{{- '<think>\\n' -}}{%- else -%}{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}{%- endif -%}"
)


@pytest.fixture(scope="module")
def thinking_server(tmp_path_factory):
    from test_llm_http import SERVE, Server, _free_port  # the same server harness as the HTTP tests
    from transformers import AutoTokenizer

    from hardneg.assets import resolve_llm
    from hardneg.llm.transformers_backend import dequantised_gguf_folder

    if SERVE is None:
        pytest.skip("the `transformers` CLI is not installed")
    ref = resolve_llm("embedded:smollm2")
    source = dequantised_gguf_folder(ref.name_or_path, ref.gguf_file)
    folder = tmp_path_factory.mktemp("smollm2-thinking")
    for f in source.iterdir():  # weights and config shared by link; the tokenizer gets the new template
        if f.suffix in (".safetensors", ".json") and not f.name.startswith("tokenizer"):
            (folder / f.name).symlink_to(f)
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.chat_template = THINKING_TEMPLATE
    tokenizer.save_pretrained(folder)
    srv = Server(folder, _free_port(), folder / "serve.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def _hub_online(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.usefixtures("_hub_online")
def test_thinking_model_behind_a_real_server(thinking_server, tiny_corpus, tmp_path):
    from hardneg.llm import load_generator
    from hardneg.queries import generate_queries

    def config(**kw):
        return GeneratorConfig(
            backend="http",
            model=str(thinking_server.folder),
            urls=[thinking_server.url],
            timeout=300,
            concurrency=2,
            **kw,
        )

    passages = tiny_corpus.select(range(2))
    # Thinking kept on: every reply carries reasoning; it is stripped, the newline stop applies to the answer.
    thinker = load_generator(config(enable_thinking=True, thinking_tokens=24))
    queries, stats = generate_queries(
        passages,
        thinker,
        prompt="query_zeroshot",
        cache_dir=tmp_path / "on",
        max_new_tokens=24,
        max_retries=0,
        progress=False,
    )
    assert stats["reasoning_stripped"] == 2 and stats["reasoning_chars"] > 0
    # Cleaned before hygiene: no reply is rejected as empty (a stop applied before stripping leaves '<think>');
    # the tiny model may still copy its passage, which hygiene rejects as it should.
    assert "empty" not in stats["rejects"] and len(queries) + stats["dropped"] == 2
    rejected = [
        json.loads(x) for x in (tmp_path / "on" / "rejects" / "queries.jsonl").read_text().splitlines()
    ]
    answers = list(queries["query"]) + [r["raw"] for r in rejected]
    assert len(answers) == 2 and all(a.strip() and "think" not in a and "\n" not in a for a in answers)
    # Off (the default): the template gets enable_thinking=false and no reasoning is emitted.
    plain = load_generator(config())
    outs = plain.generate(
        [f"Write a search query for: {t}" for t in passages["text"]], chat=True, max_new_tokens=16
    )
    assert all(o.reasoning_chars == 0 and "think>" not in o.text and o.completion_tokens > 0 for o in outs)
    # Switch not sent (hosted APIs that reject chat_template_kwargs): the template's own default decides, and
    # this one thinks (as Qwen3 does); the reasoning is still stripped and counted.
    omitted = load_generator(config(send_chat_template_kwargs=False))
    outs = omitted.generate(
        [f"Write a search query for: {t}" for t in passages["text"]], chat=True, max_new_tokens=48
    )
    assert all(o.reasoning_chars > 0 and "think>" not in o.text for o in outs)


def test_thinking_budget_counts_against_the_context_and_must_not_be_negative():
    with pytest.raises(ValueError, match="thinking_tokens must be >= 0"):
        GeneratorConfig(model="m", thinking_tokens=-1)

    from hardneg.llm.transformers_backend import TransformersGenerator

    def local(**kw):  # a local model of 2,048 tokens of context (no weights: only the budget is under test)
        gen = object.__new__(TransformersGenerator)
        gen.config = GeneratorConfig(model="m", backend="transformers", **kw)
        gen.tokenizer = object()
        gen.model = type("M", (), {"config": type("C", (), {"max_position_embeddings": 2048})()})()
        return gen

    plain = local().prompt_budget(64).max_tokens
    thinking = local(enable_thinking=True, thinking_tokens=512).prompt_budget(64).max_tokens
    assert plain == 2048 - 64 - TEMPLATE_MARGIN_TOKENS and plain - thinking == 512
