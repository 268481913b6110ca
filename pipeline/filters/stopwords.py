"""Stop-word ratio: real prose is full of function words ("the", "of", "的", "是"); keyword
lists, tag dumps and word salad are not. Gopher (Rae et al. 2021, appendix A.1.1) asks for at
least two English stop words per document; DataTrove's ``GopherQualityFilter`` and RedPajama's
``rps_doc_stop_word_fraction`` turn that into a ratio, which is what this filter bounds, in any
language that ``stopwordsiso`` has a list for.

The language is the row's ``language`` column (set by the language stage or the source); when
it is empty, a quick py3langid guess on the judged text. Languages outside ``languages`` or
without a stop-word list are kept unjudged. Chinese, Japanese and Thai write no spaces, so
their text is cut by forward maximum matching against the stop-word list (the longest stop word
at each position, else one character) and the ratio is stop-word tokens over tokens; runs of
other scripts inside them (``Python``, ``2024``) count as one token each.

Reason: ``filter.too_few_stopwords``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, ClassVar

import pyarrow as pa
import stopwordsiso
from py3langid.langid import LanguageIdentifier
from pydantic import Field, field_validator

from pipeline.filters.language import identify, load_identifier
from pipeline.stage import Drop, Filter, StageConfig
from pipeline.text import CJK_CHARACTERS, TextField, field_texts, language_code, spaced_words

UNSPACED_LANGUAGES = frozenset({"zh", "ja", "th"})
_UNSPACED_RUN = re.compile(f"[{CJK_CHARACTERS}\u0e00-\u0e7f]+")

Ratio = Annotated[float, Field(ge=0.0, le=1.0)]


class StopwordConfig(StageConfig):
    fields: tuple[TextField, ...] = Field(default=("response",), min_length=1)
    min_stopword_ratio: Ratio = 0.06
    # Lists differ in size and scripts in how tokens are cut, so one ratio does not fit all.
    # Measured on hand-written answers: Chinese and Japanese prose scores 0.28-0.44, noun
    # lists and keyword spam 0.00-0.05. Korean particles attach to words ("학교에서"), so
    # whole-word matching finds few stop words even in fluent prose (0.04): not judged.
    min_ratio_by_language: dict[str, Ratio] = {"zh": 0.1, "ja": 0.1, "ko": 0.0}
    min_words: int = Field(default=10, ge=0)
    # None: every language stopwordsiso has a list for.
    languages: tuple[str, ...] | None = None

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        unknown = [code for code in value if not stopwordsiso.has_lang(language_code(code))]
        if unknown:
            raise ValueError(
                f"no stop-word list for {unknown}; known: {', '.join(sorted(stopwordsiso.langs()))}"
            )
        return tuple(language_code(code) for code in value)

    @field_validator("min_ratio_by_language")
    @classmethod
    def _normalized_keys(cls, value: dict[str, float]) -> dict[str, float]:
        return {language_code(code): ratio for code, ratio in value.items()}


def forward_maximum_match(run: str, stopwords: frozenset[str], longest: int) -> list[str]:
    """Cut ``run`` greedily: the longest stop word starting here, else a single character."""
    tokens = []
    start = 0
    while start < len(run):
        end = start + 1
        for size in range(min(longest, len(run) - start), 1, -1):
            if run[start : start + size] in stopwords:
                end = start + size
                break
        tokens.append(run[start:end])
        start = end
    return tokens


def unspaced_tokens(text: str, stopwords: frozenset[str], longest: int) -> list[str]:
    """Tokens of Chinese/Japanese/Thai text: matched runs of the script, other words whole."""
    tokens: list[str] = []
    position = 0
    for run in _UNSPACED_RUN.finditer(text):
        tokens += spaced_words(text[position : run.start()])
        tokens += forward_maximum_match(run.group(), stopwords, longest)
        position = run.end()
    return tokens + spaced_words(text[position:])


class StopwordFilter(Filter):
    name: ClassVar[str] = "stopwords"
    Config: ClassVar[type[StageConfig]] = StopwordConfig
    drop_reasons: ClassVar[tuple[str, ...]] = ("filter.too_few_stopwords",)
    config: StopwordConfig

    def __init__(self, config: StageConfig) -> None:
        super().__init__(config)
        # Filled on first use: most runs see a handful of languages out of 58.
        self._stopwords: dict[str, tuple[frozenset[str], int]] = {}
        self._identifier: LanguageIdentifier | None = None

    def decide(self, batch: pa.Table) -> Sequence[Drop | None]:
        rows = field_texts(batch, self.config.fields)
        languages = batch.column("language").to_pylist()
        return [
            next(
                (drop for field, text in row if (drop := self._judge(text, language, field))), None
            )
            for row, language in zip(rows, languages, strict=True)
        ]

    def _judge(self, text: str, declared: str, field: str) -> Drop | None:
        language = language_code(declared) or self._guess_language(text)
        allowed = self.config.languages
        if (allowed is not None and language not in allowed) or not stopwordsiso.has_lang(language):
            return None
        stopwords, longest = self._stopword_list(language)
        if language in UNSPACED_LANGUAGES:
            tokens = unspaced_tokens(text, stopwords, longest)
        else:
            tokens = [word.lower() for word in spaced_words(text)]
        if not tokens or len(tokens) < self.config.min_words:
            return None
        ratio = sum(token in stopwords for token in tokens) / len(tokens)
        bound = self.config.min_ratio_by_language.get(language, self.config.min_stopword_ratio)
        if ratio < bound:
            return Drop(
                "filter.too_few_stopwords",
                {
                    "field": field,
                    "language": language,
                    "stopword_ratio": round(ratio, 4),
                    "min": bound,
                },
            )
        return None

    def _stopword_list(self, language: str) -> tuple[frozenset[str], int]:
        if language not in self._stopwords:
            words = frozenset(word.lower() for word in stopwordsiso.stopwords(language))
            self._stopwords[language] = (words, max(map(len, words), default=1))
        return self._stopwords[language]

    def _guess_language(self, text: str) -> str:
        if self._identifier is None:
            self._identifier = load_identifier()
        language, _ = identify(self._identifier, text)
        return language
