"""Exact dedup, near dedup and decontamination end to end on Ray, on a corpus whose
duplicates are known. The same on a cluster of three nodes, one killed part-way, is in
tests/test_multinode.py."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from bench.corpora import generate_paragraphs
from ops.datarun import run_data

pytestmark = pytest.mark.slow  # on Ray, end to end

ROOT = Path(__file__).resolve().parents[1]
ZH_PASSAGE = (
    "长江是中国最长的河流，发源于青藏高原的唐古拉山脉，自西向东流经十一个省级行政区，"
    "最后在上海注入东海。长江流域气候温和，雨量充沛，是中国重要的粮食产区和工业基地。"
    "沿江分布着重庆、武汉、南京等大城市，水运历来十分繁忙，三峡工程也建在长江之上。"
)


def alpaca(instruction: str, output: str) -> str:
    return json.dumps(
        {"instruction": instruction, "input": "", "output": output}, ensure_ascii=False
    )


def write_corpus(root: Path) -> None:
    """Two files with known duplicates: a1~a2 exact, {a3, a4, b1} and {b2, b3} near, and a6
    a paraphrase of an evaluation prompt."""
    first, second, third, fourth = list(generate_paragraphs(4, seed=5, min_chars=400))
    words = second.split()
    edited = " ".join(words[:10] + ["remarkably"] + words[11:])
    truncated = " ".join(words[: int(len(words) * 0.9)])
    zh_edited = ZH_PASSAGE.replace("繁忙", "忙碌")
    a_lines = [
        alpaca("Summarise this passage.", first),
        alpaca("SUMMARISE   this passage!!", first.upper().replace(".", " .")),
        alpaca("Explain the following text.", second),
        alpaca("Explain the following text.", edited),
        alpaca("Describe it.", third),
        alpaca("Question: why does the sky appear blue during the day and red at sunset?", "Air."),
    ]
    b_lines = [
        alpaca("Explain the following text.", truncated),
        alpaca("介绍一下长江。", ZH_PASSAGE),
        alpaca("介绍一下长江。", zh_edited),
        alpaca("Tell me more.", fourth),
    ]
    (root / "a.jsonl").write_text("\n".join(a_lines) + "\n", encoding="utf-8")
    (root / "b.jsonl").write_text("\n".join(b_lines) + "\n", encoding="utf-8")
    evals = [
        {"id": "sky", "question": "Why does the sky appear blue during the day, and red at sunset?"}
    ]
    (root / "evals.jsonl").write_text("\n".join(json.dumps(e) for e in evals) + "\n")


def recipe(root: Path, output: Path, **near: object) -> Path:
    data = {
        "name": "dedup-test",
        "seed": 3,
        "inputs": [{"path": str(root / "a.jsonl")}, {"path": str(root / "b.jsonl")}],
        "stages": [
            {"decontaminate": {"eval_sets": [str(root / "evals.jsonl")], "threshold": 0.5}},
            {"exact_dedup": {"key": "conversation"}},
            {"near_dedup": {"threshold": 0.7, **near}},
        ],
        "output": {"path": str(output)},
        "run": {"progress_bars": False},
    }
    path = output.parent / f"{output.name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def rejects(output: Path) -> list[dict]:
    rows = []
    for shard in sorted((output / "rejects").glob("*.parquet")):
        rows += pq.read_table(shard).to_pylist()
    return sorted(rows, key=lambda r: (r["source_file"], r["source_line"]))


def checksums(output: Path) -> list[tuple[str, str]]:
    manifest = json.loads((output / "manifest.json").read_text())
    return [(shard["path"].split("/")[-1], shard["sha256"]) for shard in manifest["shards"]]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("dedup-corpus")
    write_corpus(root)
    return root


@pytest.fixture(scope="module")
def single_node(ray_session, corpus, tmp_path_factory):
    output = tmp_path_factory.mktemp("dedup-out") / "single"
    outcome = run_data(str(recipe(corpus, output)), progress_bars=False)
    return output, outcome


def test_each_planted_duplicate_is_removed_with_its_reason(single_node):
    output, outcome = single_node
    found = {}
    for row in rejects(output):
        found.setdefault(row["drop_reason"], set()).add(
            (Path(row["source_file"]).name, row["source_line"])
        )
    assert set(found) == {"dedup.exact", "dedup.near", "dedup.contaminated"}
    assert found["dedup.contaminated"] == {("a.jsonl", 6)}
    (exact,) = found["dedup.exact"]
    assert exact in {("a.jsonl", 1), ("a.jsonl", 2)}
    english = {("a.jsonl", 3), ("a.jsonl", 4), ("b.jsonl", 1)}
    chinese = {("b.jsonl", 2), ("b.jsonl", 3)}
    assert len(found["dedup.near"] & english) == 2
    assert len(found["dedup.near"] & chinese) == 1
    assert outcome.stats["drop_reasons"] == {
        "dedup.contaminated": 1,
        "dedup.exact": 1,
        "dedup.near": 3,
    }
    assert outcome.stats["conservation"] == {
        "input": 10,
        "created": 0,
        "output": 5,
        "rejects": 5,
        "quarantine": 0,
        "balanced": True,
    }


def test_near_duplicates_point_at_one_deterministic_keeper(single_node):
    output, _ = single_node
    near = [r for r in rejects(output) if r["drop_reason"] == "dedup.near"]
    details = [json.loads(r["drop_detail"]) for r in near]
    kept = {r["id"]: r for r in pq.read_table(output / "data").to_pylist()}
    english = [
        d for r, d in zip(near, details, strict=True) if "长江" not in r["messages"][0]["content"]
    ]
    assert len(english) == 2 and len({d["duplicate_of"] for d in english}) == 1
    keeper = english[0]["duplicate_of"]
    assert keeper in kept and kept[keeper]["cluster_id"] == keeper
    assert sum(1 for row in kept.values() if row["cluster_id"]) == 2  # en and zh keepers
    # lowest_id policy: the keeper's id is the smallest in its cluster.
    assert keeper < min(r["id"] for r in near if "长江" not in r["messages"][0]["content"])
    assert all(0.5 <= d["similarity"] <= 1.0 for d in details)


def test_exact_duplicate_names_its_keeper_and_contamination_its_item(single_node):
    output, outcome = single_node
    by_reason = {r["drop_reason"]: r for r in rejects(output)}
    kept_ids = {r["id"] for r in pq.read_table(output / "data").to_pylist()}
    assert json.loads(by_reason["dedup.exact"]["drop_detail"])["duplicate_of"] in kept_ids
    contaminated = json.loads(by_reason["dedup.contaminated"]["drop_detail"])
    assert contaminated["eval_item"] == "evals.jsonl#sky"
    stage = next(s for s in outcome.stats["stages"] if s["stage"] == "decontaminate")
    assert stage["findings"] == {"evals.jsonl#sky": 1}
    report = (output / "report.html").read_text()
    assert "matched evaluation items" in report and "evals.jsonl#sky" in report


def test_distributed_clustering_and_components_by_joins_give_identical_bytes(
    single_node, corpus, tmp_path
):
    # Shuffle rounds instead of one clustering task (component sizes then come from a
    # count per root), and max_component_rows 0 sends every candidate component through the
    # bounded joins (edges checked against signatures, clusters, salted keeper scoring)
    # instead of the per-component step: same clusters, keepers and similarities. The
    # default run decided both dedup stages and the write in one task each (the corpus is
    # far below run.single_task_bytes); this one takes every distributed path.
    output, _ = single_node
    other = tmp_path / "distributed"
    near = {"single_task_max_edges": 0, "max_component_rows": 0}
    run_data(
        str(recipe(corpus, other, **near)),
        ["run.batch_rows=3", "run.single_task_bytes=0"],
        progress_bars=False,
    )
    assert checksums(other) == checksums(output)


def test_exact_checks_on_ray_drop_the_same_records(single_node, corpus, tmp_path):
    # The key texts ride along with the signatures to the per-component step, where each
    # candidate pair's shingle Jaccard is computed; the planted pairs all pass it.
    output, _ = single_node
    exact = tmp_path / "exact"
    run_data(str(recipe(corpus, exact, verify="exact")), progress_bars=False)

    def dropped(path: Path) -> list[tuple[str, int, str]]:
        return [(r["source_file"], r["source_line"], r["drop_reason"]) for r in rejects(path)]

    assert dropped(exact) == dropped(output)
