"""Every stage a recipe may name, by its recipe key. An explicit list: no import magic."""

from __future__ import annotations

from functools import cache

from pipeline.stage import GlobalStage, Stage


@cache
def _stages() -> dict[str, type[Stage] | type[GlobalStage]]:
    # Imported here, not at module top, so `pipeline.config` can be imported by light tools
    # (recipe validation) without paying for every stage's dependencies up front.
    from pipeline.augment.back_translate import BackTranslate
    from pipeline.augment.rules import RuleAugment
    from pipeline.clean import CleanText
    from pipeline.constrain import Constrain
    from pipeline.decontaminate import Decontaminate
    from pipeline.dedup_exact import ExactDedup
    from pipeline.dedup_near import NearDedup
    from pipeline.filters.blocklist import BlocklistFilter
    from pipeline.filters.characters import CharacterRatioFilter
    from pipeline.filters.copy import CopyFilter
    from pipeline.filters.language import LanguageFilter
    from pipeline.filters.length import LengthFilter
    from pipeline.filters.refusal import RefusalFilter
    from pipeline.filters.repetition import RepetitionFilter
    from pipeline.filters.stopwords import StopwordFilter
    from pipeline.generate.answer import Answer
    from pipeline.generate.describe import DescribeToInstruction
    from pipeline.generate.evol_instruct import EvolInstruct
    from pipeline.generate.self_instruct import SelfInstruct
    from pipeline.ifd import InstructionFollowingDifficulty
    from pipeline.labels import LabelRecords
    from pipeline.novelty import Novelty
    from pipeline.pii import RedactPII
    from pipeline.quality import QualityFilter
    from pipeline.sample import Sample
    from pipeline.split import Split

    classes: list[type[Stage] | type[GlobalStage]] = [
        CleanText,
        RedactPII,
        LanguageFilter,
        LengthFilter,
        RepetitionFilter,
        CharacterRatioFilter,
        StopwordFilter,
        RefusalFilter,
        CopyFilter,
        BlocklistFilter,
        ExactDedup,
        NearDedup,
        Novelty,
        Decontaminate,
        LabelRecords,
        QualityFilter,
        InstructionFollowingDifficulty,
        BackTranslate,
        RuleAugment,
        SelfInstruct,
        DescribeToInstruction,
        EvolInstruct,
        Answer,
        Sample,
        Split,
        Constrain,
    ]
    return {cls.name: cls for cls in classes}


def stage_names() -> list[str]:
    return list(_stages())


def stage_class(name: str) -> type[Stage] | type[GlobalStage]:
    return _stages()[name]


def reason_owners() -> dict[str, str]:
    """Each drop reason in the fixed vocabulary, mapped to the stage that owns it."""
    owners = {}
    for name, cls in _stages().items():
        for reason in cls.drop_reasons:
            owners[reason] = name
    return owners


def is_global(name: str) -> bool:
    return issubclass(_stages()[name], GlobalStage)
