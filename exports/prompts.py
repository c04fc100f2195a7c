"""The listwise prompt an LLM reranker reads: numbered passages from a replaceable template.

A template is a JSON object `{"system": "...", "user": "..."}` (the system message optional) whose
texts may use `{query}`, `{passages}` (the numbered passages, one `[k] text` per line, k = 1..n in
the candidate order, the order the rollouts' `[k]` refer to) and `{n}` (the number of passages).
Any other `{...}` is an error; write `{{`/`}}` for literal braces. Passages are cut to
`max_passage_words` words (RankGPT's practice; 0 keeps them whole).
"""
from __future__ import annotations

import json
import string
from dataclasses import dataclass

from data_contracts import fs
from data_contracts.errors import InputError

PLACEHOLDERS = ("query", "passages", "n")

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


@dataclass(frozen=True)
class Template:
    """A prompt template (see the module docstring)."""

    user: str
    system: str | None = None
    max_passage_words: int = 300

    def messages(self, query: str, passages: list[str]) -> list[dict]:
        """The chat messages ([{role, content}]) of one query's prompt."""
        numbered = "\n".join(f"[{k}] {self._cut(p)}" for k, p in enumerate(passages, 1))
        values = {"query": query, "passages": numbered, "n": len(passages)}
        out = [{"role": "system", "content": self.system.format(**values)}] if self.system else []
        return out + [{"role": "user", "content": self.user.format(**values)}]

    def _cut(self, text: str) -> str:
        text = " ".join((text or "").split())
        if self.max_passage_words <= 0:
            return text
        words = text.split(" ")
        return " ".join(words[:self.max_passage_words])


def _check(text: str, where: str) -> None:
    for _, name, _, _ in string.Formatter().parse(text):
        if name is not None and name not in PLACEHOLDERS:
            raise InputError(where, f"unknown placeholder {{{name}}} (allowed: "
                                    f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)})")


def default_template(rollout_format: str = "permutation", max_passage_words: int = 300
                     ) -> Template:
    """The built-in template for the run's rollout format (permutation or answer)."""
    data = ANSWER_TEMPLATE if rollout_format == "answer" else PERMUTATION_TEMPLATE
    return Template(user=data["user"], system=data["system"], max_passage_words=max_passage_words)


def load_template(path: str | None, rollout_format: str = "permutation",
                  max_passage_words: int = 300) -> Template:
    """A template from a JSON file, or the default one.

    Raises:
      InputError: the file is missing, not JSON, has no `user` text or an unknown placeholder.
    """
    if path is None:
        return default_template(rollout_format, max_passage_words)
    if not fs.exists(path):
        raise InputError(path, "template not found")
    try:
        data = json.loads(fs.read_bytes(path).decode("utf-8"))
    except ValueError as exc:
        raise InputError(path, f"template is not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("user"), str):
        raise InputError(path, 'a template is {"system": "...", "user": "..."} with a user text')
    for key in ("system", "user"):
        if data.get(key) is not None:
            _check(data[key], path)
    return Template(user=data["user"], system=data.get("system"),
                    max_passage_words=max_passage_words)
