"""Does serving the answerability check's token vectors from the embedding backend (bf16 weights where the CPU has
native bf16) and from batches shared with other answers change its decisions? Read from recorded evidence only.

For every question of each dev set recorded by benchmarks/answerability_features.py, the shipped score (WEIGHTS,
the default threshold) is computed from the recorded evidence with the question's, quoted sentences' and top
source's token vectors made four ways, each as `Engine.evidence` reads them (token vectors, sentence similarities
from their pooling):

- (a) as fitted: the fp32 model, the question with its quoted sentences in one pass, the top source alone;
- (b) as served after the change: a bf16 copy of the model (`TorchBackend(bf16=True)`), the question in one batch
  with `--questions` other questions of the set (padded to the longest, like the query batcher's batch), and the
  quoted sentences and top sources of `--answers` concurrent answers in one shared call (length-sorted and padded
  by sentence-transformers, `embedding_batch_size` per batch: short sentences padded to a source's length);
- (c) fp32, batched as (b): the padding alone;  (d) bf16, texts as (a): the precision alone.

Prints per corpus the decisions that flip against (a) at the shipped threshold, the score differences, and
abstained on unanswerable / wrongly abstained / gold cited first of each way; (a) is also checked against the
score from the cached words (FEATURES.words.pkl, the fit's input). `--write DIR` writes (b)'s features as a
recorded set (DIR/NAME.jsonl, .words.pkl, .static.pkl) for benchmarks/answerability_loco.py; `--seed` draws
other batch groupings.

    PYTHONPATH=. python benchmarks/answerability_precision.py data/features/{handbook,18f,scifact}.jsonl \\
        [--questions=48] [--answers=8] [--seed=0] [--write=data/features/served]
"""

from __future__ import annotations

import copy
import json
import pickle
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.answerability_loco import Row, figures, fmt, load  # noqa: E402
from rag_core.answerability import Evidence, answerability, cosines  # noqa: E402
from rag_core.embedding import Embedder  # noqa: E402
from rag_core.embedding_backends import TorchBackend, has_native_bf16  # noqa: E402
from rag_core.query_batcher import QueryBatcher  # noqa: E402
from rag_core.settings import Settings, get_settings  # noqa: E402
from rag_core.soft_match import TokenVectors, Words, evidence_words  # noqa: E402
from rag_core.sparse import Bm25Encoder  # noqa: E402

Encode = Callable[[Sequence[str]], Sequence[TokenVectors]]


@dataclass(slots=True)
class Way:
    """One way of making the token vectors: a model (an Embedder sharing everything but it) and a batching."""

    name: str
    embedder: Embedder
    batched: bool


def with_model(embedder: Embedder, model: Any, batch_size: int) -> Embedder:
    """The embedder's `encode_tokens` on another model copy and batch size (no token cache: settings give 0)."""
    clone = copy.copy(embedder)
    clone._model = clone._token_model = (
        model  # token passes read `_token_model` (the backend's, when serving)
    )
    clone.batch_size = batch_size
    # its own batcher: the original's is bound to the original embedder, and so to its model
    clone.token_batches = QueryBatcher(clone._encode_token_batch, 0.0, 1 << 30, name="token-embed")
    return clone


def encoder(embedder: Embedder, batch_size: int) -> Encode:
    return with_model(embedder, embedder._model, batch_size).encode_tokens


def groups(items: Sequence[str], size: int, seed: int) -> list[list[str]]:
    """`items` shuffled and cut into groups of `size`; the last group is filled up from the first ones."""
    order = list(dict.fromkeys(items))
    random.Random(seed).shuffle(order)
    out = [order[i : i + size] for i in range(0, len(order), size)]
    if len(out) > 1 and len(out[-1]) < size:
        out[-1] += [t for t in order if t not in out[-1]][: size - len(out[-1])]
    return out


def top_of(ev: Evidence) -> list[str]:
    return ev.blocks[:1]  # the engine embeds the top source only


def token_tables(
    way: Way, evidences: Sequence[Evidence], questions: Sequence[str], args: dict[str, int], batch_size: int
) -> tuple[dict[str, TokenVectors], dict[tuple[str, str], TokenVectors]]:
    """Each question's token vectors, and each (question, text)'s for its quoted sentences and top source."""
    q_table: dict[str, TokenVectors] = {}
    t_table: dict[tuple[str, str], TokenVectors] = {}
    if (
        not way.batched
    ):  # as Engine.evidence today: the question with its quoted sentences, then the top source
        encode = encoder(way.embedder, batch_size)
        for ev in evidences:
            short = encode([ev.question, *ev.quoted])
            q_table[ev.question] = short[0]
            t_table |= {(ev.question, s): v for s, v in zip(ev.quoted, short[1:], strict=True)}
            t_table |= {(ev.question, b): v for b, v in zip(top_of(ev), encode(top_of(ev)), strict=True)}
        return q_table, t_table
    # the query batcher's batch: every question of the group in one forward pass (batch size = its length)
    size = args["questions"] + 1
    for group in groups(questions, size, seed=2 * args["seed"] + 1):
        q_table |= dict(zip(group, encoder(way.embedder, len(group))(group), strict=True))
    # concurrent answers' quoted sentences and top sources in one shared call
    by_question = {ev.question: ev for ev in evidences}
    for group in groups(list(by_question), args["answers"], seed=2 * args["seed"] + 2):
        texts = [t for q in group for t in [*by_question[q].quoted, *top_of(by_question[q])]]
        table = dict(zip(texts, encoder(way.embedder, batch_size)(texts), strict=True))
        for q in group:
            ev = by_question[q]
            t_table |= {(q, t): table[t] for t in [*ev.quoted, *top_of(ev)]}
    return q_table, t_table


def served_evidence(
    recorded: Evidence,
    embedder: Embedder,
    q_table: dict[str, TokenVectors],
    t_table: dict[tuple[str, str], TokenVectors],
    sparse: Bm25Encoder,
) -> Evidence:
    """The recorded evidence with its sentence similarities and words read from these token vectors, as
    `Engine.evidence` does."""
    ev = copy.copy(recorded)
    q = ev.question
    if not ev.quoted:
        ev.sentence_sims, ev.words = [], None
        return ev
    short = [q_table[q], *(t_table[(q, s)] for s in ev.quoted)]
    ev.sentence_sims = cosines(embedder.pooled(short[0]), [embedder.pooled(t) for t in short[1:]])
    ev.words = evidence_words(
        q,
        ev.quoted,
        top_of(ev),
        lambda texts: [t_table[(q, t)] for t in texts],
        sparse,
        short_tokens=short,
    )
    return ev


def scores(
    rows_json: Sequence[dict[str, Any]],
    way: Way,
    questions: Sequence[str],
    args: dict[str, int],
    settings: Settings,
    sparse: Bm25Encoder,
) -> tuple[np.ndarray, dict[str, Evidence], float]:
    """Each row's shipped score (-1 where the relevance threshold abstained before the check), the evidence read,
    and the seconds the forward passes took."""
    recorded = [Evidence.from_json(r["evidence"]) for r in rows_json if not r["threshold_abstained"]]
    started = time.perf_counter()
    q_table, t_table = token_tables(way, recorded, questions, args, settings.embedding_batch_size)
    seconds = time.perf_counter() - started
    served = {ev.question: served_evidence(ev, way.embedder, q_table, t_table, sparse) for ev in recorded}
    weights = settings.answerability_weights
    p = [
        -1.0
        if r["threshold_abstained"]
        else answerability(served[r["evidence"]["question"]], sparse, weights)
        for r in rows_json
    ]
    return np.asarray(p), served, seconds


def cached_scores(rows: Sequence[Row], settings: Settings) -> np.ndarray:
    """The shipped score from the fit's cached features (FEATURES.words.pkl and the recorded similarities)."""
    from rag_core.answerability import score

    weights = settings.answerability_weights
    return np.asarray([score(r.feats, weights) if r.reached else -1.0 for r in rows])


def flips(rows: Sequence[Row], ref: np.ndarray, other: np.ndarray, t: float) -> dict[str, int]:
    """Decisions that change at threshold `t`, by side and by label."""
    out = {"to_abstain_answerable": 0, "to_abstain_unanswerable": 0, "to_answer_answerable": 0}
    out["to_answer_unanswerable"] = 0
    for r, a, b in zip(rows, ref, other, strict=True):
        if not r.reached or (a < t) == (b < t):
            continue
        side = "to_abstain" if b < t else "to_answer"
        out[f"{side}_{'answerable' if r.answerable else 'unanswerable'}"] += 1
    return out


def write_set(
    directory: Path, source: Path, rows_json: Sequence[dict[str, Any]], served: dict[str, Evidence]
) -> None:
    """(b)'s evidence as a recorded set for benchmarks/answerability_loco.py: similarities in the JSON lines, the
    words beside them; the static words (no forward pass, unchanged) copied."""
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / source.name
    words: dict[str, dict[str, list[Words]]] = {}
    with out.open("w", encoding="utf-8") as sink:
        for r in rows_json:
            r = dict(r)
            if not r["threshold_abstained"]:
                ev = served[r["evidence"]["question"]]
                r["evidence"] = ev.to_json()
                if ev.words is not None:
                    words[ev.question] = ev.words
            sink.write(json.dumps(r) + "\n")
    out.with_suffix(".words.pkl").write_bytes(pickle.dumps(words))
    static = source.with_suffix(".static.pkl")
    if static.exists():
        shutil.copyfile(static, out.with_suffix(".static.pkl"))


def main() -> int:
    argv = sys.argv[1:]
    opts = dict(a[2:].split("=", 1) for a in argv if a.startswith("--"))
    args = {k: int(opts.get(k, v)) for k, v in {"questions": 48, "answers": 8, "seed": 0}.items()}
    write = Path(opts["write"]) if "write" in opts else None
    paths = [Path(a) for a in argv if not a.startswith("--")]
    # fp32 backend (no `auto` measuring); no token cache: every pass is made in the batch it is asked in
    settings = get_settings().model_copy(update={"embedding_backend": "fp32", "token_cache_mb": 0})
    embedder = Embedder(settings)
    sparse = Bm25Encoder(settings)
    t = settings.answerability_min
    ways = [Way("a fp32, as fitted", embedder, False), Way("c fp32, batched", embedder, True)]
    if has_native_bf16():
        bf16 = TorchBackend(copy.deepcopy(embedder._model), bf16=True).model  # as `auto` builds it
        bf16_embedder = with_model(embedder, bf16, embedder.batch_size)
        ways += [
            Way("b bf16, batched (served)", bf16_embedder, True),
            Way("d bf16, alone", bf16_embedder, False),
        ]
    else:
        print(
            "this CPU has no native bf16 (amx_bf16/avx512_bf16): (b) and (d) skipped, only the padding measured"
        )
    print(
        f"shipped threshold {t}; batches: the question with {args['questions']} other questions, quoted sentences "
        f"and top sources of {args['answers']} answers shared (batch size {settings.embedding_batch_size})"
    )
    summary = []
    for path in paths:
        rows_json = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        rows = load(path, sparse)
        questions = [r["question"] for r in rows_json]
        results = {}
        for way in ways:
            p, served, seconds = scores(rows_json, way, questions, args, settings, sparse)
            results[way.name] = (p, seconds)
            if write is not None and way.name.startswith("b"):
                write_set(write, path, rows_json, served)
        reached = np.asarray([r.reached for r in rows])
        ref = results[ways[0].name][0]
        cached = cached_scores(rows, settings)
        print(
            f"\n{path.stem}: {len(rows)} questions ({int(reached.sum())} reach the check); (a) against the fit's "
            f"cached score: max |diff| {np.abs(ref - cached)[reached].max():.2e}, "
            f"flips {sum(flips(rows, cached, ref, t).values())}"
        )
        print(f"  cached (fit input)        : {fmt(figures(rows, cached, t))}")
        nearest = np.abs(ref - t)[reached].min()
        for way in ways:
            p, seconds = results[way.name]
            diff = np.abs(p - ref)[reached]
            f = flips(rows, ref, p, t)
            print(
                f"  {way.name:26s}: {fmt(figures(rows, p, t))} | flips vs (a) {sum(f.values())} "
                f"(to abstain: {f['to_abstain_answerable']} answerable, {f['to_abstain_unanswerable']} unanswerable;"
                f" to answer: {f['to_answer_answerable']} answerable, {f['to_answer_unanswerable']} unanswerable)"
                f" | |score diff| max {diff.max():.2e} median {statistics.median(diff):.2e} | passes {seconds:.1f} s"
            )
            for r, q, a, b in zip(rows, questions, ref, p, strict=True):
                if r.reached and (a < t) != (b < t):
                    print(
                        f"    flip: {a:.4f} -> {b:.4f} ({'answerable' if r.answerable else 'unanswerable'}) {q}"
                    )
        print(f"  (a)'s score nearest the threshold: {nearest:.5f} away")
        if len(ways) > 2:
            b, d = results[ways[2].name][0], results[ways[3].name][0]
            widest = float(np.abs(b - ref)[reached].max())
            close = int((np.abs(ref - t)[reached] <= widest).sum())
            print(
                f"  padding within bf16 (b vs d): max |diff| {np.abs(b - d)[reached].max():.2e}, "
                f"flips {sum(flips(rows, d, b, t).values())}; questions whose (a) score is within (b)'s max "
                f"|diff| of the threshold: {close}"
            )
            for r, q, a, bb, dd in zip(rows, questions, ref, b, d, strict=True):
                if r.reached and abs(a - t) <= widest:
                    label = "answerable" if r.answerable else "unanswerable"
                    print(f"    near: (a) {a:.5f} (b) {bb:.5f} (d) {dd:.5f} ({label}) {q}")
            summary.append(
                f"{path.stem} {sum(flips(rows, ref, b, t).values())}/{int(reached.sum())} flips, "
                f"max |diff| {np.abs(b - ref)[reached].max():.4f}"
            )
        else:
            c = results[ways[1].name][0]
            summary.append(f"{path.stem} padding only: {sum(flips(rows, ref, c, t).values())} flips")
    print("\nsummary (b served vs a fitted, at the shipped threshold): " + "; ".join(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
