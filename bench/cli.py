"""``instructflow bench ...``: the benchmark commands, added to the CLI's parser by ``ops.cli``.

Parses arguments and calls the benchmark modules of this package; each module's docstring says
what it measures, and BENCHMARKS.md has the current figures.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from pipeline.config import RecipeError


def _bench_pipeline(args: argparse.Namespace) -> int:
    from bench.pipeline_throughput import bench_pipeline

    bench_pipeline(records=args.records, cpus=args.cpus, workdir=args.workdir, seed=args.seed)
    return 0


def _bench_dedup(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench.dedup import BenchSettings, bench_dedup, check_settings, parse_options

    if args.corpus == "natural":
        return _bench_dedup_natural(args)

    try:
        settings = BenchSettings(
            workdir=Path(args.workdir).resolve(),
            records=args.records,
            thresholds=tuple(args.threshold),
            languages=tuple(dict.fromkeys(args.languages)),
            datatrove=args.datatrove,
            workers=args.workers,
            seed=args.seed,
            near_options=parse_options(args.near_option),
            signature_documents=args.signature_docs,
        )
        check_settings(settings)
    except RecipeError:
        raise  # a bad near_dedup option: main prints each problem with its key
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    bench_dedup(settings, json_out=args.json_out)
    return 0


def _bench_dedup_natural(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench.dedup import parse_options
    from bench.dedup_natural import NaturalSettings, bench_natural, default_systems

    systems = default_systems()
    unknown = sorted(set(args.system) - set(systems))
    if unknown:
        print(f"error: --system {unknown[0]!r}: choose from {sorted(systems)}", file=sys.stderr)
        return 2
    if args.system:
        systems = {name: stages for name, stages in systems.items() if name in args.system}
    if args.near_option:  # the user's own setting beside them
        systems["--near-option"] = [{"near_dedup": parse_options(args.near_option)}]
    settings = NaturalSettings(
        workdir=Path(args.workdir).resolve(),
        passages=args.passages,
        thresholds=tuple(args.threshold),
        workers=args.workers,
        seed=args.seed,
        datatrove=args.datatrove,
        systems=systems,
        cold_run=args.cold_run,
    )
    bench_natural(settings, json_out=args.json_out)
    return 0


def _bench_dedup_memory(args: argparse.Namespace) -> int:
    from bench.dedup import bench_dedup_memory, parse_options

    bench_dedup_memory(
        args.sizes,
        workers=args.workers,
        workdir=args.workdir,
        seed=args.seed,
        json_out=args.json_out,
        partition_mb=args.partition_mb,
        near_options=parse_options(args.near_option),
        corpus=args.corpus,
    )
    return 0


def _bench_quality(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench.quality import QualityBenchSettings, bench_quality, check_settings

    settings = QualityBenchSettings(
        workdir=Path(args.workdir),
        records=args.records,
        workers=args.workers,
        seed=args.seed,
        train_records=args.train_records,
    )
    try:
        check_settings(settings)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    bench_quality(settings, json_out=args.json_out)
    return 0


def _bench_augment(args: argparse.Namespace) -> int:
    from bench.augment import bench_augment, wants_gpu

    if args.sentences < 1 or args.batch_size < 1:
        print("error: need --sentences >= 1 and --batch-size >= 1", file=sys.stderr)
        return 2
    try:
        use_gpu = wants_gpu(args.device)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    bench_augment(
        model=args.model,
        sentences=args.sentences,
        batch_size=args.batch_size,
        use_gpu=use_gpu,
        workdir=args.workdir,
        json_out=args.json_out,
    )
    return 0


def _bench_sft(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench.sft import SFTBenchSettings, bench_sft, check_settings

    settings = SFTBenchSettings(
        workdir=Path(args.workdir),
        records=args.records,
        size=args.size,
        vocab_size=args.vocab_size,
        max_length=args.max_length,
        prompt_format=args.prompt_format,
        micro_batch_size=args.micro_batch_size,
        steps=args.steps,
        log_every_steps=args.log_every_steps,
        warmup_steps=args.warmup_steps,
        learning_rate=args.learning_rate,
        min_words=args.min_words,
        max_words=args.max_words,
        cpus=args.cpus,
        ray=args.ray,
        device=args.device,
        gpu_size=args.gpu_size,
        gpu_micro_batch_size=args.gpu_micro_batch_size,
        gpu_steps=args.gpu_steps,
        peak_flops=args.peak_flops,
        seed=args.seed,
    )
    try:
        check_settings(settings)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    bench_sft(settings, json_out=args.json_out)
    return 0


def _bench_dpo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench.dpo import DPOBenchSettings, bench_dpo, check_settings

    settings = DPOBenchSettings(
        workdir=Path(args.workdir),
        records=args.records,
        size=args.size,
        max_length=args.max_length,
        micro_batch_size=args.micro_batch_size,
        steps=args.steps,
        log_every_steps=args.log_every_steps,
        warmup_steps=args.warmup_steps,
        loss=args.loss,
        beta=args.beta,
        cpus=args.cpus,
        ray=args.ray,
        memory_steps=args.memory_steps,
        device=args.device,
        seed=args.seed,
    )
    try:
        check_settings(settings)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    bench_dpo(settings, json_out=args.json_out)
    return 0


def _bench_rl(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench.rl import RLBenchSettings, bench_rl, check_settings

    settings = RLBenchSettings(
        workdir=Path(args.workdir),
        prompts=args.prompts,
        size=args.size,
        prompts_per_step=args.prompts_per_step,
        samples_per_prompt=args.samples_per_prompt,
        max_new_tokens=args.max_new_tokens,
        steps=args.steps,
        warmup_steps=args.warmup_steps,
        cpus=args.cpus,
        ray=args.ray,
        device=args.device,
        seed=args.seed,
    )
    try:
        check_settings(settings)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    bench_rl(settings, json_out=args.json_out)
    return 0


def _bench_novelty(args: argparse.Namespace) -> int:
    from bench.novelty import bench_novelty

    if any(size < 2 for size in args.sizes) or args.all_pairs_max < min(args.sizes):
        print(
            "error: --sizes must be >= 2 and --all-pairs-max at least the smallest size "
            "(the all-pairs filter is timed there)",
            file=sys.stderr,
        )
        return 2
    if not 0 < args.threshold < 1:
        print(f"error: --threshold must be in (0, 1), got {args.threshold}", file=sys.stderr)
        return 2
    bench_novelty(
        args.sizes,
        threshold=args.threshold,
        all_pairs_max=args.all_pairs_max,
        workers=args.workers,
        seed=args.seed,
        corpus=args.corpus,
        json_out=args.json_out,
    )
    return 0


def _bench_curation(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench.curation import (
        DEFAULT_CORPUS,
        CurationBenchSettings,
        bench_curation,
        check_settings,
    )

    settings = CurationBenchSettings(
        workdir=Path(args.workdir),
        corpus=Path(args.corpus) if args.corpus else DEFAULT_CORPUS,
        records=args.records,
        heldout_fraction=args.heldout_fraction,
        split_seed=args.split_seed,
        seeds=tuple(args.seeds),
        size=args.size,
        vocab_size=args.vocab_size,
        max_length=args.max_length,
        micro_batch_size=args.micro_batch_size,
        steps=args.steps,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps,
        cpus=args.cpus,
    )
    try:
        check_settings(settings)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    bench_curation(settings, json_out=args.json_out)
    return 0


def add_training_bench_flags(
    parser: argparse.ArgumentParser, method: str, windows: bool = True
) -> None:
    """The flags ``bench sft``, ``bench dpo`` and ``bench rl`` share: steps (and, with
    ``windows``, their tokens/s windows; ``bench rl`` times every step), the Ray worker's
    CPUs, whether to run Ray Train, where to work, the seed and the JSON report."""
    parser.add_argument("--steps", type=int, default=120, help="per loop, warm-up included")
    if windows:
        parser.add_argument("--log-every-steps", type=int, default=10, help="the tokens/s window")
    parser.add_argument("--warmup-steps", type=int, default=20, help="not timed, every side")
    parser.add_argument(
        "--cpus", type=int, default=os.cpu_count() or 1, help="Ray worker CPUs = torch threads"
    )
    parser.add_argument(
        "--ray",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"also run instructflow train {method} on Ray Train",
    )
    parser.add_argument("--workdir", default=f".bench/{method}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", help="also write the results here as JSON")


def add_bench_commands(commands: Any) -> None:
    """The ``bench`` command and its subcommands, on ``commands`` (the CLI's subparsers)."""
    bench = commands.add_parser("bench", help="benchmarks").add_subparsers(
        dest="action", required=True
    )
    pipeline_bench = bench.add_parser("pipeline", help="whole-pipeline throughput and Ray overhead")
    pipeline_bench.add_argument("--records", type=int, default=100_000)
    pipeline_bench.add_argument(
        "--cpus",
        type=int,
        nargs="+",
        default=None,
        help="Ray CPU counts to measure (default: 1 and all cores)",
    )
    pipeline_bench.add_argument("--workdir", default="out/bench")
    pipeline_bench.add_argument("--seed", type=int, default=0)
    pipeline_bench.set_defaults(handler=_bench_pipeline)

    dedup_bench = bench.add_parser(
        "dedup", help="near dedup vs datasketch and DataTrove: signatures, quality, wall time"
    )
    dedup_bench.add_argument(
        "--records", type=int, default=20_000, help="benchmark records per language"
    )
    dedup_bench.add_argument("--threshold", type=float, nargs="+", default=[0.7, 0.8])
    dedup_bench.add_argument("--languages", nargs="+", choices=["en", "zh"], default=["en", "zh"])
    dedup_bench.add_argument(
        "--datatrove",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run DataTrove (in its own venv under .bench/datatrove)",
    )
    dedup_bench.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="Ray CPUs and DataTrove workers"
    )
    dedup_bench.add_argument(
        "--near-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a near_dedup option for instructflow's runs, e.g. word_ngram=3 (repeatable)",
    )
    dedup_bench.add_argument(
        "--corpus",
        choices=["labelled", "natural"],
        default="labelled",
        help="labelled: edited variants of one text (bench.corpora.labelled_dedup); natural: "
        "one passage under several datasets' templates (bench.corpora.natural_dedup)",
    )
    dedup_bench.add_argument(
        "--passages", type=int, default=3_000, help="natural corpus: source passages"
    )
    dedup_bench.add_argument(
        "--system",
        action="append",
        default=[],
        help="natural corpus: run only these of instructflow's settings (repeatable; "
        "default all, e.g. 'instructflow defaults')",
    )
    dedup_bench.add_argument(
        "--cold-run",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="natural corpus: also time the defaults as `instructflow data run` in a fresh process",
    )
    dedup_bench.add_argument("--signature-docs", type=int, default=2_000)
    dedup_bench.add_argument("--workdir", default=".bench/dedup")
    dedup_bench.add_argument("--seed", type=int, default=0)
    dedup_bench.add_argument("--json-out", help="also write the results here as JSON")
    dedup_bench.set_defaults(handler=_bench_dedup)

    memory_bench = bench.add_parser(
        "dedup-memory", help="peak Ray worker memory of exact + near dedup per corpus size"
    )
    memory_bench.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    memory_bench.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    memory_bench.add_argument("--workdir", default=".bench/dedup")
    memory_bench.add_argument("--seed", type=int, default=0)
    memory_bench.add_argument("--json-out", help="also write the results here as JSON")
    memory_bench.add_argument(
        "--partition-mb",
        type=int,
        default=16,
        help="shuffle partitions and output shards of this size; small enough that every "
        "worker runs several batches of the smallest corpus (default 16)",
    )
    memory_bench.add_argument(
        "--near-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a near_dedup option, e.g. max_component_rows=256 (repeatable)",
    )
    memory_bench.add_argument(
        "--corpus",
        choices=["fixed-rate", "templates"],
        default="fixed-rate",
        help="fixed-rate: duplicates and 400-member families at the same rates at every size "
        "(default); templates: bench.corpora, whose chance near duplicates grow with the corpus",
    )
    memory_bench.set_defaults(handler=_bench_dedup_memory)

    quality_bench = bench.add_parser(
        "quality", help="quality scoring and stratified sampling vs a plain one-process loop"
    )
    quality_bench.add_argument("--records", type=int, default=100_000)
    quality_bench.add_argument(
        "--train-records", type=int, default=20_000, help="labelled records the model learns from"
    )
    quality_bench.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="Ray CPUs and quality actors"
    )
    quality_bench.add_argument("--workdir", default=".bench/quality")
    quality_bench.add_argument("--seed", type=int, default=0)
    quality_bench.add_argument("--json-out", help="also write the results here as JSON")
    quality_bench.set_defaults(handler=_bench_quality)

    augment_bench = bench.add_parser(
        "augment", help="back-translation sentences/s: a tiny MarianMT, and --model if given"
    )
    augment_bench.add_argument("--sentences", type=int, default=512)
    augment_bench.add_argument("--batch-size", type=int, default=32, help="generation batch")
    augment_bench.add_argument(
        "--model", help="also time this model: a hub id in the local cache, or a directory"
    )
    augment_bench.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto: CUDA when torch sees a GPU, else CPU",
    )
    augment_bench.add_argument("--workdir", default="out/bench-augment")
    augment_bench.add_argument("--json-out", help="also write the results here as JSON")
    augment_bench.set_defaults(handler=_bench_augment)

    sft_bench = bench.add_parser(
        "sft",
        help="SFT tokens/s: plain PyTorch loop vs Ray Train, packed vs unpacked, GPU MFU",
    )
    sft_bench.add_argument("--records", type=int, default=2_000, help="mixed-length records")
    sft_bench.add_argument("--size", choices=["tiny", "small", "0.5b"], default="small")
    sft_bench.add_argument("--vocab-size", type=int, default=2048)
    sft_bench.add_argument("--max-length", type=int, default=512)
    sft_bench.add_argument(
        "--prompt-format",
        choices=["instruction_output", "alpaca", "chat"],
        default="instruction_output",
    )
    sft_bench.add_argument("--micro-batch-size", type=int, default=4)
    sft_bench.add_argument("--learning-rate", type=float, default=1e-3)
    sft_bench.add_argument("--min-words", type=int, default=10, help="shortest reply")
    sft_bench.add_argument("--max-words", type=int, default=400, help="longest reply")
    sft_bench.add_argument("--gpu-size", choices=["tiny", "small", "0.5b"], default="0.5b")
    sft_bench.add_argument("--gpu-micro-batch-size", type=int, default=16)
    sft_bench.add_argument("--gpu-steps", type=int, default=60)
    sft_bench.add_argument(
        "--peak-flops", type=float, default=989e12, help="for MFU (H100 bf16 dense: 989e12)"
    )
    sft_bench.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="cuda: add the GPU MFU section"
    )
    add_training_bench_flags(sft_bench, "sft")
    sft_bench.set_defaults(handler=_bench_sft)

    dpo_bench = bench.add_parser(
        "dpo",
        help="DPO tokens/s: plain PyTorch loop vs Ray Train, stored vs in-process reference",
    )
    dpo_bench.add_argument("--records", type=int, default=2_000, help="mixed-length pairs")
    dpo_bench.add_argument("--size", choices=["tiny", "small", "0.5b"], default="small")
    dpo_bench.add_argument("--max-length", type=int, default=512)
    dpo_bench.add_argument("--micro-batch-size", type=int, default=4, help="pairs")
    dpo_bench.add_argument("--loss", choices=["sigmoid", "ipo", "kto"], default="sigmoid")
    dpo_bench.add_argument("--beta", type=float, default=0.1)
    dpo_bench.add_argument(
        "--memory-steps", type=int, default=10, help="steps of each peak-RSS subprocess"
    )
    dpo_bench.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="cuda: add the GPU section"
    )
    add_training_bench_flags(dpo_bench, "dpo")
    dpo_bench.set_defaults(handler=_bench_dpo)

    rl_bench = bench.add_parser(
        "rl",
        help="RL step: generation / reward / update seconds, plain PyTorch loop vs Ray Train",
    )
    rl_bench.add_argument("--prompts", type=int, default=64, help="constrained instructions")
    rl_bench.add_argument("--size", choices=["tiny", "small", "0.5b"], default="tiny")
    rl_bench.add_argument("--prompts-per-step", type=int, default=8)
    rl_bench.add_argument("--samples-per-prompt", type=int, default=4)
    rl_bench.add_argument("--max-new-tokens", type=int, default=32)
    rl_bench.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto: the GPU and vLLM sections when torch sees CUDA, skipped with a note otherwise",
    )
    add_training_bench_flags(rl_bench, "rl", windows=False)
    rl_bench.set_defaults(handler=_bench_rl, steps=40, warmup_steps=10)

    novelty_bench = bench.add_parser(
        "novelty",
        help="the ROUGE-L novelty filter: instructflow on Ray vs Self-Instruct's all-pairs",
    )
    novelty_bench.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000], help="instructions"
    )
    novelty_bench.add_argument(
        "--all-pairs-max",
        type=int,
        default=10_000,
        help="time the all-pairs filter up to this size; extrapolate its comparisons above",
    )
    novelty_bench.add_argument("--threshold", type=float, default=0.7, help="ROUGE-L")
    novelty_bench.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    novelty_bench.add_argument(
        "--corpus", help="JSON/JSONL of alpaca records or strings (default: generated)"
    )
    novelty_bench.add_argument("--seed", type=int, default=0)
    novelty_bench.add_argument("--json-out", help="also write the results here as JSON")
    novelty_bench.set_defaults(handler=_bench_novelty)

    curation_bench = bench.add_parser(
        "curation",
        help="held-out loss of the same tiny model and token budget on the raw vs curated corpus",
    )
    curation_bench.add_argument(
        "--corpus",
        help="a JSON array or JSONL file of records (default: the shared alpaca_en_demo.json)",
    )
    curation_bench.add_argument("--records", type=int, help="the corpus's first N (default: all)")
    curation_bench.add_argument("--heldout-fraction", type=float, default=0.15)
    curation_bench.add_argument("--split-seed", type=int, default=0, help="the held-out hash")
    curation_bench.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    curation_bench.add_argument("--size", choices=["tiny", "small", "0.5b"], default="small")
    curation_bench.add_argument("--vocab-size", type=int, default=2048)
    curation_bench.add_argument("--max-length", type=int, default=512)
    curation_bench.add_argument("--micro-batch-size", type=int, default=4, help="packed rows")
    curation_bench.add_argument("--steps", type=int, default=120, help="the budget, both arms")
    curation_bench.add_argument("--learning-rate", type=float, default=1e-3)
    curation_bench.add_argument("--warmup-steps", type=int, default=10)
    curation_bench.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    curation_bench.add_argument("--workdir", default=".bench/curation")
    curation_bench.add_argument("--json-out", help="also write the results here as JSON")
    curation_bench.set_defaults(handler=_bench_curation)
