"""The generation engine shared by query and negative writing: cache, output hygiene, retries, provenance.

``run_generation`` takes items (an id + the placeholder values of a prompt template), renders the
prompts, and returns one accepted output per item (or None when every attempt was rejected):

- Cache: every attempt's raw completion is stored in ``<cache_dir>/generation.sqlite`` (one SQLite
  transaction per local batch / eight rounds of HTTP requests, so SIGKILL at any point loses at most the
  work in flight), keyed by
  SHA-256 of (generator cache settings, prompt hash, rendered input, attempt seed, sampling). A rerun
  of the same command recomputes nothing already cached and yields the same rows.
- Hygiene (``clean_output`` + ``check_output``): strip prompt echo, labels ("Query:"), quotes and
  whitespace; reject empty, over-long, passage-copying (word n-gram overlap) and, for negatives,
  positive-copying or query-echoing outputs. Rejected items are retried with a new seed (sampling at
  ``retry_temperature``) up to ``max_retries`` times.
- Every reject is counted by reason; the raw outputs go to ``<cache_dir>/rejects/<method>.jsonl``, each
  text cut to ``REJECT_TEXT_CHARS`` and the file to ``REJECT_LOG_BYTES`` (rows past it are counted in the
  stats as ``rejects_not_logged``).
- Faults are not results: a reply the backend marks as a fault (``Generation.fault``: an HTTP server that
  answered 200 with no content) is never cached and is asked again with a new seed; an item whose every
  attempt was a fault stops the stage with one line that names the fault and how many requests had it
  (``GenerationFault``), so no stage is saved as finished with work missing because of a fault, and a
  rerun after the server is fixed asks only for what is missing.
- Provenance per row and cost totals per call: tokens, ``wall_seconds`` (the generation wall time of
  every completion used, including ones cached by an earlier interrupted run, so a resumed build
  reports the full cost) and items/s.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from datasets import Dataset, concatenate_datasets

from hardneg.corpus import check_unique_ids
from hardneg.distributed import merge_stats
from hardneg.errors import first_line
from hardneg.llm import Generation, Generator, rate_bar, show_tokens
from hardneg.llm.bounding import fit_prompts
from hardneg.methods import arrow_table
from hardneg.prompts import PromptTemplate
from hardneg.text import blank_rows, is_blank, ngram_jaccard, ngram_overlap, words

# Items generated per block (``generate_in_blocks``): the Python objects of one block (prompts, cache rows,
# results: ~4.6 KB per item) are all a build holds at once, whatever the corpus size; its rows go to an Arrow
# table at once. 50k queries in one block peaked 229 MB above the corpus, in blocks of 10k not above it, in the
# same time (/tmp measurement, 2026-12-06; see benchmarks/README.md).
GENERATION_BLOCK = 10_000

_LABEL_RE = re.compile(
    r"^\s*(?:[*#>\-]+\s*)?(?:(?:search\s+)?query|question|answer|output|response|"
    r"(?:hard\s+)?negative(?:\s+passage)?|passage(?:\s+that\s+does\s+not\s+answer\s+it)?)\s*\d*\s*[:：]\s*(?:\*+\s*)?",
    re.IGNORECASE,
)
_QUOTES = "\"'`“”‘’«»"
REJECT_TEXT_CHARS = 4000  # a rejected output is logged up to this many characters (text and raw each)
REJECT_LOG_BYTES = 32 * 2**20  # the rejects file of one stage holds at most this many bytes
LOW_DISK_BYTES = 4 * 2**20  # an sqlite write error with less free space than this is a full disk


class GenerationFault(RuntimeError):
    """Items got no answer because the generator faulted (not because the model's answers were rejected)."""


@dataclass
class HygieneConfig:
    """Rules that decide whether a generated text is kept."""

    min_words: int = field(default=2, metadata={"help": "Fewer words than this -> reject 'empty'."})
    max_words: int = field(default=64, metadata={"help": "More words than this -> reject 'too_long'."})
    ngram: int = field(default=4, metadata={"help": "Word n-gram size of the copy check."})
    max_copy_overlap: float = field(
        default=0.8,
        metadata={
            "help": "Share of the output's word n-grams found in its source passage -> 'copies_passage'."
        },
    )
    max_positive_similarity: float = field(
        default=0.8,
        metadata={"help": "Negatives: word-trigram Jaccard with the positive above this -> 'near_positive'."},
    )
    min_distinct_trigrams: float = field(
        default=0.6,
        metadata={"help": "Share of distinct word trigrams below this -> 'repetitive' (looping output)."},
    )
    reject_truncated: bool = field(
        default=True, metadata={"help": "Reject outputs cut off by the token budget ('too_long')."}
    )


def clean_output(raw: str, prompt_text: str = "") -> str:
    """Turn a raw completion into the candidate text.

    Strips an echoed prompt, leading labels ("Query:", "**Negative passage:**"), surrounding quotes and
    whitespace, and keeps the first non-empty line (templates ask for one line).
    """
    text = raw
    if prompt_text and text.startswith(prompt_text):
        text = text[len(prompt_text) :]
    last_line = prompt_text.rstrip().rsplit("\n", 1)[-1].strip() if prompt_text else ""
    if last_line and text.lstrip().startswith(last_line):
        text = text.lstrip()[len(last_line) :]
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    for _ in range(3):
        stripped = _LABEL_RE.sub("", line, count=1).strip().strip(_QUOTES).strip()
        if stripped == line:
            break
        line = stripped
    return " ".join(line.split())


def check_output(
    text: str,
    *,
    source: str,
    positive: str | None,
    query: str | None,
    rules: HygieneConfig,
    finish_reason: str = "stop",
) -> str | None:
    """The reject reason for a cleaned output, or None when it is kept.

    ``source`` is the passage the output must not copy (the positive for negatives, the passage for
    queries); ``positive``/``query`` enable the negative-specific checks.
    """
    w = words(text)
    if len(w) < rules.min_words:
        return "empty"
    if len(w) > rules.max_words or (rules.reject_truncated and finish_reason == "length"):
        return "too_long"
    grams = [tuple(w[i : i + 3]) for i in range(len(w) - 2)]
    if len(grams) >= 6 and len(set(grams)) / len(grams) < rules.min_distinct_trigrams:
        return "repetitive"
    if positive is not None:
        if (
            " ".join(w) == " ".join(words(positive))
            or ngram_jaccard(text, positive) > rules.max_positive_similarity
        ):
            return "near_positive"
        if query is not None and " ".join(w) == " ".join(words(query)):
            return "echoes_query"
    if len(w) >= 2 * rules.ngram and ngram_overlap(text, source, rules.ngram) >= rules.max_copy_overlap:
        return "copies_passage"
    return None


class CacheError(OSError):
    """The generation cache cannot be read or written (disk full, I/O error, a damaged file): one line."""


@contextlib.contextmanager
def _cache_errors(path: Path) -> Iterator[None]:
    """sqlite's errors as one line that names the cache file and the fix (disk full first of all)."""
    try:
        yield
    except sqlite3.Error as err:
        what = first_line(err)
        if "full" in what.lower() or shutil.disk_usage(path.parent).free < LOW_DISK_BYTES:
            what = f"{what}; the drive holding it has {shutil.disk_usage(path.parent).free} bytes free"
            fix = "free disk space on that drive (or move the run folder) and rerun: every completion committed is kept"
        elif "not a database" in what.lower() or "malformed" in what.lower():
            fix = f"delete {path} (its completions are generated again) and rerun"
        else:
            fix = "check the drive and its permissions, then rerun: every completion committed is kept"
        raise CacheError(f"cannot use the generation cache {path} ({what}); fix: {fix}") from None


class GenerationCache:
    """Append-only SQLite store of raw completions; one transaction per batch survives SIGKILL. Every sqlite
    error (disk full, I/O error, a damaged file) becomes one ``CacheError`` line."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with _cache_errors(path):
            self.db = sqlite3.connect(str(path), timeout=60)
            self.db.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL syncs at checkpoints, not at every commit: a committed batch survives the process
            # being killed (it is in the WAL file); only an OS crash or power loss can lose the last batches.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA cache_size=-65536")  # 64 MB of pages: the key index of millions of rows
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            self.db.commit()

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        found: dict[str, dict] = {}
        with _cache_errors(self.path):
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                q = f"SELECT key, value FROM generations WHERE key IN ({','.join('?' * len(chunk))})"
                found.update({k: json.loads(v) for k, v in self.db.execute(q, chunk)})
        return found

    def put_many(self, items: dict[str, dict]) -> None:
        """One transaction per batch, rows in key order (neighbouring B-tree pages: ~15% fewer page writes)."""
        rows = sorted((k, json.dumps(v, ensure_ascii=False)) for k, v in items.items())
        with _cache_errors(self.path), self.db:
            self.db.executemany("INSERT OR REPLACE INTO generations (key, value) VALUES (?, ?)", rows)

    def __len__(self) -> int:
        with _cache_errors(self.path):
            return self.db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]

    def close(self) -> None:
        self.db.close()


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def check_texts(ds: Dataset, fields: list[str], what: str, id_column: str = "id") -> None:
    """``validate_texts`` for a whole table at once, before the first block is generated (vectorised: the one
    blank rule, ``hardneg.text.blank_rows``); Arrow strings are valid UTF-8 by construction."""
    table = arrow_table(ds, [id_column, *fields])
    for f in fields:
        try:
            bad = blank_rows(table.column(f).cast(pa.string()))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise ValueError(f"{what} column '{f}' does not hold text; fix: give it strings") from None
        if len(bad):
            row = table.column(id_column)[int(bad[0])].as_py()
            raise ValueError(
                f"{what} row '{row}' has an empty {f} ({len(bad)} such rows); fix: drop or fill empty rows"
            )


def validate_texts(rows: list[dict], fields: list[str], what: str) -> None:
    """Refuse unusable inputs before anything is generated or cached: one clear line."""
    check_unique_ids([r["id"] for r in rows], what)
    for r in rows:
        for f in fields:
            value = r.get(f)
            if is_blank(value):
                raise ValueError(f"{what} row '{r['id']}' has an empty {f}; fix: drop or fill empty rows")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(
                    f"{what} row '{r['id']}' has a {f} that is not valid UTF-8 text; fix: decode the source as "
                    "UTF-8 (errors='replace') or drop the row"
                ) from None


def run_generation(
    items: list[dict],
    *,
    generator: Generator,
    prompt: PromptTemplate,
    method: str,
    cache_dir: str | Path,
    seed: int = 42,
    max_retries: int = 2,
    retry_temperature: float = 0.8,
    max_new_tokens: int = 64,
    rules: HygieneConfig | None = None,
    source_field: str = "passage",
    chunk_size: int | None = None,
    progress: bool = True,
    append_rejects: bool = False,
) -> tuple[list[dict | None], dict]:
    """Generate one accepted output per item; see the module docstring.

    ``items``: dicts with ``id`` and the template's inputs (``passage`` / ``query`` / ``positive``).
    Attempt 0 uses the generator's own sampling settings (greedy by default); retry ``k`` samples at
    ``max(temperature, retry_temperature)`` with seed ``seed + k`` mixed with the item's input hash.
    Returns ``(results, stats)``: results[i] is a dict (text, raw, attempt, seed, sampling, tokens,
    latency) or None when every attempt was rejected. ``append_rejects``: add to the method's rejects file
    (a later block of ``generate_in_blocks``) instead of starting it anew.
    """
    rules = rules or HygieneConfig()
    cache_dir = Path(cache_dir)
    run = _GenerationRun(
        items,
        generator=generator,
        prompt=prompt,
        cache=GenerationCache(cache_dir / "generation.sqlite"),
        max_new_tokens=max_new_tokens,
        rules=rules,
        source_field=source_field,
        chunk_size=chunk_size or _commit_chunk(generator),
    )
    bar = rate_bar(0, method) if progress else None  # requests sent this run (retries add) and tokens/s
    pending = list(range(len(items)))
    try:
        for attempt in range(max_retries + 1):
            if not pending:
                break
            pending = run.attempt(attempt, pending, seed=seed, retry_temperature=retry_temperature, bar=bar)
    finally:
        if bar is not None:
            bar.close()
        run.cache.close()
    not_logged = write_rejects(
        cache_dir / "rejects" / f"{method}.jsonl", run.reject_rows, append=append_rejects
    )
    lost = [i for i in pending if i not in run.answered]
    if lost:
        raise GenerationFault(
            fault_line(method, generator, len(items), lost, run.faults, run.totals["generated"])
        )
    params = {
        "generator": generator.info(),
        "seed": seed,
        "max_retries": max_retries,
        "retry_temperature": retry_temperature,
        "max_new_tokens": max_new_tokens,
        "hygiene": asdict(rules),
    }
    return run.results, run.stats(dropped=len(pending), not_logged=not_logged, params=params)


def _commit_chunk(generator: Generator) -> int:
    """Commit granularity: one local batch, or eight rounds of concurrent requests; vLLM wants big calls."""
    cfg = generator.config
    return {
        "transformers": cfg.batch_size,
        "llamacpp": cfg.batch_size,
        "http": 8 * cfg.concurrency,  # few barriers: a round's slowest request leaves slots idle
    }.get(cfg.backend, 512)


class _GenerationRun:
    """The state of one ``run_generation`` call: the rendered prompts, the accepted results, the rejects,
    faults and totals. Each ``attempt`` asks for the pending items (cache first), then judges every answer."""

    def __init__(self, items, *, generator, prompt, cache, max_new_tokens, rules, source_field, chunk_size):
        self.items, self.generator, self.prompt, self.cache = items, generator, prompt, cache
        self.max_new_tokens, self.rules = max_new_tokens, rules
        self.source_field, self.chunk_size = source_field, chunk_size
        self.info = generator.cache_settings()
        # Prompts bounded in tokens: a passage is cut so that prompt + output fit the model's context.
        self.rendered, self.truncated_prompts = fit_prompts(
            items, prompt.render, prompt.inputs, generator.prompt_budget(max_new_tokens)
        )
        self.results: list[dict | None] = [None] * len(items)
        self.rejects: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.answered: set[int] = set()  # items with at least one attempt that was not a fault
        self.reject_rows: list[dict] = []
        self.totals = {
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "generation_seconds": 0.0,
            "generated": 0,
            "cached": 0,
            "reasoning_stripped": 0,
            "reasoning_chars": 0,
        }
        self.started = time.perf_counter()
        self.new_tokens = 0

    def attempt(
        self, attempt: int, pending: list[int], *, seed: int, retry_temperature: float, bar
    ) -> list[int]:
        """One round over the pending items; returns those still pending (rejected or faulted)."""
        base_temp, top_p = self.generator.config.temperature, self.generator.config.top_p
        temperature = base_temp if attempt == 0 else max(base_temp, retry_temperature)
        sampling = {
            "temperature": temperature,
            "top_p": top_p if temperature > 0 else 1.0,
            "max_new_tokens": self.max_new_tokens,
            "stop": list(self.prompt.stop),
        }
        rendered = self.rendered
        seeds = {
            i: (seed + attempt) * 1_000_003 + int(_sha(rendered[i])[:8], 16) % 1_000_003 for i in pending
        }
        keys = {
            i: _sha(
                {
                    "gen": self.info,
                    "prompt": self.prompt.sha256,
                    "input": rendered[i],
                    "sampling": sampling,
                    "seed": seeds[i] if temperature > 0 else None,
                }
            )
            for i in pending
        }
        found = self.cache.get_many(list(keys.values()))
        # Longest prompts first: similar lengths share a batch, so little padding is computed.
        todo = sorted((i for i in pending if keys[i] not in found), key=lambda i: -len(rendered[i]))
        self.totals["cached"] += len(pending) - len(todo)
        if bar is not None:
            bar.total += len(todo)
        for c in range(0, len(todo), self.chunk_size):
            found.update(self._generate(todo[c : c + self.chunk_size], keys, seeds, temperature, bar))
        return [i for i in pending if not self._judge(i, found[keys[i]], attempt, seeds[i], sampling)]

    def _generate(
        self, chunk: list[int], keys: dict, seeds: dict, temperature: float, bar
    ) -> dict[str, dict]:
        """Generate one chunk and commit it to the cache at once: a kill loses at most this chunk."""
        chunk_start = time.perf_counter()
        outs: list[Generation] = self.generator.generate(
            [self.rendered[i] for i in chunk],
            chat=self.prompt.format == "chat",
            stop=list(self.prompt.stop),
            max_new_tokens=self.max_new_tokens,
            temperature=temperature,
            top_p=self.generator.config.top_p,
            seeds=[seeds[i] for i in chunk],
        )
        share = (time.perf_counter() - chunk_start) / len(chunk)  # wall time per item (concurrency-aware)
        new = {keys[i]: o.to_dict() | {"wall_s": share} for i, o in zip(chunk, outs, strict=True)}
        self.cache.put_many({k: v for k, v in new.items() if not v.get("fault")})  # faults never are
        self.totals["generated"] += len(chunk)
        if bar is not None:
            self.new_tokens += sum(o.completion_tokens for o in outs)
            show_tokens(bar, self.new_tokens)
            bar.update(len(chunk))
        return new

    def _judge(self, i: int, out: dict, attempt: int, seed: int, sampling: dict) -> bool:
        """Count one answer and keep it when it passes the hygiene rules; False: ask again (fault, reject)."""
        if out.get("fault"):
            self.faults[out["fault"]] += 1
            return False
        self.answered.add(i)
        totals = self.totals
        totals["prompt_tokens"] += out["prompt_tokens"] or 0
        totals["completion_tokens"] += out["completion_tokens"] or 0
        totals["reasoning_stripped"] += bool(out.get("reasoning_chars"))
        totals["reasoning_chars"] += out.get("reasoning_chars") or 0
        totals["generation_seconds"] += out.get("wall_s", out["latency_s"]) or 0.0
        text = clean_output(out["text"], self.rendered[i])
        item = self.items[i]
        negative = self.prompt.kind == "negative"
        reason = check_output(
            text,
            source=item[self.source_field],
            positive=item.get("positive") if negative else None,
            query=item.get("query") if negative else None,
            rules=self.rules,
            finish_reason=out.get("finish_reason", "stop"),
        )
        record = {
            "text": text,
            "raw": out["text"],
            "attempt": attempt,
            "seed": seed,
            "sampling": sampling,
            **{k: out[k] for k in ("prompt_tokens", "completion_tokens", "latency_s")},
        }
        if reason is None:
            self.results[i] = record
            return True
        self.rejects[reason] += 1
        self.reject_rows.append({"id": item["id"], "reason": reason, **record})
        return False

    def stats(self, *, dropped: int, not_logged: int, params: dict) -> dict:
        """The call's statistics (rows, cost, rejects, faults) and its parameters."""
        rows = sum(r is not None for r in self.results)
        totals = self.totals
        gen_s = totals["generation_seconds"]
        return {
            "rows": rows,
            "wall_seconds": round(gen_s, 3),
            "items_per_second": round(rows / gen_s, 4) if gen_s > 0 else None,
            "prompt_tokens": totals["prompt_tokens"],
            "completion_tokens": totals["completion_tokens"],
            "reasoning_stripped": totals["reasoning_stripped"],  # outputs whose <think> block was removed
            "reasoning_chars": totals["reasoning_chars"],
            "rejects": dict(sorted(self.rejects.items())),
            "rejects_not_logged": not_logged,
            "faults": dict(sorted(self.faults.items())),  # faulted attempts that a retry answered
            "dropped": dropped,
            "truncated_prompts": self.truncated_prompts,
            "run_wall_seconds": round(time.perf_counter() - self.started, 3),
            "generated_this_run": totals["generated"],
            "cached_this_run": totals["cached"],
            "params": params,
            "prompt": self.prompt.provenance(),
        }


def write_rejects(path: Path, rows: list[dict], *, append: bool = False) -> int:
    """Write the rejected outputs, each text cut to ``REJECT_TEXT_CHARS``, the file (with what an earlier
    block wrote, ``append``) to ``REJECT_LOG_BYTES``; returns the number of rows left out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = path.stat().st_size if append and path.is_file() else 0
    left_out = 0
    with open(path, "a" if append else "w", encoding="utf-8") as f:
        for n, row in enumerate(rows):
            row = {k: v[:REJECT_TEXT_CHARS] if isinstance(v, str) else v for k, v in row.items()}
            line = json.dumps(row, ensure_ascii=False) + "\n"
            written += len(line.encode("utf-8"))
            if written > REJECT_LOG_BYTES:
                left_out = len(rows) - n
                break
            f.write(line)
    return left_out


def fault_line(
    method: str, generator: Generator, n_items: int, lost: list[int], faults: Counter, requests: int
) -> str:
    """The one line of a stage stopped by faults: which fault, how many requests had it, what is kept."""
    info = generator.info()
    where = ", ".join(info.get("urls") or []) or f"{info.get('backend')} model {info.get('model')}"
    what = ", ".join(f"{n} x {fault}" for fault, n in sorted(faults.items()))
    return (
        f"{method}: {len(lost)} of {n_items} items got no answer because the generator faulted: {what} "
        f"({sum(faults.values())} of the {requests} requests sent this run; the server at {where} answered "
        f"without content); nothing was saved as finished and every good completion is cached; fix: check the "
        f"server (its logs, that it serves --model {info.get('model')}) and rerun the same command"
    )


def generate_in_blocks(
    n: int, make_block: Callable[[int, int, bool], tuple[Dataset, dict]]
) -> tuple[Dataset, dict]:
    """Generate ``n`` items in blocks of ``GENERATION_BLOCK``: ``make_block(start, end, later)`` turns items
    ``start:end`` into a table and its stats (``later``: not the first block, so its rejects are appended).
    Returns the tables concatenated in order and the stats added up (``hardneg.distributed.merge_stats``); one
    block gives exactly what one call would."""
    tables, stats = [], []
    for start in range(0, max(n, 1), GENERATION_BLOCK):
        table, block_stats = make_block(start, min(n, start + GENERATION_BLOCK), start > 0)
        tables.append(table)
        stats.append(block_stats)
    if len(tables) == 1:
        return tables[0], stats[0]
    return concatenate_datasets(tables), merge_stats(stats)


def provenance_row(generator: Generator, prompt: PromptTemplate, result: dict) -> dict:
    """The provenance columns of one output row (see docs/design.md)."""
    info = generator.info()
    return {
        "model": info["model"],
        "backend": info["backend"],
        "prompt_name": prompt.name,
        "prompt_version": prompt.version,
        "prompt_hash": prompt.sha256,
        "sampling": json.dumps(result["sampling"], sort_keys=True),
        "seed": int(result["seed"]),
        "prompt_tokens": result["prompt_tokens"],
        "completion_tokens": result["completion_tokens"],
        "latency_s": float(result["latency_s"]),
    }
