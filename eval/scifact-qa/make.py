"""Builds the SciFact QA dev set (`dev.jsonl`) and the list of abstracts its index holds (`index.txt`).

SciFact claims (train split, only claims whose gold abstract holds evidence for or against them) become yes/no
questions. Answerable: the gold abstract is indexed. Unanswerable: the gold abstracts are left out of the index but
the abstracts nearest the claim (BM25 over the whole corpus) are in it, so the topic is indexed and the answer is
not. Deterministic: `python eval/scifact-qa/make.py [SCIFACT_DIR]` rewrites both files (see README.md).
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SCIFACT = HERE.parents[2] / "shared" / "eval" / "scifact"
PER_KIND = 40
NEIGHBOURS = 6
_WORD = re.compile(r"[a-z0-9]+")
_STOP = set(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "and",
        "or",
        "to",
        "for",
        "with",
        "by",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "that",
        "this",
        "as",
        "at",
        "from",
        "it",
        "its",
    ]
)


def tokens(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def question_of(claim: str) -> str:
    """'X causes Y.' -> 'Is it true that X causes Y?' (a capitalised first word is lowered unless an acronym)."""
    claim = claim.strip().rstrip(".")
    first = claim.split(" ", 1)[0]
    if first[:1].isupper() and not first[1:2].isupper() and not any(ch.isdigit() for ch in first):
        claim = claim[0].lower() + claim[1:]
    return f"Is it true that {claim}?"


def bm25_top(query: str, docs: dict[str, list[str]], df: Counter[str], avg: float, k: int) -> list[str]:
    n = len(docs)
    q = set(tokens(query))
    scores = []
    for doc_id, words in docs.items():
        tf = Counter(w for w in words if w in q)
        if not tf:
            continue
        s = 0.0
        for w, f in tf.items():
            idf = math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5))
            s += idf * f * 2.2 / (f + 1.2 * (0.25 + 0.75 * len(words) / avg))
        scores.append((s, doc_id))
    return [d for _, d in sorted(scores, reverse=True)[:k]]


def main() -> int:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SCIFACT
    corpus = {
        d["_id"]: f"{d.get('title', '')} {d.get('text', '')}"
        for d in map(json.loads, (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines())
    }
    queries = {
        q["_id"]: q
        for q in map(json.loads, (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines())
    }
    gold: dict[str, list[str]] = {}
    for line in (folder / "qrels" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, doc, _ = line.split("\t")
        gold.setdefault(qid, []).append(doc)
    # Only claims with evidence in (every one of) their gold abstracts: the abstract answers yes or no.
    usable = sorted(
        (qid for qid in gold if qid in queries and set(queries[qid]["metadata"]) == set(gold[qid])),
        key=int,
    )
    rng = random.Random(20)
    shuffled = rng.sample(usable, len(usable))
    answerable = shuffled[:PER_KIND]
    shown = {d for qid in answerable for d in gold[qid]}
    # An unanswerable claim's abstracts must not be an answerable claim's (they are left out of the index).
    unanswerable = [q for q in shuffled[PER_KIND:] if not set(gold[q]) & shown][:PER_KIND]
    chosen = answerable + unanswerable
    hidden = {d for qid in unanswerable for d in gold[qid]}
    docs = {i: tokens(t) for i, t in corpus.items() if i not in hidden}
    df: Counter[str] = Counter(w for words in docs.values() for w in set(words))
    avg = sum(len(w) for w in docs.values()) / len(docs)
    index: set[str] = {d for qid in answerable for d in gold[qid]}
    for qid in chosen:
        index.update(bm25_top(queries[qid]["text"], docs, df, avg, NEIGHBOURS))
    assert not index & hidden
    lines = []
    for i, (a, u) in enumerate(zip(answerable, unanswerable, strict=True)):
        split = "tune" if i % 2 == 0 else "report"
        labels = sorted({e["label"] for ev in queries[a]["metadata"].values() for e in ev})
        lines.append(
            {
                "question": question_of(queries[a]["text"]),
                "answerable": True,
                "gold": gold[a],
                "claim_id": a,
                "label": "/".join(labels),
                "split": split,
            }
        )
        lines.append(
            {
                "question": question_of(queries[u]["text"]),
                "answerable": False,
                "gold": [],
                "claim_id": u,
                "hidden": gold[u],
                "split": split,
            }
        )
    (HERE / "dev.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    (HERE / "index.txt").write_text("".join(f"{d}\n" for d in sorted(index, key=int)), encoding="utf-8")
    print(f"{len(lines)} questions, {len(index)} abstracts to index")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
