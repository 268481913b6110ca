"""Back-translation: source -> pivot -> source with seq2seq models, one paraphrase per pivot.

For each chosen ``(record, pivot)`` (``selection``: seeded ``rate``, optional per-stratum
``budget``) the fields to change are masked (``protect``: code, URLs, numbers,
``{{placeholders}}``), split into lines, translated to the pivot and back line by line
(identical lines of a batch are translated once), restored, and judged by the guard. The
new record keeps the parent's other turns, system prompt and context.

Models per direction, any mix of:

    models: {en-de: Helsinki-NLP/opus-mt-en-de, de-en: Helsinki-NLP/opus-mt-de-en}
    models: {fr: {forward: /models/en-fr, backward: /models/fr-en}}
    model: facebook/nllb-200-distilled-600M      # every direction not named in ``models``
    language_codes: {en: eng_Latn, de: deu_Latn}  # for NLLB / M2M100

A model is a local directory if that path exists where the recipe is loaded (made absolute
there, so workers find it), otherwise a hub id. Parents are live originals whose
``language`` is ``source_language`` or unset: run the language filter first to make that
exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.augment.guard import check_fields
from pipeline.augment.protect import Masked, has_words, protect, restore
from pipeline.augment.selection import (
    AugmentConfig,
    GlobalAugment,
    Selection,
    SelectiveAugment,
    field_text,
    with_field,
)
from pipeline.augment.translate import Seq2SeqTranslator, Translate
from pipeline.stage import Candidate, Drop, Resources, StageConfig, StageCounts


def model_reference(value: str) -> str:
    """An existing relative path becomes absolute (workers run elsewhere); ids stay ids."""
    path = Path(value)
    if "://" in value or path.is_absolute() or not path.exists():
        return value
    return str(path.resolve())


class PivotModels(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    forward: str
    backward: str


class BackTranslateConfig(AugmentConfig):
    source_language: str = "en"
    pivots: tuple[str, ...] = Field(("de",), min_length=1)
    models: dict[str, str | PivotModels] = {}
    model: str | None = None
    language_codes: dict[str, str] = {}
    num_gpus: float = Field(0.0, ge=0.0)
    # Each actor holds every direction's model: size the pool to the GPUs (or memory).
    concurrency: int | None = Field(1, ge=1)
    batch_size: int = Field(64, ge=1)
    generation_batch_size: int = Field(32, ge=1)
    max_length: int = Field(256, ge=8, le=4096)
    num_beams: int = Field(4, ge=1, le=32)
    gpu_dtype: Literal["float32", "float16", "bfloat16"] = "float16"

    @field_validator("models")
    @classmethod
    def _local_model_paths(cls, models: dict[str, Any]) -> dict[str, Any]:
        return {
            key: model_reference(value)
            if isinstance(value, str)
            else PivotModels(
                forward=model_reference(value.forward), backward=model_reference(value.backward)
            )
            for key, value in models.items()
        }

    @field_validator("model")
    @classmethod
    def _local_model_path(cls, model: str | None) -> str | None:
        return None if model is None else model_reference(model)

    @model_validator(mode="after")
    def _every_direction_has_a_model(self) -> BackTranslateConfig:
        if self.source_language in self.pivots:
            raise ValueError(f"pivots {list(self.pivots)} include source_language")
        missing = [f"{s}-{t}" for (s, t), ref in self.directions_or_none().items() if ref is None]
        if missing:
            raise ValueError(
                f"no model for {', '.join(missing)}: name it in models ('{missing[0]}': id or "
                "path, or '<pivot>': {forward, backward}) or set model"
            )
        return self

    def directions_or_none(self) -> dict[tuple[str, str], str | None]:
        found: dict[tuple[str, str], str | None] = {}
        for pivot in self.pivots:
            pair = self.models.get(pivot)
            for source, target, side in (
                (self.source_language, pivot, "forward"),
                (pivot, self.source_language, "backward"),
            ):
                named = self.models.get(f"{source}-{target}")
                if isinstance(named, str):
                    found[(source, target)] = named
                elif isinstance(pair, PivotModels):
                    found[(source, target)] = getattr(pair, side)
                else:
                    found[(source, target)] = self.model
        return found

    def directions(self) -> dict[tuple[str, str], str]:
        return {key: ref for key, ref in self.directions_or_none().items() if ref is not None}


class BackTranslateBatches(SelectiveAugment):
    """The per-batch work, run in the actor pool; ``translate`` is injectable for tests."""

    name: ClassVar[str] = "back_translate"
    Config: ClassVar[type[StageConfig]] = BackTranslateConfig
    config: BackTranslateConfig

    def __init__(
        self, config: StageConfig, selection: Selection, translate: Translate | None = None
    ) -> None:
        super().__init__(config, selection)
        self.translate = translate or Seq2SeqTranslator(
            self.config.directions(),
            language_codes=self.config.language_codes,
            num_gpus=self.config.num_gpus,
            max_length=self.config.max_length,
            num_beams=self.config.num_beams,
            generation_batch_size=self.config.generation_batch_size,
            gpu_dtype=self.config.gpu_dtype,
        )

    @classmethod
    def unit_names(cls, config: AugmentConfig) -> tuple[str, ...]:
        return cast(BackTranslateConfig, config).pivots

    @classmethod
    def eligible(cls, batch: Any, config: AugmentConfig) -> list[bool]:
        source = cast(BackTranslateConfig, config).source_language
        languages = batch.column("language").to_pylist()
        return [
            ok and language in (source, "")
            for ok, language in zip(super().eligible(batch, config), languages, strict=True)
        ]

    def candidates(self, batch: Any, counts: StageCounts) -> list[Candidate]:
        units = self.chosen_units(batch)
        conversations = batch.column("messages").to_pylist()
        fields = self.config.changed_fields()
        masked = {
            (row, name): protect(field_text(conversations[row], name))
            for row in sorted({row for row, _ in units})
            for name in fields
        }
        paraphrased: dict[tuple[int, str, str], str] = {}
        for pivot in self.config.pivots:
            keys = [(row, name) for row, unit in units if unit == pivot for name in fields]
            texts = self.round_trip([masked[key].text for key in keys], pivot)
            paraphrased.update(
                {(row, name, pivot): text for (row, name), text in zip(keys, texts, strict=True)}
            )
        systems = batch.column("system").to_pylist()
        contexts = batch.column("context").to_pylist()
        candidates = []
        for row, pivot in units:
            turns, augmentation, drop = self.judge(
                row, pivot, conversations[row], masked, paraphrased
            )
            candidates.append(
                Candidate(row, systems[row], turns, contexts[row], augmentation, drop)
            )
        return candidates

    def round_trip(self, texts: list[str], pivot: str) -> list[str]:
        """Each text to the pivot and back, line by line; blank or wordless lines stay."""
        lines = [text.split("\n") for text in texts]
        segments = sorted({line.strip() for parts in lines for line in parts if has_words(line)})
        if not segments:
            return list(texts)
        source = self.config.source_language
        there = self.translate(segments, source, pivot)
        back = dict(zip(segments, self.translate(there, pivot, source), strict=True))
        return ["\n".join(swap_line(line, back) for line in parts) for parts in lines]

    def judge(
        self,
        row: int,
        pivot: str,
        turns: list[dict[str, Any]],
        masked: dict[tuple[int, str], Masked],
        paraphrased: dict[tuple[int, str, str], str],
    ) -> tuple[list[dict[str, Any]], dict[str, Any], Drop | None]:
        """The new turns of one unit, its provenance and the guard's verdict."""
        changes = {}
        for name in self.config.changed_fields():
            text, lost = restore(paraphrased[(row, name, pivot)], masked[(row, name)].spans)
            changes[name] = (field_text(turns, name), text, lost)
            turns = with_field(turns, name, text)
        scores, drop = check_fields(changes, self.config.guard)
        directions = self.config.directions()
        source = self.config.source_language
        augmentation = {
            "method": "back_translation",
            "source_language": source,
            "pivot": pivot,
            "fields": list(changes),
            "model": {
                "forward": directions[(source, pivot)],
                "backward": directions[(pivot, source)],
            },
            "guard": scores,
        }
        return turns, augmentation, drop


def swap_line(line: str, translations: dict[str, str]) -> str:
    """A line with its words replaced by their round trip, its indentation kept."""
    core = line.strip()
    if core not in translations:
        return line
    start = line.index(core)
    return line[:start] + translations[core] + line[start + len(core) :]


class BackTranslate(GlobalAugment):
    name: ClassVar[str] = "back_translate"
    Config: ClassVar[type[StageConfig]] = BackTranslateConfig
    worker: ClassVar[type[SelectiveAugment]] = BackTranslateBatches

    @classmethod
    def resources(cls, config: StageConfig) -> Resources:
        options = cast(BackTranslateConfig, config)
        return Resources(
            num_gpus=options.num_gpus,
            concurrency=options.concurrency,
            batch_size=options.batch_size,
        )
