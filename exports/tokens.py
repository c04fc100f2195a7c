"""Length units of an export: a local Hugging Face tokenizer's tokens, else words.

`load_tokenizer(DIR)` loads a tokenizer folder offline with transformers (`AutoTokenizer`,
`local_files_only`); without transformers, a `tokenizer.json` with the `tokenizers` library (no
chat template then: a prompt's length is the sum of its messages' tokens). Without either it is
an InputError naming the extra to install. With no `--tokenizer`, lengths are counted in words.
"""
from __future__ import annotations

import os

from data_contracts.errors import InputError


def token_ids(encoded) -> list:
    """The token ids of what `apply_chat_template(tokenize=True)` returns: a list of ids, or
    (transformers 5) a BatchEncoding, a mapping whose `input_ids` holds them (its len() is the
    number of keys, not of tokens)."""
    if hasattr(encoded, "keys"):
        encoded = encoded["input_ids"]
    if len(encoded) and isinstance(encoded[0], (list, tuple)):
        encoded = encoded[0]
    return list(encoded)


class TokenCounter:
    """Counts texts and chat prompts in one unit (`tokens` or `words`)."""

    def __init__(self, tokenizer=None, name: str = ""):
        self.tokenizer, self.name = tokenizer, name
        self.unit = "tokens" if tokenizer is not None else "words"

    def encode(self, text: str) -> list[int]:
        tok = self.tokenizer
        if hasattr(tok, "encode") and not hasattr(tok, "get_vocab_size"):
            return list(tok.encode(text, add_special_tokens=False))
        return list(tok.encode(text, add_special_tokens=False).ids)  # a `tokenizers` Tokenizer

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def text(self, text: str | None) -> int:
        if self.tokenizer is None:
            return len((text or "").split())
        return len(self.encode(text or ""))

    def prompt(self, messages: list[dict]) -> int:
        """A chat prompt's length as the trainer sees it (with the chat template and the
        generation prompt where the tokenizer has a template)."""
        tok = self.tokenizer
        if tok is not None and getattr(tok, "chat_template", None) and \
                hasattr(tok, "apply_chat_template"):
            return len(token_ids(tok.apply_chat_template(messages, tokenize=True,
                                                         add_generation_prompt=True)))
        return sum(self.text(m["content"]) for m in messages)


def load_tokenizer(path: str | None) -> TokenCounter:
    """A TokenCounter for a local tokenizer folder, or a word counter when `path` is None.

    Raises:
      InputError: the folder is missing, or neither transformers nor tokenizers is installed,
        or the folder does not load.
    """
    if path is None:
        return TokenCounter()
    if not os.path.isdir(path):
        raise InputError(path, "--tokenizer is a local Hugging Face tokenizer folder; not found")
    try:
        import transformers
    except ImportError:
        transformers = None
    try:
        if transformers is not None:
            tok = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
            return TokenCounter(tok, os.path.basename(os.path.normpath(path)))
        import tokenizers
    except ImportError:
        raise InputError(path, "--tokenizer needs transformers or tokenizers (pip install "
                               "'rerank-curriculum[llm]')") from None
    except (OSError, ValueError) as exc:
        raise InputError(path, f"tokenizer does not load ({exc})") from None
    file = os.path.join(path, "tokenizer.json")
    if not os.path.isfile(file):
        raise InputError(path, "no tokenizer.json (install transformers to read other layouts)")
    try:
        return TokenCounter(tokenizers.Tokenizer.from_file(file),
                            os.path.basename(os.path.normpath(path)))
    except Exception as exc:  # the library raises its own Exception type
        raise InputError(file, f"tokenizer does not load ({exc})") from None
