"""`vdb demo`: a short tour of the embedded store on a throwaway database."""

import hashlib
import re
import tempfile

import click
import numpy as np

import vdb

DIM = 256
STOP = set("a an and at by for from how in of on the to with your".split())
ARTICLES = [
    ("Fresh strawberries and yogurt make a quick breakfast", "food", 2023),
    ("Slow-cooked bean stew for cold winter evenings", "food", 2019),
    ("A guide to baking sourdough bread at home", "food", 2021),
    ("Morning fruit smoothies with banana and berries", "food", 2024),
    ("Training plan for your first marathon", "sport", 2022),
    ("How to choose running shoes for trail races", "sport", 2020),
    ("Cycling tours through the hills of Tuscany", "travel", 2023),
    ("A week of street food in Bangkok markets", "travel", 2024),
    ("Backpacking across Patagonia on a budget", "travel", 2018),
    ("Vector databases explained: indexes and filters", "tech", 2024),
    ("Writing fast numerical kernels in Python with numba", "tech", 2022),
    ("Breakfast cereals compared by sugar content", "food", 2017),
]


def embed(texts: list[str]) -> np.ndarray:
    """A toy embedding: hashed bag of words and word prefixes, so similar words overlap."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)  # (n, DIM)
    for i, text in enumerate(texts):
        for word in re.findall(r"[a-z]+", text.lower()):
            if word in STOP:
                continue
            for token in {word, word[:5]}:
                h = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=4).digest(), "big")
                out[i, h % DIM] += 1.0
    return out + 1e-3  # never all zeros


@click.command()
@click.option(
    "--keep",
    type=click.Path(file_okay=False),
    help="Keep the database in this directory instead of a temporary one.",
)
def demo(keep):
    """Create a collection, upsert articles with payloads, and run filtered searches."""
    path = keep or tempfile.mkdtemp(prefix="vdb-demo-")
    click.echo(f"database: {path}")
    with vdb.open(path) as db:
        if "articles" in db.list_collections():
            db.drop_collection("articles")
        col = db.create_collection("articles", dim=DIM, metric="cosine")
        texts = [a[0] for a in ARTICLES]
        col.upsert(
            ids=list(range(1, len(ARTICLES) + 1)),
            vectors=embed(texts),
            payloads=[{"topic": topic, "year": year} for _, topic, year in ARTICLES],
            documents=texts,
        )
        click.echo(f"upserted {col.count()} articles into 'articles' (dim={DIM}, cosine)\n")
        query = "fruit for breakfast"
        _show(col, query, None)
        _show(col, query, {"topic": "food", "year": {"$gte": 2020}})
        _show(col, "races and running", {"$or": [{"topic": "sport"}, {"year": {"$lt": 2019}}]})
        recent = col.count({"year": {"$gte": 2023}})
        click.echo(f"articles from 2023 on: {recent}")


def _show(col, query: str, flt) -> None:
    click.echo(f"query: {query!r}" + (f"  filter: {flt}" if flt else ""))
    for hit in col.search(embed([query])[0], k=3, filter=flt):
        click.echo(
            f"  {hit.score:.3f}  [{hit.payload['topic']}, {hit.payload['year']}] {hit.document}"
        )
    click.echo("")
