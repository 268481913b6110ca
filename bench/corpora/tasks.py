"""Clean instruction/response pairs, one builder per task kind: each returns
(instruction, input, output) from a language pack, a topic and a seeded ``random.Random``."""

from __future__ import annotations

import random

from bench.corpora.banks import NO_CONSTRAINT, Constraint, Language, Topic
from bench.corpora.snippets import (
    CODE_ASKS,
    CODE_EXTRAS,
    CODE_INTROS,
    CODE_NAMING,
    CODE_OUTROS,
    EXPLAIN_CODE_ASKS,
    EXPLAIN_CODE_OPENINGS,
    SNIPPETS,
)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _units(lang: Language, text: str) -> int:
    """Length as a reader counts it: words in English, characters in Chinese."""
    return len(text.split()) if lang.joiner else len(text)


def _pick_constraint(lang: Language, rng: random.Random) -> Constraint:
    if rng.random() < 0.45:
        return NO_CONSTRAINT
    template, kind = rng.choice(lang.constraints)
    if kind == "bullets":
        count = rng.randint(3, 5)
        return Constraint(template.format(n=lang.numerals[count]), bullets=count)
    if kind == "words":
        limit = rng.choice(lang.word_limits)
        return Constraint(template.format(w=limit), max_units=limit)
    if kind == "numbered":
        return Constraint(template, numbered=True)
    if kind.startswith("sentences"):
        return Constraint(template, sentences=int(kind[-1]))
    return Constraint(template.format(audience=rng.choice(lang.audiences)))


def _dress(lang: Language, ask: str, constraint: Constraint, rng: random.Random) -> str:
    """The ask plus its constraint, sometimes with a greeting or a word about the asker."""
    text = ask + lang.joiner + constraint.text if constraint.text else ask
    roll = rng.random()
    if roll < 0.12:
        return rng.choice(lang.personas) + lang.joiner + text
    if roll < 0.22:
        return text + lang.joiner + rng.choice(lang.personas)
    if roll < 0.38:
        prefix = rng.choice(lang.prefixes)
        if lang.joiner and prefix[-1] in ",:" and not text.startswith(("I ", "I'")):
            text = text[:1].lower() + text[1:]
        return prefix + lang.joiner + text
    return text


class Deck:
    """Deals bank items for one response, avoiding repeats so no action is given twice."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def deal(self, bank: tuple[str, ...]) -> str:
        item = self.rng.choice(bank)
        for _ in range(3):
            if item not in self.used:
                break
            item = self.rng.choice(bank)
        self.used.add(item)
        return item


def _action_sentence(lang: Language, topic: Topic, deck: Deck, action: str) -> str:
    template = deck.rng.choice(lang.action_templates)
    benefit = deck.deal(topic.benefits)
    return _cap(template.format(a=action, b=benefit, p=topic.practitioners))


def advice_sentence(lang: Language, topic: Topic, deck: Deck) -> str:
    rng = deck.rng
    roll = rng.random()
    if roll < 0.45:
        return _action_sentence(lang, topic, deck, deck.deal(topic.actions))
    if roll < 0.65:
        template = rng.choice(lang.mistake_templates)
        return _cap(template.format(m=deck.deal(topic.mistakes), c=rng.choice(lang.consequences)))
    if roll < 0.85:
        return deck.deal(topic.facts)
    template = rng.choice(lang.tool_templates)
    return _cap(template.format(t=deck.deal(topic.tools), p=topic.practitioners))


def _opener(lang: Language, subject: str, rng: random.Random) -> str:
    return _cap(rng.choice(lang.openers).format(s=subject, S=_cap(subject)))


def body_sentences(
    lang: Language, topic: Topic, subject: str, rng: random.Random, count: int, framing: bool
) -> list[str]:
    """``count`` distinct sentences of advice; with ``framing``, maybe an opener and closer."""
    sentences: list[str] = []
    deck = Deck(rng)
    if framing and count >= 3 and rng.random() < 0.5:
        sentences.append(_opener(lang, subject, rng))
    closer = rng.choice(lang.closers) if framing and count >= 3 and rng.random() < 0.4 else None
    goal = count - (closer is not None)
    for _ in range(goal * 4):
        if len(sentences) >= goal:
            break
        sentence = advice_sentence(lang, topic, deck)
        if sentence not in sentences:
            sentences.append(sentence)
    if closer:
        sentences.append(closer)
    return sentences


def _point(lang: Language, topic: Topic, deck: Deck) -> str:
    template = deck.rng.choice(lang.point_templates)
    # Deal only what the template uses, so unused items stay available for later points.
    slots = {}
    for key, bank in (("a", topic.actions), ("b", topic.benefits), ("m", topic.mistakes)):
        if "{" + key + "}" in template:
            slots[key] = deck.deal(bank)
    if "{t}" in template:
        slots["t"] = deck.deal(topic.tools)
    return _cap(template.format(**slots))


def _point_list(
    lang: Language, topic: Topic, rng: random.Random, count: int, numbered: bool
) -> str:
    points: list[str] = []
    deck = Deck(rng)
    for _ in range(count * 4):
        if len(points) >= count:
            break
        point = _point(lang, topic, deck)
        if point not in points:
            points.append(point)
    bullet = rng.choice(("- ", "- ", "* ", "• "))
    lines = [f"{i}. {p}" if numbered else bullet + p for i, p in enumerate(points, start=1)]
    text = "\n".join(lines)
    if rng.random() < 0.6:
        text = rng.choice(lang.list_intros) + "\n" + text
    if rng.random() < 0.25:
        text += "\n\n" + rng.choice(lang.closers)
    return text


def _trim(lang: Language, sentences: list[str], max_units: int) -> list[str]:
    kept: list[str] = []
    used = 0
    for sentence in sentences:
        used += _units(lang, sentence)
        if kept and used >= max_units:
            break
        kept.append(sentence)
    return kept


def _paragraphs(lang: Language, sentences: list[str], rng: random.Random) -> str:
    if len(sentences) >= 4 and rng.random() < 0.35:
        cut = rng.randint(2, len(sentences) - 1)
        return lang.joiner.join(sentences[:cut]) + "\n\n" + lang.joiner.join(sentences[cut:])
    return lang.joiner.join(sentences)


def _shaped_response(
    lang: Language, topic: Topic, subject: str, constraint: Constraint, rng: random.Random
) -> str:
    if constraint.bullets:
        return _point_list(lang, topic, rng, constraint.bullets, numbered=False)
    if constraint.numbered:
        return _point_list(lang, topic, rng, rng.randint(3, 6), numbered=True)
    if constraint.sentences:
        return lang.joiner.join(
            body_sentences(lang, topic, subject, rng, constraint.sentences, False)
        )
    if not constraint.max_units and rng.random() < 0.12:
        return _point_list(lang, topic, rng, rng.randint(3, 5), numbered=rng.random() < 0.4)
    sentences = body_sentences(lang, topic, subject, rng, rng.randint(1, 6), framing=True)
    if constraint.max_units:
        return lang.joiner.join(_trim(lang, sentences, constraint.max_units))
    return _paragraphs(lang, sentences, rng)


_Task = tuple[str, str, str]


def explain_task(lang: Language, topic: Topic, rng: random.Random) -> _Task:
    subject = rng.choice(topic.subjects)
    asks = topic.asks if rng.random() < 0.7 else lang.generic_asks
    ask = rng.choice(asks).format(
        subject=subject, context=rng.choice(topic.contexts), audience=rng.choice(lang.audiences)
    )
    constraint = _pick_constraint(lang, rng)
    output = _shaped_response(lang, topic, subject, constraint, rng)
    return _dress(lang, ask, constraint, rng), "", output


def _steps_task(lang: Language, topic: Topic, rng: random.Random) -> _Task:
    subject = rng.choice(topic.subjects)
    ask = rng.choice(lang.step_asks).format(subject=subject, context=rng.choice(topic.contexts))
    count = rng.randint(3, 6)
    if rng.random() < 0.5:
        ask += lang.joiner + rng.choice(lang.step_counts).format(n=lang.numerals[count])
    lines = []
    for number, action in enumerate(rng.sample(topic.actions, count), start=1):
        line = f"{number}. {_cap(action)}{lang.stop}"
        if rng.random() < 0.25:
            line += lang.joiner + rng.choice(lang.step_benefits).format(
                b=rng.choice(topic.benefits)
            )
        lines.append(line)
    output = "\n".join(lines)
    if rng.random() < 0.7:
        output = rng.choice(lang.step_intros) + "\n\n" + output
    if rng.random() < 0.3:
        output += "\n\n" + rng.choice(lang.closers)
    return _dress(lang, ask, NO_CONSTRAINT, rng), "", output


def _compare_task(lang: Language, topic: Topic, rng: random.Random) -> _Task:
    first, second = rng.sample(topic.subjects, 2)
    first_action, second_action = rng.sample(topic.actions, 2)
    slots = {
        "s1": first,
        "S1": _cap(first),
        "s2": second,
        "a1": first_action,
        "a2": second_action,
        "m": rng.choice(topic.mistakes),
        "audience": rng.choice(lang.audiences),
    }
    ask = rng.choice(lang.compare_asks).format(**slots)
    sentences = [rng.choice(lang.compare_openers).format(**slots)]
    sentences += [t.format(**slots) for t in rng.sample(lang.compare_middles, rng.randint(1, 2))]
    if rng.random() < 0.5:
        deck = Deck(rng)
        deck.used.update((first_action, second_action))
        sentences.append(advice_sentence(lang, topic, deck))
    sentences.append(rng.choice(lang.compare_closers))
    return _dress(lang, ask, NO_CONSTRAINT, rng), "", lang.joiner.join(sentences)


def _summarize_task(lang: Language, topic: Topic, rng: random.Random) -> _Task:
    subject = rng.choice(topic.subjects)
    first, second = rng.sample(topic.actions, 2)
    deck = Deck(rng)
    deck.used.update((first, second))
    sentences = [
        _opener(lang, subject, rng),
        _action_sentence(lang, topic, deck, first),
        deck.deal(topic.facts),
        _action_sentence(lang, topic, deck, second),
    ]
    if rng.random() < 0.5:
        sentences.insert(3, advice_sentence(lang, topic, deck))
    summary = rng.choice(lang.summary_templates).format(
        a1=first, a2=second, b=rng.choice(topic.benefits), p=topic.practitioners
    )
    ask = rng.choice(lang.summarize_asks).format(subject=subject)
    instruction, text = _place_input(lang, ask, lang.joiner.join(sentences), rng)
    return instruction, text, _cap(summary)


_GRAMMAR_ERRORS = {
    "the": "teh",
    "their": "there",
    "you": "u",
    "your": "you're",
    "because": "becuase",
    "which": "wich",
    "before": "befor",
    "different": "diffrent",
    "until": "untill",
    "is": "are",
    "are": "is",
    "to": "too",
    "than": "then",
    "it's": "its",
    "every": "evry",
    "usually": "usualy",
    "a": "an",
    "and": "an",
    "with": "whit",
    "always": "allways",
    "little": "litle",
}


_GRAMMAR_ASKS = (
    "Correct the grammar in the following sentence.",
    "Fix any spelling or grammar mistakes in this text.",
    "Proofread this and return the corrected version.",
    "Can you fix the errors in the text below?",
)


def _grammar_task(lang: Language, topic: Topic, rng: random.Random) -> _Task:
    correct = lang.joiner.join(
        body_sentences(lang, topic, "", rng, rng.randint(1, 2), framing=False)
    )
    words = correct.split(" ")
    positions = [i for i, word in enumerate(words) if word.lower() in _GRAMMAR_ERRORS]
    for i in rng.sample(positions, min(len(positions), rng.randint(1, 3))):
        words[i] = _GRAMMAR_ERRORS[words[i].lower()]
    broken = " ".join(words)
    if broken == correct:
        broken = correct[:1].lower() + correct[1:].rstrip(".")
    output = correct if rng.random() < 0.7 else "Here is the corrected version:\n\n" + correct
    instruction, text = _place_input(lang, rng.choice(_GRAMMAR_ASKS), broken, rng)
    return instruction, text, output


def _place_input(lang: Language, ask: str, text: str, rng: random.Random) -> tuple[str, str]:
    """(instruction, input): the text as alpaca ``input``, or inline after the ask."""
    instruction = _dress(lang, ask, NO_CONSTRAINT, rng)
    if rng.random() < 0.7:
        return instruction + "\n\n" + text, ""
    return instruction, text


def _sentiment_task(lang: Language, topic: Topic, rng: random.Random) -> _Task:
    product, span = rng.choice(lang.products), rng.choice(lang.spans)
    mood = "pos" if rng.random() < 0.5 else "neg"
    details = getattr(lang, f"{mood}_details")
    sentences = [rng.choice(getattr(lang, f"{mood}_openings")).format(x=product, w=span)]
    sentences += rng.sample(details, rng.randint(1, 2))
    if rng.random() < 0.5:
        sentences.append(rng.choice(getattr(lang, f"{mood}_closings")))
    labels = lang.positive_labels if mood == "pos" else lang.negative_labels
    ask = rng.choice(lang.sentiment_asks).format(x=product)
    instruction, review = _place_input(lang, ask, lang.joiner.join(sentences), rng)
    return instruction, review, rng.choice(labels).format(x=product)


_TITLE_SMALL_WORDS = frozenset("a an the and or of in on at to for with by from".split())


def _title_case(subject: str) -> str:
    words = subject.split()
    if words[0].lower() in ("a", "an", "the") and len(words) > 1:
        words = words[1:]
    titled = [
        word if (i and word in _TITLE_SMALL_WORDS) or not word.islower() else _cap(word)
        for i, word in enumerate(words)
    ]
    return " ".join(titled)


def _titles_task(lang: Language, topic: Topic, rng: random.Random) -> _Task:
    subject = rng.choice(topic.subjects)
    count = rng.randint(3, 5)
    ask = rng.choice(lang.title_asks).format(subject=subject, n=lang.numerals[count])
    shown = _title_case(subject) if lang.joiner else subject
    titles = [
        template.format(S=shown, k=lang.numerals[rng.randint(3, 9)])
        for template in rng.sample(lang.title_templates, count)
    ]
    output = "\n".join(f"{i}. {title}" for i, title in enumerate(titles, start=1))
    if rng.random() < 0.5:
        output = rng.choice(lang.title_intros) + "\n\n" + output
    return _dress(lang, ask, NO_CONSTRAINT, rng), "", output


def _email_task(lang: Language, topic: Topic, rng: random.Random) -> _Task:
    purpose, subject_line, body = rng.choice(lang.email_purposes)
    slots = {"day": rng.choice(lang.days), "time": rng.choice(lang.times)}
    slots["sender"] = rng.choice(lang.senders)
    ask = rng.choice(lang.email_asks).format(
        r=rng.choice(lang.recipients), purpose=purpose.format(**slots)
    )
    if rng.random() < 0.6:
        ask += lang.joiner + rng.choice(lang.email_extras).format(**slots)
    output = lang.email_layout.format(
        subject=subject_line.format(**slots),
        greeting=rng.choice(lang.greetings).format(name=rng.choice(lang.names)),
        body=lang.joiner.join(sentence.format(**slots) for sentence in body),
        signoff=rng.choice(lang.signoffs),
        sender=slots["sender"],
    )
    return _dress(lang, ask, NO_CONSTRAINT, rng), "", output


def _story_task(lang: Language, topic: Topic, rng: random.Random) -> _Task:
    character, gender = rng.choice(lang.story_characters)
    name = rng.choice(lang.names_female if gender == "f" else lang.names_male)
    pron, poss = lang.pronouns[:2] if gender == "f" else lang.pronouns[2:]
    slots = {
        "name": name,
        "pron": pron,
        "Pron": _cap(pron),
        "poss": poss,
        "object": rng.choice(lang.story_objects),
        "place": rng.choice(lang.story_places),
        "opening": rng.choice(lang.story_openings),
    }
    slots["character"] = character.format(name=name)
    theme = lang.story_theme.format(**slots)
    sentences = [
        lang.story_first.format(**slots),
        rng.choice(lang.story_wishes).format(**slots),
        rng.choice(lang.story_middles).format(**slots),
    ]
    if rng.random() < 0.7:
        sentences.append(rng.choice(lang.story_twists).format(**slots))
    sentences.append(rng.choice(lang.story_endings).format(**slots))
    ask = rng.choice(lang.story_asks).format(theme=theme, **slots)
    if rng.random() < 0.6:
        ask += lang.joiner + lang.story_cast.format(character=slots["character"])
    return _dress(lang, ask, NO_CONSTRAINT, rng), "", _paragraphs(lang, sentences, rng)


def _code_task(lang: Language, topic: Topic, rng: random.Random) -> _Task:
    snippet = rng.choice(SNIPPETS)
    code, desc, name = snippet.render(rng)
    slots = {"language": snippet.language, "kind": snippet.kind, "desc": desc}
    ask = rng.choice(CODE_ASKS).format(**slots)
    if rng.random() < 0.5:
        ask += " " + rng.choice(CODE_NAMING[snippet.kind]).format(name=name)
    if rng.random() < 0.5:
        ask += " " + rng.choice(CODE_EXTRAS)
    output = (
        rng.choice(CODE_INTROS).format(**slots)
        + f"\n\n```{snippet.fence}\n{code}\n```\n\n"
        + snippet.explanation
        + rng.choice(CODE_OUTROS)
    )
    return _dress(lang, ask, NO_CONSTRAINT, rng), "", output


def _explain_code_task(lang: Language, topic: Topic, rng: random.Random) -> _Task:
    snippet = rng.choice(SNIPPETS)
    code, desc, _ = snippet.render(rng)
    ask = rng.choice(EXPLAIN_CODE_ASKS).format(language=snippet.language, kind=snippet.kind)
    opening = rng.choice(EXPLAIN_CODE_OPENINGS).format(kind=snippet.kind, desc=desc)
    output = f"{opening} {snippet.explanation}{rng.choice(CODE_OUTROS)}"
    instruction = _dress(lang, ask, NO_CONSTRAINT, rng)
    if rng.random() < 0.5:
        return f"{instruction}\n\n```{snippet.fence}\n{code}\n```", "", output
    return instruction, code, output


TASKS = {
    "explain": explain_task,
    "steps": _steps_task,
    "compare": _compare_task,
    "summarize": _summarize_task,
    "grammar": _grammar_task,
    "sentiment": _sentiment_task,
    "titles": _titles_task,
    "email": _email_task,
    "story": _story_task,
    "code": _code_task,
    "explain_code": _explain_code_task,
}
