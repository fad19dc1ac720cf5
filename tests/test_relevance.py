"""intervene check-relevance against a local stub of an OpenAI-compatible chat endpoint that fails
(500), throttles (429 + Retry-After) and answers from a script; resume, cost, and the API key."""

from __future__ import annotations

import json
import logging
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from intervene.cli import main
from intervene.relevance import (
    PROMPTS,
    AnswerCache,
    RelevanceError,
    cache_key,
    check_relevance,
    parse_answer,
)
from intervene.settings import RelevanceConfig

KEY = "sk-test-5f2b9c1e-never-written-anywhere"
ENV = "INTERVENE_TEST_RELEVANCE_KEY"


class Stub:
    """A chat endpoint on 127.0.0.1: ``plan`` maps a document word to the statuses its first
    requests get before the answer (e.g. [500, 429]); the answer is ``answers[word]``."""

    def __init__(self, answers: dict[str, str], plan: dict[str, list[int]] | None = None):
        self.answers, self.plan = answers, {k: list(v) for k, v in (plan or {}).items()}
        self.requests: list[dict] = []
        self.auth: list[str] = []
        self.refuse_after: int | None = None  # answer this many, then 401 (echoing the header)
        self.retry_after = "3"  # the 429s' Retry-After
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][0]["content"]
                word = prompt.rsplit("Document: ", 1)[1].split()[0]
                with stub.lock:
                    stub.requests.append(body)
                    stub.auth.append(self.headers.get("Authorization", ""))
                    answered = sum(1 for r in stub.requests if r.get("_answered"))
                    if stub.refuse_after is not None and answered >= stub.refuse_after:
                        return self._send(401, {"error": f"bad key {self.headers['Authorization']}"})
                    todo = stub.plan.get(word, [])
                    status = todo.pop(0) if todo else 200
                    if status == 200:
                        body["_answered"] = True
                if status == 429:
                    return self._send(429, {"error": "slow down"}, {"Retry-After": stub.retry_after})
                if status != 200:
                    return self._send(status, {"error": "boom"})
                n = len(prompt)
                self._send(
                    200,
                    {
                        "choices": [{"message": {"role": "assistant", "content": stub.answers[word]}}],
                        "usage": {"prompt_tokens": n // 5, "completion_tokens": 1},
                    },
                )

            def _send(self, status, obj, headers=None):
                data = json.dumps(obj).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answered(self) -> int:
        return sum(1 for r in self.requests if r.get("_answered"))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


#: documents (their first word decides the stub's answer) of two instances
DOCS = {
    0: ["alpha Berlin is in Germany.", "bravo unrelated text", "charlie maybe"],
    1: ["delta Paris is in France.", "echo nothing here"],
}
ANSWERS = {
    "alpha": "Yes.",
    "bravo": "no",
    "charlie": "I cannot tell",
    "delta": " YES",
    "echo": "No, it does not.",
}


@pytest.fixture
def top_docs(tmp_path):
    p = tmp_path / "top.jsonl"
    qa = {0: ("Where is Berlin?", "Germany"), 1: ("Where is Paris?", "France")}
    with open(p, "w", encoding="utf-8") as f:
        for i, docs in DOCS.items():
            rec = {"instance": i, "dataset": "p17", "question": qa[i][0], "answer": qa[i][1]}
            rec["docs"] = [
                {"rank": r + 1, "score": 10.0 - r, "row": 100 * i + r, "text": t} for r, t in enumerate(docs)
            ]
            f.write(json.dumps(rec) + "\n")
    return p


@pytest.fixture
def stub():
    s = Stub(ANSWERS, {"alpha": [500, 500], "bravo": [429], "delta": [503]})
    yield s
    s.close()


def _settings(url, **kw):
    base = dict(base_url=url, api_key_env=ENV, workers=2, backoff=0.5, max_backoff=8.0, timeout=10.0)
    return RelevanceConfig(**{**base, **kw})


def _run(tmp_path, top_docs, settings, sleeps=None, **kw):
    sleeps = [] if sleeps is None else sleeps
    return check_relevance(
        top_docs,
        tmp_path / "pairs.jsonl",
        tmp_path / "summary.json",
        tmp_path / "cache.jsonl",
        settings,
        environ={ENV: KEY},
        sleep=sleeps.append,
        **kw,
    )


def test_parse_answer():
    for text, want in [
        ("yes", True),
        ("Yes.", True),
        (' "YES"', True),
        ("no", False),
        ("No, it does not.", False),
        ("**no**", False),
        ("nope", None),
        ("not sure", None),
        ("yesterday", None),
        ("", None),
        (None, None),
        ("The answer is yes", None),
    ]:
        assert parse_answer(text) is want, text


def test_the_papers_prompt_word_for_word():
    assert PROMPTS["correct_answer"].format(question="Q?", answer="A", document="D") == (
        "You will be given a question or question stem and its correct answer, along with a document."
        ' Output "yes" if the document contains enough information to correctly answer the question,'
        ' and "no" otherwise. Only output "yes" or "no".\n\nQuestion: Q?\nAnswer: A\n\nDocument: D'
    )
    assert "educated guess" in PROMPTS["educated_guess"] and "topically" in PROMPTS["related_topic"]


def test_failures_and_throttling_are_retried_and_answers_parsed(tmp_path, top_docs, stub):
    sleeps: list[float] = []
    r = _run(tmp_path, top_docs, _settings(stub.url), sleeps)
    assert (r["pairs"], r["relevant"], r["not_relevant"], r["unparsed"]) == (5, 2, 2, 1)
    # alpha: 500, 500 -> backoff 0.5, 1.0; bravo: 429 with Retry-After 3; delta: 503 -> 0.5
    assert sorted(sleeps) == [0.5, 0.5, 1.0, 3.0]
    assert len(stub.requests) == 5 + 4 and stub.answered() == 5
    assert set(stub.auth) == {f"Bearer {KEY}"}
    assert {b["model"] for b in stub.requests} == {"gpt-5"}
    assert {b["reasoning_effort"] for b in stub.requests} == {"minimal"}
    pairs = [json.loads(x) for x in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert [(p["instance"], p["rank"], p["row"], p["relevant"]) for p in pairs] == [
        (0, 1, 0, True),
        (0, 2, 1, False),
        (0, 3, 2, None),
        (1, 1, 100, True),
        (1, 2, 101, False),
    ]
    summary = json.loads((tmp_path / "summary.json").read_text())
    inst = {i["instance"]: i for i in summary["instances"]}
    assert (inst[0]["relevant"], inst[0]["not_relevant"], inst[0]["unparsed"]) == (1, 1, 1)
    assert inst[0]["relevant_fraction"] == 0.5 and inst[1]["relevant_fraction"] == 0.5
    assert summary["usage"]["completion_tokens"] == 5


def test_a_crash_loses_nothing_and_the_resumed_run_asks_only_the_rest(tmp_path, top_docs):
    full = tmp_path / "full"
    full.mkdir()
    ref = Stub(ANSWERS)
    try:
        _run(full, top_docs, _settings(ref.url, workers=1))
    finally:
        ref.close()

    s = Stub(ANSWERS)
    try:
        s.refuse_after = 2  # the key is revoked mid-run: a non-retryable error stops it
        with pytest.raises(RelevanceError, match="HTTP 401"):
            _run(tmp_path, top_docs, _settings(s.url, workers=1))
        assert not (tmp_path / "pairs.jsonl").exists() and not (tmp_path / "summary.json").exists()
        assert len((tmp_path / "cache.jsonl").read_text().splitlines()) == 2
        # a hard kill mid-write leaves half a line: it is dropped and its pair asked again
        with open(tmp_path / "cache.jsonl", "a") as f:
            f.write('{"key": "abc", "answ')
        s.refuse_after = None
        before = len(s.requests)
        _run(tmp_path, top_docs, _settings(s.url, workers=1))
        assert len(s.requests) - before == 3
        asked = [b["messages"][0]["content"] for b in s.requests[before:]]
        assert len(set(asked)) == 3
    finally:
        s.close()
    assert (tmp_path / "pairs.jsonl").read_bytes() == (full / "pairs.jsonl").read_bytes()
    got, want = (json.loads((d / "summary.json").read_text()) for d in (tmp_path, full))
    assert got.pop("base_url") != want.pop("base_url")  # two stubs, two ports; the rest is equal
    assert got == want
    # and a third run sends nothing at all
    r = _run(tmp_path, top_docs, _settings("http://127.0.0.1:9/v1"))
    assert r["pairs"] == 5


def test_cache_is_keyed_by_model_and_prompt(tmp_path):
    c = AnswerCache(tmp_path / "c.jsonl")
    c.add({"key": cache_key("m1", "p"), "answer": "yes"})
    again = AnswerCache(tmp_path / "c.jsonl")
    assert cache_key("m1", "p") in again
    assert cache_key("m2", "p") not in again and cache_key("m1", "p ") not in again
    (tmp_path / "bad.jsonl").write_text('{"key": "a"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: not an answer-cache line"):
        AnswerCache(tmp_path / "bad.jsonl")


def test_estimate_dry_run_and_max_cost_send_nothing(tmp_path, top_docs, stub):
    s = _settings(stub.url, price_prompt_per_1k=2.0, price_completion_per_1k=10.0, answer_tokens=4)
    prompts = []
    for i, docs in DOCS.items():
        q, a = ("Where is Berlin?", "Germany") if i == 0 else ("Where is Paris?", "France")
        prompts += [PROMPTS["correct_answer"].format(question=q, answer=a, document=d) for d in docs]
    tokens = sum(math.ceil(len(p) / 4) for p in prompts)
    want = round(tokens / 1000 * 2.0 + 5 * 4 / 1000 * 10.0, 6)
    r = _run(tmp_path, top_docs, s, dry_run=True)
    assert (r["requests"], r["prompt_tokens"], r["cost"]) == (5, tokens, want)
    assert stub.requests == [] and not (tmp_path / "pairs.jsonl").exists()
    s_cap = _settings(stub.url, price_prompt_per_1k=2.0, max_cost=want / 10)
    with pytest.raises(RelevanceError, match="exceeds max_cost"):
        _run(tmp_path, top_docs, s_cap)
    assert stub.requests == []
    r = _run(tmp_path, top_docs, s, dry_run=True, limit=2)
    assert r["requests"] == 2


def test_retries_run_out_and_a_dead_endpoint_is_an_error(tmp_path, top_docs):
    s = Stub(ANSWERS, {"alpha": [500] * 10})
    try:
        with pytest.raises(RelevanceError, match=r"HTTP 500, still after 2 retries"):
            _run(tmp_path, top_docs, _settings(s.url, max_retries=2, workers=1))
    finally:
        s.close()
    sleeps: list[float] = []
    with pytest.raises(RelevanceError, match="still after 3 retries"):
        _run(
            tmp_path,
            top_docs,
            _settings("http://127.0.0.1:9/v1", max_retries=3, max_backoff=1.5, workers=1),
            sleeps,
        )
    assert sleeps == [0.5, 1.0, 1.5]  # doubled, capped at max_backoff


def test_a_missing_key_variable_is_named(tmp_path, top_docs, stub):
    with pytest.raises(RelevanceError, match=f"environment variable {ENV} "):
        check_relevance(
            top_docs, tmp_path / "p", tmp_path / "s", tmp_path / "c", _settings(stub.url), environ={}
        )
    assert stub.requests == []


def test_the_key_is_never_written_to_a_file_or_a_log(tmp_path, top_docs, stub, monkeypatch, caplog, capfd):
    monkeypatch.setenv(ENV, KEY)
    stub.retry_after = "0"  # real sleeps here
    caplog.set_level(logging.DEBUG)
    flags = ["--top-docs", str(top_docs), "--cache", str(tmp_path / "cache.jsonl")]
    flags += ["--base-url", stub.url, "--api-key-env", ENV, "--backoff", "0", "--max-backoff", "0"]
    flags += ["--settings", json.dumps({"model": "stub-model", "enabled": True, "workers": 2})]
    out = ["--out", str(tmp_path / "pairs.jsonl"), "--summary", str(tmp_path / "summary.json")]
    assert main(["-v", "check-relevance", *flags, *out]) == 0
    assert {b["model"] for b in stub.requests} == {"stub-model"}
    assert set(stub.auth) == {f"Bearer {KEY}"}  # the key was used ...
    # ... and a server error that echoes the Authorization header comes back redacted
    stub.refuse_after = 0
    (tmp_path / "cache.jsonl").unlink()
    assert (
        main(["check-relevance", *flags, "--out", str(tmp_path / "p2"), "--summary", str(tmp_path / "s2")])
        == 1
    )
    assert any("HTTP 401" in r.getMessage() for r in caplog.records)
    captured = capfd.readouterr()
    texts = [captured.out, captured.err, caplog.text, *(r.getMessage() for r in caplog.records)]
    texts += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    assert "relevance estimate" in caplog.text
    assert not [t for t in texts if KEY in t]
