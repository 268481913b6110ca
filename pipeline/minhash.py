"""MinHash signatures for near-duplicate detection: the pure hashing kernel, no Ray.

A text becomes a set of shingles, the set becomes ``num_perm`` minima, and the fraction of
equal minima between two texts estimates the Jaccard similarity of their shingle sets.

1. **Normal form.** NFKC (folds full-width forms to ASCII), casefold, then every character
   that is not a letter, number or combining mark (punctuation, symbols, spaces, controls)
   is a separator. So case, whitespace, punctuation and width noise leave the shingles alone.
   ASCII texts skip the Python step: for them NFKC is the identity and casefold is the ASCII
   lowercasing that the kernel does itself. Only non-ASCII texts pay for ``unicodedata``.
2. **Tokens.** A run of word characters is one token; each CJK character (Han, kana,
   bopomofo, hangul, as ``pipeline.text.CJK_CHARACTERS``) is a token of its own, because
   those scripts write no spaces between words. A token's hash is 64-bit FNV-1a over its
   code points, finished with the MurmurHash3 ``fmix64`` avalanche.
3. **Shingles.** When more than half of a text's tokens are CJK characters, shingles are
   ``char_ngram`` consecutive tokens (character n-grams), otherwise ``word_ngram`` tokens.
   A text with fewer tokens than that has one shingle of all its tokens. A shingle's hash
   chains its token hashes through an xxHash64-style round and ends with ``fmix64``, so its
   64 bits look uniformly random and word order matters.
4. **Signature.** Slot ``p`` holds ``min over shingles of (a_p * h + b_p) mod 2^64``.

Why the permutation family is fine: with ``a_p`` odd, ``h -> a_p * h + b_p mod 2^64`` is a
bijection on 64-bit values (a collision needs ``2^64`` to divide ``a_p * (h1 - h2)``, and an
odd ``a_p`` has no factor of two), so no two shingles merge, whatever the set size. The family
is 2-universal but not provably min-wise independent; what makes it behave is that its inputs
are already avalanche-mixed, the same construction as datasketch 2.0's ``affine64`` scheme.
The estimator's bias is measured, not proven: ``tests/pipeline/test_minhash.py`` checks that
the mean estimate over many seeds is within 0.02 of the true Jaccard at 0.3, 0.5, 0.7, 0.9.
The multiply wraps in hardware, and the inner loop (one multiply, add and unsigned min per
shingle and slot) vectorises.

Determinism: nothing uses Python's salted ``hash()``, and ``a_p, b_p`` come from a SplitMix64
stream of the seed, so one seed gives byte-identical signatures in every process and on every
machine (given the same Unicode database, i.e. the same Python minor version, for non-ASCII
text). Different seeds give different permutations; shingle hashes do not depend on the seed.

An empty text (no tokens after normalisation, e.g. ``""`` or ``"?!"``) has no shingles and
gets the all-``EMPTY_SLOT`` signature. Two such texts look identical (they are, after
normalisation), so callers should skip them: ``has_shingles`` says which rows are real.

Speed: the kernels are numba functions over a whole batch's UTF-8 bytes, read zero-copy from
Arrow. The first call in a fresh environment compiles them (several seconds); ``cache=True``
stores the machine code beside this file, so later processes load it in well under a second.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.text import CJK_CHARACTERS

DEFAULT_NUM_PERM = 128
MASK64 = (1 << 64) - 1
EMPTY_SLOT = np.uint64(MASK64)  # the value of every slot of a text without shingles

# Character classes of the kernel's lookup table, one byte per Unicode code point.
SEPARATOR, WORD, CJK = 0, 1, 2
UNICODE_SIZE = 0x110000
WORD_CATEGORIES = ("L", "N", "M")  # letters, numbers, combining marks

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
FMIX_1 = np.uint64(0xFF51AFD7ED558CCD)
FMIX_2 = np.uint64(0xC4CEB9FE1A85EC53)
XXH_PRIME_1 = np.uint64(0x9E3779B185EBCA87)
XXH_PRIME_2 = np.uint64(0xC2B2AE3D27D4EB4F)
SHINGLE_SEED = np.uint64(0x27D4EB2F165667C5)
BAND_SEED = 0x165667B19E3779F9
SPLITMIX_GAMMA = 0x9E3779B97F4A7C15


# ---------------------------------------------------------------------------------------
# LSH shape


def optimal_bands(
    threshold: float,
    num_perm: int,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm minimising the weighted FP/FN area under
    the LSH S-curve, as in datasketch's _optimal_param (integrate 1-(1-s^r)^b). Deterministic.
    Raise ValueError with a clear message for threshold outside (0,1) or bad weights.

    The areas are integrated with composite Simpson on 1025 points (datasketch uses
    ``scipy.integrate.quad``); ties go to the fewest bands, then the fewest rows, as in
    datasketch's loop. Only the ratio of the weights matters.
    """
    _check_lsh_arguments(threshold, num_perm, false_positive_weight, false_negative_weight)
    best_error, best = np.inf, (0, 0)
    below = np.linspace(0.0, threshold, 1025)
    above = np.linspace(threshold, 1.0, 1025)
    for bands in range(1, num_perm + 1):
        rows = np.arange(1, num_perm // bands + 1, dtype=np.float64)[:, None]
        false_positive = _simpson(1.0 - (1.0 - below**rows) ** bands, threshold)
        false_negative = _simpson((1.0 - above**rows) ** bands, 1.0 - threshold)
        error = false_positive_weight * false_positive + false_negative_weight * false_negative
        index = int(np.argmin(error))
        if error[index] < best_error:
            best_error, best = error[index], (bands, index + 1)
    return best


def _check_lsh_arguments(
    threshold: float, num_perm: int, false_positive_weight: float, false_negative_weight: float
) -> None:
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be strictly between 0 and 1, got {threshold!r}")
    if isinstance(num_perm, bool) or not isinstance(num_perm, int) or num_perm < 1:
        raise ValueError(f"num_perm must be a positive integer, got {num_perm!r}")
    weights = {"false_positive_weight": false_positive_weight}
    weights["false_negative_weight"] = false_negative_weight
    for name, weight in weights.items():
        if not (np.isfinite(weight) and weight >= 0.0):
            raise ValueError(f"{name} must be a finite number >= 0, got {weight!r}")
    if false_positive_weight + false_negative_weight <= 0.0:
        raise ValueError(
            "false_positive_weight + false_negative_weight must be > 0, got "
            f"{false_positive_weight!r} + {false_negative_weight!r}"
        )


def _simpson(values: np.ndarray, width: float) -> np.ndarray:
    """Integral over an interval of ``width`` of each row of ``values`` (odd sample count)."""
    step = width / (values.shape[-1] - 1)
    weights = np.ones(values.shape[-1])
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return values @ weights * step / 3.0


# ---------------------------------------------------------------------------------------
# Normal form and tokens


@functools.cache
def character_classes() -> np.ndarray:
    """The kernel's lookup table: SEPARATOR, WORD or CJK for every code point (read-only).

    Built once per process from ``unicodedata`` (about 0.1 s)."""
    classes = np.zeros(UNICODE_SIZE, dtype=np.uint8)
    for code in range(UNICODE_SIZE):
        if unicodedata.category(chr(code))[0] in WORD_CATEGORIES:
            classes[code] = WORD
    for first, last in _cjk_ranges(CJK_CHARACTERS):
        classes[first : last + 1] = CJK
    classes.setflags(write=False)
    return classes


def _cjk_ranges(character_class: str) -> list[tuple[int, int]]:
    """``"a-cx"`` (the body of a regex character class) -> ``[(ord a, ord c), (ord x, ord x)]``."""
    ranges, index = [], 0
    while index < len(character_class):
        if index + 2 < len(character_class) and character_class[index + 1] == "-":
            ranges.append((ord(character_class[index]), ord(character_class[index + 2])))
            index += 3
        else:
            ranges.append((ord(character_class[index]), ord(character_class[index])))
            index += 1
    return ranges


def fold(text: str) -> str:
    """NFKC then casefold; ASCII texts are returned as they are (the kernel lowercases)."""
    return text if text.isascii() else unicodedata.normalize("NFKC", text).casefold()


def utf8_batch(texts: Sequence[str] | pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, ...]:
    """``(data, starts, stops)``: the folded texts' UTF-8 bytes and each text's byte range.

    Arrow input is not re-encoded: only its non-ASCII rows pass through Python (``fold``).
    Nulls count as empty texts."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if isinstance(texts, pa.Array):
        texts = _fold_non_ascii(texts.cast(pa.large_string()))
    else:
        texts = pa.array([fold(text) for text in texts], pa.large_string())
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int64)
    offsets = offsets[texts.offset : texts.offset + len(texts) + 1]
    data_buffer = texts.buffers()[2]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer else np.zeros(0, np.uint8)
    starts, stops = offsets[:-1], offsets[1:]
    if texts.null_count:
        stops = np.where(texts.is_null().to_numpy(zero_copy_only=False), starts, stops)
    return data, starts, stops


def _fold_non_ascii(texts: pa.Array) -> pa.Array:
    ascii_rows = pc.fill_null(pc.string_is_ascii(texts), True)
    if pc.all(ascii_rows).as_py():
        return texts
    non_ascii = pc.invert(ascii_rows)
    folded = [fold(text) for text in texts.filter(non_ascii).to_pylist()]
    return pc.replace_with_mask(texts, non_ascii, pa.array(folded, pa.large_string()))


# ---------------------------------------------------------------------------------------
# Numba kernels (all integers stay uint64 or int64: mixing them would make floats)


@numba.njit(cache=True, nogil=True, inline="always")
def _fmix64(value: np.uint64) -> np.uint64:
    value ^= value >> np.uint64(33)
    value *= FMIX_1
    value ^= value >> np.uint64(33)
    value *= FMIX_2
    return value ^ (value >> np.uint64(33))


@numba.njit(cache=True, nogil=True, inline="always")
def _decode_utf8(data: np.ndarray, index: int, stop: int) -> tuple[int, int]:
    """(code point, next index); a malformed or truncated sequence reads as code point 0,
    a separator."""
    lead = np.int64(data[index])
    if lead < 0x80:
        return lead, index + 1
    if lead < 0xC0:
        return 0, index + 1
    length = 2 if lead < 0xE0 else (3 if lead < 0xF0 else 4)
    if index + length > stop:
        return 0, stop
    code = lead & (0x7F >> length)
    for offset in range(1, length):
        code = (code << 6) | (np.int64(data[index + offset]) & 0x3F)
    return min(code, 0x10FFFF), index + length


@numba.njit(cache=True, nogil=True)
def _tokenise(
    data: np.ndarray, start: int, stop: int, classes: np.ndarray, token_hashes: np.ndarray
) -> tuple[int, int]:
    """Fill ``token_hashes``; return (token count, CJK token count)."""
    count, cjk_count, word_hash, in_word = 0, 0, FNV_OFFSET, False
    index = start
    while index < stop:
        code, index = _decode_utf8(data, index, stop)
        kind = classes[code]
        if kind == WORD:
            if 65 <= code <= 90:  # ASCII upper case: the only case folding left to do here
                code += 32
            word_hash = (word_hash ^ np.uint64(code)) * FNV_PRIME
            in_word = True
            continue
        if in_word:
            token_hashes[count] = _fmix64(word_hash)
            count, word_hash, in_word = count + 1, FNV_OFFSET, False
        if kind == CJK:
            token_hashes[count] = _fmix64((FNV_OFFSET ^ np.uint64(code)) * FNV_PRIME)
            count, cjk_count = count + 1, cjk_count + 1
    if in_word:
        token_hashes[count] = _fmix64(word_hash)
        count += 1
    return count, cjk_count


@numba.njit(cache=True, nogil=True, inline="always")
def _combine(accumulator: np.uint64, token_hash: np.uint64) -> np.uint64:
    accumulator += token_hash * XXH_PRIME_2
    accumulator = (accumulator << np.uint64(31)) | (accumulator >> np.uint64(33))
    return accumulator * XXH_PRIME_1


@numba.njit(cache=True, nogil=True)
def _text_shingles(
    data: np.ndarray,
    start: int,
    stop: int,
    classes: np.ndarray,
    word_ngram: int,
    char_ngram: int,
    token_hashes: np.ndarray,
    shingle_hashes: np.ndarray,
) -> int:
    """Fill ``shingle_hashes`` with one text's shingle hashes (repeats kept); return how many."""
    count, cjk_count = _tokenise(data, start, stop, classes, token_hashes)
    if count == 0:
        return 0
    width = min(char_ngram if 2 * cjk_count > count else word_ngram, count)
    for first in range(count - width + 1):
        accumulator = SHINGLE_SEED
        for position in range(first, first + width):
            accumulator = _combine(accumulator, token_hashes[position])
        shingle_hashes[first] = _fmix64(accumulator ^ np.uint64(width))
    return count - width + 1


@numba.njit(cache=True, nogil=True)
def _minima(
    shingle_hashes: np.ndarray, count: int, a: np.ndarray, b: np.ndarray, row: np.ndarray
) -> None:
    # Slots outside, shingles inside: the minimum stays in a register and the loop over
    # shingles vectorises (a wrapping multiply-add and an unsigned min per lane).
    for slot in range(a.size):
        multiplier, increment, smallest = a[slot], b[slot], EMPTY_SLOT
        for index in range(count):
            value = multiplier * shingle_hashes[index] + increment
            smallest = min(smallest, value)
        row[slot] = smallest


@numba.njit(cache=True, nogil=True)
def _batch_signatures(
    data: np.ndarray,
    starts: np.ndarray,
    stops: np.ndarray,
    classes: np.ndarray,
    word_ngram: int,
    char_ngram: int,
    a: np.ndarray,
    b: np.ndarray,
) -> np.ndarray:
    signatures = np.empty((starts.size, a.size), dtype=np.uint64)
    longest = 0
    for text in range(starts.size):
        longest = max(longest, stops[text] - starts[text])
    # A text has at most one token, and so one shingle, per byte.
    token_hashes = np.empty(longest + 1, dtype=np.uint64)
    shingle_hashes = np.empty(longest + 1, dtype=np.uint64)
    for text in range(starts.size):
        count = _text_shingles(
            data, starts[text], stops[text], classes, word_ngram, char_ngram,
            token_hashes, shingle_hashes,
        )  # fmt: skip
        _minima(shingle_hashes, count, a, b, signatures[text])
    return signatures


@numba.njit(cache=True, nogil=True)
def _batch_masked_signatures(
    data: np.ndarray,
    starts: np.ndarray,
    stops: np.ndarray,
    classes: np.ndarray,
    word_ngram: int,
    char_ngram: int,
    a: np.ndarray,
    b: np.ndarray,
    masks: np.ndarray,
    mask_starts: np.ndarray,
    mask_stops: np.ndarray,
    counts: np.ndarray,
) -> np.ndarray:
    """``_batch_signatures`` with each text's shingles found in its slice of ``masks``
    (sorted) left out, unless that leaves none. ``counts[text]`` gets (shingles, masked)."""
    signatures = np.empty((starts.size, a.size), dtype=np.uint64)
    longest = 0
    for text in range(starts.size):
        longest = max(longest, stops[text] - starts[text])
    token_hashes = np.empty(longest + 1, dtype=np.uint64)
    shingle_hashes = np.empty(longest + 1, dtype=np.uint64)
    kept_hashes = np.empty(longest + 1, dtype=np.uint64)
    for text in range(starts.size):
        count = _text_shingles(
            data, starts[text], stops[text], classes, word_ngram, char_ngram,
            token_hashes, shingle_hashes,
        )  # fmt: skip
        mask = masks[mask_starts[text] : mask_stops[text]]
        kept = 0
        for index in range(count):
            value = shingle_hashes[index]
            at = np.searchsorted(mask, value)
            if at < mask.size and mask[at] == value:
                continue
            kept_hashes[kept] = value
            kept += 1
        counts[text, 0] = count
        if kept == 0:  # all template: compared on the whole text
            counts[text, 1] = 0
            _minima(shingle_hashes, count, a, b, signatures[text])
        else:
            counts[text, 1] = count - kept
            _minima(kept_hashes, kept, a, b, signatures[text])
    return signatures


# ---------------------------------------------------------------------------------------
# Public classes


@dataclass(frozen=True)
class Shingler:
    """How a text becomes shingles (see the module docstring)."""

    word_ngram: int = 5  # word n-grams for space-delimited text
    char_ngram: int = 5  # character n-grams for CJK (Chinese/Japanese/Korean) text

    def __post_init__(self) -> None:
        for name in ("word_ngram", "char_ngram"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Shingler.{name} must be a positive integer, got {value!r}")

    def shingle_hashes(self, text: str) -> np.ndarray:
        """Unique uint64 hashes of the text's shingles (sorted), used for exact Jaccard."""
        data = np.frombuffer(fold(text).encode("utf-8"), dtype=np.uint8)
        token_hashes = np.empty(data.size + 1, dtype=np.uint64)
        shingle_hashes = np.empty(data.size + 1, dtype=np.uint64)
        count = _text_shingles(
            data, 0, data.size, character_classes(), self.word_ngram, self.char_ngram,
            token_hashes, shingle_hashes,
        )  # fmt: skip
        return np.unique(shingle_hashes[:count])

    def tokens(self, text: str) -> list[str]:
        """The tokens as strings, in pure Python: for reading, tests and reference baselines
        (the kernel hashes the same tokens without building strings)."""
        classes, folded = character_classes(), fold(text).lower()
        tokens, word = [], []
        for character in folded:
            kind = classes[ord(character)]
            if kind == WORD:
                word.append(character)
                continue
            if word:
                tokens.append("".join(word))
                word = []
            if kind == CJK:
                tokens.append(character)
        if word:
            tokens.append("".join(word))
        return tokens

    def shingles(self, text: str) -> list[str]:
        """The distinct shingles as strings (tokens joined by one space), in first-seen order."""
        tokens = self.tokens(text)
        if not tokens:
            return []
        mostly_cjk = 2 * sum(map(is_cjk_token, tokens)) > len(tokens)
        width = min(self.char_ngram if mostly_cjk else self.word_ngram, len(tokens))
        grams = (
            " ".join(tokens[first : first + width]) for first in range(len(tokens) - width + 1)
        )
        return list(dict.fromkeys(grams))


def is_cjk_token(token: str) -> bool:
    return len(token) == 1 and character_classes()[ord(token)] == CJK


DEFAULT_SHINGLER = Shingler()


class MinHasher:
    """MinHash signatures of whole batches of texts with ``num_perm`` seeded permutations."""

    def __init__(
        self, num_perm: int = DEFAULT_NUM_PERM, seed: int = 0, shingler: Shingler = DEFAULT_SHINGLER
    ) -> None:
        if isinstance(num_perm, bool) or not isinstance(num_perm, int) or num_perm < 1:
            raise ValueError(f"num_perm must be a positive integer, got {num_perm!r}")
        self.num_perm = num_perm
        self.seed = seed
        self.shingler = shingler
        self.multipliers, self.increments = permutations(num_perm, seed)
        self.classes = character_classes()

    def signatures(self, texts: Sequence[str] | pa.Array | pa.ChunkedArray) -> np.ndarray:
        """(len(texts), num_perm) uint64, one row per text, computed for a whole batch at once."""
        data, starts, stops = utf8_batch(texts)
        return _batch_signatures(
            data, starts, stops, self.classes, self.shingler.word_ngram,
            self.shingler.char_ngram, self.multipliers, self.increments,
        )  # fmt: skip

    def signature(self, text: str) -> np.ndarray:
        return self.signatures([text])[0]

    def masked_signatures(
        self,
        texts: Sequence[str] | pa.Array | pa.ChunkedArray,
        masks: np.ndarray,
        mask_starts: np.ndarray,
        mask_stops: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Signatures of the texts' shingles less those in ``masks[mask_starts[i]:
        mask_stops[i]]`` (sorted uint64 shingle hashes, as ``Shingler.shingle_hashes``
        gives them), and per text (shingles, masked). A text whose every shingle is masked
        keeps them all. With empty masks this is ``signatures``."""
        data, starts, stops = utf8_batch(texts)
        counts = np.zeros((starts.size, 2), dtype=np.int64)
        signatures = _batch_masked_signatures(
            data, starts, stops, self.classes, self.shingler.word_ngram,
            self.shingler.char_ngram, self.multipliers, self.increments,
            np.ascontiguousarray(masks, dtype=np.uint64),
            np.ascontiguousarray(mask_starts, dtype=np.int64),
            np.ascontiguousarray(mask_stops, dtype=np.int64), counts,
        )  # fmt: skip
        return signatures, counts


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` of ``h -> a*h + b mod 2^64``: odd ``a`` (a bijection), any ``b``, drawn from
    a SplitMix64 stream of ``seed`` (pure integer arithmetic, identical on every platform and
    numpy version)."""
    state = seed & MASK64
    draws = []
    for _ in range(2 * num_perm):
        state = (state + SPLITMIX_GAMMA) & MASK64
        draws.append(_splitmix_output(state))
    values = np.array(draws, dtype=np.uint64).reshape(num_perm, 2)
    return values[:, 0] | np.uint64(1), values[:, 1].copy()


def _splitmix_output(state: int) -> int:
    value = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & MASK64
    return value ^ (value >> 31)


# ---------------------------------------------------------------------------------------
# Using signatures


def band_hashes(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64: a 64-bit hash of each band's `rows` values, mixed with the band index.

    Band ``j`` covers slots ``j*rows .. (j+1)*rows - 1``; slots past ``bands*rows`` are unused.
    Mixing in the index keeps equal values in different bands from sharing a bucket."""
    signatures = _signature_matrix(signatures)
    if bands < 1 or rows < 1 or bands * rows > signatures.shape[1]:
        raise ValueError(
            f"need bands >= 1, rows >= 1 and bands*rows <= {signatures.shape[1]} signature "
            f"slots, got bands={bands}, rows={rows}"
        )
    blocks = signatures[:, : bands * rows].reshape(len(signatures), bands, rows)
    band_index = np.arange(bands, dtype=np.uint64)
    hashes = np.broadcast_to(band_index ^ np.uint64(BAND_SEED), (len(signatures), bands))
    for row in range(rows):
        hashes = fmix64_array(hashes * XXH_PRIME_1 + blocks[:, :, row])
    return np.ascontiguousarray(hashes)


def fmix64_array(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's ``fmix64`` avalanche over a uint64 array (wraps on overflow)."""
    values = values ^ (values >> np.uint64(33))
    values = values * FMIX_1
    values = values ^ (values >> np.uint64(33))
    values = values * FMIX_2
    return values ^ (values >> np.uint64(33))


def _signature_matrix(signatures: np.ndarray) -> np.ndarray:
    signatures = np.asarray(signatures)
    if signatures.ndim != 2 or signatures.dtype != np.uint64:
        raise ValueError(
            f"signatures must be a 2-D uint64 array, got {signatures.ndim}-D {signatures.dtype}"
        )
    return signatures


def has_shingles(signatures: np.ndarray) -> np.ndarray | bool:
    """False for the signature of a text without shingles (every slot ``EMPTY_SLOT``)."""
    return (np.asarray(signatures) != EMPTY_SLOT).any(axis=-1)


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float | np.ndarray:
    """Fraction of equal signature slots: a float for two signatures, one value per row for
    two (n, num_perm) matrices."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim not in (1, 2) or a.shape[-1] == 0:
        raise ValueError(f"need two signatures of one non-empty shape, got {a.shape}, {b.shape}")
    equal = (a == b).mean(axis=-1)
    return float(equal) if a.ndim == 1 else equal


def exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|A ∩ B| / |A ∪ B| of two ``Shingler.shingle_hashes`` arrays (sorted, unique). Two
    empty sets give 1.0, as their signatures would (both all ``EMPTY_SLOT``)."""
    if a.size == 0 and b.size == 0:
        return 1.0
    common = np.intersect1d(a, b, assume_unique=True).size
    return common / (a.size + b.size - common)
