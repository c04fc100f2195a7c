"""The listwise prompt an LLM reranker reads: one renderer for every place a prompt is made.

`render_prompt(template, query_text, doc_ids, doc_texts, order)` is the only function that turns a
query into chat messages: the RL and SFT exports and the sampling requests (exports/requests.py)
all call it, and it returns the candidate order it used (the doc ids in the order the prompt
numbered them [1]..[n]), which is what a generation's `[k]` refers to. That order travels with a
request (requests.json), so a result is parsed against the order it was asked with.

A template is a JSON object `{"system": "...", "user": "..."}` (`system` optional, a string or
null; no other keys) whose texts may use `{query}`, `{passages}` (the numbered passages, one
`[k] text` per line, k = 1..n in the candidate order) and `{n}` (the number of passages). Any other
`{...}` is an error; write `{{`/`}}` for literal braces. A format spec is allowed (`{n:>3}`) when
it is one of Python's format specs with a width and precision of at most MAX_FORMAT_WIDTH and fits
its value's type; everything is checked when the template is loaded, before any row is written.

Passages are cut by a `PassageCut`: `WordCut(n)` keeps the first n words (RankGPT's practice; 0
keeps them whole), `TokenCut(tokenizer, n)` the first n tokens of a Hugging Face tokenizer
(ReasonRank's way).
"""
from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field

from data_contracts import fs
from data_contracts.errors import InputError

PLACEHOLDERS = ("query", "passages", "n")
TEMPLATE_KEYS = ("system", "user")
MAX_FORMAT_WIDTH = 1000
_SPEC = re.compile(r"^(?:.?[<>=^])?[+\- ]?z?#?0?(?P<width>\d*)[,_]?(?:\.(?P<precision>\d+))?"
                   r"[bcdeEfFgGnosxX%]?$", re.DOTALL)
_SAMPLE = {"query": "q", "passages": "[1] p", "n": 1}

PERMUTATION_TEMPLATE = {
    "system": "You are RankLLM, an intelligent assistant that can rank passages based on their "
              "relevance to the query.",
    "user": "I will provide you with {n} passages, each indicated by a numerical identifier [].\n"
            "Rank the passages based on their relevance to the search query: {query}\n\n"
            "{passages}\n\nSearch Query: {query}\n"
            "Rank the {n} passages above based on their relevance to the search query. All the "
            "passages should be included and listed using identifiers, in descending order of "
            "relevance. The output format should be [] > [], e.g., [2] > [1]. Only respond with "
            "the ranking results, do not say any word or explain.",
}
ANSWER_TEMPLATE = {
    "system": "You are a search assistant that finds the passage most relevant to a query.",
    "user": "Query: {query}\n\n{passages}\n\nWhich of the {n} passages above is most relevant to "
            "the query? Think it through inside <think> </think>, then give the passage's "
            "identifier inside <answer> </answer>, e.g. <answer>[3]</answer>.",
}
# ReasonRank's reasoning prompt (its listwise instruction, with the <think>/<answer> structure its
# reward requires).
REASONING_TEMPLATE = {
    "system": "You are RankLLM, an intelligent assistant that can rank passages based on their "
              "relevance to the query.",
    "user": "I will provide you with {n} passages, each indicated by a numerical identifier []. "
            "Rank the passages based on their relevance to the search query: {query}.\n\n"
            "{passages}\n\nSearch Query: {query}.\n"
            "Rank the {n} passages above based on their relevance to the search query. All the "
            "passages should be included and listed using identifiers, in descending order of "
            "relevance. First reason step by step inside <think> </think>, then write the "
            "ranking inside <answer> </answer> in the format [] > [], e.g., "
            "<answer>[2] > [1]</answer>.",
}


@dataclass(frozen=True)
class WordCut:
    """Keeps a passage's first `words` whitespace-separated words (0: all)."""

    words: int = 300

    def cut(self, text: str) -> str:
        text = " ".join((text or "").split())
        return text if self.words <= 0 else " ".join(text.split(" ")[:self.words])

    def describe(self) -> dict:
        return {"unit": "words", "max": self.words}


@dataclass(frozen=True)
class TokenCut:
    """Keeps a passage's first `tokens` tokens (decoded back); `tokenizer` has encode(text) ->
    ids and decode(ids) -> text (exports.tokens.TokenCounter)."""

    tokenizer: object = field(compare=False, repr=False)
    tokens: int = 512
    name: str = ""

    def cut(self, text: str) -> str:
        text = " ".join((text or "").split())
        ids = self.tokenizer.encode(text)
        if len(ids) <= self.tokens:
            return text
        return self.tokenizer.decode(ids[:self.tokens]).strip()

    def describe(self) -> dict:
        return {"unit": "tokens", "max": self.tokens, "tokenizer": self.name}


@dataclass(frozen=True)
class Template:
    """A prompt template (see the module docstring); `cut` shortens each passage."""

    user: str
    system: str | None = None
    cut: object = WordCut(300)

    def describe(self) -> dict:
        return {"system": self.system, "user": self.user, "passage_cut": self.cut.describe()}


@dataclass(frozen=True)
class Prompt:
    """One query's rendered prompt.

    Attributes:
      messages: the chat messages, [{role, content}] (system first when the template has one).
      candidate_order: the doc ids in the order the prompt numbered them; `[k]` in a generation
        is candidate_order[k - 1].
    """

    messages: list
    candidate_order: list


def render_prompt(template: Template, query_text: str, doc_ids: list[str],
                  doc_texts: list[str] | None, order: list[int] | None = None) -> Prompt:
    """Renders one query's prompt: its passages numbered in `order`, each cut by the template.

    Args:
      template: a checked Template (load_template / default_template).
      query_text: the query.
      doc_ids: [n] the query's candidates (the run's order).
      doc_texts: [n] their passages (None or missing texts render as empty).
      order: indices into doc_ids giving the prompt's order (default: the run's order).

    Returns:
      A Prompt with the messages and the candidate order (doc ids as numbered).

    Raises:
      ValueError: `order` is not a permutation of range(n).
    """
    n = len(doc_ids)
    order = list(range(n)) if order is None else [int(j) for j in order]
    if sorted(order) != list(range(n)):
        raise ValueError(f"candidate order {order} is not a permutation of {n} candidates")
    texts = list(doc_texts or [])
    texts += [""] * (n - len(texts))
    numbered = "\n".join(f"[{k}] {template.cut.cut(texts[j])}" for k, j in enumerate(order, 1))
    values = {"query": query_text or "", "passages": numbered, "n": n}
    messages = [{"role": "system", "content": template.system.format(**values)}] \
        if template.system else []
    messages.append({"role": "user", "content": template.user.format(**values)})
    return Prompt(messages, [doc_ids[j] for j in order])


def check_template_text(text: str, where: str) -> None:
    """Refuses unknown placeholders, conversions, unbounded or ill-typed format specs.

    Raises:
      InputError: naming the placeholder or spec.
    """
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise InputError(where, f"template text is not a format string ({exc}); write {{{{ and "
                                "}} for literal braces") from None
    allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            raise InputError(where, f"unknown placeholder {{{name}}} (allowed: {allowed})")
        if conversion not in (None, "s", "r", "a"):
            raise InputError(where, f"{{{name}!{conversion}}}: unknown conversion")
        match = _SPEC.match(spec or "")
        if match is None:
            raise InputError(where, f"{{{name}:{spec}}}: not a plain format spec (nested "
                                    "fields and other forms are refused)")
        for part in ("width", "precision"):
            value = match.group(part)
            if value and int(value) > MAX_FORMAT_WIDTH:
                raise InputError(where, f"{{{name}:{spec}}}: {part} {int(value)} is above "
                                        f"{MAX_FORMAT_WIDTH}")
    try:
        text.format(**_SAMPLE)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise InputError(where, f"template does not format ({exc})") from None


def default_template(rollout_format: str = "permutation", cut: object = WordCut(300),
                     reasoning: bool = False) -> Template:
    """The built-in template for the run's rollout format (permutation or answer); `reasoning`
    picks ReasonRank's <think>/<answer> listwise prompt."""
    data = (ANSWER_TEMPLATE if rollout_format == "answer"
            else REASONING_TEMPLATE if reasoning else PERMUTATION_TEMPLATE)
    return Template(user=data["user"], system=data["system"], cut=cut)


def load_template(path: str | None, rollout_format: str = "permutation",
                  cut: object = WordCut(300), reasoning: bool = False) -> Template:
    """A template from a JSON file, or the default one; checked whole before it is used.

    Raises:
      InputError: the file is missing or not JSON, has keys other than system/user, a `user`
        that is not a non-empty string, a `system` that is not a string or null, or a text that
        fails `check_template_text`.
    """
    if path is None:
        return default_template(rollout_format, cut, reasoning)
    if not fs.exists(path) or fs.isdir(path):
        raise InputError(path, "template not found (a JSON file)")
    try:
        data = json.loads(fs.read_bytes(path).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(path, f"template is not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("user"), str) or \
            not data["user"].strip():
        raise InputError(path, 'a template is {"system": "...", "user": "..."} with a user text')
    unknown = sorted(set(data) - set(TEMPLATE_KEYS))
    if unknown:
        raise InputError(path, f"unknown template key(s) {', '.join(map(repr, unknown))} "
                               f"(allowed: {', '.join(TEMPLATE_KEYS)})")
    if data.get("system") is not None and not isinstance(data["system"], str):
        raise InputError(path, f"template 'system' is a {type(data['system']).__name__}; it must "
                               "be a string or null")
    for key in TEMPLATE_KEYS:
        if data.get(key) is not None:
            check_template_text(data[key], path)
    return Template(user=data["user"], system=data.get("system") or None, cut=cut)
