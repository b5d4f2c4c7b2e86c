"""Chunk boundaries and metadata, with the real embedding tokenizer."""

from __future__ import annotations

import pytest

from rag_core.chunking import Chunker
from rag_core.types import Document


@pytest.fixture(scope="module")
def tokenizer(small_engine):
    return small_engine.embedder


def chunker(tok, max_tokens=64, overlap=8) -> Chunker:
    return Chunker(tok.count_tokens, tok.token_offsets, max_tokens, overlap)


def doc(text: str) -> Document:
    return Document(
        id="d1", source="wiki", title="Runbook", text=text, url="https://wiki/d1", breadcrumb=["Eng", "Ops"]
    )


def test_chunks_keep_metadata_and_heading_path(tokenizer):
    text = "# Paging\nYou get paged.\n\n## Phone\nBy phone.\n\n# Escalation\nThen the secondary."
    chunks = chunker(tokenizer).split(doc(text))
    assert [c.heading_path for c in chunks] == [
        ["Eng", "Ops", "Paging"],
        ["Eng", "Ops", "Paging", "Phone"],
        ["Eng", "Ops", "Escalation"],
    ]
    assert [c.position for c in chunks] == [0, 1, 2]
    assert all(c.doc_id == "d1" and c.source == "wiki" and c.url == "https://wiki/d1" for c in chunks)
    assert chunks[1].embed_text.startswith("Runbook > Eng > Ops > Paging > Phone\n")
    assert chunks[2].text == "Then the secondary."


def test_every_chunk_fits_the_model_window_with_its_prefix(tokenizer):
    para = " ".join(f"Sentence number {i} talks about deploying service {i} safely." for i in range(60))
    words = " ".join(f"supercalifragilistic{i}" for i in range(300))  # one 'sentence' far over the budget
    chunks = chunker(tokenizer, max_tokens=64).split(doc(f"# Long\n{para}\n\n{words}"))
    assert len(chunks) > 10
    for c in chunks:
        assert tokenizer.count_tokens(c.embed_text) + 2 <= 64, c.embed_text
    # nothing is lost: every sentence appears in some chunk
    joined = " ".join(c.text for c in chunks)
    assert all(f"Sentence number {i} " in joined for i in range(60))
    assert all(f"supercalifragilistic{i}" in joined for i in range(300))


def test_sentences_are_not_split_when_they_fit(tokenizer):
    para = " ".join(f"Rule {i} says the deploy window closes at {i} pm." for i in range(40))
    for c in chunker(tokenizer, max_tokens=80, overlap=0).split(doc(para)):
        assert c.text.endswith("pm."), c.text


def test_code_block_kept_whole_when_it_fits(tokenizer):
    code = "```bash\nmake deploy ENV=prod\nkubectl rollout status deploy/api\n```"
    text = "# Deploy\n" + "Intro sentence here. " * 20 + "\n\n" + code + "\n\nAfter the code."
    chunks = chunker(tokenizer, max_tokens=64, overlap=0).split(doc(text))
    holding = [c for c in chunks if "make deploy" in c.text]
    assert len(holding) == 1 and code in holding[0].text


def test_long_code_block_split_between_lines_with_fences(tokenizer):
    lines = [f"echo step-{i} && ./run.sh --stage {i}" for i in range(60)]
    text = "```bash\n" + "\n".join(lines) + "\n```"
    chunks = chunker(tokenizer, max_tokens=64, overlap=0).split(doc(text))
    assert len(chunks) > 2
    for c in chunks:
        assert c.text.startswith("```bash\n") and c.text.endswith("```"), c.text
        body = c.text.split("\n")[1:-1]
        assert all(line in lines for line in body)  # whole lines only


def test_long_table_split_between_rows_with_header(tokenizer):
    rows = [f"| service-{i} | team-{i} | p{i % 3} |" for i in range(50)]
    table = "| Service | Owner | Priority |\n|---|---|---|\n" + "\n".join(rows)
    chunks = chunker(tokenizer, max_tokens=64, overlap=0).split(doc(table))
    assert len(chunks) > 2
    for c in chunks:
        assert c.text.startswith("| Service | Owner | Priority |\n|---|---|---|")
        assert all(line in rows for line in c.text.split("\n")[2:])


def test_overlap_repeats_the_tail_of_the_previous_chunk(tokenizer):
    para = " ".join(f"Fact {i} is about topic {i}." for i in range(80))
    chunks = chunker(tokenizer, max_tokens=64, overlap=8).split(doc(para))
    assert len(chunks) > 2
    assert chunks[0].overlap == 0
    for prev, cur in zip(chunks, chunks[1:], strict=False):
        assert cur.overlap > 0
        repeated = cur.text[: cur.overlap].strip().lstrip("…")
        assert prev.text.endswith(repeated)
        assert tokenizer.count_tokens(cur.embed_text) + 2 <= 64


def test_empty_document_still_has_one_chunk(tokenizer):
    chunks = chunker(tokenizer).split(Document(id="e", source="s", title="Only a title", text=""))
    assert len(chunks) == 1 and chunks[0].text == "Only a title"


def test_table_with_a_header_wider_than_a_chunk(tokenizer):
    header = "| " + " | ".join(f"column number {i} with a long name" for i in range(30)) + " |"
    rule = "|" + "---|" * 30
    rows = ["| " + " | ".join(f"v{r}-{i}" for i in range(30)) + " |" for r in range(5)]
    chunks = chunker(tokenizer, max_tokens=64).split(doc("\n".join([header, rule, *rows])))
    joined = " ".join(c.text for c in chunks)
    assert "column number 29 with a long name" in joined and "v4-29" in joined
    for c in chunks:
        assert tokenizer.count_tokens(c.embed_text) + 2 <= 64
