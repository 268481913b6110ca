"""Augmentation stages: they add paraphrased records next to the originals.

- ``back_translate``: source -> pivot -> source with seq2seq translation models;
- ``rule_augment``: instruction-template paraphrase and EDA-style word edits, no model.

Both protect code, URLs, numbers and ``{{placeholders}}`` (``protect``), pass every candidate
through one quality guard (``guard``) and choose parents by a seeded hash under an optional
per-stratum budget (``selection``).
"""
