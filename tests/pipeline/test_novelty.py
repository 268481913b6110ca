"""Novelty: exact ROUGE-L, the all-pairs greedy filter and its two sub-quadratic equals (an
exact prefix-filter index in one process, MinHash-LSH + components on Ray)."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pytest

from pipeline.config import RecipeError, parse_recipe
from pipeline.novelty import (
    PROBE_SCHEMA,
    TOO_SIMILAR,
    Novelty,
    NoveltyConfig,
    greedy_all_pairs,
    greedy_exact_index,
    jaccard_bound,
    lcs_length,
    lsh_shape,
    rouge_l,
    rouge_tokens,
    similar_losers,
)
from pipeline.plan import Tally
from pipeline.schema import make_record, message, rows_to_table
from pipeline.stage import GlobalContext

WORDS = (
    "write a short poem story about the sea city night dog list five ways to improve your "
    "sleep explain why sky is blue give three tips for staying healthy describe how make "
    "coffee classify sentence positive negative translate into french summarize article"
).split()


def lcs_by_table(first: list[str], second: list[str]) -> int:
    table = [[0] * (len(second) + 1) for _ in range(len(first) + 1)]
    for i, a in enumerate(first):
        for j, b in enumerate(second):
            table[i + 1][j + 1] = (
                table[i][j] + 1 if a == b else max(table[i][j + 1], table[i + 1][j])
            )
    return table[-1][-1]


def test_bit_parallel_lcs_equals_the_dynamic_programme():
    rng = random.Random(0)
    for _ in range(500):
        first = [rng.choice(WORDS[:8]) for _ in range(rng.randint(0, 70))]
        second = [rng.choice(WORDS[:8]) for _ in range(rng.randint(0, 70))]
        assert lcs_length(first, second) == lcs_by_table(first, second)


def test_rouge_l_is_rouge_scores_f_measure():
    # rouge_score: tokens "the cat sat on the mat" / "the cat lay on a mat": LCS 4 of 6 and 6.
    first, second = rouge_tokens("The cat sat on the mat."), rouge_tokens("the cat LAY on a mat")
    assert first == ["the", "cat", "sat", "on", "the", "mat"]
    assert rouge_l(first, second) == pytest.approx(4 / 6)
    assert rouge_l([], second) == 0.0 and rouge_l(first, first) == 1.0


def test_the_lsh_shape_reaches_the_recall_at_the_jaccard_bound():
    assert jaccard_bound(0.7) == pytest.approx(0.7 / 1.3)
    bands, rows = lsh_shape(0.7, 128, 0.995)
    assert (bands, rows) == (42, 3)
    assert 1 - (1 - jaccard_bound(0.7) ** rows) ** bands >= 0.995
    with pytest.raises(ValueError, match="raise num_perm"):
        lsh_shape(0.7, 16, 0.9999999)


def generated_set(count: int, seed: int) -> list[str]:
    """Instructions with near copies: each new one is fresh, or an earlier one edited."""
    rng = random.Random(seed)
    texts: list[str] = []
    for _ in range(count):
        if texts and rng.random() < 0.5:
            words = rng.choice(texts).split()
            for _ in range(rng.randint(0, 3)):
                at = rng.randrange(len(words))
                roll = rng.random()
                if roll < 0.4:
                    words[at] = rng.choice(WORDS)
                elif roll < 0.7 and len(words) > 3:
                    del words[at]
                else:
                    words.insert(at, rng.choice(WORDS))
            texts.append(" ".join(words))
        else:
            texts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 16))))
    return texts


def test_the_prefix_filter_index_keeps_exactly_the_all_pairs_set():
    for seed in range(3):
        tokens = [rouge_tokens(text) for text in generated_set(600, seed)]
        expected, comparisons = greedy_all_pairs(tokens, 0.7)
        got, computed = greedy_exact_index(tokens, 0.7)
        assert got.tolist() == expected.tolist()
        assert 0 < expected.sum() < len(tokens) and computed < comparisons / 3


def probes(texts: list[str], fixed: int = 0) -> pa.Table:
    return pa.table(
        {
            "_uid": pa.array(range(len(texts)), pa.int64()),
            "id": [f"t{index:05d}" for index in range(len(texts))],
            "_rank": pa.array([float(index) for index in range(len(texts))], pa.float64()),
            "_fixed": [index < fixed for index in range(len(texts))],
            "text": texts,
        },
        schema=PROBE_SCHEMA,
    )


@pytest.mark.slow
def test_lsh_and_components_on_ray_keep_the_all_pairs_set(ray_session):
    texts = generated_set(700, 7) + ["", "?!"]
    tokens = [rouge_tokens(text) for text in texts]
    expected, _ = greedy_all_pairs(tokens, 0.7)
    table = probes(texts)
    dataset = ray_session.data.from_arrow([table.slice(i, 300) for i in range(0, 702, 300)])
    losers = similar_losers(
        dataset, threshold=0.7, num_perm=128, recall=0.995, seed=3, num_partitions=4
    )
    rows = pa.concat_tables(ray_session.get(losers.to_arrow_refs())).to_pylist()
    dropped = {row["_uid"] for row in rows}
    got = np.array([index not in dropped for index in range(len(texts))])
    disagree = int((got != expected).sum())
    assert disagree <= len(texts) // 100, disagree  # LSH may miss a pair; the checks never err
    assert (~expected).sum() > 100
    for row in rows:  # each loser names a kept, earlier, similar row
        kept = int(row["similar_to"][1:])
        assert kept < row["_uid"] and got[kept]
        assert rouge_l(tokens[row["_uid"]], tokens[kept]) == pytest.approx(row["similarity"])
        assert row["similarity"] >= 0.7


@pytest.mark.slow
def test_the_components_path_decides_as_the_single_task(ray_session):
    table = probes(generated_set(300, 11))
    dataset = ray_session.data.from_arrow([table.slice(i, 100) for i in range(0, 300, 100)])
    decisions = []
    for single in (2_000_000, 0):
        losers = similar_losers(
            dataset,
            threshold=0.7,
            num_perm=128,
            recall=0.995,
            seed=3,
            num_partitions=3,
            single_task_max_edges=single,
        )
        rows = pa.concat_tables(ray_session.get(losers.to_arrow_refs())).to_pylist()
        decisions.append(sorted((row["_uid"], row["similar_to"]) for row in rows))
    assert decisions[0] == decisions[1] and len(decisions[0]) > 50


@pytest.mark.slow
def test_references_are_kept_and_never_compared_with_each_other(ray_session):
    texts = [
        "Write a short poem about the sea.",
        "Write a short poem about the sea at night.",  # a reference like the first: both kept
        "write a short poem about the sea",  # new, a copy of a reference: dropped
        "Explain why the sky is blue.",  # new and novel
        "Explain why the sky is blue to a child.",  # new, like the one before: dropped
    ]
    dataset = ray_session.data.from_arrow(probes(texts, fixed=2))
    losers = similar_losers(
        dataset, threshold=0.7, num_perm=128, recall=0.995, seed=0, num_partitions=2
    )
    rows = pa.concat_tables(ray_session.get(losers.to_arrow_refs())).to_pylist()
    assert {row["_uid"]: row["similar_to"] for row in rows} == {2: "t00000", 4: "t00003"}


def record(line: int, instruction: str) -> dict:
    return make_record(
        messages=[message("user", instruction), message("assistant", f"Answer {line}.")],
        source_file="/corpus/a.jsonl",
        source_format="alpaca",
        source_line=line,
    )


@pytest.mark.slow
def test_the_stage_drops_later_copies_with_a_reason_and_counts_them(ray_session):
    rows = [
        record(1, "Give three tips for staying healthy."),
        record(2, "Give me three tips for staying healthy."),
        record(3, "Describe how to make a cup of coffee."),
        record(4, "Give three tips for staying healthy!"),
    ]
    tally = Tally.remote()
    context = GlobalContext(
        seed=0, workers=2, position=0, file_index={"/corpus/a.jsonl": 0}, tally=tally
    )
    stage = Novelty(NoveltyConfig())
    out = stage.apply(ray_session.data.from_arrow(rows_to_table(rows)).materialize(), context)
    result = sorted(
        pa.concat_tables(ray_session.get(out.to_arrow_refs())).to_pylist(),
        key=lambda row: row["source_line"],
    )
    reasons = [row["drop_reason"] for row in result]
    # lowest_id: of the three alike, the one with the smallest content id is kept.
    alike = sorted((rows[i]["id"], i) for i in (0, 1, 3))
    expected = [TOO_SIMILAR] * 4
    expected[2] = None
    expected[alike[0][1]] = None
    assert reasons == expected
    for row in result:
        if row["drop_reason"]:
            detail = json.loads(row["drop_detail"])
            assert detail["similar_to"] == alike[0][0] and detail["similarity"] >= 0.7
    _, counts = ray_session.get(tally.snapshot.remote())
    assert counts[0]["dropped"][TOO_SIMILAR] == 2


def test_a_recipe_names_a_bad_novelty_key():
    recipe = {
        "name": "n",
        "inputs": [{"path": "a.jsonl"}],
        "stages": [{"novelty": {"threshold": 1.5}}],
        "output": {"path": "out"},
    }
    with pytest.raises(RecipeError, match="threshold"):
        parse_recipe(recipe, source="recipe.yaml")


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    from train.tiny import build_model, train_tokenizer

    path = tmp_path_factory.mktemp("encoder")
    tokenizer = train_tokenizer(iter([" ".join(WORDS)] * 20), vocab_size=200)
    build_model(tokenizer, "causal", "tiny", 0).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.mark.slow
def test_embedding_similarity_joins_rouge_in_the_greedy_pass(ray_session, tiny_encoder):
    from pipeline.novelty import Embedder, EmbeddingConfig, simhash_shape

    texts = generated_set(150, 5)
    vectors = Embedder(tiny_encoder, 128, 0).embed(texts)
    cosines = vectors @ vectors.T
    tokens = [rouge_tokens(text) for text in texts]
    lexical = np.array([[rouge_l(first, second) for second in tokens] for first in tokens])[
        np.triu_indices(len(texts), 1)
    ]
    upper = cosines[np.triu_indices(len(texts), 1)]
    # A random model: the cut is the top 1% of the pairs ROUGE-L does not call similar.
    cut = float(np.quantile(upper[lexical < 0.7], 0.99))
    kept: list[int] = []
    expected = np.zeros(len(texts), dtype=bool)
    for index in range(len(texts)):
        if all(
            rouge_l(tokens[index], tokens[other]) < 0.7 and cosines[index, other] < cut
            for other in kept
        ):
            kept.append(index)
            expected[index] = True
    rouge_only, _ = greedy_all_pairs(tokens, 0.7)
    assert expected.sum() < rouge_only.sum()  # embeddings drop rows ROUGE-L keeps
    assert simhash_shape(0.9, 128, 0.995) == (16, 8)
    table = probes(texts)
    dataset = ray_session.data.from_arrow([table.slice(i, 50) for i in range(0, 150, 50)])
    losers = similar_losers(
        dataset,
        threshold=0.7,
        num_perm=128,
        recall=0.995,
        seed=1,
        num_partitions=2,
        embedding=EmbeddingConfig(model=tiny_encoder, threshold=cut, batch_size=64),
    )
    dropped = {row["_uid"] for row in losers.iter_rows()}
    got = np.array([index not in dropped for index in range(len(texts))])
    assert int((got != expected).sum()) <= 3, int((got != expected).sum())
