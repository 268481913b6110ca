import pytest
from pydantic import ValidationError

from pipeline.filters.blocklist import BlocklistConfig, BlocklistFilter, blocklist_pattern
from pipeline.schema import make_record, message, rows_to_table
from tests.pipeline.filters.helpers import check_filter, check_passes_dropped_rows_through
from tests.pipeline.filters.samples import EN_ANSWER, ZH_ANSWER


@pytest.fixture
def blocklist(tmp_path):
    path = tmp_path / "blocklist.txt"
    path.write_text("# terms, one per line\n\nBadWord\nbad phrase here\nc++\n赌博\n", "utf-8")
    return str(path)


@pytest.fixture
def stage(blocklist):
    return BlocklistFilter(BlocklistConfig(path=blocklist))


def test_clean_records_are_kept(stage):
    check_filter(stage, "Explain photosynthesis.", EN_ANSWER, None)
    check_filter(stage, "解释一下光合作用。", ZH_ANSWER, None)


def test_ascii_terms_match_whole_words_case_insensitively(stage):
    row = check_filter(stage, "Question?", "That is a BADWORD, sadly.", "filter.blocklisted_term")
    assert row["drop_detail"] == {"term": "BadWord", "field": "response"}
    check_filter(stage, "Question?", "Those are badwords and notbadword.", None)
    check_filter(stage, "Question?", "We wrote it in C++ last year.", "filter.blocklisted_term")
    check_filter(
        stage, "Question?", "Bad  phrase here? No: bad phrase here!", "filter.blocklisted_term"
    )


def test_cjk_terms_match_inside_text_without_spaces(stage):
    row = check_filter(
        stage, "网上赌博合法吗？", "这取决于所在地区的法律。", "filter.blocklisted_term"
    )
    assert row["drop_detail"] == {"term": "赌博", "field": "instruction"}


def test_only_configured_fields_are_searched(blocklist):
    responses_only = BlocklistFilter(BlocklistConfig(path=blocklist, fields=("response",)))
    check_filter(responses_only, "网上赌博合法吗？", "这取决于所在地区的法律。", None)


def test_missing_file_fails_validation_naming_the_path(tmp_path):
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(ValidationError, match="nope.txt"):
        BlocklistConfig(path=missing)
    with pytest.raises(ValueError, match="nope.txt"):
        BlocklistFilter(BlocklistConfig.model_construct(path=missing, fields=("response",)))


def test_validation_error_points_at_the_path_key(tmp_path):
    # The recipe loader turns this location into "stages[i].blocklist.path".
    with pytest.raises(ValidationError) as caught:
        BlocklistConfig.model_validate({"path": str(tmp_path / "nope.txt")})
    (error,) = caught.value.errors()
    assert error["loc"] == ("path",) and "nope.txt" in error["msg"]


def test_undecodable_or_empty_file_is_rejected(tmp_path):
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ValidationError, match="cannot be read as UTF-8"):
        BlocklistConfig(path=str(binary))
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n", "utf-8")
    with pytest.raises(ValidationError, match="has no terms"):
        BlocklistConfig(path=str(empty))


def test_batch_of_mixed_rows(stage):
    rows = [
        make_record(
            messages=[message("user", q), message("assistant", a)],
            source_file="t",
            source_format="messages",
            source_line=n,
        )
        for n, (q, a) in enumerate([("Hi", "Hello"), ("赌博？", "不"), ("Q", "badword")])
    ]
    table, counts = stage.run(rows_to_table(rows))
    assert table.column("drop_reason").to_pylist() == [
        None,
        "filter.blocklisted_term",
        "filter.blocklisted_term",
    ]
    assert counts.kept == 1 and counts.dropped == {"filter.blocklisted_term": 2}


def test_already_dropped_rows_pass_through_unjudged(stage):
    check_passes_dropped_rows_through(stage, "赌博", "badword")


def test_prefix_tree_pattern_prefers_longer_terms_and_backs_off():
    pattern = blocklist_pattern(["bad", "bad words", "badge", "赌", "赌博网站"])
    assert pattern.search("no BAD WORDS here").group() == "BAD WORDS"
    # "bad words" is not a whole word in "bad wordsmith": the engine backs off to "bad".
    assert pattern.search("a bad wordsmith").group() == "bad"
    assert pattern.search("badges and badgers") is None
    assert pattern.search("进入赌博网站").group() == "赌博网站"
    assert pattern.search("赌场").group() == "赌"
    assert pattern.search("a badge").group() == "badge"
