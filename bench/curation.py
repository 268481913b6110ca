"""``instructflow bench curation``: does the data engine's curation make a better training set?
The same tiny model and token budget trained on the raw corpus and on the curated one, both
scored on one clean held-out set, over several seeds.

1. **Split first.** The corpus's records (a JSON array or JSONL file, by default LLaMA-Factory's
   999-record ``alpaca_en_demo.json`` from the shared corpora, ``--records`` the first N) are
   split by a seeded hash of each record's content: ``heldout_fraction`` of them form the
   held-out pool, which neither arm ever sees. Identical records hash alike, so an exact
   duplicate cannot straddle the split.
2. **The arms**, each an ``instructflow data run`` (``ops.datarun.run_data``) of the training
   pool: **raw** is conversion to the instruction schema only (no stage: no cleaning,
   filtering or dedup); **curated** is the quickstart recipe's curation (``CURATION_STAGES``:
   clean, pii, language, length, repetition, characters, stopwords, refusal, copy, exact and
   near dedup; its blocklist file, benchmark decontamination and split are corpus-specific).
3. **The held-out set**: the held-out pool through the same curation, plus a ``decontaminate``
   stage (before ``exact_dedup``, where the quickstart has it) whose evaluation sets are the
   prompts (user turns and input, ``DECONTAMINATE_KEY``) of both arms' outputs: a held-out
   record whose prompt near-duplicates any training prompt of either arm is dropped. The bench
   then checks exactly that no held-out id, prompt or conversation occurs in either arm, and
   stops if one does.
4. **Training**: one byte-level BPE tokenizer trained on the raw arm's output (every training
   record of either arm before cleaning; never the held-out pool), and per seed one ``size``
   Llama built from a config with that seed, saved once and trained by both arms with
   ``instructflow train sft`` (``ops.trainrun.run_sft``, one Ray Train worker of ``cpus``
   CPUs). The token budget is fixed in slots: ``steps`` x ``micro_batch_size`` packed rows of
   ``max_length`` tokens for both arms (a smaller arm repeats its data more often); the real
   (non-padding) tokens each arm trained on are reported beside it. The recipe's seed (batch
   order, dropout) is the same seed.
5. **Score**: the validation loss (token mean over the held-out replies) at the end of the
   budget, per seed and arm, and the ratio curated / raw (below 1: curation helped). The
   held-out loss at step 0 is the same for both arms of a seed (same model, same set), which
   the report shows.

The held-out set is curated, so it leans towards what curation keeps: a raw arm that spends
tokens on records curation drops (refusals, symbol-heavy answers, copies) is scored on text
that lacks them. That is the question asked (does curation help on clean data?), not a
neutral one.

    instructflow bench curation --seeds 0 1 2 --json-out curation.json
    instructflow bench curation --corpus data/my_alpaca.jsonl --records 5000 --steps 400
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from bench.corpora.dedup_passages import DEFAULT_CORPORA
from bench.sft import load_average
from train.tiny import SIZES

DEFAULT_CORPUS = DEFAULT_CORPORA / "alpaca_en_demo.json"
DEFAULT_WORKDIR = ".bench/curation"
ARMS = ("raw", "curated")
HELDOUT_SPLIT = "heldout"
DECONTAMINATE_KEY = "instruction_input"
MIN_RECORDS = 20
# The quickstart recipe's curation (examples/quickstart/recipe.yaml, checked by the test)
# without its blocklist file, its decontamination against benchmark prompts (the held-out set
# takes that role here) and its split.
CURATION_STAGES: tuple[dict[str, Any], ...] = (
    {"clean": {}},
    {"pii": {}},
    {"language": {"allow": ["en", "zh"]}},
    {"length": {"min_response_chars": 2}},
    {"repetition": {}},
    {"characters": {}},
    {"stopwords": {}},
    {"refusal": {}},
    {"copy": {}},
    {"exact_dedup": {"key": "conversation", "keep": "longest_response"}},
    {"near_dedup": {"threshold": 0.7}},
)


@dataclass(frozen=True)
class CurationBenchSettings:
    workdir: Path = Path(DEFAULT_WORKDIR)
    corpus: Path = DEFAULT_CORPUS
    records: int | None = None  # the corpus's first N records; None: all
    heldout_fraction: float = 0.15
    split_seed: int = 0
    seeds: tuple[int, ...] = (0, 1, 2)
    size: str = "small"  # train.tiny.SIZES
    vocab_size: int = 2048
    max_length: int = 512
    micro_batch_size: int = 4
    steps: int = 120
    learning_rate: float = 1e-3
    warmup_steps: int = 10
    cpus: int = 2  # the local Ray's CPUs and the Ray Train worker's


def check_settings(settings: CurationBenchSettings) -> None:
    """Every argument checked before anything is read or started."""
    problems = [
        (not settings.corpus.is_file(), f"--corpus {settings.corpus}: no such file"),
        (
            settings.corpus.suffix not in (".json", ".jsonl"),
            "--corpus must be a .json array or .jsonl file of records",
        ),
        (
            settings.records is not None and settings.records < MIN_RECORDS,
            f"--records must be at least {MIN_RECORDS}",
        ),
        (not 0 < settings.heldout_fraction < 1, "--heldout-fraction must be in (0, 1)"),
        (not settings.seeds, "--seeds needs at least one seed"),
        (len(set(settings.seeds)) != len(settings.seeds), "--seeds must differ"),
        (settings.size not in SIZES, f"--size must be one of {', '.join(SIZES)}"),
        (settings.vocab_size < 512, "--vocab-size must be at least 512"),
        (not 16 <= settings.max_length <= 4096, "--max-length must be in 16..4096"),
        (settings.micro_batch_size < 1, "--micro-batch-size must be at least 1"),
        (settings.steps < 1, "--steps must be at least 1"),
        (settings.learning_rate <= 0, "--learning-rate must be positive"),
        (settings.warmup_steps < 0, "--warmup-steps must be at least 0"),
        (settings.cpus < 1, "--cpus must be at least 1"),
    ]
    bad = [text for failed, text in problems if failed]
    if bad:
        raise ValueError("; ".join(bad))


# ---------------------------------------------------------------------------------------
# The split


def read_corpus(path: Path, records: int | None) -> list[Any]:
    """The file's records (a JSON array, or one JSON value per line), the first ``records``."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        items = json.loads(text)
        if not isinstance(items, list):
            raise ValueError(f"{path}: a .json corpus must hold one array of records")
    else:
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
    return items[:records] if records is not None else items


def held_out(item: Any, seed: int, fraction: float) -> bool:
    """Whether the record goes to the held-out pool: a seeded hash of its whole content, so
    the split does not depend on order and identical records fall on the same side."""
    content = json.dumps(item, sort_keys=True, ensure_ascii=False)
    digest = hashlib.blake2b(f"{seed}\x1f{content}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


def split_corpus(settings: CurationBenchSettings, directory: Path) -> dict[str, Any]:
    """``directory/train.jsonl`` and ``directory/heldout.jsonl``, the records as they were
    (the pipeline converts them later); the counts."""
    items = read_corpus(settings.corpus, settings.records)
    sides: dict[str, list[Any]] = {"train": [], "heldout": []}
    for item in items:
        side = (
            "heldout" if held_out(item, settings.split_seed, settings.heldout_fraction) else "train"
        )
        sides[side].append(item)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for side, chosen in sides.items():
        if not chosen:
            raise ValueError(f"the {side} pool is empty: change --heldout-fraction or --records")
        lines = (json.dumps(item, ensure_ascii=False) + "\n" for item in chosen)
        (directory / f"{side}.jsonl").write_text("".join(lines), encoding="utf-8")
    return {
        "path": str(settings.corpus),
        "records": len(items),
        "train_pool": len(sides["train"]),
        "heldout_pool": len(sides["heldout"]),
    }


# ---------------------------------------------------------------------------------------
# The data runs


def data_recipe(name: str, source: Path, stages: list[dict[str, Any]], output: Path) -> dict:
    return {
        "name": f"bench-curation-{name}",
        "inputs": [{"path": str(source)}],
        "stages": stages,
        "output": {"path": str(output)},
        # No stage checkpoints: they make a run resumable, not different, and cost seconds.
        "run": {"progress_bars": False, "checkpoints": False},
    }


def data_run(name: str, recipe: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """``run_data`` of the recipe (written beside it as JSON, which is YAML); its counts."""
    from ops.datarun import run_data

    path = workdir / "recipes" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(recipe, indent=2))
    started = time.perf_counter()
    outcome = run_data(str(path), overwrite=True, progress_bars=False)
    seconds = time.perf_counter() - started
    conservation = outcome.stats["conservation"]
    return {
        "output": outcome.output_path,
        "records_in": conservation["input"],
        "records": conservation["output"],
        "quarantined": conservation["quarantine"],
        "dropped": outcome.stats["drop_reasons"],
        "seconds": round(seconds, 2),
    }


def output_table(output: str, columns: list[str] | None = None) -> pa.Table:
    return ds.dataset(Path(output) / "data", format="parquet").to_table(columns=columns)


def write_prompts(output: str, path: Path) -> Path:
    """The output's prompts (``DECONTAMINATE_KEY`` texts) as a JSONL evaluation set."""
    from pipeline.dedup_keys import key_texts

    table = output_table(output)
    texts = key_texts(table, DECONTAMINATE_KEY)
    ids = table.column("id").to_pylist()
    items = zip(ids, texts, strict=True)
    lines = (json.dumps({"id": i, "prompt": t}, ensure_ascii=False) + "\n" for i, t in items)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")
    return path


def heldout_stages(eval_sets: list[Path]) -> list[dict[str, Any]]:
    """The curation with ``decontaminate`` against ``eval_sets`` before ``exact_dedup``."""
    decontaminate = {
        "decontaminate": {"eval_sets": [str(p) for p in eval_sets], "key": DECONTAMINATE_KEY}
    }
    stages = [dict(stage) for stage in CURATION_STAGES]
    position = next(i for i, stage in enumerate(stages) if "exact_dedup" in stage)
    return [*stages[:position], decontaminate, *stages[position:]]


def prepare_data(settings: CurationBenchSettings, workdir: Path) -> dict[str, Any]:
    """The split, both arms and the held-out set, each a data run; their counts."""
    pools = workdir / "corpus"
    corpus = split_corpus(settings, pools)
    runs = workdir / "runs"
    arms = {
        "raw": data_run(
            "raw", data_recipe("raw", pools / "train.jsonl", [], runs / "raw"), workdir
        ),
        "curated": data_run(
            "curated",
            data_recipe("curated", pools / "train.jsonl", list(CURATION_STAGES), runs / "curated"),
            workdir,
        ),
    }
    eval_sets = [
        write_prompts(arms[arm]["output"], workdir / "prompts" / f"{arm}.jsonl") for arm in ARMS
    ]
    stages = heldout_stages(eval_sets)
    heldout = data_run(
        HELDOUT_SPLIT,
        data_recipe(HELDOUT_SPLIT, pools / "heldout.jsonl", stages, runs / HELDOUT_SPLIT),
        workdir,
    )
    for name, run in (*arms.items(), (HELDOUT_SPLIT, heldout)):
        if run["records"] == 0:
            raise ValueError(f"the {name} data run kept no record; use a larger --records")
    return {"corpus": corpus, "arms": arms, HELDOUT_SPLIT: heldout}


def overlaps(heldout_output: str, arm_output: str) -> dict[str, int]:
    """Held-out records whose id, prompt or whole conversation occurs in the arm (exact)."""
    from pipeline.dedup_keys import key_texts

    found = {}
    tables = {"heldout": output_table(heldout_output), "arm": output_table(arm_output)}
    found["ids"] = len(
        set(tables["heldout"].column("id").to_pylist())
        & set(tables["arm"].column("id").to_pylist())
    )
    for key, label in ((DECONTAMINATE_KEY, "prompts"), ("conversation", "conversations")):
        texts = {side: key_texts(table, key) for side, table in tables.items()}
        arm_texts = set(texts["arm"])
        found[label] = sum(text in arm_texts for text in texts["heldout"])
    return found


def training_view(root: Path, train_output: str, heldout_output: str) -> Path:
    """``root`` as a finished data run whose ``data/train/`` holds an arm's shards and
    ``data/heldout/`` the held-out set's: ``train sft`` reads both splits from one run
    directory, and each arm's must hold the same held-out shards."""
    shutil.rmtree(root, ignore_errors=True)
    shards = []
    for split, output in (("train", train_output), (HELDOUT_SPLIT, heldout_output)):
        directory = root / "data" / split
        directory.mkdir(parents=True)
        for shard in sorted((Path(output) / "data").glob("*.parquet")):
            shutil.copyfile(shard, directory / shard.name)
            shards.append({"fate": "output", "path": f"data/{split}/{shard.name}"})
    (root / "manifest.json").write_text(
        json.dumps({"assembled_from": [train_output, heldout_output], "shards": shards})
    )
    return root


# ---------------------------------------------------------------------------------------
# Training


def save_models(settings: CurationBenchSettings, raw_output: str, directory: Path) -> dict:
    """One tokenizer trained on the raw arm's output; per seed a model of ``size`` built
    with that seed, saved with the tokenizer. The model directories by seed."""
    from train.tiny import build_model, shard_texts, train_tokenizer

    tokenizer = train_tokenizer(shard_texts(raw_output), settings.vocab_size)
    paths = {}
    for seed in settings.seeds:
        path = directory / f"seed-{seed}"
        shutil.rmtree(path, ignore_errors=True)
        build_model(tokenizer, "causal", settings.size, seed).save_pretrained(path)
        tokenizer.save_pretrained(path)
        paths[seed] = str(path)
    return paths


def sft_recipe(
    settings: CurationBenchSettings, seed: int, data: Path, model: str, output: Path
) -> dict[str, Any]:
    """Both arms' recipe: the budget in steps of packed rows, held-out loss at the start and
    the end only, no samples, one worker."""
    return {
        "name": f"bench-curation-{seed}",
        "seed": seed,
        "data": {"path": str(data), "train_split": "train", "validation_split": HELDOUT_SPLIT},
        "model": {"name_or_path": model},
        "prompt": {"format": "chat", "max_length": settings.max_length, "packing": True},
        "training": {
            "max_steps": settings.steps,
            "micro_batch_size": settings.micro_batch_size,
            "gradient_accumulation": 1,
            "learning_rate": settings.learning_rate,
            "warmup_steps": settings.warmup_steps,
            "log_every_steps": max(1, settings.steps // 10),
        },
        "eval": {"every_steps": settings.steps, "samples": 0},
        "scaling": {"num_workers": 1, "cpus_per_worker": settings.cpus},
        "output": {"path": str(output)},
    }


def train_arm(
    settings: CurationBenchSettings, seed: int, view: Path, model: str, output: Path
) -> dict[str, Any]:
    """``run_sft`` of the arm's view from the seed's model; held-out loss, budget, counts."""
    from ops.trainrun import run_sft, validation_before_after

    recipe_path = output.parent / f"{output.name}.yaml"
    recipe_path.parent.mkdir(parents=True, exist_ok=True)
    recipe_path.write_text(json.dumps(sft_recipe(settings, seed, view, model, output), indent=2))
    started = time.perf_counter()
    summary = run_sft(str(recipe_path), overwrite=True)
    wall = time.perf_counter() - started
    first, last = validation_before_after(summary)
    train, heldout = summary["data"]["train"], summary["data"]["validation"]
    slots = summary["steps"] * summary["global_batch"] * settings.max_length
    return {
        "val_loss": round(last["loss"], 5),
        "val_loss_start": round(first["loss"], 5),
        "train_loss": round(summary["last"]["train_loss"], 5),
        "steps": summary["steps"],
        "token_slots": slots,
        "tokens_trained": summary["last"]["tokens_seen"],
        "records": train["records_in"],
        "rows": train["rows"],
        "tokens": train["tokens"],
        "epochs": round(summary["steps"] * summary["global_batch"] / train["rows"], 2),
        "heldout_rows": heldout["rows"],
        "heldout_tokens": heldout["supervised"],
        "wall_seconds": round(wall, 1),
    }


# ---------------------------------------------------------------------------------------
# The benchmark


def bench_curation(settings: CurationBenchSettings, json_out: str | None = None) -> dict:
    """Every step; prints the tables and returns (and optionally writes) the report."""
    import ray

    from ops.cluster import connect

    check_settings(settings)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("ray").setLevel(logging.WARNING)
    workdir = settings.workdir.resolve()
    started_ray = not ray.is_initialized()
    started = time.perf_counter()
    report: dict[str, Any] = {
        "settings": {
            **asdict(settings),
            "workdir": str(workdir),
            "corpus": str(settings.corpus),
            "seeds": list(settings.seeds),
        },
        "machine": machine(),
    }
    connect(None, progress_bars=False, num_cpus=settings.cpus)
    try:
        report["data"] = prepare_data(settings, workdir)
        report["runs"] = train_seeds(settings, workdir, report["data"])
    finally:
        if started_ray:
            ray.shutdown()
    report["mean"] = means(report["runs"])
    report["machine"]["load_average_end"] = load_average()
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    print_report(report)
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(report, indent=2))
    return report


def train_seeds(settings: CurationBenchSettings, workdir: Path, data: dict) -> list[dict]:
    """The overlap check, the views and the models, then both arms per seed."""
    heldout_output = data[HELDOUT_SPLIT]["output"]
    views = {}
    for arm in ARMS:
        arm_output = data["arms"][arm]["output"]
        found = overlaps(heldout_output, arm_output)
        data["arms"][arm]["heldout_overlap"] = found
        if any(found.values()):
            raise RuntimeError(f"held-out records occur in the {arm} arm ({found}): not comparable")
        views[arm] = training_view(workdir / "views" / arm, arm_output, heldout_output)
    models = save_models(settings, data["arms"]["raw"]["output"], workdir / "models")
    runs = []
    for seed in settings.seeds:
        run: dict[str, Any] = {"seed": seed}
        for arm in ARMS:
            output = workdir / "sft" / f"seed-{seed}" / arm
            run[arm] = train_arm(settings, seed, views[arm], models[seed], output)
        run["ratio"] = round(run["curated"]["val_loss"] / run["raw"]["val_loss"], 5)
        runs.append(run)
    return runs


def means(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ratios = [run["ratio"] for run in runs]
    return {
        "raw": round(statistics.fmean(run["raw"]["val_loss"] for run in runs), 5),
        "curated": round(statistics.fmean(run["curated"]["val_loss"] for run in runs), 5),
        "ratio": round(statistics.fmean(ratios), 5),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "ratio_stdev": round(statistics.stdev(ratios), 5) if len(ratios) > 1 else 0.0,
    }


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "load_average_start": load_average(),
    }


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), ""
    )


# ---------------------------------------------------------------------------------------
# Printing


def print_report(report: dict[str, Any]) -> None:
    settings, data = report["settings"], report["data"]
    corpus, heldout = data["corpus"], data[HELDOUT_SPLIT]
    print(
        f"\ncorpus {corpus['path']}: {corpus['records']:,} records; "
        f"{settings['heldout_fraction']:.0%} held out by a content hash (seed "
        f"{settings['split_seed']}): {corpus['train_pool']:,} train pool, "
        f"{corpus['heldout_pool']:,} held-out pool"
    )
    print(f"  {'data run':<10}{'in':>7}{'kept':>7}{'seconds':>9}  dropped")
    for name, run in (*data["arms"].items(), (HELDOUT_SPLIT, heldout)):
        dropped = ", ".join(f"{reason} {count}" for reason, count in sorted(run["dropped"].items()))
        print(
            f"  {name:<10}{run['records_in']:>7,}{run['records']:>7,}{run['seconds']:>9.1f}  "
            f"{dropped or '-'}"
        )
    first = report["runs"][0]
    print(
        f"budget per arm: {first['raw']['steps']} steps x {settings['micro_batch_size']} packed "
        f"rows x {settings['max_length']} tokens = {first['raw']['token_slots']:,} token slots; "
        f"{settings['size']} Llama, one tokenizer ({settings['vocab_size']}) trained on the raw "
        f"arm; held-out set {first['raw']['heldout_rows']} rows, "
        f"{first['raw']['heldout_tokens']:,} scored tokens"
    )
    print_runs(report)


def print_runs(report: dict[str, Any]) -> None:
    header = (
        f"  {'seed':<6}{'val raw':>9}{'val cur':>9}{'cur/raw':>9}{'start':>8}"
        f"{'records r/c':>14}{'tokens trained r/c':>22}{'epochs r/c':>13}{'wall s r/c':>13}"
    )
    print("\nheld-out loss at the end of the budget (start: both arms' step-0 loss)")
    print(header)
    for run in report["runs"]:
        raw, cur = run["raw"], run["curated"]
        print(
            f"  {run['seed']:<6}{raw['val_loss']:>9.4f}{cur['val_loss']:>9.4f}"
            f"{run['ratio']:>9.4f}{raw['val_loss_start']:>8.3f}"
            f"{raw['records']:>7,}/{cur['records']:<6,}"
            f"{raw['tokens_trained']:>11,}/{cur['tokens_trained']:<10,}"
            f"{raw['epochs']:>7.2f}/{cur['epochs']:<5.2f}"
            f"{raw['wall_seconds']:>7.0f}/{cur['wall_seconds']:<5.0f}"
        )
    mean = report["mean"]
    print(
        f"  {'mean':<6}{mean['raw']:>9.4f}{mean['curated']:>9.4f}{mean['ratio']:>9.4f}"
        f"   (ratio {mean['ratio_min']:.4f}..{mean['ratio_max']:.4f}, stdev "
        f"{mean['ratio_stdev']:.4f})"
    )
    start, end = (
        report["machine"]["load_average_start"][0],
        report["machine"]["load_average_end"][0],
    )
    print(
        f"wall {report['wall_seconds']:.0f} s; load average (1 min) {start:.2f} at the start, "
        f"{end:.2f} at the end, {report['machine']['cpu_count']} CPUs"
    )


__all__ = ["CURATION_STAGES", "CurationBenchSettings", "bench_curation", "check_settings"]
