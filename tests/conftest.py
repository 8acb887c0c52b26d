"""Shared fixtures: tiny real offline assets, and a Hub that fails loudly instead of hanging."""

from __future__ import annotations

import os
import sys

import pytest

# Any Hub access in tests must fail at once: offline mode raises, and an endpoint nobody listens on
# refuses connections instantly (port 9 = discard, closed on loopback).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_ENDPOINT", "http://127.0.0.1:9")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Idle OpenMP threads sleep instead of spinning (set before torch starts): batched CPU matmuls on a
# shared 2-core machine are many times faster.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hardneg.assets import EMBEDDED_DATASET, EMBEDDED_EMBEDDER, EMBEDDED_LLM, resolve_dataset  # noqa: E402


def pytest_report_header(config) -> list[str]:
    """Which environment ran the tests: the lock (or how the environment differs from it) and the
    sentence-transformers version whose mining rules the parity tests (tests/test_mining_st.py) compare with."""
    import importlib.metadata
    import importlib.util

    from hardneg.environment import lock_provenance
    from hardneg.negatives.mining import mining_rules

    # where and which, without importing it (importing sentence-transformers takes ~7 s)
    where = importlib.util.find_spec("sentence_transformers").submodule_search_locations[0]
    return [
        f"hardneg lock: {lock_provenance() or 'no lock file (not a checkout)'}",
        f"sentence-transformers {importlib.metadata.version('sentence-transformers')} from {where} "
        f"(mining rules: {mining_rules().follows})",
    ]


@pytest.fixture(autouse=True)
def _llm_servers_probed_afresh():
    """The HTTP backend probes each server once per process; in tests, once per test (a port that served an
    earlier test's fake server may be closed now)."""
    yield
    http_backend = sys.modules.get("hardneg.llm.http_backend")
    if http_backend is not None:
        http_backend._REACHED.clear()


@pytest.fixture(scope="session")
def cranfield_dir() -> str:
    """The real Cranfield BEIR folder shipped with hardneg (1400 docs, 225 queries)."""
    return resolve_dataset(EMBEDDED_DATASET)


@pytest.fixture(scope="session")
def _cranfield_corpus():
    from hardneg.corpus import load_corpus

    return load_corpus(EMBEDDED_DATASET)


@pytest.fixture
def tiny_corpus(_cranfield_corpus):
    """24 real Cranfield passages as Dataset(id, title, text); a fresh object per test."""
    return _cranfield_corpus.select(range(24))


@pytest.fixture(scope="session")
def cranfield_corpus(_cranfield_corpus):
    """All 1400 Cranfield passages (read-only: do not mutate)."""
    return _cranfield_corpus


@pytest.fixture(scope="session")
def llm_id() -> str:
    return EMBEDDED_LLM


@pytest.fixture(scope="session")
def embedder_id() -> str:
    return EMBEDDED_EMBEDDER
