"""The loop against a REAL OpenAI-compatible server: `transformers serve` on 127.0.0.1 with a tiny
randomly initialised Llama and a word-level tokenizer built here (nothing downloaded). It ignores
`n`, so each sample is its own request. Build with --policy none -> export --to requests -> the
requests posted by a small client here -> build with the results: every count reconciles and its
garbage outputs are malformed rollouts, counted; the same through --generate-with."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("transformers")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
if shutil.which("transformers") is None:
    pytest.skip("no `transformers` command (transformers[serving])", allow_module_level=True)

from data_contracts.manifest import load_manifest  # noqa: E402
from pipelines import build_curriculum, export  # noqa: E402

pytestmark = pytest.mark.slow

N_QUERIES, K, MAX_TOKENS = 3, 2, 6
BASE = ["--synthetic", "text", "--synthetic-queries", str(N_QUERIES), "--stages", "1"]


def _tiny_model(folder) -> None:
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["[1] > [2] > [3] rank the passages"] +
                            [f"w{i}" for i in range(100)],
                            trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>", "<s>",
                                                                      "</s>"]))
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
        eos_token="</s>")
    tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n"
                               "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=8192,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id)
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    _tiny_model(str(folder))
    port = _free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    log = open(folder / "serve.log", "wb")
    proc = subprocess.Popen([shutil.which("transformers"), "serve", str(folder), "--host",
                             "127.0.0.1", "--port", str(port), "--device", "cpu"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/health", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(1)
    else:
        proc.kill()
        pytest.fail("transformers serve did not start: " + (folder / "serve.log").read_text())
    if proc.poll() is not None:
        pytest.fail("transformers serve exited: " + (folder / "serve.log").read_text())
    yield url, str(folder)
    proc.terminate()
    proc.wait(30)
    log.close()


def _post(url, line) -> dict:
    """The test's own client: one request line -> one OpenAI batch output line."""
    request = urllib.request.Request(url + line["url"], data=json.dumps(line["body"]).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return {"custom_id": line["custom_id"], "error": None,
                    "response": {"status_code": response.status,
                                 "body": json.loads(response.read())}}
    except urllib.error.HTTPError as exc:
        return {"custom_id": line["custom_id"], "error": {"message": str(exc)},
                "response": {"status_code": exc.code, "body": None}}


def _reconciles(c: dict) -> None:
    assert c["requests_sent"] == N_QUERIES * K
    assert c["requests_sent"] == c["requests_answered"] + c["requests_failed"] + \
        c["requests_missing"]
    assert c["rollouts_returned"] == c["requests_answered"]  # the server ignores n: 1 each


def test_requests_through_transformers_serve_then_the_build(server, tmp_path):
    url, model = server
    run0 = tmp_path / "run0"
    assert build_curriculum.main([*BASE, "--out", str(run0), "--policy", "none"]) == 0
    req = tmp_path / "req"
    assert export.main([str(run0), "--to", "requests", "--out", str(req), "--model", model,
                        "--k", str(K), "--max-tokens", str(MAX_TOKENS)]) == 0
    lines = [json.loads(x) for x in (req / "requests.jsonl").read_text().splitlines()]
    answers = [_post(url, line) for line in lines]
    assert all(a["response"]["status_code"] == 200 for a in answers)
    (req / "results.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    run1 = tmp_path / "run1"
    code = build_curriculum.main([*BASE, "--out", str(run1), "--rollouts",
                                  str(req / "results.jsonl")])
    assert code == 0
    m = load_manifest(str(run1))
    c = m["counts"]
    _reconciles(c)
    assert c["requests_answered"] == N_QUERIES * K
    # random weights: no ranking in any output, each a counted malformed rollout
    assert c["rollouts_malformed"] == c["rollouts_returned"]
    assert sum(m["malformed_reasons"].values()) == c["rollouts_returned"]

    # the same requests through --generate-with: the same counts
    live = tmp_path / "live"
    assert build_curriculum.main([*BASE, "--out", str(live), "--generate-with", url,
                                  "--model", model, "--k", str(K), "--max-tokens",
                                  str(MAX_TOKENS), "--generation-cache",
                                  str(tmp_path / "cache")]) == 0
    lc = load_manifest(str(live))["counts"]
    _reconciles(lc)
    for name in ("requests_sent", "requests_answered", "requests_failed", "rollouts_returned",
                 "rollouts_malformed"):
        assert lc[name] == c[name], name
