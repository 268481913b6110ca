"""``instructflow submit`` and ``instructflow job``: commands run on a Ray cluster as Ray jobs.

A job goes through the Ray Jobs API, the HTTP server of the head's dashboard
(``http://<head>:8265``), so the laptop needs no Ray connection of its own and the command keeps
running when the laptop disconnects::

    instructflow submit --address http://head:8265 --wait -- instructflow data run recipe.yaml

The command's code reaches the cluster one of two ways (``runtime_env``):

- by default the working directory (``--working-dir``, ``.``) is packed and shipped, less
  ``WORKING_DIR_EXCLUDES``, ``.gitignore`` and ``.rayignore``; it is the job's current
  directory on the head, so the recipe and relative paths in the command resolve inside it.
  A leading ``instructflow`` becomes ``python3 -m ops.cli``: the console script is an installed
  artefact and exists on the cluster only where the package is installed, whereas ``-m`` finds
  ``ops`` in the job's current directory first, so the shipped checkout is what runs;
- with ``--install`` nothing local travels; Ray installs ``instructflow==<this version>`` (or the
  spec given) in a virtualenv for the job and ``instructflow`` is that package's script.

The packed working directory travels in one HTTP upload, which the dashboard caps at 100 MiB
(Ray 2.60 answers 413 above it, well before the GCS's own 512 MiB limit): data belongs in object
storage, where the workers of every node read it, not in the package.

Inside the job, Ray sets ``RAY_ADDRESS`` for the driver and ``ops.cluster.connect`` joins it, so
``data``, ``train`` and ``generate`` commands are submitted unchanged. ``worker_env()`` travels
as the job's ``env_vars``, with ``--env`` on top.

Exit codes of ``submit --wait`` and ``job logs --follow``: ``EXIT_CODES`` by the job's final
status, ``EXIT_NOT_ASKED`` when the cluster could not be asked (no dashboard at the address, an
unknown job id, a package too big to upload), 130 on Ctrl+C (the job keeps running).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

DEFAULT_DASHBOARD = "http://127.0.0.1:8265"
# Ray's own variables for "which cluster": the Jobs API's, then the one ray.init reads too.
ADDRESS_VARIABLES = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
EXIT_CODES = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 3}
EXIT_NOT_ASKED = 2
EXIT_INTERRUPTED = 130
# Never needed by a job and often most of a checkout: environments, history, run outputs,
# caches. Patterns are .gitignore-style, relative to the working directory.
WORKING_DIR_EXCLUDES = (
    ".git/",
    ".venv/",
    "venv/",
    "/out/",
    "/build/",
    "/dist/",
    "/.bench/",
    "__pycache__/",
    "*.egg-info/",
    ".pytest_cache/",
    ".ruff_cache/",
)
# The interpreter a shipped `instructflow` command runs with. python3, not python: cluster.yaml
# installs the project with python3, and Ubuntu images have no `python` outside a venv.
CLUSTER_PYTHON = "python3"
STOP_WAIT_S = 60.0
POLL_S = 0.5


class SubmitError(Exception):
    """The cluster could not be asked, or refused; the message is the one line to print."""


def add_submit_commands(commands: argparse._SubParsersAction) -> None:
    """``submit`` and ``job status|logs|stop|list`` on the top-level parser."""
    submit = commands.add_parser(
        "submit",
        help="run a command on a Ray cluster as a Ray job (Jobs API)",
        description="Run COMMAND on a Ray cluster through the Ray Jobs API: "
        "instructflow submit --address http://<head>:8265 --wait -- instructflow data run R.yaml",
    )
    _add_address(submit)
    code = submit.add_mutually_exclusive_group()
    code.add_argument(
        "--working-dir",
        default=".",
        help="directory shipped as the job's current directory, its code run (default: .)",
    )
    code.add_argument(
        "--install",
        nargs="?",
        const="",
        metavar="SPEC",
        help="ship nothing; pip-install SPEC on the cluster "
        "(default: instructflow==<the version here>)",
    )
    submit.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="a .gitignore-style pattern left out of the working directory (repeatable)",
    )
    submit.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="(repeatable)"
    )
    submit.add_argument("--job-id", help="the job's submission id (default: Ray picks one)")
    submit.add_argument(
        "--wait", action="store_true", help="stream the logs; exit with the job's status"
    )
    submit.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    submit.set_defaults(handler=_handled(_submit))

    job = commands.add_parser("job", help="status, logs, stop and list of submitted jobs")
    actions = job.add_subparsers(dest="action", required=True)
    for name, help_text, handler in (
        ("status", "a job's status", _job_status),
        ("logs", "a job's logs so far (--follow: until it ends)", _job_logs),
        ("stop", "stop a job and wait until it has stopped", _job_stop),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("job_id")
        _add_address(action)
        action.set_defaults(handler=_handled(handler))
    actions.choices["logs"].add_argument(
        "--follow", action="store_true", help="stream until the job ends; exit with its status"
    )
    listing = actions.add_parser("list", help="every job the cluster knows, oldest first")
    _add_address(listing)
    listing.set_defaults(handler=_handled(_job_list))


def _add_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        help="the head's dashboard URL (default: $RAY_API_SERVER_ADDRESS, $RAY_ADDRESS if it is "
        f"an http(s) URL, else {DEFAULT_DASHBOARD})",
    )


def _handled(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``handler`` with a SubmitError printed as one line instead of a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except SubmitError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_NOT_ASKED

    return run


# --- what is submitted --------------------------------------------------------------------


def dashboard_address(explicit: str | None, environ: Mapping[str, str]) -> str:
    """The Jobs API URL: ``--address``, else Ray's variables when they hold a URL, else local.

    A ``RAY_ADDRESS`` that is a Ray address (``head:6379``, ``ray://``) is for ``ray.init``, not
    for the Jobs API, so it does not count here.
    """
    if explicit:
        address = explicit if "://" in explicit else f"http://{explicit}"
        if not address.startswith(("http://", "https://")):
            raise SubmitError(
                f"--address {explicit!r}: the Jobs API is the dashboard's URL, "
                "http://<head>:8265 (a ray:// address is Ray Client's, for --address of data run)"
            )
        return address.rstrip("/")
    for name in ADDRESS_VARIABLES:
        value = environ.get(name, "")
        if value.startswith(("http://", "https://")):
            return value.rstrip("/")
    return DEFAULT_DASHBOARD


def entrypoint(command: Sequence[str], *, shipped: bool) -> str:
    """The job's shell command: ``command`` quoted, ``instructflow`` run from the shipped code."""
    words = list(command[1:] if command and command[0] == "--" else command)
    if not words:
        raise SubmitError("no command to run: instructflow submit [options] -- COMMAND ...")
    if shipped and words[0] == "instructflow":
        words = [CLUSTER_PYTHON, "-m", "ops.cli", *words[1:]]
    return shlex.join(words)


def env_vars(assignments: Sequence[str], worker_env: Mapping[str, str]) -> dict[str, str]:
    """The job's environment: the worker environment, then each ``--env KEY=VALUE`` over it."""
    env = dict(worker_env)
    for assignment in assignments:
        key, equals, value = assignment.partition("=")
        if not equals or not key:
            raise SubmitError(f"--env {assignment!r}: expected KEY=VALUE")
        env[key] = value
    return env


def runtime_env(
    *, working_dir: str | None, install: str | None, excludes: Sequence[str], env: dict[str, str]
) -> dict[str, Any]:
    """Ship ``working_dir``, or pip-install ``install`` ("" meaning this very version)."""
    if install is not None:
        return {"pip": [install or pinned_requirement()], "env_vars": env}
    directory = Path(working_dir or ".")
    if not directory.is_dir():
        raise SubmitError(f"--working-dir {working_dir!r} is not a directory")
    return {
        "working_dir": str(directory.resolve()),
        "excludes": [*WORKING_DIR_EXCLUDES, *excludes],
        "env_vars": env,
    }


def pinned_requirement() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"instructflow=={version('instructflow')}"
    except PackageNotFoundError:
        raise SubmitError(
            "--install without SPEC pins the installed instructflow, and none is installed "
            "here; give one: --install 'instructflow==X.Y.Z'"
        ) from None


def largest_entries(directory: Path, count: int = 3) -> list[tuple[str, int]]:
    """The biggest top-level entries of ``directory`` by bytes, for the too-big message."""
    skipped = {pattern.strip("/") for pattern in WORKING_DIR_EXCLUDES}
    sizes = []
    for entry in directory.iterdir():
        if entry.name in skipped or entry.is_symlink():
            continue
        if entry.is_file():
            sizes.append((entry.name, entry.stat().st_size))
            continue
        total = 0
        for root, dirs, files in os.walk(entry):
            dirs[:] = [name for name in dirs if name not in skipped]
            total += sum(_size(Path(root, name)) for name in files)
        sizes.append((f"{entry.name}/", total))
    return sorted(sizes, key=lambda item: -item[1])[:count]


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:  # gone while walking
        return 0


# --- talking to the cluster ---------------------------------------------------------------


def no_dashboard_message(address: str) -> str:
    return (
        f"no Ray dashboard answers at {address}; start a head with one: "
        "`ray start --head --dashboard-host=0.0.0.0` (or `ray up cluster.yaml`), "
        "then pass --address http://<head>:8265"
    )


@contextmanager
def cluster_errors(address: str, job_id: str | None = None) -> Iterator[None]:
    """Ray's exceptions from the Jobs API as one-line SubmitErrors."""
    import requests
    from ray.exceptions import AuthenticationError

    try:
        yield
    except (ConnectionError, requests.exceptions.ConnectionError):
        raise SubmitError(no_dashboard_message(address)) from None
    except AuthenticationError:
        raise SubmitError(
            f"the cluster at {address} wants a token: set RAY_AUTH_MODE=token and "
            "RAY_AUTH_TOKEN to the head's (`ray get-auth-token` on the head)"
        ) from None
    except RuntimeError as error:
        text = str(error)
        if job_id is not None and "status code 404" in text:
            raise SubmitError(
                f"no job {job_id!r} on the cluster at {address} "
                f"(`instructflow job list --address {address}` lists them)"
            ) from None
        if "Version check returned 404" in text:
            raise SubmitError(f"{address} answers, but it is not a Ray dashboard") from None
        raise SubmitError(f"the Jobs API at {address}: {text.splitlines()[0]}") from None


@contextmanager
def _without_address_variables() -> Iterator[None]:
    """JobSubmissionClient takes Ray's address variables over its own argument; the address
    this module resolved (``--address`` first) is meant, so they are hidden while it starts."""
    saved = {name: os.environ.pop(name) for name in ADDRESS_VARIABLES if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def job_client(address: str) -> JobSubmissionClient:
    from ray.job_submission import JobSubmissionClient

    quiet_packaging_logs()
    with cluster_errors(address), _without_address_variables():
        return JobSubmissionClient(address)


def quiet_packaging_logs() -> None:
    """Ray narrates packing a working directory at INFO (every .gitignore it read) and warns
    that it now leaves out .git and .venv, which WORKING_DIR_EXCLUDES leaves out anyway; its
    warning about a very large file is kept."""
    logging.getLogger("ray.dashboard.modules.dashboard_sdk").setLevel(logging.WARNING)
    logging.getLogger("ray._private.runtime_env.packaging").setLevel(logging.WARNING)
    logging.getLogger("ray._private.runtime_env.working_dir").setLevel(logging.ERROR)


def submit_job(
    client: JobSubmissionClient,
    address: str,
    *,
    entrypoint: str,
    runtime_env: dict[str, Any],
    job_id: str | None,
) -> str:
    with cluster_errors(address):
        try:
            return client.submit_job(
                entrypoint=entrypoint, runtime_env=runtime_env, submission_id=job_id
            )
        except RuntimeError as error:
            if "status code 413" not in str(error) or "working_dir" not in runtime_env:
                raise
            raise SubmitError(too_big_message(Path(runtime_env["working_dir"]))) from None


def too_big_message(directory: Path) -> str:
    largest = ", ".join(
        f"{name} {size / 2**20:.0f} MiB" for name, size in largest_entries(directory)
    )
    return (
        f"the working directory {directory} packs to more than the Jobs API takes in one upload "
        f"(largest: {largest}); keep data in object storage (s3://...) and out of the package "
        "with .rayignore or --exclude PATTERN, or run installed code with --install"
    )


def final_status(client: JobSubmissionClient, job_id: str) -> tuple[str, str]:
    """The job's terminal status and Ray's message, once Ray has recorded it (the log stream
    can close a moment before the status leaves RUNNING)."""
    while True:
        info = client.get_job_info(job_id)
        if info.status.is_terminal():
            return str(info.status.value), info.message or ""
        time.sleep(POLL_S)


def follow(client: JobSubmissionClient, address: str, job_id: str) -> int:
    """Stream the job's logs to stdout until it ends; its exit code from its final status."""

    async def stream() -> None:
        async for chunk in client.tail_job_logs(job_id):
            sys.stdout.write(chunk)
            sys.stdout.flush()

    try:
        with cluster_errors(address, job_id):
            client.get_job_info(job_id)  # an unknown id fails here, not in the websocket
            asyncio.run(stream())
            status, message = final_status(client, job_id)
    except KeyboardInterrupt:
        print(
            f"\nstopped following; job {job_id} keeps running on the cluster. "
            f"Stop it with: instructflow job stop {job_id} --address {address}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(status_line(job_id, status, message))
    return EXIT_CODES[status]


def status_line(job_id: str, status: str, message: str) -> str:
    """One line; Ray's message for a failed job goes on with the log's tail, shown already."""
    cause = message.split(", last available logs")[0].splitlines()[0] if message else ""
    return f"job {job_id}: {status}" + (f" ({cause})" if cause else "")


# --- the commands ---------------------------------------------------------------------------


def _submit(args: argparse.Namespace) -> int:
    from ops.cluster import worker_env

    address = dashboard_address(args.address, os.environ)
    shipped = args.install is None
    if args.exclude and not shipped:
        raise SubmitError("--exclude shapes the shipped working directory; --install ships none")
    command = entrypoint(args.command, shipped=shipped)
    environment = runtime_env(
        working_dir=args.working_dir if shipped else None,
        install=args.install,
        excludes=args.exclude,
        env=env_vars(args.env, worker_env()),
    )
    client = job_client(address)
    job_id = submit_job(
        client, address, entrypoint=command, runtime_env=environment, job_id=args.job_id
    )
    print(f"submitted {job_id} to {address}: {command}")
    print(f"dashboard: {address}/#/jobs/{job_id}")
    if not args.wait:
        print(f"follow:    instructflow job logs {job_id} --follow --address {address}")
        return 0
    return follow(client, address, job_id)


def _job_status(args: argparse.Namespace) -> int:
    address = dashboard_address(args.address, os.environ)
    client = job_client(address)
    with cluster_errors(address, args.job_id):
        info = client.get_job_info(args.job_id)
    print(status_line(args.job_id, str(info.status.value), info.message or ""))
    return 0


def _job_logs(args: argparse.Namespace) -> int:
    address = dashboard_address(args.address, os.environ)
    client = job_client(address)
    if args.follow:
        return follow(client, address, args.job_id)
    with cluster_errors(address, args.job_id):
        sys.stdout.write(client.get_job_logs(args.job_id))
    return 0


def _job_stop(args: argparse.Namespace) -> int:
    address = dashboard_address(args.address, os.environ)
    client = job_client(address)
    with cluster_errors(address, args.job_id):
        was_running = client.stop_job(args.job_id)
        deadline = time.monotonic() + STOP_WAIT_S
        info = client.get_job_info(args.job_id)
        while not info.status.is_terminal() and time.monotonic() < deadline:
            time.sleep(POLL_S)
            info = client.get_job_info(args.job_id)
    if not was_running:
        print(f"job {args.job_id} had already ended")
    print(status_line(args.job_id, str(info.status.value), info.message or ""))
    return 0 if info.status.is_terminal() else EXIT_NOT_ASKED


def _job_list(args: argparse.Namespace) -> int:
    address = dashboard_address(args.address, os.environ)
    client = job_client(address)
    with cluster_errors(address):
        jobs = sorted(client.list_jobs(), key=lambda job: job.start_time or 0)
    if not jobs:
        print(f"no jobs on the cluster at {address}")
    for job in jobs:
        started = (
            datetime.fromtimestamp(job.start_time / 1000).isoformat(" ", "seconds")
            if job.start_time
            else "-"
        )
        print(
            f"{job.submission_id or job.job_id}  {job.status.value:<9}  {started}  {job.entrypoint}"
        )
    return 0
