"""The ``instructflow`` command line. Parses arguments and calls ops; holds no stage logic."""

from __future__ import annotations

import argparse
import json
import posixpath
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pipeline.config import Problem, RecipeError

USAGE = """\
Turn raw text and instruction corpora into clean instruction data, then fine-tune
models on it, on Ray (a local Ray is started when no cluster is given).

  instructflow data validate recipe.yaml      check a recipe without running it
  instructflow data run recipe.yaml           read, clean, filter, dedup, write shards
  instructflow train sft sft.yaml             fine-tune on the shards
  instructflow generate out/model --prompt "..."
  instructflow submit --address http://head:8265 --wait -- instructflow data run recipe.yaml

Each command has its own --help. Errors are one line; --debug shows the traceback.
"""


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
    resumed = outcome.stats.get("resumed")
    if resumed:
        start = resumed["from"] or "the start (no checkpoint was complete)"
        print(f"\nresumed from {start}; {resumed['shards_reused']} staged shards reused")
    created = conservation.get("created", 0)
    print(
        f"\ninput {conservation['input']}"
        + (f" + created {created}" if created else "")
        + f" -> output {conservation['output']}, "
        f"rejects {conservation['rejects']}, quarantine {conservation['quarantine']}"
    )
    for stage in outcome.stats["stages"]:
        if stage.get("created"):
            print(
                f"  {stage['stage']}: created {stage['created']}; dropped by reason "
                f"{json.dumps(stage['dropped'], sort_keys=True)}"
            )
    if any(source.format == "auto" for source in outcome.recipe.inputs):
        chosen = outcome.stats.get("mix", {}).get("source_format", {})
        print(
            "format auto chose: "
            + (", ".join(f"{name} ({count} records)" for name, count in chosen.items()) or "-")
            + "; set inputs[].format to choose yourself"
        )
    print(f"shards:  {posixpath.join(outcome.output_path, 'data')}/")
    print(f"report:  {posixpath.join(outcome.output_path, 'report.html')}")
    print(f"inspect: instructflow data inspect {outcome.output_path}")
    return 0


# The stages that make new records with a model; `data generate` wants at least one.
GENERATING_STAGES = ("self_instruct", "evol_instruct", "answer", "describe_to_instruction")


def _data_generate(args: argparse.Namespace) -> int:
    from ops.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.set)
    if not any(spec.name in GENERATING_STAGES for spec in recipe.stages):
        problem = Problem(
            path="stages",
            message=f"no stage generates; `data generate` needs one of {list(GENERATING_STAGES)} "
            "(a recipe without them is `data run`)",
            value=[spec.name for spec in recipe.stages],
        )
        raise RecipeError([problem], source=args.recipe)
    return _data_run(args)


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


def print_checkpoints(summary: dict[str, Any]) -> None:
    """The best and last checkpoints a training run left, with their step and loss."""
    for which in ("best", "last"):
        entry = summary[which]
        if not entry:
            continue
        loss = entry.get("val_loss", entry.get("train_loss"))
        if loss is not None:
            measure = f"loss {loss:.4f}"
        else:  # RL checkpoints are ranked by reward
            measure = f"reward {entry.get('val_reward', entry.get('train_reward', 0.0)):.4f}"
        print(f"{which}: {entry['path']} (step {entry.get('step')}, {measure})")


def _train_sft(args: argparse.Namespace) -> int:
    from ops.trainrun import run_sft

    summary = run_sft(
        args.recipe, args.set, address=args.address, resume=args.resume, overwrite=args.overwrite
    )
    print_checkpoints(summary)
    print(f"generate: instructflow generate {summary['best']['path']} --prompt '...'")
    return 0


def _train_dpo(args: argparse.Namespace) -> int:
    from ops.trainrun import run_dpo, validation_before_after

    summary = run_dpo(
        args.recipe, args.set, address=args.address, resume=args.resume, overwrite=args.overwrite
    )
    print_checkpoints(summary)
    before, after = validation_before_after(summary)
    for name in ("reward_accuracy", "likelihood_accuracy", "reward_margin"):
        if name in after:
            start = f"{before[name]:.3f} (step 0) -> " if name in before else ""
            print(f"held-out {name.replace('_', ' ')}: {start}{after[name]:.3f}")
    print(f"generate: instructflow generate {summary['best']['path']} --prompt '...'")
    return 0


def _train_rl(args: argparse.Namespace) -> int:
    from ops.trainrun import run_rl, validation_before_after

    summary = run_rl(
        args.recipe, args.set, address=args.address, resume=args.resume, overwrite=args.overwrite
    )
    print_checkpoints(summary)
    before, after = validation_before_after(summary)
    names = ["reward"] + sorted(
        name for name in after if name != "reward" and name.count("/") == 0 and "_" not in name
    )
    for name in names:
        if name in after:
            start = f"{before[name]:.3f} (step 0) -> " if name in before else ""
            print(f"held-out prompts, mean {name}: {start}{after[name]:.3f}")
    print(f"evaluate: instructflow eval ifeval {summary['best']['path']} --prompts ...")
    return 0


def _eval_ifeval(args: argparse.Namespace) -> int:
    from train.evaluate_ifeval import (
        METRICS_FILE,
        RESPONSES_FILE,
        check_constraints,
        evaluate_ifeval,
        prompt_source,
        report_lines,
    )
    from train.generate import resolve_checkpoint

    # Everything that needs no Ray first: the checkpoint, the prompts' shape, every constraint.
    checkpoint = resolve_checkpoint(args.checkpoint)
    source = prompt_source(args.prompts)
    kinds = check_constraints(source)
    print(
        f"{args.prompts}: {source.shape} prompts, {sum(kinds.values())} constraints "
        f"of {len(kinds)} kinds; answering with {checkpoint}"
    )
    from ops.cluster import connect

    connect(args.address, progress_bars=not args.no_progress)
    report = evaluate_ifeval(
        checkpoint,
        source,
        output=args.output,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        use_gpu=args.gpu,
    )
    print("\n".join(report_lines(report)))
    if args.output:
        metrics = posixpath.join(args.output, METRICS_FILE)
        print(f"metrics: {metrics}; responses: {posixpath.join(args.output, RESPONSES_FILE)}")
    return 0


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: needs a whole number of at least 1")
    return value


def _train_tiny_model(args: argparse.Namespace) -> int:
    from train.tiny import save_tiny_model

    kind, arch = tiny_kind_and_arch(args.kind, args.arch)
    path = save_tiny_model(
        args.data,
        args.out,
        kind=kind,
        size=args.size,
        vocab_size=args.vocab_size,
        seed=args.seed,
        arch=arch,
    )
    print(f"{path}: {args.size} {arch} ({kind}) model and a tokenizer trained on {args.data}")
    return 0


TINY_ARCH_KINDS = {"llama": "causal", "t5": "seq2seq", "bart": "seq2seq"}


def tiny_kind_and_arch(kind: str | None, arch: str | None) -> tuple[str, str]:
    """``--kind`` and ``--arch`` of ``train tiny-model``: either implies the other (causal:
    llama, seq2seq: t5); a contradiction is an error naming both."""
    if arch is None:
        kind = kind or "causal"
        return kind, "llama" if kind == "causal" else "t5"
    implied = TINY_ARCH_KINDS[arch]
    if kind is not None and kind != implied:
        raise SystemExit(f"error: --arch {arch} is a {implied} model, not --kind {kind}")
    return implied, arch


def _generate(args: argparse.Namespace) -> int:
    from train.generate import generate_batch, generate_one

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


def _serve(args: argparse.Namespace) -> int:
    import os
    import signal
    import threading

    from ops.serve import API_KEY_ENV, ServeError, checkpoint_problem, make_server

    problem = checkpoint_problem(args.checkpoint)  # before torch is imported
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        server = make_server(
            args.checkpoint,
            args.host,
            args.port,
            served_model_name=args.served_model_name,
            device=args.device,
            dtype=args.dtype,
            api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
            max_tokens_limit=args.max_tokens_limit,
            log_requests=not args.quiet,
        )
    except (ServeError, OSError) as error:  # a bad device or dtype, a port in use
        print(f"error: {error}", file=sys.stderr)
        return 2

    def stop(signum: int, frame: Any) -> None:
        # shutdown() waits for serve_forever's loop, so it runs off the main thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    # Before the address is printed: whoever reads it may signal at once.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    model = server.model
    print(
        f"serving {server.model_name} ({model.device}, {model.dtype}) at {server.url}", flush=True
    )
    print("Ctrl+C stops", flush=True)

    server.serve_forever()
    server.server_close()
    print("stopped", file=sys.stderr, flush=True)
    sys.stdout.flush()
    # Nothing is left to clean up; skipping the interpreter's teardown avoids native
    # libraries' thread pools aborting the process at exit (seen as SIGABRT on CI).
    os._exit(0)


def add_training_command(
    train: Any, name: str, help_text: str, handler: Callable[[argparse.Namespace], int]
) -> None:
    """``train <name> RECIPE``: every training method takes the same flags."""
    command = train.add_parser(name, help=help_text)
    command.add_argument("recipe")
    command.add_argument("--address", help="Ray cluster address (default: embedded local Ray)")
    command.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")
    again = command.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in output.path from its last checkpoint",
    )
    again.add_argument(
        "--overwrite", action="store_true", help="delete the run in output.path and start again"
    )
    command.set_defaults(handler=handler)


def add_data_run_command(data: Any, verb: str, help_text: str) -> None:
    run = data.add_parser(verb, help=help_text)
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
    run.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress lines (a line per stage, records in -> out, on stderr)",
    )
    run.set_defaults(handler=_data_generate if verb == "generate" else _data_run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="instructflow",
        description=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version_line())
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an error, show the full traceback instead of one line",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    for verb, help_text in (
        ("run", "run a recipe on Ray"),
        ("generate", "run a recipe whose stages generate instructions (self_instruct, ...)"),
    ):
        add_data_run_command(data, verb, help_text)

    inspect = data.add_parser("inspect", help="summarise a finished run in the terminal")
    inspect.add_argument("output")
    inspect.set_defaults(handler=_data_inspect)

    train = commands.add_parser("train", help="training recipes").add_subparsers(
        dest="action", required=True
    )
    add_training_command(train, "sft", "supervised fine-tuning on Ray Train", _train_sft)
    add_training_command(
        train,
        "dpo",
        "preference optimisation (DPO, IPO, cDPO, SimPO, ORPO, KTO) on Ray Train",
        _train_dpo,
    )
    add_training_command(
        train,
        "rl",
        "RL with verifiable rewards (GRPO, RLOO, REINFORCE) on Ray Train",
        _train_rl,
    )

    tiny = train.add_parser(
        "tiny-model", help="a model built from a config, with a tokenizer trained on a run's shards"
    )
    tiny.add_argument("data", help="an `instructflow data run` output directory")
    tiny.add_argument("out", help="where to save the model and tokenizer")
    tiny.add_argument(
        "--kind",
        choices=["causal", "seq2seq"],
        help="causal (default) or seq2seq (--arch implies it)",
    )
    tiny.add_argument("--size", choices=["tiny", "small", "0.5b"], default="tiny")
    tiny.add_argument(
        "--arch",
        choices=sorted(TINY_ARCH_KINDS),
        help="llama (causal), t5 or bart (seq2seq); default: llama, or t5 with --kind seq2seq",
    )
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

    evaluation = commands.add_parser("eval", help="evaluate a checkpoint").add_subparsers(
        dest="action", required=True
    )
    ifeval = evaluation.add_parser(
        "ifeval", help="IFEval's instruction-following accuracy, strict and loose, per kind"
    )
    ifeval.add_argument("checkpoint", help="a checkpoint, or a training output (its best)")
    ifeval.add_argument(
        "--prompts",
        required=True,
        help="records with constraints (the constrain stage's output), or IFEval's "
        "prompt/instruction_id_list/kwargs rows (JSONL or Parquet)",
    )
    ifeval.add_argument(
        "--output", help="directory for ifeval.json (metrics) and responses.parquet"
    )
    ifeval.add_argument("--max-new-tokens", type=positive_int, default=256)
    ifeval.add_argument(
        "--batch-size", type=positive_int, default=16, help="prompts per generate call"
    )
    ifeval.add_argument("--gpu", action="store_true", help="one GPU per generation actor")
    ifeval.add_argument("--address", help="Ray cluster address (default: embedded local Ray)")
    ifeval.add_argument("--no-progress", action="store_true")
    ifeval.set_defaults(handler=_eval_ifeval)

    from ops.serve import DEFAULT_MAX_TOKENS_LIMIT, DTYPES

    serve = commands.add_parser(
        "serve", help="an OpenAI-compatible chat-completions server for a local checkpoint"
    )
    serve.add_argument("checkpoint", help="a transformers checkpoint directory")
    serve.add_argument("--host", default="127.0.0.1", help="default loopback only")
    serve.add_argument("--port", type=int, default=8000, help="0: any free port")
    serve.add_argument("--served-model-name", help="default: the checkpoint directory's name")
    serve.add_argument("--device", help="cuda, cuda:1, cpu... (default: cuda when available)")
    serve.add_argument("--dtype", choices=DTYPES, default="auto")
    serve.add_argument(
        "--api-key", help="require 'Authorization: Bearer KEY' (or INSTRUCTFLOW_SERVE_API_KEY)"
    )
    serve.add_argument(
        "--max-tokens-limit",
        type=positive_int,
        default=DEFAULT_MAX_TOKENS_LIMIT,
        help="the most tokens a request may generate per choice (its default max_tokens)",
    )
    serve.add_argument("--quiet", action="store_true", help="do not log every request")
    serve.set_defaults(handler=_serve)

    from ops.quality import add_quality_commands

    add_quality_commands(commands)

    from ops.feedback.cli import add_feedback_commands

    add_feedback_commands(commands)

    from ops.run_steps import add_run_commands

    add_run_commands(commands)

    from bench.cli import add_bench_commands

    add_bench_commands(commands)

    from ops.submit import add_submit_commands

    add_submit_commands(commands)
    return parser


def version_line() -> str:
    """instructflow's version and those of the stack it runs on (package metadata only:
    nothing heavy is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    def of(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    stack = ", ".join(f"{name} {of(name)}" for name in ("ray", "torch", "transformers", "pyarrow"))
    return f"instructflow {of('instructflow')} ({stack}; python {sys.version.split()[0]})"


def one_line_error(error: BaseException) -> str:
    """An unexpected error as one line that says what to do."""
    message = (str(error).strip().splitlines() or [""])[0]
    if isinstance(error, ModuleNotFoundError):
        module = (error.name or message).split(".")[0]
        if module in {"s3fs", "gcsfs", "fsspec", "adlfs"}:
            return (
                f"cloud storage needs {module}: pip install 'instructflow[cloud]' "
                "(or the package itself)"
            )
        return f"missing package {module}: pip install {module}"
    if isinstance(error, ConnectionError | TimeoutError):
        return (
            f"cannot reach the Ray cluster: {message}. Check --address (or RAY_ADDRESS) and "
            "that the head node is up (`ray status --address ...`)"
        )
    return f"{type(error).__name__}: {message} (rerun with --debug for the traceback)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except RecipeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # the clear one-line cause instead of a worker traceback
        from ops.datarun import PipelineError
        from pipeline.accounting import ConservationError
        from pipeline.checkpoint import ResumeError
        from train.evaluate_ifeval import PromptsError
        from train.generate import CheckpointError
        from train.launch import TrainError

        clear = (
            PipelineError
            | ConservationError
            | TrainError
            | CheckpointError
            | ResumeError
            | PromptsError
        )
        if isinstance(error, clear):
            print(f"error: {error}", file=sys.stderr)
            return 1
        if args.debug:
            raise
        print(f"error: {one_line_error(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
