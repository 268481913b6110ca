"""Resuming reads the training state with ``weights_only=True``: what ``save_training_state``
writes loads that way, and a checkpoint holding any other pickled object is refused."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from train.sft import (
    TRAINING_STATE,
    Progress,
    learning_rate_factor,
    restore_training_state,
    save_training_state,
)


def tiny_training(steps: int) -> tuple[torch.nn.Module, torch.optim.Optimizer, object]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, warmup=2, total=10, min_ratio=0.1)
    )
    for _ in range(steps):
        loss = model(torch.randn(3, 4)).pow(2).mean()
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return model, optimizer, scheduler


def test_saved_state_restores_under_weights_only(tmp_path) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    model, optimizer, scheduler = tiny_training(3)
    _, optimizer_state = get_state_dict(
        model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    save_training_state(str(tmp_path), optimizer_state, scheduler, Progress(3, 120))

    fresh_model, fresh_optimizer, fresh_scheduler = tiny_training(0)
    fresh_model.load_state_dict(model.state_dict())
    progress = restore_training_state(str(tmp_path), fresh_model, fresh_optimizer, fresh_scheduler)

    assert progress == Progress(3, 120)
    assert fresh_scheduler.state_dict()["last_epoch"] == 3
    assert fresh_scheduler.get_last_lr() == scheduler.get_last_lr()
    moments = [state["exp_avg"] for state in optimizer.state_dict()["state"].values()]
    restored = [state["exp_avg"] for state in fresh_optimizer.state_dict()["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(moments, restored, strict=True))


class Payload:
    """Stands for arbitrary code a pickle could run on load."""

    def __reduce__(self):
        return (os.system, ("echo unpickled",))


def test_a_checkpoint_with_pickled_objects_is_refused(tmp_path) -> None:
    with open(tmp_path / TRAINING_STATE, "wb") as file:
        pickle.dump({"progress": Payload()}, file)
    model, optimizer, scheduler = tiny_training(0)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        restore_training_state(str(tmp_path), model, optimizer, scheduler)
