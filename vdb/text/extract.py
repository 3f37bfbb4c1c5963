"""Extractive answers: the sentence of a passage that best answers a question, by the
embedding model's cosine plus the share of the question's terms the sentence holds (question
and answer sentence share their rare words far more often than the embedding alone credits)."""

import re

from vdb.text.chunking import HEADING

TERM_WEIGHT = 1.0


SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=\S)")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of text, whitespace trimmed. Paragraphs (blank-line
    separated) end sentences too; Markdown heading lines are not sentences."""
    spans = []
    for block in re.finditer(r"(?:[^\n]|\n(?!\s*\n))+", text):
        base, body = block.start(), block.group()
        lines, pos = [], 0
        for line in body.split("\n"):  # drop heading lines, keep offsets
            if not HEADING.match(line.strip()):
                lines.append((pos, pos + len(line)))
            pos += len(line) + 1
        if not lines:
            continue
        start, end = lines[0][0], lines[-1][1]
        piece = body[start:end]
        cuts = [0, *(m.end() for m in SENTENCE.finditer(piece)), len(piece)]
        for a, b in zip(cuts, cuts[1:], strict=False):
            seg = piece[a:b]
            lead = len(seg) - len(seg.lstrip())
            trimmed = seg.strip()
            if trimmed and re.search(r"\w", trimmed) and not HEADING.match(trimmed):
                at = base + start + a + lead
                spans.append((at, at + len(trimmed)))
    return spans


def best_sentence(question: str, passage: str, model, terms) -> tuple[str, int, int, float]:
    """(sentence, start, end, score) of passage's best sentence for question; model embeds,
    terms(text) gives a text's search terms (as BM25 sees them)."""
    spans = sentence_spans(passage) or [(0, len(passage))]
    texts = [passage[a:b] for a, b in spans]
    vectors = model.embed([question, *texts])
    cosine = vectors[1:] @ vectors[0]
    asked = set(terms(question))
    best, best_score = 0, float("-inf")
    for i, text in enumerate(texts):
        share = len(asked & set(terms(text))) / len(asked) if asked else 0.0
        score = float(cosine[i]) + TERM_WEIGHT * share
        if score > best_score:
            best, best_score = i, score
    a, b = spans[best]
    return passage[a:b], a, b, best_score
