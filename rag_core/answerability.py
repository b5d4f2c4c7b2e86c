"""Answerability of a quoted-passage answer: does the best text found actually hold what the question asks?

The relevance threshold only sees topical similarity, so in a team wiki a question whose answer is absent but whose
topic is indexed ("What is the per-diem for Japan?" next to the travel policy) is answered with another page's
passage. This score looks at what the question asks for and whether the quoted sentences hold it: its content
words, weighted by how rare they are among the sources found, matched softly in the quoted sentences and the top
source with the embedding model's token vectors (soft_match.py), the embedding similarity of the best quoted
sentence, the kind of answer the question expects (a number, a date, a name), its names, the relevance of
the first source and how far it stands above the other kept sources. Nothing here knows any corpus: the weights were
chosen by leave-one-corpus-out evaluation over three dev sets (benchmarks/answerability_loco.py) and a team can
fit the threshold on its own questions (`ragbot calibrate --qa FILE`, docs/answers.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from rag_core.grounding import content_terms
from rag_core.soft_match import Words, best_sentence, bigram_coverage, merge, soft_features
from rag_core.sparse import Bm25Encoder

# Chosen leave-one-corpus-out over three dev sets (eval/handbook-qa, eval/18f-qa, eval/scifact-qa) and then fitted on
# all their questions by benchmarks/answerability_loco.py; features not listed weigh 0 (docs/answers.md).
WEIGHTS: dict[str, float] = {
    "bias": -4.712,
    "soft_sent": 1.282,
    "soft_min_sent": 0.751,
    "soft_quoted": 0.833,
    "soft_min_quoted": 0.379,
    "soft_top": 1.071,
    "soft_min_top": 0.461,
    "top_over_pool": 0.65,
    "sentence_sim": 1.26,
    "type_missing": -0.313,
    "missing_names": -0.818,
    "relevance": 0.585,
    "top_over_rest": 0.636,
    "relevance_spread": 0.741,
}

# Every name a weight may have: `features` gives all but "bias" (test: tests/rag_core/test_answerability.py).
FEATURE_NAMES = frozenset(
    {
        "bias",
        *("soft_sent", "soft_min_sent", "soft_quoted", "soft_min_quoted", "soft_top", "soft_min_top"),
        *("sw_sent", "sw_min_sent", "sw_quoted", "sw_min_quoted", "sw_top", "sw_min_top"),
        *("sw_window", "sw_min_window", "sw_window_top", "sw_min_window_top", "bigram_quoted", "bigram_top"),
        *("raw_quoted", "raw_blocks", "cov_quoted", "cov_top", "cov_blocks", "unseen", "top_over_pool"),
        *("rare_missing_quoted", "rare_missing_blocks", "rel_z", "sentence_sim", "type_missing"),
        *("missing_numbers", "missing_names", "relevance", "margin", "top_over_rest", "relevance_spread"),
    }
)


def unknown_weights(weights: Mapping[str, float] | None) -> list[str]:
    """Names in `weights` that no feature has (a typo would silently weigh nothing)."""
    return sorted(set(weights or {}) - FEATURE_NAMES)


SOFT_FEATURES = ("soft_sent", "soft_min_sent", "soft_quoted", "soft_min_quoted", "soft_top", "soft_min_top")


# The cheap check, for a bot that needs throughput more than abstentions (docs/answers.md): soft matching with each
# word's own vector (the model's input embeddings: no forward pass, no sentence embedding per answer) and word
# pairs. Chosen and fitted like WEIGHTS (the best left-out set among those that need no forward pass per
# answer); use it with RAG_ANSWERABILITY_WEIGHTS and RAG_ANSWERABILITY_MIN=CHEAP_MIN. Left out it abstains on
# about as many unanswerable questions as the check before soft matching did.
CHEAP_WEIGHTS: dict[str, float] = {
    "bias": -2.707,
    "sw_sent": 1.001,
    "sw_min_sent": 0.103,
    "sw_quoted": 0.642,
    "sw_min_quoted": 0.04,
    "sw_top": 0.871,
    "sw_min_top": -0.116,
    "bigram_quoted": 0.841,
    "bigram_top": 1.233,
    "top_over_pool": 0.853,
    "type_missing": -0.459,
    "missing_names": -1.038,
    "relevance": 1.014,
}
CHEAP_MIN = 0.145

STATIC_FEATURES = (
    "sw_sent",
    "sw_min_sent",
    "sw_quoted",
    "sw_min_quoted",
    "sw_top",
    "sw_min_top",
    "sw_window",
    "sw_min_window",
    "sw_window_top",
    "sw_min_window_top",
    "bigram_quoted",
    "bigram_top",
)
_WINDOW_FEATURES = ("sw_window", "sw_min_window")  # read every top source, not only the first


def needs_token_vectors(weights: Mapping[str, float] | None) -> bool:
    """Whether the score weighs a soft-match feature (they cost a forward pass over the top source)."""
    return any((weights if weights is not None else WEIGHTS).get(name) for name in SOFT_FEATURES)


def needs_sentence_sims(weights: Mapping[str, float] | None) -> bool:
    """Whether the score weighs the sentence similarity (a forward pass over the quoted sentences)."""
    return bool((weights if weights is not None else WEIGHTS).get("sentence_sim"))


def static_sources(weights: Mapping[str, float] | None) -> int:
    """How many top sources the words'-own-vector features read: 0 when none weighs (no word is embedded)."""
    w = weights if weights is not None else WEIGHTS
    if not any(w.get(name) for name in STATIC_FEATURES):
        return 0
    return 3 if any(w.get(name) for name in _WINDOW_FEATURES) else 1


_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)*\b")
# A capitalised word that does not start the question or a sentence in it: a name, a product, a place.
_NAME = re.compile(r"(?<![.?!]\s)(?<!^)\b[A-Z][A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*\b")
_CITATION = re.compile(r"\s*\[\d+\]\s*$")

# What kind of answer a question expects, from its wording (English question forms, not any corpus's words).
_EXPECTS_AMOUNT = re.compile(
    r"\b(how (many|much|long|often|far|old|big|large|early|late|soon|fast|frequently)|what (percentage|share|"
    r"portion|fraction|proportion|number|amount)|(cost|price)s? of)\b",
    re.I,
)
_EXPECTS_DATE = re.compile(r"^\s*when\b|\b(what|which) (year|date|day|month|time)\b|\bsince when\b", re.I)
_EXPECTS_PERSON = re.compile(r"^\s*(who|whom|whose)\b|\bwho (is|are|was|were|do|does|should|can|to)\b", re.I)
_AMOUNT = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|"
    r"thousand|million|billion|dozen|half|quarter|once|twice|daily|weekly|monthly|yearly|annually|"
    r"every|each|per)\b",
    re.I,
)
_DATE = re.compile(
    r"\d|\b(january|february|march|april|may|june|july|august|september|october|november|december|monday|"
    r"tuesday|wednesday|thursday|friday|saturday|sunday|today|tomorrow|yesterday|week|month|year|quarter|"
    r"before|after|during|until|by)\b",
    re.I,
)
_PERSON = re.compile(r"(?<![.?!]\s)(?<!^)\b[A-Z][a-z]+|@\w+|\b[A-Z]{2,}\b")


@dataclass(slots=True)
class Evidence:
    """What the score reads: the question, the quoted sentences and the sources they were taken from."""

    question: str
    quoted: list[str]  # the quoted sentences, without their [n] markers
    blocks: list[str]  # the top sources' texts, best first
    pool: list[str] = field(
        default_factory=list
    )  # every candidate found: the background words are weighed on
    relevances: list[float] = field(default_factory=list)  # the kept sources' relevance, best first
    sentence_sims: list[float] = field(
        default_factory=list
    )  # cosine of the question and each quoted sentence

    # the content words and token vectors of the question, the quoted sentences and the top sources
    # (soft_match.content_words), when the embedder gave them; not recorded in JSON
    words: dict[str, list[Words]] | None = None
    # the same with each word's own vector (soft_match.evidence_static_words): the cheap soft match
    static: dict[str, list[Words]] | None = None

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("words", "static")}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evidence:
        return cls(
            question=str(data["question"]),
            quoted=[str(x) for x in data.get("quoted", [])],
            blocks=[str(x) for x in data.get("blocks", [])],
            pool=[str(x) for x in data.get("pool", [])],
            relevances=[float(x) for x in data.get("relevances", [])],
            sentence_sims=[float(x) for x in data.get("sentence_sims", [])],
        )


def quoted_sentences(extractive_text: str) -> list[str]:
    """The `> sentence [n]` lines of a quoted-passage answer, without their citation markers."""
    return [_CITATION.sub("", line[2:]) for line in extractive_text.splitlines() if line.startswith("> ")]


def sentence_similarities(
    question: str,
    sentences: Sequence[str],
    encode_query: Callable[[str], Any],
    encode_passages: Callable[..., Any],
) -> list[float]:
    """Cosine similarity of the question and each sentence, with the embedding model the index uses."""
    if not sentences:
        return []
    return cosines(encode_query(question), encode_passages(list(sentences)))


def cosines(query: Any, vectors: Any) -> list[float]:
    """Cosine similarity of `query` and each row of `vectors`."""
    q = np.asarray(query, dtype=np.float32)
    s = np.asarray(vectors, dtype=np.float32).reshape(-1, q.shape[-1])
    norms = np.linalg.norm(s, axis=1) * (np.linalg.norm(q) or 1.0)
    return [float(x) for x in (s @ q) / np.where(norms == 0, 1.0, norms)]


def expected_type(question: str) -> str | None:
    """ "amount", "date" or "person" when the question's wording asks for one, else None."""
    if _EXPECTS_PERSON.search(question):
        return "person"
    if _EXPECTS_DATE.search(question):
        return "date"
    if _EXPECTS_AMOUNT.search(question):
        return "amount"
    return None


def type_missing(question: str, quoted: Sequence[str]) -> float:
    """1 when the question expects an amount, a date or a person and no quoted sentence holds one."""
    kind = expected_type(question)
    if kind is None:
        return 0.0
    pattern = {"amount": _AMOUNT, "date": _DATE, "person": _PERSON}[kind]
    return 0.0 if any(pattern.search(s) for s in quoted) else 1.0


def term_weights(wanted: set[int], pool: Sequence[set[int]]) -> dict[int, float]:
    """Inverse document frequency of each wanted term among the candidates found for the question.

    Words every candidate shares are the topic ("leave" in a leave question); the rare ones are what the question
    asks about, so they weigh more. No global statistics are needed, so this holds on any corpus."""
    n = len(pool)
    return {t: math.log((n + 1) / (sum(1 for terms in pool if t in terms) + 0.5)) for t in wanted}


def _coverage(weights: Mapping[int, float], have: set[int]) -> float:
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in have) / total if total else 1.0


def _rare(weights: Mapping[int, float]) -> set[int]:
    """The question's terms at least as rare among the candidates as its median term: what is asked."""
    if not weights:
        return set()
    median = float(np.median(list(weights.values())))
    return {t for t, w in weights.items() if w >= median}


def _missing(items: set[str], text: str) -> float:
    lowered = text.lower()
    return sum(1 for item in items if item.lower() not in lowered) / len(items) if items else 0.0


# Relevance gaps are cosine differences of a few tenths: scaled so their weights, like the other features' over
# about [0, 1], are not held near 0 by the fit's L2 penalty (benchmarks/answerability_loco.py).
_GAP_SCALE = 5.0


def features(evidence: Evidence, sparse: Bm25Encoder) -> dict[str, float]:
    """Every feature the score may weigh; the soft-match ones only when the evidence carries token vectors."""
    question = evidence.question
    wanted = content_terms(question, sparse)
    pool = [content_terms(text, sparse) for text in (evidence.pool or evidence.blocks)]
    weights = term_weights(wanted, pool)
    everything = "\n".join(evidence.blocks)
    names = {m.group(0) for m in _NAME.finditer(question)}
    rel = sorted(evidence.relevances, reverse=True)
    even = dict.fromkeys(wanted, 1.0)
    quoted_terms = content_terms(" ".join(evidence.quoted), sparse)
    pool_cov = sorted(_coverage(weights, terms) for terms in pool)
    top_cov = _coverage(weights, content_terms(evidence.blocks[0], sparse)) if evidence.blocks else 0.0
    unseen = {t: w for t, w in weights.items() if not any(t in terms for terms in pool)}
    rare = _rare(weights)
    soft = {}
    if evidence.words and evidence.words.get("question"):
        targets = {"quoted": merge(evidence.words.get("quoted", []))}
        if evidence.words.get("blocks"):  # the engine embeds the top source only (cost)
            targets["top"] = evidence.words["blocks"][0]
        soft = soft_features(evidence.words["question"][0], targets, weights)
        sentences = [
            soft_features(evidence.words["question"][0], {"s": w}, weights)
            for w in evidence.words.get("quoted", [])
        ]
        soft["soft_sent"] = max((x["soft_s"] for x in sentences), default=0.0)
        soft["soft_min_sent"] = max((x["soft_min_s"] for x in sentences), default=0.0)
    return (
        soft
        | static_features(evidence, weights)
        | {
            "raw_quoted": _coverage(even, quoted_terms),
            # scale-free: relative to the other candidates of the same question
            "unseen": sum(unseen.values()) / sum(weights.values()) if weights else 0.0,
            "top_over_pool": top_cov - (pool_cov[len(pool_cov) // 2] if pool_cov else 0.0),
            "rare_missing_quoted": 1.0 - _coverage(dict.fromkeys(rare, 1.0), quoted_terms) if rare else 0.0,
            "rare_missing_blocks": (
                1.0 - _coverage(dict.fromkeys(rare, 1.0), content_terms(everything, sparse)) if rare else 0.0
            ),
            "rel_z": (rel[0] - float(np.mean(rel))) / (float(np.std(rel)) or 1.0) if len(rel) > 1 else 0.0,
            "raw_blocks": _coverage(even, content_terms(everything, sparse)),
            "cov_quoted": _coverage(weights, quoted_terms),
            "cov_top": _coverage(
                weights, content_terms(evidence.blocks[0], sparse) if evidence.blocks else set()
            ),
            "cov_blocks": _coverage(weights, content_terms(everything, sparse)),
            "sentence_sim": max(evidence.sentence_sims, default=0.0),
            "type_missing": type_missing(question, evidence.quoted),
            "missing_numbers": _missing(set(_NUMBER.findall(question)), everything),
            "missing_names": _missing(names, everything),
            "relevance": rel[0] if rel else 0.0,
            "margin": rel[0] - rel[1] if len(rel) > 1 else (rel[0] if rel else 0.0),
            # how far the top source stands above the other kept ones: an answerable question's best source
            # stands out, an unanswerable one's sources are alike in being merely on topic
            "top_over_rest": _GAP_SCALE * (rel[0] - float(np.mean(rel[1:]))) if len(rel) > 1 else 0.0,
            "relevance_spread": _GAP_SCALE * (rel[0] - rel[-1]) if len(rel) > 1 else 0.0,
        }
    )


def static_features(evidence: Evidence, weights: Mapping[int, float]) -> dict[str, float]:
    """Soft-match features from each word's own vector (`Evidence.static`), prefixed `sw_`, and the question's
    word pairs found together: in the quoted sentences, the top source, and the best sentence (or two) of the
    top sources."""
    static = evidence.static
    if not static or not static.get("question"):
        return {}
    q = static["question"][0]
    quoted = merge(static.get("quoted", []))
    blocks = static.get("blocks", [])
    targets = {"quoted": quoted}
    if blocks:
        targets["top"] = blocks[0]
    out: dict[str, float] = {}
    for key, value in soft_features(q, targets, weights).items():  # soft_x -> sw_x, soft_min_x -> sw_min_x
        out["sw_" + key[len("soft_") :]] = value
    sentences = [soft_features(q, {"s": w}, weights) for w in static.get("quoted", [])]
    out["sw_sent"] = max((x["soft_s"] for x in sentences), default=0.0)
    out["sw_min_sent"] = max((x["soft_min_s"] for x in sentences), default=0.0)
    top = best_sentence(q, blocks[0], weights) if blocks else {"window": 0.0, "min_window": 0.0}
    out["sw_window_top"], out["sw_min_window_top"] = top["window"], top["min_window"]
    every = best_sentence(q, merge(blocks), weights) if blocks else {"window": 0.0, "min_window": 0.0}
    out["sw_window"], out["sw_min_window"] = every["window"], every["min_window"]
    out["bigram_quoted"] = bigram_coverage(q, quoted)
    out["bigram_top"] = bigram_coverage(q, blocks[0]) if blocks else 0.0
    return out


def score(values: Mapping[str, float], weights: Mapping[str, float] | None = None) -> float:
    weights = weights or WEIGHTS
    z = weights.get("bias", 0.0) + sum(weights.get(name, 0.0) * value for name, value in values.items())
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


TOP_SOFT = ("soft_top", "soft_min_top")  # what the top source's contextual token pass decides


def score_range(
    evidence: Evidence,
    sparse: Bm25Encoder,
    unknown: Sequence[str],
    weights: Mapping[str, float] | None = None,
) -> tuple[float, float]:
    """The lowest and highest score over every value the `unknown` features can take, from evidence whose words
    carry no vectors where those features read them (`Embedder.token_spans`: only the same stem matches).

    A question word matches a target word with 1.0 for the same stem and its cosine, within [0, 1], otherwise,
    so a soft-match feature lies between its exact-stem value (what such evidence gives) and 1; a cosine
    (`sentence_sim`) between -1 and 1. The score is monotone in each feature, rising or falling with its weight's
    sign, so the range's ends take each unknown feature at one end of its own."""
    w = weights or WEIGHTS
    values = features(evidence, sparse)
    low, high = dict(values), dict(values)
    for name in unknown:
        ends = (-1.0, 1.0) if name == "sentence_sim" else (values.get(name, 0.0), 1.0)
        falling = w.get(name, 0.0) < 0
        low[name], high[name] = (ends[1], ends[0]) if falling else ends
    return score(low, w), score(high, w)


def answerability(
    evidence: Evidence, sparse: Bm25Encoder, weights: Mapping[str, float] | None = None
) -> float:
    """Probability that the quoted passages answer the question."""
    return score(features(evidence, sparse), weights)
