"""BM25 over a list of texts with bm25s: English stop words out, Snowball stems
(PyStemmer), Lucene's scoring (k1 1.5, b 0.75)."""

import numpy as np


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english").stemWords


class Bm25Index:
    """Example:
    >>> index = Bm25Index(["the cat sat", "dogs bark loudly"])
    >>> [i for i, score in index.search("barking dog", k=1)]
    [1]
    """

    def __init__(self, texts: list[str]):
        import bm25s

        self._bm25s = bm25s
        self._stem = _stemmer()
        self.size = len(texts)
        self._index = bm25s.BM25()
        if texts:
            self._index.index(self._tokens(texts), show_progress=False)

    def _tokens(self, texts):
        return self._bm25s.tokenize(
            texts, stopwords="en", stemmer=self._stem, show_progress=False, allow_empty=True
        )

    def tokenize(self, text: str) -> list[str]:
        """The terms BM25 sees in text (lower case, stemmed, no stop words)."""
        return self._bm25s.tokenize(
            [text], stopwords="en", stemmer=self._stem, return_ids=False, show_progress=False
        )[0]

    def search(self, query: str, k: int = 10) -> list[tuple[int, float]]:
        """(text number, score) of the k best texts with a positive score, best first."""
        if not self.size or k <= 0:
            return []
        tokens = self._bm25s.tokenize(
            [query], stopwords="en", stemmer=self._stem, return_ids=False, show_progress=False
        )
        if not tokens or not tokens[0]:
            return []
        scores = self._index.get_scores(tokens[0])
        k = min(k, self.size)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]
