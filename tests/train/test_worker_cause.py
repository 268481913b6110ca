"""What `training failed:` names: the failing worker's own exception, read from Ray Train's
WorkerGroupError.worker_failures rather than from its free text."""

from __future__ import annotations

from ray.exceptions import ActorDiedError
from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError
from ray.train.v2.api.exceptions import WorkerGroupError

from train.launch import worker_cause


def test_a_dead_worker_process_is_named_over_its_peer_s_gloo_error() -> None:
    dead = WorkerHealthCheckFailedError(
        "Worker health check failed: the actor died unexpectedly.", ActorDiedError()
    )
    peer = RuntimeError(
        "[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer"
    )
    error = WorkerGroupError("(snippets)", {1: peer, 0: dead})
    cause = worker_cause(error)
    assert cause.startswith("rank 0: WorkerHealthCheckFailedError: Worker health check failed")


def test_a_user_exception_keeps_its_own_type_and_message() -> None:
    failure = ValueError("the loss is NaN at step 3")
    error = WorkerGroupError("[Rank 0 Error Snippet]:\nTraceback ...", {0: failure})
    assert worker_cause(error) == "rank 0: ValueError: the loss is NaN at step 3"


def test_a_traceback_text_gives_its_last_exception_line() -> None:
    text = "Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'input_ids'"
    error = WorkerGroupError("...", {1: RuntimeError(text)})
    assert worker_cause(error) == "rank 1: KeyError: 'input_ids'"


def test_without_the_map_the_text_is_read() -> None:
    error = RuntimeError("Training failed due to worker errors:\n[Rank 0]:\nOSError: disk full")
    assert worker_cause(error) == "OSError: disk full"
