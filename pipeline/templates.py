"""Template-built instructions (FLAN / T0 style) for qa, classification and raw text.

Each task has several templates, English and Chinese, in ``pipeline/templates/<task>.yaml``.
A record's template is a seeded hash of its content over the templates of its language, so
the same record always gets the same template and a corpus spreads over all of them. Users
add or override templates with files of the same shape; every template is compiled and
test-rendered when loaded, so a broken one fails before any data is read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import xxhash
import yaml
from jinja2.sandbox import SandboxedEnvironment

from pipeline.convert import ConversionError, Rendered, SourceRecord

TEMPLATE_TASKS = ("qa", "classification", "text")
TASK_LABELS = {"qa": "qa", "classification": "classification", "text": "text_continuation"}
MIN_TEXT_CHARS = 200
# Fields every template of a task can use; loading renders each template with these.
SAMPLE_FIELDS: dict[str, list[dict[str, Any]]] = {
    "qa": [
        {"question": "q?", "context": "c", "answers": ["a", "b"], "answer": "a"},
        {"question": "q?", "context": "", "answers": ["a"], "answer": "a"},
    ],
    "classification": [
        {"text": "t", "label": "x", "options": ["x", "y"]},
        {"text": "t", "label": "x", "options": []},
    ],
    "text": [{"text": "p. c.", "prefix": "p.", "continuation": "c."}],
}
_TEMPLATE_KEYS = {"id", "prompt", "response", "language"}
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+|(?<=[。！？])[”’」』）]*")
_SPACE = re.compile(r"\s+")
# A raw text unit longer than this (an article on one line) becomes a task on its lead: the
# whole sentences that fit; the record's meta says where the window ends ("window").
MAX_PASSAGE_CHARS = 4000
# Words whose period ends no sentence: titles, "No. 5", Latin abbreviations, months, street
# and company forms. A period after one of these (or after a single capital, an initial as
# in "J. R. Smith") is not a sentence boundary. NLTK's Punkt learns such a list from the
# text; a fixed one needs no data and gives the same cut on every machine.
ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st mt ft no nos vol vols fig figs p pp ed eds rev gen col lt
    capt sgt gov sen rep pres jan feb mar apr jun jul aug sep sept oct nov dec e.g i.e etc
    vs cf al approx dept est inc ltd co corp bros u.s u.k a.m p.m ca""".split()
)
_WORD_BEFORE = re.compile(r"([\w.]+)\.[\"'”’)\]]*\s*$")


@dataclass(frozen=True)
class Template:
    id: str
    prompt: str
    response: str
    language: str = ""
    origin: str = "built-in"


class TemplateBank:
    """The templates of one task, compiled in a sandbox, with the per-record choice."""

    def __init__(self, task: str, templates: Sequence[Template]) -> None:
        self.task = task
        self.templates = tuple(templates)
        environment = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
        self._compiled = {t.id: _compile(environment, t, task) for t in self.templates}

    @classmethod
    def load(cls, task: str, extra_files: Sequence[str] = ()) -> TemplateBank:
        """Built-in templates of ``task``, extended or overridden (same id) by user files."""
        if task not in TEMPLATE_TASKS:
            raise ValueError(f"no templates for task {task!r}; one of {TEMPLATE_TASKS}")
        built_in = resources.files("pipeline").joinpath("templates", f"{task}.yaml")
        _, templates = parse_template_file(built_in.read_text("utf-8"), f"built-in {task}.yaml")
        by_id = {template.id: template for template in templates}
        for path in extra_files:
            try:
                text = Path(path).read_text("utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise ValueError(f"template file {path}: cannot be read: {error}") from error
            file_task, templates = parse_template_file(text, path)
            if file_task == task:
                by_id.update((template.id, template) for template in templates)
        return cls(task, list(by_id.values()))

    def choose(self, fields: dict[str, Any], language: str, seed: int) -> Template:
        """Deterministic per record: a seeded hash of its content over its language's templates."""
        candidates = [t for t in self.templates if t.language == language] or self.templates
        content = json.dumps(fields, sort_keys=True, ensure_ascii=False).encode("utf-8")
        digest = xxhash.xxh64_intdigest(content, seed=seed & 0xFFFF_FFFF_FFFF_FFFF)
        return candidates[digest % len(candidates)]

    def render(self, template: Template, fields: dict[str, Any]) -> tuple[str, str]:
        prompt, response = self._compiled[template.id]
        return prompt.render(**fields).strip(), response.render(**fields).strip()


def parse_template_file(text: str, origin: str) -> tuple[str, list[Template]]:
    """The task and templates of one YAML template file; ValueError names file and template."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"template file {origin}: not valid YAML: {error}") from error
    if not isinstance(data, dict) or data.get("task") not in TEMPLATE_TASKS:
        raise ValueError(f"template file {origin}: needs `task:` (one of {TEMPLATE_TASKS})")
    entries = data.get("templates")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"template file {origin}: needs a non-empty `templates:` list")
    templates, seen = [], set()
    for index, entry in enumerate(entries):
        template = _template(entry, f"template file {origin}, templates[{index}]", origin)
        if template.id in seen:
            raise ValueError(f"template file {origin}: template id {template.id!r} is repeated")
        seen.add(template.id)
        templates.append(template)
    return data["task"], templates


def _template(entry: Any, where: str, origin: str) -> Template:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping with id, prompt, response")
    unknown = set(entry) - _TEMPLATE_KEYS
    missing = {"id", "prompt", "response"} - set(entry)
    if unknown or missing:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}, missing {sorted(missing)}")
    if not all(isinstance(entry.get(key, ""), str) for key in _TEMPLATE_KEYS):
        raise ValueError(f"{where} ({entry.get('id')!r}): id, prompt, response, language are text")
    return Template(
        entry["id"], entry["prompt"], entry["response"], entry.get("language", ""), origin
    )


def _compile(
    environment: SandboxedEnvironment, template: Template, task: str
) -> tuple[jinja2.Template, jinja2.Template]:
    where = f"template file {template.origin}: template {template.id!r}"
    try:
        compiled = (
            environment.from_string(template.prompt),
            environment.from_string(template.response),
        )
        for fields in SAMPLE_FIELDS[task]:
            for part in compiled:
                part.render(**fields)
    except jinja2.TemplateError as error:
        raise ValueError(f"{where}: {type(error).__name__}: {error}") from error
    return compiled


def detect_language(text: str) -> str:
    """'zh' when CJK ideographs are over 30% of the non-space characters, else 'en'."""
    sample = _SPACE.sub("", text[:2000])
    return "zh" if sample and len(_CJK.findall(sample)) > 0.3 * len(sample) else "en"


def split_passage(text: str, min_chars: int = MIN_TEXT_CHARS) -> tuple[str, str]:
    """Prefix and continuation, cut at the sentence boundary nearest the middle."""
    text = text.strip()
    if len(text) < min_chars:
        detail = f"{len(text)} chars < min_text_chars {min_chars}: too short to split"
        raise ConversionError("convert.text_too_short", detail)
    middle = len(text) // 2
    cuts = [match.end() for match in _SENTENCE_END.finditer(text) if ends_sentence(text, match)]
    cuts = [cut for cut in cuts if text[:cut].strip() and text[cut:].strip()]
    # No sentence punctuation at all (lists, code): fall back to whitespace, then the middle.
    cuts = cuts or [match.end() for match in _SPACE.finditer(text, 1)] or [middle]
    cut = min(cuts, key=lambda position: abs(position - middle))
    return text[:cut].strip(), text[cut:].strip()


def lead_window(text: str, max_chars: int) -> int:
    """Where a passage of at most ``max_chars`` from the start of ``text`` ends: after its
    last whole sentence, else at a space, else at ``max_chars``; ``len(text)`` when it fits."""
    if len(text) <= max_chars:
        return len(text)
    head = text[: max_chars + 1]
    ends = [m.end() for m in _SENTENCE_END.finditer(head) if ends_sentence(head, m)]
    ends = [end for end in ends if end <= max_chars and head[:end].strip()]
    if ends:
        return len(text[: ends[-1]].rstrip())
    spaces = [m.start() for m in _SPACE.finditer(head) if 0 < m.start() <= max_chars]
    return spaces[-1] if spaces else max_chars


def ends_sentence(text: str, match: re.Match[str]) -> bool:
    """Is the punctuation before ``match`` (a ``_SENTENCE_END`` candidate) a sentence end,
    not the period of an abbreviation or an initial?"""
    head = text[max(0, match.start() - 20) : match.start() + 1]
    before = _WORD_BEFORE.search(head)
    if before is None:
        return True
    word = before.group(1)
    if len(word) == 1 and word.isupper():
        return False  # an initial
    return word.lower() not in ABBREVIATIONS


class TemplateRenderer:
    """``convert.TemplateRenderer``: reads qa/classification/text fields, picks, renders."""

    def __init__(
        self,
        extra_files: Sequence[str] = (),
        *,
        seed: int = 0,
        min_text_chars: int = MIN_TEXT_CHARS,
        max_passage_chars: int = MAX_PASSAGE_CHARS,
    ) -> None:
        self.extra_files = tuple(extra_files)
        self.seed = seed
        self.min_text_chars = min_text_chars
        self.max_passage_chars = max_passage_chars
        self._banks: dict[str, TemplateBank] = {}

    def bank(self, task: str) -> TemplateBank:
        if task not in self._banks:
            self._banks[task] = TemplateBank.load(task, self.extra_files)
        return self._banks[task]

    def render(self, fmt: str, source: SourceRecord, language: str) -> Rendered:
        fields, kept = _FIELD_READERS[fmt](source)
        language = language or detect_language(fields.get("question") or fields["text"])
        choice_key = dict(fields)
        if fmt == "text":
            text = fields["text"].strip()
            end = lead_window(text, self.max_passage_chars)
            if end < len(text):
                # A long unit (an article): its lead, in whole sentences, is the passage.
                kept = {**kept, "window": {"chars": end, "of": len(text)}}
                text = text[:end]
            prefix, continuation = split_passage(text, self.min_text_chars)
            fields = {**fields, "prefix": prefix, "continuation": continuation}
        bank = self.bank(fmt)
        template = bank.choose(choice_key, language, self.seed)
        prompt, response = bank.render(template, fields)
        return Rendered(prompt, response, template.id, TASK_LABELS[fmt], language, kept)


def _qa_fields(source: SourceRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    question = source.take("question")
    context = source.optional("context", "", shown_when_empty=True)
    name = "answers" if source.has("answers") else "answer"
    raw = source.take(name, (str, list, dict))
    answers = raw.get("text", []) if isinstance(raw, dict) else raw  # SQuAD: {"text": [...]}
    answers = [answers] if isinstance(answers, str) else answers
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise ConversionError("convert.wrong_type", f"{source.key(name)!r} is not text answers")
    if not answers:
        raise ConversionError("convert.missing_field", f"{source.key(name)!r} is empty")
    # Only the first answer is the response; keep the source's form where it says more.
    kept = {} if isinstance(raw, str) or raw == answers[:1] else {source.key(name): raw}
    fields = {"question": question, "context": context, "answers": answers, "answer": answers[0]}
    return fields, kept


def _classification_fields(source: SourceRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    text = source.take("text")
    options = source.optional("options", [], shown_when_empty=True)
    if not all(isinstance(option, str) for option in options):
        raise ConversionError("convert.wrong_type", f"{source.key('options')!r} holds non-text")
    label = source.take("label", (str, int))
    kept: dict[str, Any] = {}
    if isinstance(label, int):
        if options and not 0 <= label < len(options):
            detail = f"label {label} is out of range for {len(options)} options"
            raise ConversionError("convert.wrong_type", detail)
        # An index label: the response is the option's text; the index stays in meta.
        kept[source.key("label")] = label
        label = options[label] if options else str(label)
    return {"text": text, "label": label, "options": options}, kept


def _text_fields(source: SourceRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"text": source.take("text")}, {}


_FIELD_READERS: dict[str, Callable[[SourceRecord], tuple[dict[str, Any], dict[str, Any]]]] = {
    "qa": _qa_fields,
    "classification": _classification_fields,
    "text": _text_fields,
}
