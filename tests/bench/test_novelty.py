"""bench novelty on a small generated set: every figure present and consistent."""

from __future__ import annotations

import json

import pytest

from bench.novelty import bench_novelty, instructions


@pytest.mark.slow
def test_bench_novelty_times_measures_and_extrapolates(ray_session, tmp_path, capsys):
    out = tmp_path / "novelty.json"
    results = bench_novelty([200, 400], all_pairs_max=200, json_out=str(out), warmup=0)
    small, large = results
    assert small.all_pairs_measured and not large.all_pairs_measured
    assert small.kept_all_pairs == small.kept_exact  # the all-pairs run checks the index
    for result in results:
        assert 0 < result.kept_exact < result.size and result.disagree_share <= 0.01
        assert result.ours_s > 0 and result.ratio == pytest.approx(
            result.all_pairs_s / result.ours_s
        )
    # Extrapolated at the per-comparison cost timed at 200.
    per_comparison = small.all_pairs_s / small.all_pairs_comparisons
    assert large.all_pairs_s == pytest.approx(per_comparison * large.all_pairs_comparisons)
    assert json.loads(out.read_text())[1]["size"] == 400
    assert "400 instructions" in capsys.readouterr().out


def test_a_corpus_file_gives_its_instructions_in_order(tmp_path):
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps([{"instruction": f"Task {i}."} for i in range(3)]))
    assert instructions(2, 0, str(path)) == ["Task 0.", "Task 1."]
    with pytest.raises(ValueError, match="fewer than 5"):
        instructions(5, 0, str(path))
