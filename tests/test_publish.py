"""Upload path at the huggingface_hub boundary: the exact create_repo / create_commit / create_tag calls.

``RecordingHub`` is an ``HfApi`` whose network methods are replaced by an in-memory repo that records each
call; everything above it (validation, card, operations, refusal rules, error messages) is the real code.
Offline, no-network and rejected-token cases use the real ``HfApi`` against loopback endpoints.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import threading
import uuid
from pathlib import Path

import httpx2  # huggingface_hub's HTTP client; its errors carry an httpx2.Response
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, DatasetCard, HfApi, constants
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError
from huggingface_hub.hf_api import CommitInfo, GitRefInfo, GitRefs
from test_hub_fixtures import make_build_stats, make_configs

from hardneg.cards import ModelCardData
from hardneg.dataset_folder import save_dataset_folder
from hardneg.publish import publish_dataset, publish_model

TOKEN = "hf_test_secret_token_0123456789"


class RecordingHub(HfApi):
    """In-memory Hub: repos with files, a main head and tags; every call is appended to ``calls``."""

    def __init__(self, fail: str | None = None):
        super().__init__(endpoint="http://127.0.0.1:9")
        self.calls: list[tuple] = []
        self.repos: dict[str, dict] = {}
        self.fail = fail
        self._downloads = Path(os.environ.get("PYTEST_TMP", "/tmp")) / f"recording-hub-{uuid.uuid4().hex}"

    def _repo(self, repo_id):
        if repo_id not in self.repos:
            url = f"{self.endpoint}/api/datasets/{repo_id}/refs"
            raise RepositoryNotFoundError(
                f"404 {repo_id}", response=httpx2.Response(404, request=httpx2.Request("GET", url))
            )
        return self.repos[repo_id]

    def whoami(self, token=None, **kwargs):
        self.calls.append(("whoami", token == TOKEN))
        return {"name": "tester"}

    def list_repo_refs(self, repo_id, *, repo_type=None, token=None, **kwargs):
        self.calls.append(("list_repo_refs", repo_id, repo_type))
        repo = self._repo(repo_id)
        return GitRefs(
            branches=[GitRefInfo("main", "refs/heads/main", repo["head"])],
            converts=[],
            tags=[GitRefInfo(t, f"refs/tags/{t}", oid) for t, oid in repo["tags"].items()],
        )

    def list_repo_files(self, repo_id, *, revision=None, repo_type=None, token=None):
        self.calls.append(("list_repo_files", repo_id, revision))
        return sorted(self._repo(repo_id)["commits"][revision])

    def hf_hub_download(self, repo_id, filename, *, repo_type=None, revision=None, token=None, **kwargs):
        self.calls.append(("hf_hub_download", repo_id, filename, revision))
        files = self._repo(repo_id)["commits"][revision]
        if filename not in files:
            raise EntryNotFoundError(filename)
        path = self._downloads / revision / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[filename])
        return str(path)

    def create_repo(self, repo_id, *, token=None, private=None, repo_type=None, exist_ok=False, **kwargs):
        self.calls.append(("create_repo", repo_id, repo_type, private, exist_ok))
        self.repos.setdefault(repo_id, {"head": None, "tags": {}, "commits": {None: {}}, "private": private})

    def create_commit(
        self, repo_id, operations, *, commit_message, repo_type=None, token=None, parent_commit=None, **kwargs
    ):
        operations = list(operations)
        self.calls.append(("create_commit", repo_id, repo_type, parent_commit, commit_message, operations))
        if self.fail == "commit":
            raise OSError("connection reset by peer")
        repo = self._repo(repo_id)
        assert parent_commit == repo["head"], "parent_commit must be main's head"
        files = dict(repo["commits"][repo["head"]])
        for op in operations:
            if isinstance(op, CommitOperationDelete):
                files.pop(op.path_in_repo)
            else:
                source = op.path_or_fileobj
                files[op.path_in_repo] = source if isinstance(source, bytes) else Path(source).read_bytes()
        oid = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        repo["commits"][oid] = files
        repo["head"] = oid
        return CommitInfo(
            commit_url=f"https://huggingface.co/{repo_id}/commit/{oid}",
            commit_message=commit_message,
            commit_description="",
            oid=oid,
        )

    def create_tag(
        self, repo_id, *, tag, tag_message=None, revision=None, token=None, repo_type=None, exist_ok=False
    ):
        self.calls.append(("create_tag", repo_id, tag, revision, repo_type))
        if self.fail == "tag":
            raise OSError("gateway timeout")
        repo = self._repo(repo_id)
        assert tag not in repo["tags"] and not exist_ok
        repo["tags"][tag] = revision

    def files_at(self, repo_id, tag):
        repo = self.repos[repo_id]
        return repo["commits"][repo["tags"][tag]]

    def names(self):
        return [c[0] for c in self.calls]


@pytest.fixture(scope="module")
def configs(cranfield_dir):
    return make_configs(cranfield_dir)


@pytest.fixture
def folder(tmp_path, configs):
    return save_dataset_folder(tmp_path / "dataset", configs, make_build_stats())


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTEST_TMP", str(tmp_path))
    return RecordingHub()


def test_dry_run_contacts_nothing(folder, hub):
    result = publish_dataset(folder, "my-org/cranfield-hn", "1.0.0", api=hub, token=TOKEN)
    assert hub.calls == []
    assert result.dry_run and result.tag == "v1.0.0"
    assert "add llm_hn/train-00000-of-00001.parquet" in "\n".join(result.operations)
    assert 'load_dataset("my-org/cranfield-hn", "llm_hn", revision="v1.0.0", split="train")' in result.card
    assert result.summary().startswith("DRY RUN")


def test_first_release_is_one_commit_then_a_tag(folder, hub):
    result = publish_dataset(
        folder,
        "my-org/cranfield-hn",
        "1.0.0",
        api=hub,
        token=TOKEN,
        confirm=True,
        private=True,
        notes="First release.",
    )
    assert hub.names() == ["whoami", "list_repo_refs", "create_repo", "create_commit", "create_tag"]
    assert hub.calls[0] == ("whoami", True)
    assert hub.calls[2] == ("create_repo", "my-org/cranfield-hn", "dataset", True, True)
    _, repo_id, repo_type, parent, message, ops = hub.calls[3]
    assert (repo_id, repo_type, parent) == ("my-org/cranfield-hn", "dataset", None)
    assert message.startswith("Release v1.0.0: ")
    assert all(isinstance(op, CommitOperationAdd) for op in ops)
    assert sorted(op.path_in_repo for op in ops) == [
        "README.md",
        "bm25_hn/train-00000-of-00001.parquet",
        "build_stats.json",
        "card_data.json",
        "croissant.json",  # Croissant with the RAI fields, naming this release (hardneg[croissant])
        "llm_hn/train-00000-of-00001.parquet",
        "queries/train-00000-of-00001.parquet",
        "recipes/build.yaml",  # the build's effective recipe: the card's rebuild command reads it
    ]
    assert hub.calls[4] == ("create_tag", "my-org/cranfield-hn", "v1.0.0", result.commit_oid, "dataset")
    released = hub.files_at("my-org/cranfield-hn", "v1.0.0")
    assert released["README.md"].decode() == result.card
    assert (
        released["llm_hn/train-00000-of-00001.parquet"]
        == (folder / "llm_hn/train-00000-of-00001.parquet").read_bytes()
    )
    card = DatasetCard(result.card)
    assert [c["config_name"] for c in card.data.configs] == ["bm25_hn", "llm_hn", "queries"]
    assert "- **v1.0.0** (" in result.card and "First release." in result.card
    assert not result.dry_run and result.commit_url.endswith(result.commit_oid)


def test_second_release_keeps_history_and_removes_stale_files(folder, hub, configs, tmp_path):
    publish_dataset(
        folder, "my-org/cranfield-hn", "1.0.0", api=hub, token=TOKEN, confirm=True, notes="First."
    )
    v1_files = dict(hub.files_at("my-org/cranfield-hn", "v1.0.0"))
    smaller = {k: v.select(range(6)) for k, v in configs.items() if k != "bm25_hn"}
    stats = make_build_stats(6)
    del stats["configs"]["bm25_hn"]
    folder2 = save_dataset_folder(tmp_path / "v2", smaller, stats)
    result = publish_dataset(
        folder2, "my-org/cranfield-hn", "1.1.0", api=hub, token=TOKEN, confirm=True, notes="Drops bm25_hn."
    )
    commit = [c for c in hub.calls if c[0] == "create_commit"][-1]
    assert commit[3] == hub.repos["my-org/cranfield-hn"]["tags"]["v1.0.0"]  # parent_commit = previous head
    deletes = sorted(op.path_in_repo for op in commit[5] if isinstance(op, CommitOperationDelete))
    assert deletes == ["bm25_hn/train-00000-of-00001.parquet"]
    assert hub.files_at("my-org/cranfield-hn", "v1.0.0") == v1_files  # the earlier release is untouched
    changelog = result.card[result.card.index("## Changelog") :]
    assert changelog.index("**v1.1.0**") < changelog.index("**v1.0.0**")
    assert "Drops bm25_hn." in changelog and "First." in changelog


def test_existing_version_is_refused(folder, hub):
    publish_dataset(folder, "my-org/cranfield-hn", "1.0.0", api=hub, token=TOKEN, confirm=True)
    calls_before = len(hub.calls)
    with pytest.raises(ValueError, match=r"already has tag v1\.0\.0.*fix: pass a higher --version"):
        publish_dataset(folder, "my-org/cranfield-hn", "v1.0.0", api=hub, token=TOKEN, confirm=True)
    assert (
        "create_commit" not in hub.names()[calls_before:] and "create_tag" not in hub.names()[calls_before:]
    )


def test_different_schema_is_refused(folder, hub, configs, tmp_path):
    publish_dataset(folder, "my-org/cranfield-hn", "1.0.0", api=hub, token=TOKEN, confirm=True)
    changed = dict(configs)
    changed["llm_hn"] = configs["llm_hn"].remove_columns(["prompt_tokens", "completion_tokens"])
    folder2 = save_dataset_folder(tmp_path / "v2", changed, make_build_stats())
    head = hub.repos["my-org/cranfield-hn"]["head"]
    with pytest.raises(ValueError, match="already holds config 'llm_hn' with a different schema"):
        publish_dataset(folder2, "my-org/cranfield-hn", "2.0.0", api=hub, token=TOKEN, confirm=True)
    assert hub.repos["my-org/cranfield-hn"]["head"] == head and list(
        hub.repos["my-org/cranfield-hn"]["tags"]
    ) == ["v1.0.0"]
    publish_dataset(
        folder2, "my-org/cranfield-hn", "2.0.0", api=hub, token=TOKEN, confirm=True, allow_schema_change=True
    )
    assert list(hub.repos["my-org/cranfield-hn"]["tags"]) == ["v1.0.0", "v2.0.0"]


def test_failure_before_the_tag_leaves_the_previous_version(folder, hub):
    publish_dataset(folder, "my-org/cranfield-hn", "1.0.0", api=hub, token=TOKEN, confirm=True)
    before = dict(hub.repos["my-org/cranfield-hn"]["tags"])
    hub.fail = "commit"
    with pytest.raises(RuntimeError, match="failed before tagging.*earlier releases are untouched"):
        publish_dataset(folder, "my-org/cranfield-hn", "1.0.1", api=hub, token=TOKEN, confirm=True)
    assert hub.repos["my-org/cranfield-hn"]["tags"] == before
    hub.fail = "tag"
    with pytest.raises(RuntimeError, match=r"tag v1\.0\.1 could not be created.*hf repo tag create") as err:
        publish_dataset(folder, "my-org/cranfield-hn", "1.0.1", api=hub, token=TOKEN, confirm=True)
    assert TOKEN not in str(err.value)
    assert hub.repos["my-org/cranfield-hn"]["tags"] == before


def test_empty_config_publishes_nothing(folder, hub, configs):
    # a config whose parquet was replaced by zero rows (same schema) must not reach the Hub
    configs["llm_hn"].select([]).to_parquet(str(folder / "llm_hn" / "train-00000-of-00001.parquet"))
    with pytest.raises(ValueError, match="llm_hn"):
        publish_dataset(folder, "my-org/cranfield-hn", "1.0.0", api=hub, token=TOKEN, confirm=True)
    assert hub.calls == []


@pytest.mark.parametrize(
    ("repo_id", "version", "message"),
    [
        ("my-org/cranfield-hn", "1.0", "not a semantic version"),
        ("cranfield-hn", "1.0.0", "is not ORG/NAME"),
        ("my-org/cranfield-hn", "latest", "not a semantic version"),
    ],
)
def test_bad_repo_id_or_version(folder, hub, repo_id, version, message):
    with pytest.raises(ValueError, match=message):
        publish_dataset(folder, repo_id, version, api=hub, token=TOKEN, confirm=True)
    assert hub.calls == []


@pytest.mark.parametrize(
    ("text", "hub_id"),
    [
        ("my-org/cranfield-hn", True),
        ("BeIR/scifact.v2", True),
        ("cranfield-hn", False),
        ("a/b/c", False),
        ("-org/name", False),
        ("embedded:cranfield", False),
        ("http://host/a", False),
        ("", False),
    ],
)
def test_one_hub_id_rule_for_cards_and_publishing(text, hub_id, tmp_path, monkeypatch):
    """The card's source_datasets, the model card's dataset note and the repo id check share one rule."""
    from hardneg.cards import is_hub_id as cards_rule
    from hardneg.publish import _check_repo_id
    from hardneg.revisions import is_hub_id

    monkeypatch.chdir(tmp_path)
    assert is_hub_id(text) is hub_id and cards_rule is is_hub_id
    if hub_id:
        _check_repo_id(text)
        (tmp_path / text).mkdir(parents=True)  # a local folder of that name is not a Hub id
        assert not is_hub_id(text)
    else:
        with pytest.raises(ValueError, match="is not ORG/NAME"):
            _check_repo_id(text)


def test_no_token(folder, hub, monkeypatch, tmp_path):
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-stored-tokens"))
    assert huggingface_hub.get_token() is None
    with pytest.raises(
        RuntimeError, match="no Hugging Face token found; fix: run `hf auth login` or set HF_TOKEN"
    ):
        publish_dataset(folder, "my-org/cranfield-hn", "1.0.0", api=hub, confirm=True)
    assert hub.calls == []


def test_token_from_hf_token_env_is_used_and_never_shown(folder, hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    result = publish_dataset(folder, "my-org/cranfield-hn", "1.0.0", api=hub, confirm=True)
    assert hub.calls[0] == ("whoami", True)
    released = hub.files_at("my-org/cranfield-hn", "v1.0.0")
    shown = result.summary() + result.card + "".join(capsys.readouterr())
    assert TOKEN not in shown and all(TOKEN.encode() not in data for data in released.values())


def test_offline_mode(folder):
    # conftest sets HF_HUB_OFFLINE=1: the real HfApi refuses before any request
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE is set"):
        publish_dataset(folder, "my-org/cranfield-hn", "1.0.0", token=TOKEN, confirm=True)


def test_no_network(folder, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    api = HfApi(endpoint="http://127.0.0.1:9")  # nobody listens: connection refused at once
    with pytest.raises(
        RuntimeError, match=r"cannot reach the Hub at http://127\.0\.0\.1:9.*nothing was uploaded"
    ) as err:
        publish_dataset(folder, "my-org/cranfield-hn", "1.0.0", api=api, token=TOKEN, confirm=True)
    assert TOKEN not in str(err.value)


class _Reject(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server API)
        self.requests.append(self.path)
        body = json.dumps({"error": "Invalid credentials in Authorization header"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_rejected_token_over_http(folder, monkeypatch):
    """A real HTTP exchange on loopback: the Hub answers 401 to the token check; nothing else is sent."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Reject)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        api = HfApi(endpoint=f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(RuntimeError, match=r"token was rejected \(401\)") as err:
            publish_dataset(folder, "my-org/cranfield-hn", "1.0.0", api=api, token=TOKEN, confirm=True)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert TOKEN not in str(err.value)
    assert _Reject.requests and all(p.startswith("/api/whoami") for p in _Reject.requests)


@pytest.fixture
def model_folder(tmp_path):
    """The real embedded MiniLM sentence-transformers folder, linked file by file, plus training's card data."""
    from hardneg.assets import resolve_embedder

    source = Path(resolve_embedder("embedded:minilm").name_or_path)
    target = tmp_path / "model"
    for path in source.rglob("*"):
        if path.is_file() and path.name != "README.md":
            (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (target / path.relative_to(source)).symlink_to(path)
    (target / "checkpoints" / "checkpoint-10").mkdir(parents=True)
    (target / "checkpoints" / "checkpoint-10" / "optimizer.pt").write_bytes(b"x")
    ModelCardData(
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        dataset_id="my-org/cranfield-hn",
        dataset_config="llm_hn",
        dataset_revision="v1.0.0",
        train_samples=12,
        train_seconds=3.5,
    ).save(target / "card_data.json")
    return target


def test_publish_model_uploads_the_card_training_rendered(model_folder, hub, monkeypatch):
    import hardneg.publish

    data = dataclasses.replace(ModelCardData.load(model_folder / "card_data.json"), repo_id="my-org/m")
    with pytest.raises(ValueError, match="rendered_card needs the card_data it was rendered from"):
        publish_model(model_folder, "my-org/other", "1.0.0", card_data=data, rendered_card="# card\n")
    monkeypatch.setattr(hardneg.publish, "render_model_card", lambda *a, **k: pytest.fail("rendered again"))
    card = "# card\n"
    publish_model(
        model_folder,
        "my-org/m",
        "1.0.0",
        card_data=data,
        rendered_card=card,
        api=hub,
        token=TOKEN,
        confirm=True,
    )
    files = hub.files_at("my-org/m", "v1.0.0")
    assert files["README.md"] == b"# card\n" and json.loads(files["card_data.json"])["repo_id"] == "my-org/m"


def test_publish_model(model_folder, hub):
    dry = publish_model(model_folder, "my-org/minilm-llm-hn", "0.1.0", api=hub, token=TOKEN)
    assert hub.calls == [] and dry.dry_run
    result = publish_model(model_folder, "my-org/minilm-llm-hn", "0.1.0", api=hub, token=TOKEN, confirm=True)
    assert hub.names() == ["whoami", "list_repo_refs", "create_repo", "create_commit", "create_tag"]
    ops = hub.calls[3][5]
    paths = sorted(op.path_in_repo for op in ops)
    assert "model.safetensors" in paths and "1_Pooling/config.json" in paths and "README.md" in paths
    assert not any("checkpoint" in p for p in paths)
    assert hub.calls[3][4] == "Release v0.1.0: trained on my-org/cranfield-hn (llm_hn@v1.0.0)"
    assert hub.calls[4][1:3] == ("my-org/minilm-llm-hn", "v0.1.0")
    readme = hub.files_at("my-org/minilm-llm-hn", "v0.1.0")["README.md"].decode()
    assert readme == result.card
    assert 'load_dataset("my-org/cranfield-hn", "llm_hn", revision="v1.0.0")' in readme
    assert 'SentenceTransformer("my-org/minilm-llm-hn")' in readme
    with pytest.raises(ValueError, match="already has tag v0.1.0"):
        publish_model(model_folder, "my-org/minilm-llm-hn", "0.1.0", api=hub, token=TOKEN, confirm=True)


def test_publish_model_bad_folders(tmp_path, hub):
    with pytest.raises(FileNotFoundError, match="not found"):
        publish_model(tmp_path / "missing", "my-org/m", "1.0.0", api=hub)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "modules.json").write_text("[]")
    with pytest.raises(ValueError, match="holds no model weights"):
        publish_model(tmp_path / "m", "my-org/m", "1.0.0", api=hub)
    (tmp_path / "m" / "model.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="card_data.json"):
        publish_model(tmp_path / "m", "my-org/m", "1.0.0", api=hub)
    assert hub.calls == []


@pytest.mark.integration
@pytest.mark.skipif(
    not os.environ.get("HF_TOKEN") or os.environ.get("HARDNEG_REAL_HUB") != "1",
    reason="opt-in: set HF_TOKEN (write) and HARDNEG_REAL_HUB=1 to publish to the real Hub",
)
def test_real_hub_round_trip(folder, monkeypatch, tmp_path):
    """Publishes a private throw-away dataset to huggingface.co, reads it back by tag, then deletes it."""
    import socket

    from datasets import load_dataset

    try:
        socket.create_connection(("huggingface.co", 443), timeout=5).close()
    except OSError:
        pytest.skip("no network route to huggingface.co")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    api = HfApi(endpoint="https://huggingface.co", token=os.environ["HF_TOKEN"])
    user = api.whoami()["name"]
    repo_id = f"{user}/hardneg-test-{uuid.uuid4().hex[:8]}"
    try:
        publish_dataset(folder, repo_id, "0.0.1", api=api, confirm=True, private=True)
        assert [t.name for t in api.list_repo_refs(repo_id, repo_type="dataset").tags] == ["v0.0.1"]
        with pytest.raises(ValueError, match="already has tag"):
            publish_dataset(folder, repo_id, "0.0.1", api=api, confirm=True)
        monkeypatch.setenv("HF_ENDPOINT", "https://huggingface.co")
        monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")
        monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
        import datasets.config

        monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False, raising=False)
        monkeypatch.setattr(datasets.config, "HF_ENDPOINT", "https://huggingface.co", raising=False)
        rows = load_dataset(
            repo_id, "llm_hn", revision="v0.0.1", split="train", cache_dir=str(tmp_path / "c")
        )
        local = load_dataset(str(folder), "llm_hn", split="train", cache_dir=str(tmp_path / "c2"))
        assert rows.to_list() == local.to_list()
    finally:
        api.delete_repo(repo_id, repo_type="dataset", missing_ok=True)


def test_recording_hub_is_an_hfapi():
    """The boundary double must keep HfApi's signatures: a renamed keyword would hide a real bug."""
    import inspect

    for name in ("create_commit", "create_tag", "create_repo", "list_repo_refs", "hf_hub_download"):
        real = set(inspect.signature(getattr(HfApi, name)).parameters)
        ours = set(inspect.signature(getattr(RecordingHub, name)).parameters) - {"kwargs"}
        assert ours <= real, (name, ours - real)


def test_card_updates_for_a_release(folder, hub):
    result = publish_dataset(
        folder,
        "my-org/cranfield-hn",
        "1.0.0",
        api=hub,
        token=TOKEN,
        confirm=True,
        card_updates={"license": "cc-by-4.0", "pretty_name": "Cranfield HN", "summary": None},
    )
    card = DatasetCard(result.card)
    assert card.data.license == "cc-by-4.0" and result.card.count("# Cranfield HN") == 1
    stored = json.loads(hub.files_at("my-org/cranfield-hn", "v1.0.0")["card_data.json"])
    assert stored["license"] == "cc-by-4.0" and stored["version"] == "1.0.0"
    with pytest.raises(ValueError, match="unknown card field"):
        publish_dataset(folder, "my-org/cranfield-hn", "1.0.1", api=hub, card_updates={"licence": "mit"})


def test_model_trained_on_a_local_folder_names_the_release(model_folder, hub, tmp_path):
    data = ModelCardData.load(model_folder / "card_data.json")
    data.dataset_id, data.dataset_revision = str(tmp_path), None
    data.save(model_folder / "card_data.json")
    dry = publish_model(model_folder, "my-org/m", "1.0.0", api=hub)
    assert any("local dataset" in n and "--dataset_id ORG/NAME" in n for n in dry.notes)
    result = publish_model(
        model_folder,
        "my-org/m",
        "1.0.0",
        api=hub,
        token=TOKEN,
        confirm=True,
        card_updates={"dataset_id": "my-org/cranfield-hn", "dataset_revision": "v1.0.0"},
    )
    assert not any("local dataset" in n for n in result.notes)
    assert 'load_dataset("my-org/cranfield-hn", "llm_hn", revision="v1.0.0")' in result.card
    assert hub.calls[3][4] == "Release v1.0.0: trained on my-org/cranfield-hn (llm_hn@v1.0.0)"
    stored = json.loads(hub.files_at("my-org/m", "v1.0.0")["card_data.json"])
    assert stored["dataset_id"] == "my-org/cranfield-hn" and stored["repo_id"] == "my-org/m"
