"""Is a document relevant to an instance? Each (instance, document) pair of a ``top-docs`` export
asked of a chat model, as the paper's scripts/check_doc_relevance_openai.py did, here through any
OpenAI-compatible ``{base_url}/chat/completions`` endpoint (OpenAI, vLLM, llama.cpp, a proxy).

- The API key is read from the environment variable whose *name* is a setting, at request time;
  it goes into the ``Authorization`` header and nowhere else: no output, cache, log line or error
  message holds it (server messages quoted in errors are redacted).
- Transient failures (HTTP 429 and 5xx, refused or dropped connections, timeouts, a garbled body)
  are retried with exponential backoff (``backoff * 2**attempt`` seconds, capped at
  ``max_backoff``), or after the server's ``Retry-After`` when it sends one. Other HTTP errors (401,
  404, 400) stop the run at once: retrying cannot fix them.
- Every answer is appended to a JSON-lines cache (flushed and fsynced per answer) keyed by a hash
  of (model, prompt): a re-run sends only the pairs not yet answered, and a crash or Ctrl-C loses
  none that were. A line cut short by a crash is dropped when the cache is opened.
- Before the first request the cost is estimated (prompt tokens ~ characters / 4, OpenAI's rule of
  thumb for English text, plus ``answer_tokens`` per answer, at the configured prices per 1,000
  tokens) and logged; ``max_cost`` refuses to start above it; ``dry_run`` stops after it.

The paper's script kept the raw responses and published no parser; its prompts ask for only "yes"
or "no". :func:`parse_answer` takes the answer's first word (case and punctuation ignored): yes or
no, anything else is ``null`` (unparsed), counted apart and never as either.

Hand-written over ``urllib`` rather than the ``openai`` SDK: one JSON POST per pair, no new
dependency, and no SDK response objects to serialise (the paper's script dumped them whole).
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import logging
import math
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

from intervene.atomic import atomic_path, write_text
from intervene.inspect_docs import read_top_docs

log = logging.getLogger("intervene.relevance")

#: The paper's three prompts (check_doc_relevance_openai.py, ``prompt_templates``), word for word:
#: enough information to answer (its default), to make an educated guess, or topically related.
_INSTRUCTIONS = {
    "correct_answer": (
        'Output "yes" if the document contains enough information to correctly answer the question,'
        ' and "no" otherwise.'
    ),
    "educated_guess": (
        'Output "yes" if the document contains enough information to make an educated guess about the'
        ' answer, and "no" otherwise. The document does not have to have enough information to be able'
        " to correctly answer the question."
    ),
    "related_topic": (
        'Output "yes" if the document is topically related to the question and answer, and "no"'
        " otherwise. The document does not have to have enough information to to be able to correctly"
        " answer the question."
    ),
}
PROMPTS = {
    name: "You will be given a question or question stem and its correct answer, along with a document. "
    + text
    + ' Only output "yes" or "no".\n\nQuestion: {question}\nAnswer: {answer}\n\nDocument: {document}'
    for name, text in _INSTRUCTIONS.items()
}
#: Statuses worth retrying: throttling and server-side failures.
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524})
#: Characters per token of the estimate (OpenAI's rule of thumb for English text).
CHARS_PER_TOKEN = 4


class RelevanceError(RuntimeError):
    """The relevance check cannot go on (a refused request, a bad answer body, over budget)."""


class _Stopped(RelevanceError):
    """A request given up because another one failed (that one's error is the run's)."""


def parse_answer(text: str | None) -> bool | None:
    """True for "yes", False for "no" (the answer's first word, any case or punctuation), else None."""
    m = re.match(r"\W*(yes|no)\b", (text or "").lower())
    return None if m is None else m.group(1) == "yes"


def cache_key(model: str, prompt: str) -> str:
    return hashlib.sha256(json.dumps([model, prompt]).encode()).hexdigest()


def estimate_tokens(text: str) -> int:
    """Prompt tokens of ``text``, estimated as characters / 4 rounded up (no tokenizer: the
    endpoint's model may be any)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


# --- the endpoint --------------------------------------------------------------------------------


class ChatClient:
    """One OpenAI-compatible chat endpoint; :meth:`ask` returns the answer text and its usage."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str,
        *,
        reasoning_effort: str | None = None,
        max_completion_tokens: int | None = None,
        timeout: float = 60.0,
        max_retries: int = 6,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._key = api_key
        self.reasoning_effort, self.max_completion_tokens = reasoning_effort, max_completion_tokens
        self.timeout, self.max_retries = timeout, max_retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self.sleep = sleep
        self.stopped = threading.Event()  # set: requests give up instead of retrying (another failed)

    def __repr__(self) -> str:  # never the key
        return f"ChatClient({self.url!r}, {self.model!r})"

    def _redact(self, s: str) -> str:
        return s.replace(self._key, "[key]") if self._key else s

    def body(self, prompt: str) -> bytes:
        req: dict = {"model": self.model, "messages": [{"role": "user", "content": prompt}]}
        if self.reasoning_effort:
            req["reasoning_effort"] = self.reasoning_effort
        if self.max_completion_tokens:
            req["max_completion_tokens"] = self.max_completion_tokens
        return json.dumps(req).encode()

    def _wait(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            s = retry_after.strip()
            if re.fullmatch(r"\d+(\.\d+)?", s):
                return float(s)
            try:  # an HTTP date
                return max(0.0, email.utils.parsedate_to_datetime(s).timestamp() - time.time())
            except (TypeError, ValueError, IndexError):
                pass
        return min(self.backoff * 2**attempt, self.max_backoff)

    def ask(self, prompt: str) -> dict:
        """``{"text": ..., "usage": {...}}`` of one prompt, retrying transient failures."""
        data = self.body(prompt)
        for attempt in range(self.max_retries + 1):
            retry_after, why = None, ""
            req = urllib.request.Request(
                self.url,
                data=data,
                method="POST",
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._key}"},
            )
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    raw = r.read()
                try:
                    return self._answer(json.loads(raw))
                except json.JSONDecodeError:
                    why = "a body that is not JSON"
            except urllib.error.HTTPError as e:
                detail = self._redact(e.read(300).decode("utf-8", "replace")).strip()
                if e.code not in RETRY_STATUS:
                    raise RelevanceError(f"{self.url}: HTTP {e.code} {e.reason}: {detail}") from None
                why, retry_after = f"HTTP {e.code}", e.headers.get("Retry-After")
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as e:
                why = self._redact(f"{type(e).__name__}: {getattr(e, 'reason', e)}")
            if attempt == self.max_retries:
                raise RelevanceError(f"{self.url}: {why}, still after {self.max_retries} retries")
            if self.stopped.is_set():
                raise _Stopped(f"{self.url}: {why}; not retried, the run is stopping")
            w = self._wait(attempt, retry_after)
            log.warning("%s: %s; retry %d/%d in %.1f s", self.url, why, attempt + 1, self.max_retries, w)
            self.sleep(w)
        raise AssertionError("unreachable")

    def _answer(self, body: dict) -> dict:
        try:
            text = body["choices"][0]["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise RelevanceError(f"{self.url}: an answer without choices[0].message") from None
        usage = body.get("usage") or {}
        return {
            "text": text if isinstance(text, str) else "",
            "usage": {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens")},
        }


# --- the cache ------------------------------------------------------------------------------------


class AnswerCache:
    """Answers by :func:`cache_key`, one JSON line each, appended and synced as they come."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        self._lock = threading.Lock()
        if self.path.exists():
            raw = self.path.read_bytes()
            if raw and not raw.endswith(b"\n"):  # a line cut short by a crash: its pair is asked again
                cut = raw.rfind(b"\n") + 1
                log.warning("%s: dropping an unfinished last line (an interrupted run)", self.path)
                with open(self.path, "r+b") as f:
                    f.truncate(cut)
                raw = raw[:cut]
            for ln, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
                try:
                    rec = json.loads(line)
                    self.entries[rec["key"]] = rec
                except (ValueError, KeyError, TypeError) as e:
                    raise ValueError(f"{self.path}:{ln}: not an answer-cache line ({e!r})") from None
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def add(self, rec: dict) -> None:
        line = json.dumps(rec, ensure_ascii=False) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
            self.entries[rec["key"]] = rec


# --- the check -------------------------------------------------------------------------------------


def pairs_of(records: list[dict], model: str, prompt: str) -> list[dict]:
    """Every (instance, document) pair of a top-docs export, in its order, with prompt and key."""
    template = PROMPTS[prompt]
    out = []
    for rec in records:
        for d in rec["docs"]:
            text = template.format(question=rec["question"], answer=rec["answer"], document=d["text"])
            out.append(
                {
                    "instance": rec["instance"],
                    "dataset": rec.get("dataset"),
                    "rank": d["rank"],
                    "row": d["row"],
                    "score": d.get("score"),
                    "prompt": text,
                    "key": cache_key(model, text),
                }
            )
    return out


def estimate(pairs: list[dict], settings) -> dict:
    """Requests, estimated tokens and cost (USD) of sending ``pairs`` (each distinct prompt once)."""
    prompts = {p["key"]: p["prompt"] for p in pairs}
    tokens = sum(estimate_tokens(t) for t in prompts.values())
    answers = len(prompts) * settings.answer_tokens
    cost = tokens / 1000 * settings.price_prompt_per_1k + answers / 1000 * settings.price_completion_per_1k
    return {
        "requests": len(prompts),
        "prompt_tokens": tokens,
        "answer_tokens": answers,
        "cost": round(cost, 6),
    }


def check_relevance(
    top_docs,
    out,
    summary,
    cache,
    settings,
    *,
    limit: int | None = None,
    dry_run: bool = False,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Ask the model about every pair of the ``top_docs`` export (the first ``limit``) not yet in
    ``cache``; write per pair its parsed answer (``out``, JSONL) and per instance the counts
    (``summary``, JSON). ``settings``: a :class:`intervene.settings.RelevanceConfig`."""
    s = settings
    records = read_top_docs(top_docs)
    pairs = pairs_of(records, s.model, s.prompt)[:limit]
    answers = AnswerCache(cache)
    todo = [p for p in pairs if p["key"] not in answers]
    est = {"pairs": len(pairs), "cached": len(pairs) - len(todo), **estimate(todo, s)}
    log.info(
        "relevance estimate: %d pairs, %d answered before; %d requests to %s (%s), ~%d prompt tokens "
        "+ %d answer tokens: ~$%.4f",
        est["pairs"],
        est["cached"],
        est["requests"],
        s.base_url,
        s.model,
        est["prompt_tokens"],
        est["answer_tokens"],
        est["cost"],
    )
    if est["requests"] and not (s.price_prompt_per_1k or s.price_completion_per_1k):
        log.warning(
            "relevance: no prices set (price_prompt_per_1k, price_completion_per_1k): the cost is not estimated"
        )
    if s.max_cost is not None and est["cost"] > s.max_cost:
        raise RelevanceError(
            f"estimated cost ${est['cost']:.4f} exceeds max_cost ${s.max_cost:.4f}; nothing was sent"
        )
    if dry_run:
        return {"dry_run": True, **est}
    if todo:
        env = os.environ if environ is None else environ
        key = env.get(s.api_key_env, "")
        if not key:
            raise RelevanceError(f"environment variable {s.api_key_env} (the API key) is not set or empty")
        client = ChatClient(
            s.base_url,
            s.model,
            key,
            reasoning_effort=s.reasoning_effort,
            max_completion_tokens=s.max_completion_tokens,
            timeout=s.timeout,
            max_retries=s.max_retries,
            backoff=s.backoff,
            max_backoff=s.max_backoff,
            sleep=sleep,
        )
        _ask_all(client, todo, answers, s.workers)
    return _write_outputs(records, pairs, answers, out, summary, s)


def _ask_all(client: ChatClient, todo: list[dict], answers: AnswerCache, workers: int) -> None:
    """Each distinct prompt once, ``workers`` at a time; the first failure stops the rest (answers
    already in flight are still cached) and is raised."""
    unique = list({p["key"]: p for p in todo}.values())

    def one(p: dict) -> None:
        if client.stopped.is_set():
            raise _Stopped("not asked: the run is stopping")
        try:
            a = client.ask(p["prompt"])
        except BaseException:
            client.stopped.set()  # the other workers give up at their next retry
            raise
        answers.add({"key": p["key"], "model": client.model, "answer": a["text"], "usage": a["usage"]})

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(one, p) for p in unique]
        try:
            _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:  # Ctrl-C, SIGTERM: drop what has not started
            pending = futures
            raise
        finally:
            if pending:
                client.stopped.set()
                for f in pending:
                    f.cancel()
        errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception()]
        if errors:  # the failure that stopped the run, not a request given up because of it
            raise next((e for e in errors if not isinstance(e, _Stopped)), errors[0])
    log.info("relevance: %d answers received", len(unique))


def _write_outputs(records, pairs, answers: AnswerCache, out, summary, s) -> dict:
    """Per pair its verdict (JSONL) and per instance the counts (JSON), from the cache alone, so
    a resumed run writes what an uninterrupted one would."""
    rows, per_inst = [], {}
    used = {"prompt_tokens": 0, "completion_tokens": 0}
    for p in pairs:
        a = answers.entries[p["key"]]
        verdict = parse_answer(a["answer"])
        rows.append(
            {k: p[k] for k in ("instance", "dataset", "rank", "row", "score")}
            | {"relevant": verdict, "answer": a["answer"]}
        )
        c = per_inst.setdefault(p["instance"], {"relevant": 0, "not_relevant": 0, "unparsed": 0})
        c["relevant" if verdict else "not_relevant" if verdict is False else "unparsed"] += 1
    for a in {p["key"]: answers.entries[p["key"]] for p in pairs}.values():
        for k in used:
            used[k] += int((a.get("usage") or {}).get(k) or 0)
    instances = []
    for rec in records:
        c = per_inst.get(rec["instance"])
        if c is None:  # past the limit
            continue
        n = sum(c.values())
        parsed = c["relevant"] + c["not_relevant"]
        instances.append(
            {k: rec.get(k) for k in ("instance", "dataset", "question", "answer")}
            | {"documents": n, **c, "relevant_fraction": c["relevant"] / parsed if parsed else None}
        )
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    totals = {k: sum(i[k] for i in instances) for k in ("relevant", "not_relevant", "unparsed")}
    cost = (
        used["prompt_tokens"] / 1000 * s.price_prompt_per_1k
        + used["completion_tokens"] / 1000 * s.price_completion_per_1k
    )
    result = {
        "model": s.model,
        "base_url": s.base_url,
        "prompt": s.prompt,
        "pairs": len(pairs),
        **totals,
        "usage": used,
        "cost": round(cost, 6),
        "instances": instances,
    }
    write_text(summary, json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    return {k: result[k] for k in ("pairs", "relevant", "not_relevant", "unparsed", "usage", "cost")}
