"""The step loss is the mean over every supervised token of the step, under gradient
accumulation and across DDP ranks: two gloo processes with two micro-batches each end with
the gradient of one process that sees the whole batch at once."""

from __future__ import annotations

import os
import socket

import pytest
import torch

from train.loss import micro_batch_loss, step_token_count, supervised_tokens
from train.sft_data import IGNORE

VOCAB, LENGTH = 24, 8


def tiny_model():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=LENGTH,
    )
    return LlamaForCausalLM(config)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Four sequences supervising 7, 1, 3 and 5 tokens: per-sequence means would be wrong."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (4, LENGTH), generator=generator)
    labels = ids.clone()
    for row, prompt in enumerate([1, 7, 5, 3]):
        labels[row, :prompt] = IGNORE
    return ids, labels


def reference_gradient() -> torch.Tensor:
    model = tiny_model()
    ids, labels = batch()
    logits = model(input_ids=ids, use_cache=False).logits
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=IGNORE
    )
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def _rank(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    model = torch.nn.parallel.DistributedDataParallel(tiny_model())
    ids, labels = batch()
    mine = [slice(rank * 2, rank * 2 + 1), slice(rank * 2 + 1, rank * 2 + 2)]  # 2 micro-batches
    tokens = step_token_count([labels[part] for part in mine])
    for index, part in enumerate(mine):
        last = index == len(mine) - 1
        context = model.no_sync() if not last else torch.enable_grad()
        with context:
            logits = model(input_ids=ids[part], use_cache=False).logits
            micro_batch_loss(logits, labels[part], tokens, world).backward()
    if rank == 0:
        torch.save(torch.cat([p.grad.flatten() for p in model.parameters()]), out)
    # Both ranks leave together: a rank tearing down gloo while the other still talks to it
    # aborted the process (SIGABRT) on CI once. Skipping the interpreter's teardown avoids
    # native thread pools aborting at exit, as in the serve command.
    dist.barrier()
    dist.destroy_process_group()
    os._exit(0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_ranks_with_accumulation_give_the_whole_batch_gradient(tmp_path):
    out = str(tmp_path / "grad.pt")
    torch.multiprocessing.spawn(_rank, args=(2, free_port(), out), nprocs=2, join=True)
    torch.testing.assert_close(torch.load(out), reference_gradient(), atol=1e-6, rtol=1e-5)


def test_counts_and_an_empty_step():
    _, labels = batch()
    assert int(supervised_tokens(labels)) == 7 + 1 + 3 + 5
    assert int(step_token_count([labels[:2], labels[2:]])) == 16
    logits = torch.zeros(1, LENGTH, VOCAB)
    with pytest.raises(ValueError, match="no supervised token"):
        micro_batch_loss(logits, torch.full((1, LENGTH), IGNORE), torch.tensor(0))
