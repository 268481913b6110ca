"""Non-instruction text: extractive QA rows (``generate_qa``) and raw English prose
(``generate_paragraphs``)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from bench.corpora.banks import Language, split_bank
from bench.corpora.english import ENGLISH
from bench.corpora.tasks import Deck, advice_sentence


def generate_qa(n: int, *, seed: int) -> Iterator[dict[str, Any]]:
    """Yield extractive QA rows ``{"question", "context", "answers": [text]}`` about fictional
    towns, rivers, companies and people; every answer is a span of its context."""
    rng = random.Random(seed)
    for _ in range(n):
        context_template, questions = rng.choice(_QA_FRAMES)
        slots = _qa_slots(rng)
        question, answer = rng.choice(questions)
        yield {
            "question": question.format(**slots),
            "context": context_template.format(**slots),
            "answers": [answer.format(**slots)],
        }


def generate_paragraphs(
    n: int, *, seed: int, min_chars: int = 250, max_chars: int = 600
) -> Iterator[str]:
    """Yield ``n`` paragraphs of blog-like English prose, each ``min_chars`` to
    ``max_chars`` long (sentences are never cut)."""
    if not 0 < min_chars < max_chars:
        raise ValueError(f"need 0 < min_chars < max_chars, got {min_chars}, {max_chars}")
    rng = random.Random(seed)
    for _ in range(n):
        yield _web_paragraph(ENGLISH, rng, min_chars, max_chars)


def _web_paragraph(lang: Language, rng: random.Random, min_chars: int, max_chars: int) -> str:
    topic = rng.choice(lang.topics)
    subject = rng.choice(topic.subjects)
    target = rng.randint(min_chars, max_chars)
    sentences = [rng.choice(_WEB_OPENERS).format(s=subject)]
    size = len(sentences[0])
    deck = Deck(rng)
    for _ in range(40):
        if size >= target:
            break
        sentence = advice_sentence(lang, topic, deck)
        if sentence in sentences or size + 1 + len(sentence) > max_chars:
            continue
        sentences.append(sentence)
        size += 1 + len(sentence)
    if size < min_chars:  # rare: every candidate was too long; try again from scratch
        return _web_paragraph(lang, rng, min_chars, max_chars)
    return " ".join(sentences)


def _qa_slots(rng: random.Random) -> dict[str, str]:
    slots = {key: rng.choice(values) for key, values in _QA_SLOTS.items()}
    first_names, pronoun, possessive = rng.choice(_QA_PEOPLE)
    slots["person"] = f"{rng.choice(first_names)} {rng.choice(_QA_SURNAMES)}"
    slots["Pronoun"], slots["possessive"] = pronoun, possessive
    year = rng.randint(1850, 1960)
    slots["year"], slots["year2"] = str(year), str(year + rng.randint(8, 45))
    return slots


# Extractive QA frames: every answer is a span of its context.
_QA_FRAMES = (
    (
        "The {town} Public Library opened in {year} in a former {building}. It holds about "
        "{count} books and is open every day except {weekday}. The building was renovated by "
        "the architect {person}, who also designed the town's railway station.",
        (
            ("When did the {town} Public Library open?", "{year}"),
            (
                "What kind of building did the {town} Public Library move into?",
                "a former {building}",
            ),
            ("On which day is the {town} Public Library closed?", "{weekday}"),
            ("Who renovated the {town} Public Library?", "{person}"),
        ),
    ),
    (
        "Every {month}, {town} hosts a {festival} festival that attracts around {visitors} "
        "visitors. The first festival was organised in {year} by a group of local {organisers}. "
        "The highlight is a {highlight} on the final evening, which usually draws the biggest "
        "crowd.",
        (
            ("In which month is the {festival} festival held in {town}?", "{month}"),
            ("Who organised the first {festival} festival?", "a group of local {organisers}"),
            (
                "What is the highlight of the {festival} festival in {town}?",
                "a {highlight} on the final evening",
            ),
            ("How many visitors does the {town} {festival} festival attract?", "around {visitors}"),
        ),
    ),
    (
        "The {river} River is about {length} kilometres long and flows through {regions} "
        "regions before reaching the {sea}. Its largest tributary is the {tributary}. During "
        "the {century} century the river was an important route for shipping {goods}.",
        (
            ("How long is the {river} River?", "about {length} kilometres"),
            ("What is the largest tributary of the {river} River?", "the {tributary}"),
            ("What goods were shipped on the {river} River?", "{goods}"),
            ("Where does the {river} River end?", "the {sea}"),
        ),
    ),
    (
        "{company} was founded in {year} by {person} in {town}. The company started by making "
        "{product} in a small workshop and now employs about {employees} people. In {year2} it "
        "moved its headquarters to {city}.",
        (
            ("Who founded {company}?", "{person}"),
            ("What did {company} make when it started?", "{product}"),
            ("Where is the headquarters of {company} today?", "{city}"),
            ("In which year was {company} founded?", "{year}"),
        ),
    ),
    (
        "{person} was a {field} researcher born in {town} in {year}. {Pronoun} spent most of "
        "{possessive} career studying {study}, and {possessive} best-known book, {book}, was "
        "published in {year2}. Today a small museum in {town} tells the story of {possessive} "
        "work.",
        (
            ("Where was {person} born?", "{town}"),
            ("What did {person} spend most of the career studying?", "{study}"),
            ("What is the title of {person}'s best-known book?", "{book}"),
            ("When was {book} published?", "{year2}"),
        ),
    ),
)


_QA_SLOTS = {
    "town": split_bank(
        "Millbrook|Harwick|Eastdale|Stonebridge|Larkfield|Redcliff|Ashford Vale|"
        "Pinecrest|Cobham Bay|Westmere|Thornbury|Elmstead"
    ),
    "city": split_bank("Northport|Kingsmere|Brackenridge|Lowell Falls|Saltmarsh|Greyhaven"),
    "building": split_bank(
        "wool warehouse|railway hotel|grain store|town hall|village school|fire station"
    ),
    "count": split_bank("12,000|25,000|48,000|80,000|150,000"),
    "weekday": split_bank("Monday|Tuesday|Wednesday|Sunday"),
    "month": split_bank("March|May|June|August|September|October"),
    "festival": split_bank("kite|lantern|folk music|cheese|jazz|apple|storytelling"),
    "visitors": split_bank("5,000|12,000|30,000|60,000"),
    "organisers": split_bank("farmers|teachers|musicians|fishermen|students|shopkeepers"),
    "highlight": split_bank(
        "lantern parade|fireworks display|open-air concert|boat race|torchlight procession"
    ),
    "river": split_bank("Corran|Velling|Ostra|Harl|Dunmere|Tessel|Brenn|Lisk|Oden|Wyreth"),
    "length": split_bank("120|240|380|515|760"),
    "regions": split_bank("two|three|four|five"),
    "sea": split_bank("North Sea|Bay of Ardel|Grey Sea|Lake Morrow"),
    "tributary": split_bank("Little Ashe|Tane Brook|Selby Water|Mill Run"),
    "century": split_bank("17th|18th|19th"),
    "goods": split_bank("timber|salt|wool|grain|coal"),
    "company": split_bank(
        "Northwind Tools|Bright Harbor Foods|Kestrel Bicycles|Oakline Furniture|Bluestone Paper|"
        "Redfern Looms|Foxglove Press|Harbor Lane Ceramics"
    ),
    "product": split_bank("bicycle bells|wooden toys|canned fish|garden tools|paper lanterns"),
    "employees": split_bank("300|1,200|4,500|9,000"),
    "field": split_bank("marine biology|soil science|astronomy|linguistics|botany"),
    "study": split_bank(
        "tidal pools along the northern coast|the migration of songbirds|how clay "
        "soils hold water|the dialects of mountain villages|the light of variable "
        "stars"
    ),
    "book": split_bank(
        "The Quiet Shore|Notes on Small Things|Roots and Rain|A Map of Voices|Lights in the North"
    ),
}


_QA_PEOPLE = (
    (split_bank("Clara|Edith|Margaret|Helen|Agnes|Ruth"), "She", "her"),
    (split_bank("Arthur|Walter|Henry|George|Albert|Edwin"), "He", "his"),
)


_QA_SURNAMES = split_bank("Whitfield|Marsh|Okafor|Lindqvist|Pereira|Hartley|Brandt|Castell")


_WEB_OPENERS = (
    "Last spring I finally decided to look into {s}, and I learned more than I expected.",
    "If you have ever wondered about {s}, you are not alone.",
    "A reader wrote in this week with a question about {s}.",
    "Every few months someone asks me about {s}, so here is what I tell them.",
    "I used to think {s} was complicated, but it turned out to be surprisingly simple.",
)
