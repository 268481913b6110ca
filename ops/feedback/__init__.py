"""The feedback loop (``instructflow feedback``): a checkpoint answers prompts, people and
automatic raters score the answers, and the ratings come back as training data.

- ``train.generate.generate_samples``: N seeded candidates per prompt, on Ray Data;
- ``store`` / ``items``: the database (SQLAlchemy: SQLite by default, any URL) and its queries;
- ``server`` + ``static/index.html``: the annotation web app, with a JSON API;
- ``raters``: rule checks, chrF against the reference reply and an LLM judge, stored as
  annotators ``rules`` / ``reference`` / ``judge:*``;
- ``agreement``: Krippendorff's alpha and pairwise best-pick agreement;
- ``export``: corrections -> SFT, scores -> preference pairs and KTO records, plus a recipe;
- ``cli``: the subcommands.
"""
