"""Dataset references, resolved once at the entry point and passed down.

A recipe names a dataset as a ``DatasetSpec`` (what the user wrote: a BEIR name, ``embedded:cranfield``,
a folder, or a Hub id, pinned as ``name@revision``). ``resolve_dataset_ref`` turns it into one frozen
``DatasetRef``: the kind (a BEIR folder, a local folder laid out like a Hub repo, or a Hub repo), its
location (folder path or repo id), the revision asked for and how it was chosen, and the commit that
revision names (``hardneg.revisions.resolve_revision``, asked once). Every lower function
(``hardneg.beir.load_eval_dataset``, the result files of ``hardneg.evaluate``, MTEB files) takes the ref and
never resolves the name again. Models resolve the same way through ``hardneg.assets.resolve_embedder``,
whose ``ModelRef`` keeps the reference as written (``source``).

Errors are raised here, before any work: an unknown name or ``embedded:`` name, a revision the repo lacks,
a tag that cannot be checked offline.

A build's dataset (a hardneg dataset folder, or the Hub repo it was published to) resolves with
``resolve_build_ref`` to the same ``DatasetRef`` (kind ``folder`` or ``hub``); loaders then take
``ref.location`` and ``ref.revision`` and check the copy they loaded with
``hardneg.revisions.check_loaded(ds, ref.location, ref.revision, ref.pinned_commit)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hardneg.assets import EMBEDDED_DATASET, resolve_dataset
from hardneg.files import recover_folder
from hardneg.revisions import is_hub_id, resolve_revision

logger = logging.getLogger(__name__)

# The public BEIR sets (Thakur et al., 2021) and their MTEB copies on the Hub.
BEIR_NAMES = (
    "arguana",
    "climate-fever",
    "cqadupstack",
    "dbpedia-entity",
    "fever",
    "fiqa",
    "hotpotqa",
    "msmarco",
    "nfcorpus",
    "nq",
    "quora",
    "scidocs",
    "scifact",
    "trec-covid",
    "webis-touche2020",
)
# Hub revisions (commit shas) of the BEIR sets as MTEB pins them in its task definitions
# (github.com/embeddings-benchmark/mteb, mteb/tasks/retrieval/eng/*.py at commit a905523d, 2026-08-22).
# Resolved with ``pin=True`` (evaluation), a Hub set named without a revision is read at this revision.
KNOWN_REVISIONS = {
    "mteb/arguana": "c22ab2a51041ffd869aaddef7af8d8215647e41a",
    "mteb/climate-fever": "47f2ac6acb640fc46020b02a5b59fdda04d39380",
    "mteb/dbpedia": "c0f706b76e590d620bd6618b3ca8efdd34e2d659",
    "mteb/fever": "bea83ef9e8fb933d90a2f1d5515737465d613e12",
    "mteb/fiqa": "27a168819829fe9bcd655c2df245fb19452e8e06",
    "mteb/hotpotqa": "ab518f4d6fcca38d87c25209f94beba119d02014",
    "mteb/msmarco": "c5a29a104738b98a9e76336939199e264163d4a0",
    "mteb/nfcorpus": "ec0fa4fe99da2ff19ca1214b7966684033a58814",
    "mteb/nq": "b774495ed302d8c44a3a7ea25c90dbce03968f31",
    "mteb/quora": "e4e08e0b7dbe3c8700f0daef558ff32256715259",
    "mteb/scidocs": "f8c2fcf00f625baaa80f62ec5bd9e1fff3b8ae88",
    "mteb/scifact": "d56462d0e63a25450459c4f213e49ffdb866f7f9",
    "mteb/touche2020": "a34f9a33db75fa0cbb21bb5cfc3dae8dc8bec93f",
    "mteb/trec-covid": "bb9466bac8153a0349341eb1b22e06409e78ef4e",
}

# beir_folder / repo_folder / hub: an evaluation set (``resolve_dataset_ref``); folder / hub: a build's
# dataset (``resolve_build_ref``)
DatasetKind = Literal["beir_folder", "repo_folder", "folder", "hub"]
# how the revision was chosen: the user's pin, MTEB's pin, none (the default branch), or a local folder
RevisionHow = Literal["given", "pinned", "unpinned", "local"]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset reference as written: ``source`` (name, folder or Hub id), optional ``revision``, judgement
    ``split``. Resolve it with ``resolve_dataset_ref``."""

    source: str
    revision: str | None = None
    split: str = "test"

    @classmethod
    def parse(cls, spec: str | dict, split: str = "test") -> DatasetSpec:
        """``"mteb/scifact@abc123"`` or ``{"name": ..., "revision": ..., "split": ...}``."""
        if isinstance(spec, dict):
            unknown = set(spec) - {"name", "revision", "split"}
            if unknown or "name" not in spec:
                raise ValueError(f"dataset entry {spec} needs 'name' and may have 'revision', 'split' only")
            return cls(str(spec["name"]), spec.get("revision"), spec.get("split") or split)
        source, _, revision = str(spec).partition("@")
        if not source:
            raise ValueError(f"empty dataset name in '{spec}'; fix: use a BEIR name, folder or Hub id")
        return cls(source, revision or None, split)

    @property
    def name(self) -> str:
        """A short readable name: ``mteb/scifact`` -> ``scifact``, a folder -> its name."""
        if self.source.startswith("embedded:"):
            return self.source.split(":", 1)[1]
        return Path(self.source.rstrip("/")).name


@dataclass(frozen=True)
class DatasetRef:
    """A dataset reference resolved once: ``spec`` as written, ``kind``, ``location`` (a folder path or a Hub
    repo id), the ``revision`` read (the user's or MTEB's pin; None: the default branch or a folder), ``how``
    it was chosen, and ``commit``, the Hub commit that revision names (None for a folder, or when the Hub
    could not be asked for an unpinned set)."""

    spec: DatasetSpec
    kind: DatasetKind
    location: str
    revision: str | None = None
    how: RevisionHow = "local"
    commit: str | None = None

    @property
    def source(self) -> str:
        return self.spec.source

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def split(self) -> str:
        return self.spec.split

    @property
    def hub_id(self) -> str | None:
        """The Hub repo the set is read from (None for a local folder)."""
        return self.location if self.kind == "hub" else None

    @property
    def pinned_commit(self) -> str | None:
        """The commit the loaded copy must be (a given or MTEB pin), else None."""
        return self.commit if self.how in ("given", "pinned") else None

    def request(self) -> dict[str, Any]:
        """The revision asked for, as result files record it (``dataset_request``)."""
        return {"revision": self.revision, "how": self.how}

    def record(self) -> dict[str, Any]:
        """The commit read, as result files record it (``dataset_revision``)."""
        return {"revision": self.commit, "how": self.how}


def _is_beir_folder(path: Path) -> bool:
    return path.is_dir() and (path / "corpus.jsonl").is_file() and any((path / "qrels").glob("*.tsv"))


def _hub_location(spec: DatasetSpec, source: str) -> str:
    """The Hub repo of a name that is no local path: a Hub id as is, a BEIR name as its MTEB copy."""
    if "/" in source:
        return source
    if source.lower() not in BEIR_NAMES:
        raise ValueError(
            f"unknown dataset '{spec.source}'; fix: use a BEIR name ({', '.join(BEIR_NAMES)}), "
            f"{EMBEDDED_DATASET}, a local BEIR folder or a Hub id such as mteb/scifact"
        )
    return f"mteb/{source.lower()}"


def default_branch_commit(repo_id: str, source: str) -> str | None:
    """The commit of the default branch of a Hub dataset now (None, with a warning, when the Hub cannot
    be asked: offline, gated, unknown)."""
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(repo_id).sha  # the repo's default branch, whatever its name
    except Exception as err:  # offline, gated, unknown: record that it is unknown, never fail the run
        logger.warning("%s: could not resolve the Hub revision used (%s)", source, type(err).__name__)
        return None


def resolve_dataset_ref(
    spec: str | dict | DatasetSpec, split: str = "test", *, pin: bool = False
) -> DatasetRef:
    """Resolve a dataset reference once (see the module docstring).

    ``pin`` (evaluation): a Hub set named without a revision is read at MTEB's pin (``KNOWN_REVISIONS``,
    how ``pinned``), and an unpinned one records the default branch's commit now; without it an unpinned
    set records no commit."""
    spec = spec if isinstance(spec, DatasetSpec) else DatasetSpec.parse(spec, split)
    source = resolve_dataset(spec.source)  # embedded:cranfield -> the shipped folder
    path = Path(source)
    if _is_beir_folder(path):
        return DatasetRef(spec, "beir_folder", source)
    if path.exists():
        return DatasetRef(spec, "repo_folder", source)
    repo = _hub_location(spec, source)
    if spec.revision:
        return DatasetRef(spec, "hub", repo, spec.revision, "given", resolve_revision(repo, spec.revision))
    if pin and repo in KNOWN_REVISIONS:
        revision = KNOWN_REVISIONS[repo]
        return DatasetRef(spec, "hub", repo, revision, "pinned", resolve_revision(repo, revision))
    return DatasetRef(
        spec, "hub", repo, None, "unpinned", default_branch_commit(repo, spec.source) if pin else None
    )


def resolve_build_ref(source: str, revision: str | None = None) -> DatasetRef:
    """A build's dataset resolved once: its local folder (a save killed mid-swap is put back first), else its
    Hub repo with the commit ``revision`` names (how ``given``; ``unpinned`` without a revision). Anything
    else is one clear error."""
    spec = DatasetSpec(source, revision)
    recover_folder(source)  # a save killed mid-swap: the previous folder back before it is read
    if Path(source).is_dir():
        return DatasetRef(spec, "folder", source)
    if not is_hub_id(source):
        raise ValueError(
            f"'{source}' is neither a dataset folder nor a Hub id (org/name); fix: e.g. --dataset runs/demo/dataset"
        )
    return DatasetRef(
        spec, "hub", source, revision, "given" if revision else "unpinned", resolve_revision(source, revision)
    )
