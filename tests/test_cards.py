"""Rendered dataset and model cards: content checked against the inputs, never crashing on missing stats."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
from huggingface_hub import DatasetCard, ModelCard
from test_hub_fixtures import PROMPT_LLM_HN, PROMPT_QUERY, make_build_stats

from hardneg.cards import (
    DatasetCardData,
    ModelCardData,
    render_dataset_card,
    render_model_card,
    size_category,
)

SPLITS = {"queries": {"train": 12}, "llm_hn": {"train": 12}, "bm25_hn": {"train": 12}}


@pytest.fixture
def card_text():
    data = DatasetCardData(
        repo_id="my-org/cranfield-hn",
        version="1.2.0",
        license="cc-by-4.0",
        changelog=[
            {"version": "1.0.0", "date": "2026-11-01", "notes": "First release."},
            {"version": "1.2.0", "date": "2026-11-26", "notes": "Adds bm25_hn."},
        ],
    )
    return render_dataset_card(data, make_build_stats(), splits=SPLITS, default_config="queries")


def test_dataset_card_yaml_metadata(card_text):
    card = DatasetCard(card_text)
    meta = card.data.to_dict()
    assert meta["license"] == "cc-by-4.0"
    assert meta["language"] == ["en"]
    assert meta["size_categories"] == ["n<1K"]  # 36 rows
    # source_datasets names Hub ids only; the embedded corpus is recorded as provenance
    assert "source_datasets" not in meta
    assert meta["provenance"] == {"corpus": [{"source": "embedded:cranfield", "revision": None}]}
    assert "text-retrieval" in meta["task_categories"]
    assert meta["pretty_name"] == "hardneg synthetic hard negatives"


def test_dataset_card_how_each_config_was_made(card_text):
    # full prompt texts, model id, backend, sampling, seed and mining parameters
    assert PROMPT_QUERY in card_text and PROMPT_LLM_HN in card_text
    assert "`HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1)` via the `transformers` backend" in card_text
    assert '{"max_new_tokens": 32, "temperature": 0.0}' in card_text
    assert "sampled with seed 42" in card_text
    assert "- `sampling_strategy`: `top`" in card_text and "- `k1`: `1.5`" in card_text
    assert "### `bm25_hn`" in card_text and "### `llm_hn`" in card_text and "### `queries`" in card_text


def test_dataset_card_statistics_and_cost(card_text):
    assert "| `queries` | 12 | copied_passage: 2, empty: 1 | — | — | — | — |" in card_text
    assert "| `bm25_hn` | 12 | — | 0 | 25.0% | — | 17.2 |" in card_text
    assert "| `llm_hn` | 12 | too_short: 3 | — | 8.3% | 0.61 | 0.42 |" in card_text
    assert "| negative | 17.2 | 4.1 | 9.8 | 16.9 | 27.3 |" in card_text
    assert "Skipped by filter: positive = 12." in card_text
    assert "Other statistics: dropped = `1`." in card_text  # stats the template does not know are still shown
    assert "- `num_passages`: `12`" in card_text and '- `methods`: `["llm_hn", "bm25_hn"]`' in card_text
    # cost per method: tokens and wall time
    assert "| `queries` | 1,440 | 192 | 31.5 | 0.38 |" in card_text
    assert "| `llm_hn` | 480 | 288 | 22.25 | 0.54 |" in card_text


def test_dataset_card_use_train_cite_changelog(card_text):
    assert 'load_dataset("my-org/cranfield-hn", "llm_hn", revision="v1.2.0", split="train")' in card_text
    assert (
        "accelerate launch training/train.py --config recipes/demo/train.yaml \\\n"
        "  --dataset my-org/cranfield-hn --dataset_config llm_hn --dataset_revision v1.2.0"
    ) in card_text
    assert "false negatives" in card_text and "factually wrong" in card_text
    assert (
        "Don't Retrieve, Generate: Prompting LLMs for Synthetic Training Data in Dense Retrieval" in card_text
    )
    assert "arXiv:2504.21015" in card_text and "@software{hardneg," in card_text
    newest, oldest = card_text.index("**v1.2.0**"), card_text.index("**v1.0.0**")
    assert newest < oldest  # newest first
    assert "(2026-11-01): First release." in card_text


def test_dataset_card_never_crashes_on_missing_keys():
    full = make_build_stats()
    variants = [
        {},
        {"configs": {}},
        {"configs": {"llm_hn": {}}},
        {"corpus": None, "generator": "x", "prompts": []},
    ]
    for key in full:  # drop one top-level key at a time
        variants.append({k: v for k, v in full.items() if k != key})
    for name in full["configs"]:  # and every stat of every config, one at a time
        for stat in list(full["configs"][name]):
            partial = copy.deepcopy(full)
            del partial["configs"][name][stat]
            variants.append(partial)
    for stats in variants:
        text = render_dataset_card(DatasetCardData(), stats)
        assert text.startswith("---\n") and "## Statistics" in text and "## Citation" in text
    bare = render_dataset_card(DatasetCardData(), {})
    assert 'load_dataset("ORG/NAME"' in bare and "unreleased" in bare and "No prompts were recorded" in bare


def test_prompt_stored_with_the_config_stats():
    """The build may record a config's prompt inside its own stats (stats[config]['prompt'])."""
    stats = make_build_stats()
    stats["prompts"] = {}
    stats["configs"]["llm_hn"]["prompt"] = {
        "name": "llm_hn_v2",
        "version": "2",
        "sha256": "c" * 64,
        "text": "Only this prompt.",
    }
    text = render_dataset_card(DatasetCardData(), stats)
    assert "Prompt `llm_hn_v2` (version 2, sha256 `cccccccccccc`)" in text
    assert "#### `llm_hn`: llm_hn_v2 (version 2)" in text and "Only this prompt." in text


@pytest.mark.parametrize(
    ("rows", "bucket"),
    [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (250_000, "100K<n<1M"), (12_000_000, "10M<n<100M")],
)
def test_size_category(rows, bucket):
    assert size_category(rows) == bucket


def test_model_card():
    data = ModelCardData(
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        dataset_id="my-org/cranfield-hn",
        dataset_config="bm25_hn",
        dataset_revision="v1.0.0",
        dataset_commit="0123456789abcdef0123456789abcdef01234567",
        base_model_commit="fedcba9876543210fedcba9876543210fedcba98",
        loss="MultipleNegativesRankingLoss",
        hyperparameters={"learning_rate": 2e-5, "per_device_train_batch_size": 32, "seed": 42},
        hardware="2 CPU cores",
        prompts={"query": "query: ", "document": "passage: "},
        train_samples=150,
        train_seconds=42.5,
        metrics=[
            {"model": "ft-bm25_hn", "dataset": "cranfield", "ndcg@10": 0.31234, "p@10": 0.081, "r@100": 0.7}
        ],
        repo_id="my-org/minilm-bm25-hn",
    )
    text = render_model_card(data)
    meta = ModelCard(text).data.to_dict()
    assert meta["library_name"] == "sentence-transformers"
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["datasets"] == ["my-org/cranfield-hn"]
    assert meta["pipeline_tag"] == "sentence-similarity"
    assert "hardneg-bm25_hn" in meta["tags"]
    results = meta["model-index"][0]["results"]
    assert {(r["dataset"]["name"], m["type"], m["value"]) for r in results for m in r["metrics"]} >= {
        ("cranfield", "ndcg_at_10", 0.31234)
    }
    assert 'load_dataset("my-org/cranfield-hn", "bm25_hn", revision="v1.0.0")' in text
    assert "(commit `0123456789abcdef0123456789abcdef01234567`, the one actually loaded)" in text
    assert (
        "`sentence-transformers/all-MiniLM-L6-v2` (commit `fedcba9876543210fedcba9876543210fedcba98`)" in text
    )
    assert 'SentenceTransformer("my-org/minilm-bm25-hn")' in text
    assert "- `learning_rate`: `2e-05`" in text and "- Training triplets: 150" in text
    assert (
        "| run | ndcg@10 | p@10 | r@100 |" in text
        and "| ft-bm25_hn / cranfield | 0.3123 | 0.081 | 0.7 |" in text
    )
    assert "- transformers: " in text and "- sentence-transformers: " in text
    assert "arXiv:2504.21015" in text


def test_model_card_minimal_and_json_round_trip(tmp_path):
    data = ModelCardData(base_model="embedded:minilm", dataset_id=str(tmp_path), dataset_config="llm_hn")
    text = render_model_card(data)
    meta = ModelCard(text).data.to_dict()
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"  # the embedded weights' Hub id
    assert "datasets" not in meta  # a local dataset folder is not a Hub link
    assert "Not evaluated yet." in text and "revision `unpinned`" in text
    data.save(tmp_path / "card_data.json")
    assert ModelCardData.load(tmp_path / "card_data.json") == data


def test_missing_template_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="card template .* not found; fix: .*HARDNEG_CARDS_DIR"):
        render_dataset_card(DatasetCardData(), {}, template_path=tmp_path / "none.md")


@pytest.mark.integration
def test_wheel_ships_the_card_templates(tmp_path):
    """A non-editable install (the built wheel, outside the repository) renders cards from its own copy."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(repo)],
        check=True,
        capture_output=True,
    )
    wheel = next((tmp_path / "dist").glob("hardneg-*.whl"))
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        "import hardneg.cards as c; from pathlib import Path; "
        "assert Path(c.CARDS_DIR).is_relative_to(Path.cwd()), c.CARDS_DIR; "
        "print(c.render_dataset_card(c.DatasetCardData(), {})[:3])"
    )
    env = {k: v for k, v in os.environ.items() if k != "HARDNEG_CARDS_DIR"} | {
        "PYTHONPATH": str(tmp_path / "site")
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path / "site", env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("---")


# ---------------------------------------------------------------------------------------------------------
# cards that reproduce: toolkit + install line, example rows, a plain sentence-transformers snippet, the recipe


def _reproducible_card(tmp_path, **card_fields):
    from datasets import Dataset

    from hardneg.cards import library_versions
    from hardneg.hub import save_dataset_folder

    stats = make_build_stats()
    stats["versions"] = {**library_versions(), "transformers": "4.99.0-build"}  # recorded at build time
    stats["build"] = {"corpus": "embedded:cranfield", "num_passages": 12, "methods": ["llm_hn", "bm25_hn"]}
    stats["generator"]["settings"] = {
        "model": "embedded:smollm2",
        "backend": "http",
        "seed": 42,
        "urls": ["http://user:s3cret@gpu-1:8080/v1?api_key=t0ken&model=m&x=1"],
    }
    rows = [
        {
            "anchor": f"what is flutter {i}?",
            "positive": f"Flutter | is an oscillation {i} " + "word " * 60,
            "negative": f"Buffeting is not flutter {i}.",
            "method": "llm_hn",
        }
        for i in range(6)
    ]
    queries = Dataset.from_list([{"query": r["anchor"], "positive": r["positive"]} for r in rows])
    folder = save_dataset_folder(
        tmp_path / "dataset",
        {"queries": queries, "llm_hn": Dataset.from_list(rows), "bm25_hn": Dataset.from_list(rows)},
        stats,
        card_data=DatasetCardData(repo_id="my-org/flutter-hn", version="1.0.0", **card_fields),
    )
    return folder, stats


def test_dataset_card_reproduces(tmp_path):
    from hardneg.cards import example_rows, write_build_recipe

    folder, stats = _reproducible_card(
        tmp_path, license="cranfield-terms", toolkit_url="https://example.org/hardneg"
    )
    recipe = write_build_recipe(folder, stats)
    examples = example_rows(folder)
    assert [r["anchor"] for r in examples["llm_hn"]] == ["what is flutter 0?", "what is flutter 1?"]
    text = render_dataset_card(
        DatasetCardData(
            repo_id="my-org/flutter-hn",
            version="1.0.0",
            license="cranfield-terms",
            toolkit_url="https://example.org/hardneg",
        ),
        stats,
        splits={"queries": {"train": 6}, "llm_hn": {"train": 6}},
        examples=examples,
    )
    meta = DatasetCard(text).data.to_dict()
    assert meta["license"] == "other" and meta["license_name"] == "cranfield-terms"
    assert (
        "Built with [hardneg](https://example.org/hardneg) 0.1.0" in text and 'pip install "hardneg==' in text
    )
    # example rows per config, texts cut and table-safe
    assert (
        "| anchor | positive | negative |" in text
        and "| what is flutter 0? | Flutter \\| is an oscillation 0" in text
    )
    assert "Buffeting is not flutter 1." in text and "word " * 40 not in text
    # the plain sentence-transformers snippet and the rebuild command
    assert 'load_dataset("my-org/flutter-hn", "llm_hn", revision="v1.0.0", split="train")' in text
    assert "import hardneg" not in text.split("## Train on it")[1].split("```bash")[0]
    assert (
        "hf download my-org/flutter-hn recipes/build.yaml --repo-type dataset --revision v1.0.0 --local-dir . && "
        "python builders/build.py --config recipes/build.yaml --output_dir runs/rebuild"
    ) in text
    # library versions are the build's, not this machine's
    assert "transformers 4.99.0-build" in text
    written = recipe.read_text()
    assert "corpus: embedded:cranfield" in written and "num_passages: 12" in written
    # one redactor (hardneg.redact.redact_url): userinfo and token-like query parameters
    assert (
        "s3cret" not in written
        and "t0ken" not in written
        and "http://***@gpu-1:8080/v1?api_key=***&model=m&x=***" in written
    )


def test_recipe_parses_back_into_the_build_configs(tmp_path):
    from hardneg.build import BuildConfig
    from hardneg.cards import write_build_recipe
    from hardneg.config import parse
    from hardneg.llm import GeneratorConfig

    stats = {
        "build": {
            k: v
            for k, v in vars(BuildConfig(num_passages=7, methods={"bm25_hn": {"range_max": 9}})).items()
            if k != "output_dir"
        },
        "generator": {"settings": vars(GeneratorConfig(model="embedded:smollm2", seed=5))},
    }
    path = write_build_recipe(tmp_path, stats)
    build, generator = parse(BuildConfig, GeneratorConfig, args=["--config", str(path)])
    assert build.num_passages == 7 and build.methods["bm25_hn"]["range_max"] == 9 and generator.seed == 5


def test_source_datasets_and_standard_license():
    stats = make_build_stats()
    stats["corpus"]["source"] = "BeIR/scifact"
    meta = DatasetCard(render_dataset_card(DatasetCardData(license="CC-BY-4.0"), stats)).data.to_dict()
    assert meta["source_datasets"] == ["BeIR/scifact"] and "provenance" not in meta
    assert meta["license"] == "cc-by-4.0" and "license_name" not in meta
    meta = DatasetCard(render_dataset_card(DatasetCardData(), stats)).data.to_dict()
    assert meta["license"] == "other" and meta["license_name"] == "corpus-license"


def test_false_negative_rate_of_a_self_guarded_method_is_not_a_measurement():
    stats = make_build_stats()
    ce = {
        "rows": 12,
        "suspected_false_negative_rate": 0.0,
        "false_negative_scorer": "embedded:ql",
        "false_negative_same_as_guard": True,
    }
    stats["configs"]["ce_hn"] = dict(ce)
    text = render_dataset_card(DatasetCardData(), stats)
    row = next(line for line in text.splitlines() if line.startswith("| `ce_hn` | 12 |"))
    assert "not measured (same scorer as its guard: 0% by construction)" in row and "0.0%" not in row
    assert "finds none by construction" in text
    # old builds without the key: the guard's scorer and margin in the params tell the same
    stats["configs"]["ce_hn"] = {k: v for k, v in ce.items() if k != "false_negative_same_as_guard"}
    stats["configs"]["ce_hn"]["params"] = {"scorer": "embedded:ql", "absolute_margin": 0.0}
    assert "not measured (same scorer as its guard" in render_dataset_card(DatasetCardData(), stats)
    # with an independent judge, its figure is shown instead
    stats["configs"]["ce_hn"] = {
        **ce,
        "independent_false_negative_rate": 0.125,
        "independent_false_negative_scorer": "cross-encoder/ms-marco-MiniLM-L-6-v2",
    }
    text = render_dataset_card(DatasetCardData(), stats)
    row = next(line for line in text.splitlines() if line.startswith("| `ce_hn` | 12 |"))
    assert "12.5% (independent judge `cross-encoder/ms-marco-MiniLM-L-6-v2`)" in row
    # other methods keep their measured rate
    assert "| `bm25_hn` | 12 | — | 0 | 25.0% |" in text


@pytest.mark.slow  # a fresh interpreter imports sentence-transformers and trains one step: ~1-2 min on 2 busy cores
def test_sentence_transformers_snippet_runs_without_hardneg(tmp_path, embedder_id):
    """The card's snippet, run as written against the local folder and the embedded MiniLM weights."""
    import subprocess
    import sys

    from hardneg.assets import resolve_embedder

    folder, stats = _reproducible_card(tmp_path)
    text = render_dataset_card(DatasetCardData(repo_id="my-org/flutter-hn"), stats)
    snippet = text.split("## Train on it")[1].split("```python\n")[1].split("```")[0]
    snippet = snippet.replace('"my-org/flutter-hn"', repr(str(folder)))
    snippet = snippet.replace(
        '"sentence-transformers/all-MiniLM-L6-v2"', repr(resolve_embedder(embedder_id).name_or_path)
    )
    snippet = snippet.replace('save_pretrained("', f'save_pretrained("{tmp_path}/')
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(tmp_path / "no-hardneg"))
    (tmp_path / "no-hardneg" / "hardneg").mkdir(parents=True)
    (tmp_path / "no-hardneg" / "hardneg" / "__init__.py").write_text("raise ImportError('hardneg used')\n")
    out = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "retriever-llm_hn" / "model.safetensors").is_file()


def test_repair_counts_and_pairing_drops_reach_the_card():
    """The repair record (~460 characters of JSON) used to fall out of "other statistics" (200-character cap)."""
    stats = make_build_stats()
    stats["configs"]["llm_hn"]["repair"] = {
        "mode": "relabel",
        "suspected": 17,
        "judged_false_negative": 5,
        "judged_true_negative": 11,
        "undecided": 1,
        "dropped": 0,
        "relabelled": 4,
        "relabelled_without_negative": 1,
        "rows_before": 120,
        "rows_after": 119,
        "judge_model": "embedded:smollm2",
        "prompt": {"name": "fn_judge", "version": "1", "sha256": "d" * 64},
        "wall_seconds": 12.5,
        "prompt_tokens": 4096,
        "completion_tokens": 64,
    }
    stats["configs"]["bm25_hn"]["paired"] = {"dropped_rows": 6, "dropped_queries": 2}
    text = render_dataset_card(DatasetCardData(), stats)
    line = next(ln for ln in text.splitlines() if ln.startswith("False-negative repair"))
    assert "(`relabel`, judge `embedded:smollm2`)" in line
    assert "17 suspected, judged 5 false negative / 11 true negative / 1 undecided" in line
    assert "0 dropped, 4 relabelled as positives (1 without a negative" in line and "rows 120 -> 119" in line
    assert "6 rows / 2 queries dropped for pairing" in text
    assert "repair =" not in text and "paired =" not in text  # shown in their place, not as raw JSON
