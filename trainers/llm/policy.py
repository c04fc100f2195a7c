"""The LLM policy of the arm: a tokenizer trained on the set's own text, a small Llama built
locally (nothing downloaded), and a sampler that answers the product's requests file with OpenAI
batch output lines, as vLLM `run-batch` would.

Determinism: torch runs on one thread; the model's weights come from `torch.manual_seed(seed)`;
the sampler seeds each batch of queries from the first request's `seed` field (which the
requests export derives from crc32 of the run seed, round, sample and query id), so the same
model and requests file give the same output lines, byte for byte.
"""
from __future__ import annotations

import json
import zlib

import numpy as np

# "role: content" per message; the assistant's turn ends with the end-of-sequence token, so SFT
# teaches the policy to stop (a policy that never stops is cut by max_tokens: a failed rollout).
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}"
                 "{% if m['role'] == 'assistant' %} </s>{% endif %}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant:{% endif %}")
SPECIAL = ["<unk>", "<pad>", "<s>", "</s>"]


def set_determinism(seed: int) -> None:
    """One torch thread, deterministic kernels, and every RNG seeded with `seed`."""
    import random

    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    # deterministic mode also fills every torch.empty with NaN, which costs TRL's chunked
    # log-prob kernel most of a step on CPU; nothing here reads uninitialised memory
    torch.utils.deterministic.fill_uninitialized_memory = False
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def train_tokenizer(texts: list[str], vocab_size: int = 4000):
    """A word-level tokenizer trained on `texts` (whitespace-split words, so `[3]` and `>` are
    tokens of their own), wrapped as a transformers fast tokenizer with CHAT_TEMPLATE.

    Args:
      texts: the set's own text (prompts and completions of the export), in a fixed order.
      vocab_size: the largest vocabulary (the synthetic set has well under 4,000 words).

    Returns:
      A `transformers.PreTrainedTokenizerFast` (left padding, for batched generation).
    """
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=SPECIAL,
                                                             vocab_size=vocab_size))
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
        eos_token="</s>", padding_side="left")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(tokenizer, seed: int, hidden: int = 64, layers: int = 2, heads: int = 4):
    """A randomly initialised Llama of `layers` layers and width `hidden` (about 0.2M
    parameters with the synthetic set's vocabulary), its weights drawn from `seed`."""
    import torch
    import transformers

    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True)
    model = transformers.LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def _requests(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _result_line(index: int, request: dict, text: str, finish: str, prompt_tokens: int,
                 completion_tokens: int) -> str:
    body = {"id": f"chatcmpl-{index}", "object": "chat.completion",
            "model": request["body"]["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}
    line = {"id": f"batch_req_{index}", "custom_id": request["custom_id"],
            "response": {"status_code": 200, "request_id": f"req-{index}", "body": body},
            "error": None}
    return json.dumps(line, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"


def generate(model, tokenizer, messages: list[list[dict]], temperature: float, max_tokens: int,
             seed: int) -> list[tuple[str, bool, int, int, float]]:
    """Samples one completion per chat in `messages` in one `generate` call.

    Args:
      model: a causal LM (eval mode is set here).
      tokenizer: its tokenizer (chat template, left padding).
      messages: [n] chats, each a list of {role, content}.
      temperature: 1.0 samples the model's own distribution; 0 is greedy.
      max_tokens: new tokens at most.
      seed: torch's seed for this call.

    Returns:
      [n] (text, stopped: ended with the end-of-sequence token, prompt tokens, completion
      tokens, the entropies' sum (nats) over the completion's tokens, end token included).
    """
    import torch

    model.eval()
    texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
             for m in messages]
    encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(int(seed))
    with torch.no_grad():
        out = model.generate(**encoded, max_new_tokens=int(max_tokens),
                             do_sample=temperature > 0,
                             temperature=temperature if temperature > 0 else None,
                             top_k=0, top_p=1.0, return_dict_in_generate=True,
                             output_logits=True, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id)
    generated = out.sequences[:, encoded["input_ids"].shape[1]:]
    logits = torch.stack(out.logits, dim=1).float()  # [n, new, vocab]
    if temperature > 0:
        logits = logits / temperature
    logp = torch.log_softmax(logits, dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)  # [n, new]
    rows = []
    for row in range(len(messages)):
        ids = generated[row].tolist()
        stop = tokenizer.eos_token_id in ids
        length = ids.index(tokenizer.eos_token_id) + 1 if stop else len(ids)
        text = tokenizer.decode(ids[:length], skip_special_tokens=True).strip()
        rows.append((text, stop, int(encoded["attention_mask"][row].sum()), length,
                     float(entropy[row, :length].sum())))
    return rows


def sample_requests(model, tokenizer, requests_path: str, results_path: str,
                    batch_queries: int = 16) -> dict:
    """Answers every line of a requests file (`pipelines.export --to requests`) with one sampled
    completion, and writes the OpenAI batch output lines (vLLM `run-batch`'s format).

    The requests of one query share their messages; queries are sampled `batch_queries` at a
    time, each query's samples together, at the request's temperature and at most `max_tokens`
    new tokens, seeded with the batch's first request's `seed`. A completion that ends with the
    end-of-sequence token has `finish_reason` "stop", one cut at `max_tokens` has "length"
    (which the build counts as a truncated, failed rollout).

    Args:
      model: a causal LM.
      tokenizer: its tokenizer (chat template, left padding).
      requests_path: the requests.jsonl the export wrote.
      results_path: where the output lines go (one per request, in the requests' order).
      batch_queries: queries per `generate` call.

    Returns:
      {"entropy": mean per-token entropy (nats) of the sampled completions' tokens, end token
       included, under the sampling distribution; "tokens": completion tokens generated}.
    """
    requests = _requests(requests_path)
    groups: list[list[int]] = []
    last = None
    for i, request in enumerate(requests):
        key = json.dumps(request["body"]["messages"], sort_keys=True)
        if key == last:
            groups[-1].append(i)
        else:
            groups.append([i])
        last = key
    lines: list[str] = [""] * len(requests)
    entropy_sum, token_count = 0.0, 0
    for start in range(0, len(groups), batch_queries):
        index = [i for group in groups[start:start + batch_queries] for i in group]
        first = requests[index[0]]["body"]
        rows = generate(model, tokenizer, [requests[i]["body"]["messages"] for i in index],
                        float(first.get("temperature", 1.0)), int(first.get("max_tokens", 16)),
                        int(first.get("seed", 0)))
        for i, (text, stop, prompt_tokens, length, entropy) in zip(index, rows):
            entropy_sum += entropy
            token_count += length
            lines[i] = _result_line(i, requests[i], text, "stop" if stop else "length",
                                    prompt_tokens, length)
    with open(results_path, "w", encoding="utf-8") as handle:
        handle.write("".join(lines))
    return {"entropy": entropy_sum / max(token_count, 1), "tokens": token_count}


def crc_seed(*parts) -> int:
    """A 31-bit seed from crc32 of the parts' text (stable across runs and platforms)."""
    return zlib.crc32(":".join(str(p) for p in parts).encode()) & 0x7FFFFFFF
