"""``instructflow feedback``: the loop from a checkpoint's answers to new training data.

    instructflow feedback generate CKPT --input prompts.parquet --output out/samples --samples 4
    instructflow feedback import out/samples --db feedback.db
    instructflow feedback serve --db feedback.db            # http://127.0.0.1:8765/
    instructflow feedback rate --db feedback.db --rater rules
    instructflow feedback rate --db feedback.db --rater reference   # chrF vs the record's reply
    instructflow feedback rate --db feedback.db --rater judge --judge-url http://host/v1 \\
        --judge-model qwen2.5-72b-instruct --api-key-env JUDGE_API_KEY
    instructflow feedback agreement --db feedback.db
    instructflow feedback export --db feedback.db out/feedback --margin 1
    instructflow data run out/feedback/recipe.yaml

``--db`` is a file path (SQLite) or any SQLAlchemy URL (``postgresql+psycopg://...``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

DEFAULT_DB = "feedback.db"


def _generate(args: argparse.Namespace) -> int:
    from ops.cluster import connect
    from train.generate import SamplingSettings, generate_samples

    settings = SamplingSettings(
        samples=args.samples,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
    )
    connect(args.address, progress_bars=not args.no_progress)
    prompts = generate_samples(
        args.checkpoint,
        args.input,
        args.output,
        settings,
        batch_size=args.batch_size,
        workers=args.workers,
        use_gpu=args.gpu,
        engine=args.engine,
    )
    print(f"{prompts} prompts x {args.samples} candidates -> {args.output}")
    print(f"next: instructflow feedback import {args.output} --db {DEFAULT_DB}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from ops.feedback.items import import_samples
    from ops.feedback.store import Store

    store = Store(args.db)
    for path in args.samples:
        added, already = import_samples(store, path)
        print(f"{path}: {added} items added, {already} already in {store.url}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from ops.feedback.server import FeedbackServer
    from ops.feedback.store import Store

    try:
        server = FeedbackServer(
            Store(args.db), args.host, args.port, args.max_body_bytes, verbose=args.verbose
        )
    except OSError as error:
        print(f"error: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    print(f"annotate at {server.url} (database {server.store.url}); Ctrl+C stops")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _rate(args: argparse.Namespace) -> int:
    from ops.feedback.raters import JudgeConfig, make_rater, rate
    from ops.feedback.store import Store

    judge = None
    if args.rater == "judge" and args.judge_url and args.judge_model:
        judge = JudgeConfig(
            base_url=args.judge_url,
            model=args.judge_model,
            api_key_env=args.api_key_env or None,
            concurrency=args.concurrency,
            timeout_s=args.timeout,
            retries=args.retries,
        )
    rater = make_rater(args.rater, judge)
    concurrency = judge.concurrency if judge else 1
    summary = rate(Store(args.db), rater, concurrency=concurrency, redo=args.redo)
    print(f"{rater.name}: {summary.rated} candidates rated, {summary.failed} failures recorded")
    return 1 if summary.failed and not summary.rated else 0


def _agreement(args: argparse.Namespace) -> int:
    from ops.feedback.agreement import agreement_report, format_report
    from ops.feedback.items import best_picks, ratings
    from ops.feedback.store import Store

    store = Store(args.db)
    report = agreement_report(ratings(store), best_picks(store))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _export(args: argparse.Namespace) -> int:
    from ops.feedback.export import ExportRules, write_export
    from ops.feedback.store import Store

    rules = ExportRules(
        margin=args.margin,
        desirable=args.desirable,
        undesirable=args.undesirable,
        annotators=tuple(args.annotator),
    )
    summary = write_export(Store(args.db), args.output, rules, overwrite=args.overwrite)
    counts = summary["counts"]
    print(
        f"{counts['sft']} SFT records, {counts['pairs']} preference pairs, "
        f"{counts['kto']} KTO records -> {args.output}"
    )
    if summary["formats_the_engine_cannot_read_yet"]:
        waiting = ", ".join(summary["formats_the_engine_cannot_read_yet"])
        print(f"left out of recipe.yaml (no converter in the data engine yet): {waiting}")
    if summary["recipe"]:
        print(f"next: instructflow data run {summary['recipe']}")
    return 0


def _reported(handler: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """Bad input and database errors as one line naming the cause, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        from pydantic import ValidationError
        from sqlalchemy.exc import SQLAlchemyError

        from ops.feedback.store import FeedbackError
        from train.generate import CheckpointError

        try:
            return handler(args)
        except (FeedbackError, CheckpointError) as error:
            print(f"error: {error}", file=sys.stderr)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e['input']!r})"
                for e in error.errors()
            )
            print(f"error: {problems}", file=sys.stderr)
        except SQLAlchemyError as error:
            print(
                f"error: database {args.db}: {error.__class__.__name__}: {error}", file=sys.stderr
            )
        return 2

    return run


def _database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=DEFAULT_DB,
        help=f"SQLite file or SQLAlchemy URL (default {DEFAULT_DB})",
    )


def _add_generate(actions: Any) -> None:
    from train.generate import SamplingSettings

    defaults = SamplingSettings()
    generate = actions.add_parser("generate", help="N sampled candidates per prompt, seeded")
    generate.add_argument("checkpoint", help="a checkpoint, or a `train sft` output (its best)")
    generate.add_argument("--input", required=True, help="Parquet: 'prompt' or canonical records")
    generate.add_argument("--output", required=True, help="directory for the Parquet candidates")
    generate.add_argument("--samples", type=int, default=defaults.samples)
    generate.add_argument("--temperature", type=float, default=defaults.temperature)
    generate.add_argument("--top-p", type=float, default=defaults.top_p)
    generate.add_argument("--seed", type=int, default=defaults.seed)
    generate.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    generate.add_argument("--batch-size", type=int, default=8)
    generate.add_argument("--workers", type=int, help="actors (default: one per CPU or GPU)")
    generate.add_argument("--gpu", action="store_true", help="one GPU per generation actor")
    generate.add_argument(
        "--engine",
        choices=["auto", "transformers", "vllm"],
        default="auto",
        help="auto: vLLM on GPUs when it is installed, else transformers",
    )
    generate.add_argument("--address", help="Ray cluster address (default: embedded local Ray)")
    generate.add_argument("--no-progress", action="store_true")
    generate.set_defaults(handler=_reported(_generate), db=None)


def _add_rate(actions: Any) -> None:
    rate = actions.add_parser(
        "rate", help="automatic ratings: rule checks, closeness to the reference or an LLM judge"
    )
    _database(rate)
    rate.add_argument("--rater", choices=["rules", "reference", "judge"], required=True)
    rate.add_argument("--judge-url", help="OpenAI-compatible base URL (…/v1)")
    rate.add_argument("--judge-model", help="the model name the endpoint serves")
    rate.add_argument("--api-key-env", default="OPENAI_API_KEY", help="variable holding the key")
    rate.add_argument("--concurrency", type=int, default=4, help="judge requests at a time")
    rate.add_argument("--timeout", type=float, default=60.0, help="seconds per judge request")
    rate.add_argument("--retries", type=int, default=3, help="retries on 429/5xx/timeouts")
    rate.add_argument("--redo", action="store_true", help="rate again what is already rated")
    rate.set_defaults(handler=_reported(_rate))


def add_feedback_commands(subparsers: Any) -> None:
    """Registers ``instructflow feedback ...`` on the CLI's top-level subparsers."""
    feedback = subparsers.add_parser("feedback", help="rate a checkpoint's answers, export data")
    actions = feedback.add_subparsers(dest="action", required=True)
    _add_generate(actions)

    load = actions.add_parser("import", help="load `feedback generate` output into the database")
    _database(load)
    load.add_argument("samples", nargs="+", help="Parquet files or directories")
    load.set_defaults(handler=_reported(_import))

    serve = actions.add_parser("serve", help="the annotation web app")
    _database(serve)
    serve.add_argument("--host", default="127.0.0.1", help="default loopback only")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--max-body-bytes", type=int, default=256 * 1024)
    serve.add_argument("--verbose", action="store_true", help="log every request")
    serve.set_defaults(handler=_reported(_serve))

    _add_rate(actions)

    agreement = actions.add_parser("agreement", help="inter-annotator agreement")
    _database(agreement)
    agreement.add_argument("--json", action="store_true")
    agreement.set_defaults(handler=_reported(_agreement))

    export = actions.add_parser("export", help="corrections, pairs and KTO records as data")
    _database(export)
    export.add_argument("output", help="directory for sft/pairs/kto.jsonl and recipe.yaml")
    export.add_argument("--margin", type=float, default=1.0, help="least mean-score gap of a pair")
    export.add_argument("--desirable", type=float, default=4.0, help="KTO true at this mean or up")
    export.add_argument("--undesirable", type=float, default=2.0, help="KTO false at or below")
    export.add_argument("--annotator", action="append", default=[], help="only these (repeatable)")
    export.add_argument("--overwrite", action="store_true")
    export.set_defaults(handler=_reported(_export))
