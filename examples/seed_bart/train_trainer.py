"""The seed's example done properly: a BART fine-tuned with the Hugging Face ``Trainer`` on
instruction/output pairs from instructflow's shards, prompt ``Instruction: ... Output:``,
then ``generate``. It reads the shards as any Hugging Face user would (``datasets``'s
Parquet loader); nothing of instructflow is imported, so it is also what the data plane
hands to tools outside it.

    instructflow data run examples/quickstart/recipe.yaml --overwrite
    instructflow train tiny-model out/quickstart out/tiny-bart --kind seq2seq --arch bart
    python examples/seed_bart/train_trainer.py --data out/quickstart --model out/tiny-bart \\
        --output out/seed-bart-trainer
    instructflow train sft examples/seed_bart/sft.yaml --overwrite   # the same run, on Ray

With a real model: ``--model facebook/bart-base`` (downloaded once, or a local copy).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

PROMPT = "Instruction: {instruction}\n\nOutput: "  # instructflow's instruction_output format


def pair(record: dict[str, Any]) -> dict[str, str]:
    """The record's first user turn (with its context, as instructflow joins it) and the
    reply to it."""
    messages = record["messages"]
    user = next((m["content"] for m in messages if m["role"] == "user"), "")
    reply = next((m["content"] for m in messages if m["role"] == "assistant"), "")
    if record.get("context"):
        user = f"{user}\n\n{record['context']}"
    return {"source": PROMPT.format(instruction=user), "target": reply}


def load_splits(data: Path) -> Any:
    """``data/train`` and ``data/validation`` of an instructflow output, as a DatasetDict."""
    from datasets import load_dataset

    files = {
        split: sorted(str(path) for path in (data / "data" / split).glob("*.parquet"))
        for split in ("train", "validation")
    }
    missing = [split for split, paths in files.items() if not paths]
    if missing:
        raise SystemExit(
            f"error: {data}/data/{missing[0]} has no shards; run a recipe with a split stage"
        )
    return load_dataset("parquet", data_files=files)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="an instructflow output directory")
    parser.add_argument("--model", required=True, help="a seq2seq model id or directory")
    parser.add_argument("--output", required=True)
    parser.add_argument("--epochs", type=float, default=10)
    parser.add_argument("--max-steps", type=int, default=-1, help="overrides --epochs when > 0")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=5e-3)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--prompt", default="Give me three tips for writing clear documentation.")
    args = parser.parse_args(argv)

    from transformers import (
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
    )

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSeq2SeqLM.from_pretrained(args.model)
    splits = load_splits(Path(args.data)).map(pair, remove_columns=None)

    def tokenized(batch: dict[str, list]) -> dict[str, list]:
        encoded = tokenizer(batch["source"], max_length=args.max_length, truncation=True)
        labels = tokenizer(text_target=batch["target"], max_length=args.max_length, truncation=True)
        encoded["labels"] = labels["input_ids"]
        return encoded

    columns = splits["train"].column_names
    splits = splits.filter(lambda row: bool(row["target"].strip()))
    features = splits.map(tokenized, batched=True, remove_columns=columns)
    training = TrainingArguments(
        output_dir=args.output,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_steps=5,
        lr_scheduler_type="cosine",
        eval_strategy="no",
        save_strategy="no",
        logging_steps=20,
        report_to="none",
        seed=args.seed,
        use_cpu=True,
    )
    trainer = Trainer(
        model=model,
        args=training,
        train_dataset=features["train"],
        eval_dataset=features["validation"],
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
    )
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    trainer.save_model(args.output)
    tokenizer.save_pretrained(args.output)

    inputs = tokenizer(PROMPT.format(instruction=args.prompt), return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=32, do_sample=False)
    reply = tokenizer.decode(output[0], skip_special_tokens=True)
    result = {"val_loss_start": round(before, 4), "val_loss": round(after, 4)}
    print(f"Trainer: validation loss {before:.4f} -> {after:.4f}")
    print(f"reply: {reply}")
    Path(args.output, "result.json").write_text(json.dumps(result))
    if not math.isfinite(after):
        raise SystemExit("error: the validation loss is not finite")
    return result


if __name__ == "__main__":
    main()
