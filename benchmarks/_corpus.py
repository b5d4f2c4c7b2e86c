"""Synthetic-but-realistic chunk sets for the store and retrieval benchmarks.

A few thousand real chunks of the Sourcegraph handbook are chunked with the engine's Chunker and embedded with the
real embedder (cached under data/bench/). Any number of stored points is then derived from them: each point's dense
vector is a real vector mixed with a little of another real vector and some noise, re-normalised, and it carries a
real chunk's text, BM25 vector and payload shape (`chunk_payload`). So the HNSW graph, the posting lists and the
payload indexes look like those of a real corpus, without embedding 100k passages on a 2-core machine.
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag_core.chunking import Chunker  # noqa: E402
from rag_core.embedding import Embedder  # noqa: E402
from rag_core.settings import Settings  # noqa: E402
from rag_core.sparse import Bm25Encoder, SparseVector  # noqa: E402
from rag_core.store import NEVER, StoredPoint  # noqa: E402
from rag_core.store.payload import chunk_from_payload, chunk_payload  # noqa: E402
from rag_core.types import Chunk, Document  # noqa: E402

HANDBOOK = ROOT.parent / "shared" / "corpora" / "sourcegraph-handbook" / "content"
CACHE = ROOT / "data" / "bench"
# Points are spread over these sources; queries may search all but the last (a channel ACL, as in production).
SOURCES = ("handbook", "eng-wiki", "hr-drive", "finance-private")
ALLOWED_SOURCES = list(SOURCES[:-1])
COMMITTED_GEN = 5  # points were written by syncs 1..5; a sync writing generation 6 is in flight
IN_FLIGHT_SHARE = 0.01  # share of points written or retired by the in-flight sync (the filter must hide them)


def bench_settings(**overrides: object) -> Settings:
    """Default settings, ignoring any .env, with benchmark data under data/bench."""
    return Settings(_env_file=None, data_dir=CACHE, **overrides)


def make_chunker(embedder: Embedder, settings: Settings) -> Chunker:
    """The Chunker exactly as `Engine.__init__` builds it."""
    return Chunker(
        embedder.count_tokens,
        embedder.token_offsets,
        min(settings.chunk_tokens, embedder.max_tokens),
        settings.chunk_overlap_tokens,
    )


# -- the handbook -----------------------------------------------------------------------------------------------


def _strip_front_matter(text: str) -> str:
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            return text[end + 4 :].lstrip("\n")
    return text


def handbook_documents(corpus: Path = HANDBOOK) -> list[Document]:
    """Every Markdown page of the handbook as a Document (title from its first `# ` heading)."""
    if not corpus.is_dir():
        raise SystemExit(f"handbook corpus not found at {corpus} (expected ../shared relative to the repo)")
    docs = []
    for path in sorted(corpus.rglob("*.md")):
        rel = path.relative_to(corpus)
        text = _strip_front_matter(path.read_text(encoding="utf-8", errors="replace"))
        title = next((ln[2:].strip() for ln in text.splitlines() if ln.startswith("# ")), "")
        title = title or (rel.parent.name if rel.name == "index.md" else rel.stem).replace("-", " ")
        slug = str(rel.with_suffix("")).removesuffix("/index").removesuffix("index")
        docs.append(
            Document(
                id=str(rel),
                source=SOURCES[0],
                title=title,
                text=text,
                url=f"https://handbook.sourcegraph.com/{slug}",
                breadcrumb=[p.replace("_", " ") for p in rel.parent.parts],
            )
        )
    return docs


# -- real chunks, embedded once -----------------------------------------------------------------------------------


@dataclass
class BaseCorpus:
    """Real handbook chunks with their real dense and BM25 vectors."""

    chunks: list[Chunk]
    dense: np.ndarray  # (len(chunks), dim), unit length
    sparse: list[SparseVector]


def base_corpus(embedder: Embedder, settings: Settings, max_chunks: int = 3000, seed: int = 0) -> BaseCorpus:
    """`max_chunks` chunks from randomly ordered handbook pages, embedded; cached in data/bench/."""
    cache = CACHE / f"base-{embedder.name}-{settings.chunk_tokens}-{max_chunks}-{seed}"
    sparse = Bm25Encoder(settings)
    if (cache / "dense.npy").exists():
        dense = np.load(cache / "dense.npy")
        chunks = [chunk_from_payload(p) for p in json.loads((cache / "chunks.json").read_text())]
        print(f"base corpus: {len(chunks)} real chunks from cache {cache.relative_to(ROOT)}")
    else:
        docs = handbook_documents()
        random.Random(seed).shuffle(docs)
        chunker = make_chunker(embedder, settings)
        chunks = []
        for doc in docs:
            chunks.extend(chunker.split(doc))
            if len(chunks) >= max_chunks:
                break
        chunks = chunks[:max_chunks]
        started = time.perf_counter()
        dense = embedder.encode_passages([c.embed_text for c in chunks])
        took = time.perf_counter() - started
        print(f"base corpus: embedded {len(chunks)} real handbook chunks in {took:.1f} s")
        cache.mkdir(parents=True, exist_ok=True)
        np.save(cache / "dense.npy", dense)
        payloads = [chunk_payload(c, "", 0) for c in chunks]
        (cache / "chunks.json").write_text(json.dumps(payloads))
    return BaseCorpus(chunks, dense, [sparse.encode_document(c.embed_text) for c in chunks])


# -- derived points -----------------------------------------------------------------------------------------------


def synthetic_points(
    base: BaseCorpus, n: int, batch: int = 256, seed: int = 0
) -> Iterator[list[StoredPoint]]:
    """`n` stored points in batches: the real chunks first, then perturbed copies of them (see module doc)."""
    rng = np.random.default_rng(seed)
    real = len(base.chunks)
    dim = base.dense.shape[1]
    for start in range(0, n, batch):
        idx = np.arange(start, min(start + batch, n))
        src = idx % real
        copy = idx // real
        vecs = base.dense[src].copy()
        derived = copy > 0
        if derived.any():
            k = int(derived.sum())
            other = base.dense[rng.integers(0, real, k)]
            mix = rng.uniform(0.0, 0.5, (k, 1)).astype(np.float32)
            noise = rng.normal(0.0, 0.03, (k, dim)).astype(np.float32)
            vecs[derived] = vecs[derived] + mix * other + noise
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        points = []
        for i, s, c, vec in zip(idx, src, copy, vecs, strict=True):
            chunk = base.chunks[s]
            if c > 0:
                chunk = replace(chunk, doc_id=f"{chunk.doc_id}#{c}", source=SOURCES[c % len(SOURCES)])
            gen, dead = 1 + int(i) % COMMITTED_GEN, NEVER
            roll = rng.random()
            if roll < IN_FLIGHT_SHARE / 2:
                gen = COMMITTED_GEN + 1  # written by the in-flight sync: not yet visible
            elif roll < IN_FLIGHT_SHARE:
                dead = COMMITTED_GEN + 1  # retired by the in-flight sync: still visible
            payload = chunk_payload(chunk, f"v{gen}", gen)
            payload["dead"] = dead
            point_id = uuid.uuid5(
                uuid.NAMESPACE_URL, f"{chunk.source}\x00{chunk.doc_id}\x00{gen}\x00{chunk.position}"
            )
            points.append(StoredPoint(str(point_id), vec, base.sparse[s], payload))
        yield points


# -- questions ----------------------------------------------------------------------------------------------------

_PLAIN_SENTENCE = re.compile(r"^[A-Z][A-Za-z0-9 ,;:'’()-]{30,}[a-z][.?]$")  # prose, no Markdown or HTML
_TEMPLATES = (
    "What is our process for {}?",
    "How does {} work here?",
    "Where can I find information about {}?",
    "Who is responsible for {}?",
)


def questions(base: BaseCorpus, count: int, seed: int = 1) -> list[str]:
    """Distinct questions a teammate might ask: handbook headings turned into questions, and handbook sentences."""
    rng = random.Random(seed)
    headings = sorted(
        {
            h.rstrip("?:. ")
            for c in base.chunks
            for h in c.heading_path[-1:]
            if 8 <= len(h) <= 60 and not re.search(r"[`*_#&\[\]<>]", h)
        }
    )
    sentences = sorted(
        {
            s.strip()
            for c in base.chunks
            for s in re.split(r"(?<=[.?!])\s+", c.text[c.overlap :])
            if 40 <= len(s.strip()) <= 160 and _PLAIN_SENTENCE.match(s.strip())
        }
    )
    out: dict[str, None] = {}  # distinct, in order
    for _ in range(count * 20):
        if len(out) == count:
            break
        if len(out) % 2 == 0 and headings:
            out[rng.choice(_TEMPLATES).format(rng.choice(headings).lower())] = None
        else:
            out[rng.choice(sentences)] = None
    return list(out)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))
