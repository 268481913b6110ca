"""Dirt for the synthetic corpora: ``DirtConfig`` (per-record rates of each kind), duplicates
and near duplicates of earlier records, and damaged responses."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.corpora.banks import Language, check_rate
from bench.corpora.decorations import DECORATE
from bench.corpora.tasks import body_sentences

# Kinds that replace a duplicate of an earlier record, the response, or decorate the text.
DUPLICATE_KINDS = ("exact_duplicate", "near_duplicate")


RESPONSE_KINDS = (
    "empty_response",
    "refusal",
    "wrong_language",
    "repetition",
    "copied_instruction",
    "too_long",
)


DECORATION_KINDS = ("pii", "html", "mojibake", "endoftext")


DIRT_KINDS = DUPLICATE_KINDS + RESPONSE_KINDS + DECORATION_KINDS


# The dirt a learned quality model should catch: records with one of these are "bad".
QUALITY_BAD_KINDS = frozenset(("empty_response", "refusal", "repetition", "copied_instruction"))


_DIRT_SEED_SALT = 0x5EED_D1A7


_RECENT_RECORDS = 4096


@dataclass(frozen=True)
class DirtConfig:
    """Per-record probabilities of each kind of dirt.

    Duplicates replace the record with a copy of an earlier one (and so inherit its dirt).
    The response kinds are mutually exclusive (their rates must sum to at most 1); the
    decoration kinds (PII, HTML, mojibake, end-of-text markers) are drawn independently.
    """

    exact_duplicate: float = 0.0
    near_duplicate: float = 0.0
    pii: float = 0.0
    empty_response: float = 0.0
    refusal: float = 0.0
    wrong_language: float = 0.0
    mojibake: float = 0.0
    html: float = 0.0
    endoftext: float = 0.0
    repetition: float = 0.0
    copied_instruction: float = 0.0
    too_long: float = 0.0
    # Adds "_dirt": [kinds...] to every record; off by default so inputs look natural.
    mark_dirt: bool = False

    def __post_init__(self) -> None:
        for kind in DIRT_KINDS:
            check_rate(f"DirtConfig.{kind}", getattr(self, kind))
        for group in (DUPLICATE_KINDS, RESPONSE_KINDS):
            total = sum(getattr(self, kind) for kind in group)
            if total > 1.0:
                raise ValueError(
                    f"DirtConfig: the rates of {', '.join(group)} sum to {total:g}; "
                    "they are exclusive, so the sum must be at most 1"
                )

    @classmethod
    def typical(cls, *, mark_dirt: bool = False) -> DirtConfig:
        """A plausible mix for a scraped instruction corpus (about 25% of records dirty)."""
        return cls(
            exact_duplicate=0.05,
            near_duplicate=0.03,
            pii=0.04,
            empty_response=0.01,
            refusal=0.02,
            wrong_language=0.02,
            mojibake=0.02,
            html=0.02,
            endoftext=0.01,
            repetition=0.01,
            copied_instruction=0.01,
            too_long=0.005,
            mark_dirt=mark_dirt,
        )

    @classmethod
    def low_quality(cls, *, mark_dirt: bool = False) -> DirtConfig:
        """About half the records damaged the ways a quality model should learn to spot
        (``QUALITY_BAD_KINDS``)."""
        return cls(
            empty_response=0.1,
            refusal=0.15,
            repetition=0.15,
            copied_instruction=0.1,
            mark_dirt=mark_dirt,
        )

    def any_dirt(self) -> bool:
        return any(getattr(self, kind) > 0 for kind in DIRT_KINDS)


def copy_record(record: Mapping[str, Any]) -> dict[str, Any]:
    copy = dict(record)
    if "history" in copy:
        copy["history"] = [list(turn) for turn in copy["history"]]
    return copy


class DirtInjector:
    """Damages records at the configured rates, from a random stream of its own."""

    def __init__(self, dirt: DirtConfig, seed: int) -> None:
        self.rng = random.Random(seed ^ _DIRT_SEED_SALT)
        self.exact = dirt.exact_duplicate
        self.duplicates = dirt.exact_duplicate + dirt.near_duplicate
        self.response_kinds = [(k, getattr(dirt, k)) for k in RESPONSE_KINDS if getattr(dirt, k)]
        self.decorations = [(k, getattr(dirt, k)) for k in DECORATION_KINDS if getattr(dirt, k)]
        # Originals for duplicates: a bounded window, so memory stays flat for any n.
        self.recent: list[tuple[dict[str, Any], tuple[str, ...], str]] = []
        self.seen = 0

    def inject(
        self, record: dict[str, Any], lang: Language
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        rng = self.rng
        if self.duplicates and self.recent:
            roll = rng.random()
            if roll < self.duplicates:
                original, kinds, code = rng.choice(self.recent)
                if roll < self.exact:
                    return copy_record(original), kinds + ("exact_duplicate",)
                return _near_copy(original, code, rng), kinds + ("near_duplicate",)
        kinds = self._damage(record, lang)
        if self.duplicates:
            self._remember((copy_record(record), kinds, lang.code))
        return record, kinds

    def _damage(self, record: dict[str, Any], lang: Language) -> tuple[str, ...]:
        rng = self.rng
        kinds = []
        if self.response_kinds:
            roll, threshold = rng.random(), 0.0
            for kind, rate in self.response_kinds:
                threshold += rate
                if roll < threshold:
                    _RESPONSE_DAMAGE[kind](record, lang, rng)
                    kinds.append(kind)
                    break
        for kind, rate in self.decorations:
            if rng.random() < rate:
                DECORATE[kind](record, lang, rng)
                kinds.append(kind)
        return tuple(kinds)

    def _remember(self, entry: tuple[dict[str, Any], tuple[str, ...], str]) -> None:
        if len(self.recent) < _RECENT_RECORDS:
            self.recent.append(entry)
        else:
            self.recent[self.seen % _RECENT_RECORDS] = entry
        self.seen += 1


def _near_copy(record: Mapping[str, Any], code: str, rng: random.Random) -> dict[str, Any]:
    """A copy with one small edit, in the longer of instruction and output."""
    copy = copy_record(record)
    field = "output" if len(copy["output"]) >= len(copy["instruction"]) else "instruction"
    edit = _edit_english if code == "en" else _edit_chinese
    copy[field] = edit(copy[field], rng)
    return copy


def _edit_english(text: str, rng: random.Random) -> str:
    """A contraction, a synonym, or a changed final punctuation mark: one small local edit."""
    present = [(pattern, new) for pattern, new in _EN_EDITS if pattern.search(text)]
    if present and rng.random() < 0.85:
        pattern, new = rng.choice(present)
        return pattern.sub(new, text, count=1)
    stripped = text.rstrip()
    if stripped.endswith("."):
        return stripped[:-1] + "!"
    if stripped.endswith(("?", "!")):
        return stripped[:-1]
    return stripped + "."


def _edit_chinese(text: str, rng: random.Random) -> str:
    present = [(old, new) for old, new in _ZH_SYNONYMS if old in text]
    if present and rng.random() < 0.7:
        old, new = rng.choice(present)
        return text.replace(old, new, 1)
    stop = text.rfind("。")
    if stop >= 0:
        return text[:stop] + "！" + text[stop + 1 :]
    return text + "哦"


def _empty_response(record: dict[str, Any], lang: Language, rng: random.Random) -> None:
    record["output"] = rng.choice(("", "", "", " ", "\n", "  \n  "))


def _refusal(record: dict[str, Any], lang: Language, rng: random.Random) -> None:
    record["output"] = rng.choice(lang.refusals).format(
        v=rng.choice(lang.refusal_verbs), o=rng.choice(lang.refusal_offers)
    )


def _wrong_language(record: dict[str, Any], lang: Language, rng: random.Random) -> None:
    joiner, instructions, responses = _FOREIGN[rng.choice(tuple(_FOREIGN))]
    record["instruction"] = rng.choice(instructions)
    record["input"] = ""
    record["output"] = joiner.join(rng.sample(responses, rng.randint(2, 4)))
    record.pop("system", None)
    record.pop("history", None)


_SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？]*")


def _repetition(record: dict[str, Any], lang: Language, rng: random.Random) -> None:
    output = record["output"]
    sentences = [match.group().strip() for match in _SENTENCE.finditer(output)] or [output]
    roll = rng.random()
    if roll < 0.5:
        record["output"] = lang.joiner.join([rng.choice(sentences)] * rng.randint(8, 20))
    elif roll < 0.8:
        record["output"] = "\n\n".join([output] * rng.randint(4, 8))
    else:
        tail = " ".join(output.rstrip(".!?。").split()[-3:]) if lang.joiner else output[-6:-1]
        tail = tail or output
        record["output"] = output + lang.joiner + lang.joiner.join([tail] * rng.randint(10, 30))


def _copied_instruction(record: dict[str, Any], lang: Language, rng: random.Random) -> None:
    copy = record["instruction"]
    if record["input"] and rng.random() < 0.4:
        copy += "\n\n" + record["input"]
    record["output"] = copy


def _too_long(record: dict[str, Any], lang: Language, rng: random.Random) -> None:
    target = rng.randint(16_000, 40_000) if lang.joiner else rng.randint(8_000, 20_000)
    topic = rng.choice(lang.topics)
    parts, size = [record["output"]], len(record["output"])
    while size < target:
        sentences = body_sentences(lang, topic, "", rng, rng.randint(4, 7), framing=False)
        parts.append(lang.joiner.join(sentences))
        size += len(parts[-1]) + 2
    record["output"] = "\n\n".join(parts)


_RESPONSE_DAMAGE = {
    "empty_response": _empty_response,
    "refusal": _refusal,
    "wrong_language": _wrong_language,
    "repetition": _repetition,
    "copied_instruction": _copied_instruction,
    "too_long": _too_long,
}


# Near-duplicate edits: a synonym swap or a small filler change.
_EN_EDITS = tuple(
    (re.compile(rf"\b{re.escape(old)}\b"), new)
    for old, new in (
        ("do not", "don't"),
        ("don't", "do not"),
        ("it is", "it's"),
        ("It is", "It's"),
        ("you will", "you'll"),
        ("You will", "You'll"),
        ("I am", "I'm"),
        ("I'm", "I am"),
        ("does not", "doesn't"),
        ("is not", "isn't"),
        ("that is", "that's"),
        ("easy", "simple"),
        ("simple", "easy"),
        ("quick", "fast"),
        ("big", "large"),
        ("small", "little"),
        ("start", "begin"),
        ("often", "frequently"),
        ("usually", "generally"),
        ("good", "great"),
        ("great", "good"),
        ("important", "essential"),
        ("choose", "pick"),
        ("whole", "entire"),
        ("a lot of", "lots of"),
        ("help you", "let you"),
        ("Make sure", "Be sure"),
    )
)


_ZH_SYNONYMS = (
    ("非常", "特别"),
    ("可以", "能够"),
    ("因为", "由于"),
    ("如果", "假如"),
    ("首先", "第一步"),
    ("建议", "推荐"),
    ("简单", "容易"),
    ("很多", "许多"),
    ("最好", "最好是"),
    ("一些", "一点"),
)


# Wrong-language dirt: hand-written sentences, so language ID has something real to catch.
_FOREIGN = {
    "fr": (
        " ",
        (
            "Explique-moi comment préparer une bonne soupe à l'oignon.",
            "Quels sont les avantages de faire du vélo tous les jours ?",
            "Peux-tu me donner quelques conseils pour mieux dormir ?",
            "Écris un court paragraphe sur l'histoire de Paris.",
            "Comment puis-je économiser de l'argent chaque mois ?",
            "Résume les causes principales de la Révolution française.",
            "Quelle est la meilleure façon d'apprendre une nouvelle langue ?",
            "Donne-moi des idées pour un week-end en Bretagne.",
        ),
        (
            "C'est une excellente question, et la réponse dépend surtout de vos habitudes.",
            "Il vaut mieux commencer doucement et augmenter l'effort petit à petit.",
            "La plupart des gens constatent une différence après quelques semaines.",
            "N'oubliez pas de prendre votre temps et de noter vos progrès.",
            "Il est aussi utile de demander l'avis de personnes qui ont de l'expérience.",
            "Enfin, gardez à l'esprit que chaque situation est différente.",
            "Pour commencer, il faut préparer tous les ingrédients à l'avance.",
            "Le plus important est de rester régulier, même quand on manque de motivation.",
            "Vous pouvez aussi trouver de nombreuses ressources gratuites à la bibliothèque.",
            "Avec un peu de patience, les résultats arrivent plus vite qu'on ne le pense.",
        ),
    ),
    "de": (
        " ",
        (
            "Erkläre mir, wie man ein einfaches Brot backt.",
            "Was sind die Vorteile von regelmäßigem Sport?",
            "Kannst du mir ein paar Tipps zum Sparen geben?",
            "Schreibe einen kurzen Absatz über die Geschichte Berlins.",
            "Wie kann ich meine Zeit bei der Arbeit besser einteilen?",
            "Welche Sehenswürdigkeiten sollte man in München besuchen?",
            "Wie lerne ich am besten eine neue Programmiersprache?",
            "Fasse die wichtigsten Ursachen der Industrialisierung zusammen.",
        ),
        (
            "Das ist eine gute Frage, und die Antwort hängt vor allem von deinen Zielen ab.",
            "Am besten fängst du klein an und steigerst dich langsam.",
            "Die meisten Menschen merken schon nach wenigen Wochen einen Unterschied.",
            "Vergiss nicht, regelmäßige Pausen einzulegen.",
            "Es hilft auch, sich mit anderen auszutauschen, die mehr Erfahrung haben.",
            "Zum Schluss solltest du geduldig bleiben, denn gute Ergebnisse brauchen Zeit.",
            "Zuerst solltest du alle Zutaten bereitlegen und genau abwiegen.",
            "Wichtig ist vor allem, dass du dranbleibst, auch wenn die Motivation einmal fehlt.",
            "In der Stadtbibliothek findest du viele kostenlose Bücher zu diesem Thema.",
            "Mit etwas Übung wird das schnell zur Gewohnheit.",
        ),
    ),
    "es": (
        " ",
        (
            "Explícame cómo preparar una tortilla de patatas.",
            "¿Cuáles son los beneficios de caminar todos los días?",
            "Dame algunos consejos para ahorrar dinero cada mes.",
            "Escribe un párrafo breve sobre la historia de Madrid.",
            "¿Cómo puedo aprender a programar desde cero?",
            "¿Qué debo llevar en la maleta para un viaje a la playa?",
            "Resume las causas principales de la independencia de México.",
            "¿Cuál es la mejor manera de dormir mejor?",
        ),
        (
            "Es una muy buena pregunta, y la respuesta depende sobre todo de tus hábitos.",
            "Lo mejor es empezar poco a poco y aumentar el esfuerzo con el tiempo.",
            "La mayoría de las personas notan la diferencia después de unas semanas.",
            "No olvides tomarte tu tiempo y anotar tus avances.",
            "También es útil pedir consejo a personas con más experiencia.",
            "Por último, recuerda que cada situación es diferente.",
            "Primero, prepara todos los ingredientes antes de encender el fuego.",
            "Lo más importante es ser constante, incluso cuando falta la motivación.",
            "En la biblioteca de tu barrio puedes encontrar muchos libros gratuitos sobre el tema.",
            "Con un poco de paciencia, los resultados llegan antes de lo que piensas.",
        ),
    ),
    "ja": (
        "",
        (
            "家でおいしいカレーを作る方法を教えてください。",
            "毎日散歩をすることのメリットは何ですか？",
            "お金を上手に貯めるコツを教えてください。",
            "京都の歴史について短い文章を書いてください。",
            "プログラミングを独学で始めるにはどうすればいいですか？",
            "よく眠るためのアドバイスをください。",
            "初めての海外旅行で気をつけることは何ですか？",
            "仕事の効率を上げる方法を三つ教えてください。",
        ),
        (
            "とても良い質問ですね。答えは主に目標によって変わります。",
            "まずは無理をせず、少しずつ始めるのがおすすめです。",
            "多くの人は数週間で違いを感じるようになります。",
            "ときどき休憩を取ることも忘れないでください。",
            "経験のある人に相談してみるのも役に立ちます。",
            "最後に、焦らずに続けることが一番大切です。",
            "最初に材料をすべて準備しておくと、作業がずっと楽になります。",
            "図書館には、このテーマについての本がたくさんあります。",
            "少しずつ練習すれば、すぐに習慣になりますよ。",
            "分からないことがあれば、いつでも聞いてくださいね。",
        ),
    ),
}
