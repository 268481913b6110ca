"""MinHash kernel: LSH shape, normal form, CJK shingles, estimator bias, determinism, bands."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from datasketch.lsh import _optimal_param

from pipeline.minhash import (
    DEFAULT_NUM_PERM,
    EMPTY_SLOT,
    MinHasher,
    Shingler,
    band_hashes,
    estimated_jaccard,
    exact_jaccard,
    has_shingles,
    optimal_bands,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
MASK64 = (1 << 64) - 1

ENGLISH = (
    "Near-duplicate detection finds documents that say almost the same thing. MinHash turns "
    "each document into a short signature, and the fraction of equal slots in two signatures "
    "estimates how many shingles the documents share. Banding the signatures lets similar "
    "documents meet in a bucket without comparing every pair."
)
ENGLISH_NOISY = (
    "near duplicate   DETECTION finds documents, that say almost the same thing!!\n\nMinHash "
    "turns each document into a short signature; and the fraction of equal slots in two "
    "signatures — estimates how many shingles the documents share... Banding the signatures "
    "lets similar documents meet in a bucket (without comparing every pair)"
)
# Full-width letters fold to ASCII under NFKC, full-width punctuation to separators.
ENGLISH_FULL_WIDTH = ENGLISH.replace("MinHash", "ＭｉｎＨａｓｈ").replace(",", "，")
CHINESE = (
    "近似重复检测用来找出内容几乎相同的文档。最小哈希把每篇文档变成一个很短的签名，"
    "两个签名中相等位置的比例可以估计两篇文档共有多少个片段。把签名分成若干段以后，"
    "相似的文档会落进同一个桶里，不必两两比较所有的文档。"
)
CHINESE_UNRELATED = (
    "今天早上我去市场买了新鲜的蔬菜和水果，回家以后做了一顿丰盛的午饭。下午天气很好，"
    "我们一起去公园散步，看到很多孩子在草地上放风筝，老人们在树下下棋聊天。"
)
# Reference hash constants, written out again here so that the kernel is checked against an
# independent pure-Python reading of the module docstring.
FNV_OFFSET, FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3
XXH_PRIME_1, XXH_PRIME_2 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F
SHINGLE_SEED = 0x27D4EB2F165667C5
# sha256 of MinHasher(seed=42).signatures(GOLDEN_TEXTS): changes only if the hash changes.
GOLDEN_TEXTS = [ENGLISH, CHINESE, "short text", ""]
GOLDEN_DIGEST = "2b56875318ea039294a521c7dc80ff3df79b4b1110a57833c52375814cc4bb70"


def fmix64(value: int) -> int:
    value ^= value >> 33
    value = (value * 0xFF51AFD7ED558CCD) & MASK64
    value ^= value >> 33
    value = (value * 0xC4CEB9FE1A85EC53) & MASK64
    return value ^ (value >> 33)


def reference_shingle_hashes(shingler: Shingler, text: str) -> np.ndarray:
    """Shingle hashes from ``Shingler.tokens`` (pure Python), hashed as the docstring says."""
    tokens = shingler.tokens(text)
    token_hashes = []
    for token in tokens:
        value = FNV_OFFSET
        for character in token:
            value = ((value ^ ord(character)) * FNV_PRIME) & MASK64
        token_hashes.append(fmix64(value))
    shingle_width = len(shingler.shingles(text)[0].split(" ")) if tokens else 0
    hashes = set()
    for first in range(len(tokens) - shingle_width + 1 if tokens else 0):
        accumulator = SHINGLE_SEED
        for token_hash in token_hashes[first : first + shingle_width]:
            accumulator = (accumulator + token_hash * XXH_PRIME_2) & MASK64
            accumulator = ((accumulator << 31) | (accumulator >> 33)) & MASK64
            accumulator = (accumulator * XXH_PRIME_1) & MASK64
        hashes.add(fmix64(accumulator ^ shingle_width))
    return np.array(sorted(hashes), dtype=np.uint64)


# ---------------------------------------------------------------------------------------
# LSH shape


def test_optimal_bands_at_usual_thresholds() -> None:
    assert optimal_bands(0.7, 128) == (14, 9)
    assert optimal_bands(0.8, 128) == (9, 13)


@pytest.mark.parametrize("threshold", [0.5, 0.85])
def test_optimal_bands_match_datasketch(threshold: float) -> None:
    assert optimal_bands(threshold, 128) == _optimal_param(threshold, 128, 0.5, 0.5)


@pytest.mark.parametrize("num_perm", [16, 100, 128, 256])
@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.9])
def test_optimal_bands_fit_in_the_signature(threshold: float, num_perm: int) -> None:
    bands, rows = optimal_bands(threshold, num_perm)
    assert bands >= 1 and rows >= 1 and bands * rows <= num_perm


def test_weighting_false_negatives_buys_more_bands() -> None:
    fewer_misses = optimal_bands(0.8, 128, false_positive_weight=0.1, false_negative_weight=0.9)
    fewer_false_hits = optimal_bands(0.8, 128, false_positive_weight=0.9, false_negative_weight=0.1)
    assert fewer_misses[0] > optimal_bands(0.8, 128)[0] > fewer_false_hits[0]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((0.0, 128), "threshold"),
        ((1.0, 128), "threshold"),
        ((float("nan"), 128), "threshold"),
        ((0.8, 0), "num_perm"),
        ((0.8, 128, -0.1, 0.5), "false_positive_weight"),
        ((0.8, 128, 0.5, float("inf")), "false_negative_weight"),
        ((0.8, 128, 0.0, 0.0), "must be > 0"),
    ],
)
def test_optimal_bands_rejects_bad_arguments(arguments: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        optimal_bands(*arguments)


# ---------------------------------------------------------------------------------------
# Normal form and shingles


def test_noise_does_not_change_signatures() -> None:
    signatures = MinHasher().signatures([ENGLISH, ENGLISH_NOISY, ENGLISH_FULL_WIDTH])
    assert (signatures == signatures[0]).all()


def test_kernel_hashes_the_python_tokens() -> None:
    shingler = Shingler(word_ngram=3, char_ngram=2)
    texts = [ENGLISH_NOISY, ENGLISH_FULL_WIDTH, CHINESE, "Ünïcödé straße ǅ ﬁne", "two words"]
    texts += ["日本語のテキストとカタカナ、한국어 텍스트", "mixed 中文 text with english words"]
    for text in texts:
        assert np.array_equal(
            shingler.shingle_hashes(text), reference_shingle_hashes(shingler, text)
        )


def test_tokens_split_on_punctuation_and_symbols() -> None:
    tokens = Shingler().tokens("Ｈｅｌｌｏ, WORLD! it's C++_code; ½ ÉTÉ")
    assert tokens == ["hello", "world", "it", "s", "c", "code", "1", "2", "été"]


def test_chinese_is_shingled_as_character_ngrams() -> None:
    shingles = Shingler(char_ngram=5).shingles(CHINESE)
    assert shingles[0] == "近 似 重 复 检"
    assert all(len(shingle.split(" ")) == 5 for shingle in shingles)


def test_mostly_english_text_keeps_word_ngrams() -> None:
    shingles = Shingler(word_ngram=3).shingles("we tested 中文 support in the new release")
    assert shingles[0] == "we tested 中"


def test_chinese_near_duplicates_score_high_and_unrelated_low() -> None:
    edited = CHINESE.replace("很短的", "简短的").replace("两两比较", "逐一比较")
    signatures = MinHasher().signatures([CHINESE, edited, CHINESE_UNRELATED])
    shingler = Shingler()
    true_similarity = exact_jaccard(
        shingler.shingle_hashes(CHINESE), shingler.shingle_hashes(edited)
    )
    assert 0.7 < true_similarity < 0.95
    assert estimated_jaccard(signatures[0], signatures[1]) > 0.65
    assert estimated_jaccard(signatures[0], signatures[2]) < 0.05


def test_short_text_is_one_shingle() -> None:
    shingler = Shingler(word_ngram=5)
    assert shingler.shingles("Just three words") == ["just three words"]
    assert len(shingler.shingle_hashes("Just three words")) == 1


# ---------------------------------------------------------------------------------------
# Estimator


@pytest.mark.parametrize("true_jaccard", [0.3, 0.5, 0.7, 0.9])
def test_estimated_jaccard_is_unbiased(true_jaccard: float) -> None:
    # Two word sets over a union of 200 words, overlapping in true_jaccard * 200 of them;
    # word 1-grams make the shingle sets exactly the word sets.
    union, shingler = 200, Shingler(word_ngram=1)
    half = (union + round(true_jaccard * union)) // 2
    estimates = []
    for seed in range(200):
        words = [f"w{seed}x{index}" for index in range(union)]
        pair = [" ".join(words[:half]), " ".join(words[union - half :])]
        signatures = MinHasher(seed=seed, shingler=shingler).signatures(pair)
        estimates.append(estimated_jaccard(signatures[0], signatures[1]))
    # The spread of one estimate is sqrt(J(1-J)/128) <= 0.045, of this mean about 0.003.
    assert abs(np.mean(estimates) - true_jaccard) < 0.02


def test_estimated_jaccard_row_wise_and_exact_jaccard() -> None:
    left = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.uint64)
    right = np.array([[1, 2, 0, 0], [5, 6, 7, 8]], dtype=np.uint64)
    assert np.array_equal(estimated_jaccard(left, right), [0.5, 1.0])
    assert estimated_jaccard(left[0], right[0]) == 0.5
    shingles = np.array([1, 2, 3], dtype=np.uint64)
    assert exact_jaccard(shingles, np.array([2, 3, 4], dtype=np.uint64)) == 0.5
    with pytest.raises(ValueError, match="shape"):
        estimated_jaccard(left, right[:, :2])


# ---------------------------------------------------------------------------------------
# Determinism and batches


def signature_digest(signatures: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(signatures).tobytes()).hexdigest()


def test_same_seed_same_signatures_other_seed_other_signatures() -> None:
    first = MinHasher(seed=7).signatures(GOLDEN_TEXTS)
    assert np.array_equal(first, MinHasher(seed=7).signatures(GOLDEN_TEXTS))
    other = MinHasher(seed=8).signatures(GOLDEN_TEXTS)
    assert (first[:3] != other[:3]).mean() > 0.95


def test_signatures_are_identical_in_a_fresh_process() -> None:
    script = (
        "from tests.pipeline.test_minhash import GOLDEN_TEXTS, signature_digest\n"
        "from pipeline.minhash import MinHasher\n"
        "print(signature_digest(MinHasher(seed=42).signatures(GOLDEN_TEXTS)))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    here = signature_digest(MinHasher(seed=42).signatures(GOLDEN_TEXTS))
    assert completed.stdout.strip() == here == GOLDEN_DIGEST


def test_batch_rows_equal_single_texts_for_every_input_type() -> None:
    texts = [ENGLISH, "", CHINESE, ENGLISH_NOISY, "x"]
    hasher = MinHasher(num_perm=64, seed=3)
    singles = np.stack([hasher.signatures([text])[0] for text in texts])
    as_arrow = pa.array(["padding", *texts], pa.string()).slice(1)
    chunked = pa.chunked_array([texts[:2], texts[2:]], pa.large_string())
    for batch in (texts, as_arrow, chunked):
        assert np.array_equal(hasher.signatures(batch), singles)
    assert hasher.signatures([]).shape == (0, 64)


def test_nulls_read_as_empty_texts() -> None:
    signatures = MinHasher().signatures(pa.array([ENGLISH, None], pa.string()))
    assert has_shingles(signatures).tolist() == [True, False]


def test_empty_text_gets_the_empty_signature() -> None:
    signatures = MinHasher().signatures(["", " ?! ", "word"])
    assert signatures.shape == (3, DEFAULT_NUM_PERM) and signatures.dtype == np.uint64
    assert (signatures[:2] == EMPTY_SLOT).all()
    assert has_shingles(signatures).tolist() == [False, False, True]
    assert Shingler().shingle_hashes(" ?! ").size == 0
    assert exact_jaccard(np.zeros(0, np.uint64), np.zeros(0, np.uint64)) == 1.0


# ---------------------------------------------------------------------------------------
# Bands


def test_band_hashes_shape_and_equality() -> None:
    signatures = MinHasher().signatures([ENGLISH, ENGLISH_NOISY, CHINESE])
    bands = band_hashes(signatures, 9, 13)
    assert bands.shape == (3, 9) and bands.dtype == np.uint64
    assert np.array_equal(bands[0], bands[1])
    assert (bands[0] != bands[2]).all()


def test_one_changed_slot_changes_only_its_band() -> None:
    signatures = MinHasher().signatures([ENGLISH, ENGLISH])
    signatures[1, 13 * 4 + 5] ^= np.uint64(1)
    differs = band_hashes(signatures, 9, 13)[0] != band_hashes(signatures, 9, 13)[1]
    assert np.flatnonzero(differs).tolist() == [4]


def test_equal_values_in_different_bands_hash_apart() -> None:
    bands = band_hashes(np.full((1, 8), 5, dtype=np.uint64), 4, 2)
    assert len(set(bands[0].tolist())) == 4


def test_band_hashes_reject_too_many_slots() -> None:
    with pytest.raises(ValueError, match="bands\\*rows"):
        band_hashes(np.zeros((2, 16), dtype=np.uint64), 5, 4)
