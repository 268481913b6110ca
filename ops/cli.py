"""The ``instructflow`` command line. Parses arguments and calls ops; holds no stage logic."""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import sys
from collections.abc import Sequence

from pipeline.config import RecipeError


def _data_validate(args: argparse.Namespace) -> int:
    from ops.recipe import load_recipe, preflight

    recipe = load_recipe(args.recipe, args.set)
    if not args.no_preflight:
        preflight(recipe, args.recipe, overwrite=True)
    print(
        f"{args.recipe}: valid ({len(recipe.inputs)} inputs, {len(recipe.stages)} stages, "
        f"output {recipe.output.path})"
    )
    return 0


def _data_run(args: argparse.Namespace) -> int:
    from ops.datarun import run_data

    outcome = run_data(
        args.recipe,
        args.set,
        address=args.address,
        overwrite=args.overwrite,
        resume=args.resume,
        progress_bars=False if args.no_progress else None,
    )
    conservation = outcome.stats["conservation"]
    print(
        f"\ninput {conservation['input']} -> output {conservation['output']}, "
        f"rejects {conservation['rejects']}, quarantine {conservation['quarantine']}"
    )
    print(f"shards:  {posixpath.join(outcome.output_path, 'data')}/")
    print(f"report:  {posixpath.join(outcome.output_path, 'report.html')}")
    print(f"inspect: instructflow data inspect {outcome.output_path}")
    return 0


def _data_inspect(args: argparse.Namespace) -> int:
    from ops.report import terminal_summary
    from pipeline.checkpoint import unfinished_run_problem
    from pipeline.read import open_filesystem

    problem = unfinished_run_problem(args.output)
    if problem:
        print(f"{args.output}: {problem}", file=sys.stderr)
        return 2
    documents = {}
    for name in ("stats.json", "manifest.json"):
        filesystem, path = open_filesystem(posixpath.join(args.output, name))
        try:
            with filesystem.open_input_stream(path) as stream:
                documents[name] = json.loads(stream.read())
        except FileNotFoundError:
            print(
                f"{args.output}: no {name}; is this the output of `instructflow data run`?",
                file=sys.stderr,
            )
            return 2
    print(terminal_summary(documents["stats.json"], documents["manifest.json"]))
    return 0


def _train_sft(args: argparse.Namespace) -> int:
    from ops.trainrun import run_sft

    summary = run_sft(
        args.recipe, args.set, address=args.address, resume=args.resume, overwrite=args.overwrite
    )
    for which in ("best", "last"):
        entry = summary[which]
        if entry:
            loss = entry.get("val_loss", entry.get("train_loss"))
            print(f"{which}: {entry['path']} (step {entry.get('step')}, loss {loss:.4f})")
    print(f"generate: instructflow generate {summary['best']['path']} --prompt '...'")
    return 0


def _train_tiny_model(args: argparse.Namespace) -> int:
    from train.tiny import save_tiny_model

    path = save_tiny_model(
        args.data,
        args.out,
        kind=args.kind,
        size=args.size,
        vocab_size=args.vocab_size,
        seed=args.seed,
    )
    print(f"{path}: {args.size} {args.kind} model and a tokenizer trained on {args.data}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from ops.generate import generate_batch, generate_one

    if (args.prompt is None) == (args.input is None):
        print("error: give either --prompt TEXT or --input PARQUET --output DIR", file=sys.stderr)
        return 2
    if args.prompt is not None:
        reply = generate_one(args.checkpoint, args.prompt, args.system, args.max_new_tokens)
        print(reply if reply else "(empty reply: only whitespace or end tokens were generated)")
        return 0
    if not args.output:
        print("error: --input needs --output DIR", file=sys.stderr)
        return 2
    from ops.cluster import connect

    connect(args.address, progress_bars=not args.no_progress)
    rows = generate_batch(
        args.checkpoint,
        args.input,
        args.output,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        use_gpu=args.gpu,
    )
    print(f"{rows} responses -> {args.output}")
    return 0


def _bench_pipeline(args: argparse.Namespace) -> int:
    from ops.bench import bench_pipeline

    bench_pipeline(records=args.records, cpus=args.cpus, workdir=args.workdir, seed=args.seed)
    return 0


def _bench_dedup(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ops.bench_dedup import BenchSettings, bench_dedup, check_settings, parse_options

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


def _bench_dedup_memory(args: argparse.Namespace) -> int:
    from ops.bench_dedup import bench_dedup_memory, parse_options

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

    from ops.bench_quality import QualityBenchSettings, bench_quality, check_settings

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
    from ops.bench_augment import bench_augment, wants_gpu

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

    from ops.bench_sft import SFTBenchSettings, bench_sft, check_settings

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="instructflow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="the data engine").add_subparsers(
        dest="action", required=True
    )
    validate = data.add_parser("validate", help="validate a recipe without running it")
    validate.add_argument("recipe")
    validate.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")
    validate.add_argument(
        "--no-preflight", action="store_true", help="check the recipe's shape only, not its paths"
    )
    validate.set_defaults(handler=_data_validate)

    run = data.add_parser("run", help="run a recipe on Ray")
    run.add_argument("recipe")
    run.add_argument("--address", help="Ray cluster address (default: embedded local Ray)")
    run.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")
    again = run.add_mutually_exclusive_group()
    again.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a previous run's output (only the files that run recorded)",
    )
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue a killed run from its last checkpoint and the shards it staged",
    )
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.set_defaults(handler=_data_run)

    inspect = data.add_parser("inspect", help="summarise a finished run in the terminal")
    inspect.add_argument("output")
    inspect.set_defaults(handler=_data_inspect)

    train = commands.add_parser("train", help="training recipes").add_subparsers(
        dest="action", required=True
    )
    sft = train.add_parser("sft", help="supervised fine-tuning on Ray Train")
    sft.add_argument("recipe")
    sft.add_argument("--address", help="Ray cluster address (default: embedded local Ray)")
    sft.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")
    resume = sft.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in output.path from its last checkpoint",
    )
    resume.add_argument(
        "--overwrite", action="store_true", help="delete the run in output.path and start again"
    )
    sft.set_defaults(handler=_train_sft)

    tiny = train.add_parser(
        "tiny-model", help="a model built from a config, with a tokenizer trained on a run's shards"
    )
    tiny.add_argument("data", help="an `instructflow data run` output directory")
    tiny.add_argument("out", help="where to save the model and tokenizer")
    tiny.add_argument("--kind", choices=["causal", "seq2seq"], default="causal")
    tiny.add_argument("--size", choices=["tiny", "small", "0.5b"], default="tiny")
    tiny.add_argument("--arch", choices=["t5", "bart"], default="t5", help="seq2seq only")
    tiny.add_argument("--vocab-size", type=int, default=2048)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(handler=_train_tiny_model)

    generate = commands.add_parser("generate", help="replies from a trained checkpoint")
    generate.add_argument("checkpoint", help="a checkpoint, or a `train sft` output (its best)")
    generate.add_argument("--prompt", help="one prompt; the reply is printed")
    generate.add_argument("--system", default="", help="a system prompt for --prompt")
    generate.add_argument("--input", help="Parquet: a 'prompt' column, or canonical records")
    generate.add_argument("--output", help="directory for the Parquet replies (with --input)")
    generate.add_argument("--max-new-tokens", type=int, default=128)
    generate.add_argument("--batch-size", type=int, default=16)
    generate.add_argument("--gpu", action="store_true", help="one GPU per generation actor")
    generate.add_argument("--address", help="Ray cluster address (batch mode)")
    generate.add_argument("--no-progress", action="store_true")
    generate.set_defaults(handler=_generate)

    from ops.quality import add_quality_commands

    add_quality_commands(commands)

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
        "(default); templates: ops.synthetic, whose chance near duplicates grow with the corpus",
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
    sft_bench.add_argument("--steps", type=int, default=120, help="per loop, warm-up included")
    sft_bench.add_argument("--log-every-steps", type=int, default=10, help="the tokens/s window")
    sft_bench.add_argument("--warmup-steps", type=int, default=20, help="not timed, every side")
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
        "--cpus", type=int, default=os.cpu_count() or 1, help="Ray worker CPUs = torch threads"
    )
    sft_bench.add_argument(
        "--ray",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run instructflow train sft on Ray Train",
    )
    sft_bench.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="cuda: add the GPU MFU section"
    )
    sft_bench.add_argument("--workdir", default=".bench/sft")
    sft_bench.add_argument("--seed", type=int, default=0)
    sft_bench.add_argument("--json-out", help="also write the results here as JSON")
    sft_bench.set_defaults(handler=_bench_sft)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except RecipeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # the clear one-line cause instead of a worker traceback
        from ops.datarun import PipelineError
        from ops.generate import CheckpointError
        from ops.trainrun import TrainError
        from pipeline.accounting import ConservationError
        from pipeline.checkpoint import ResumeError

        clear = PipelineError | ConservationError | TrainError | CheckpointError | ResumeError
        if isinstance(error, clear):
            print(f"error: {error}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
