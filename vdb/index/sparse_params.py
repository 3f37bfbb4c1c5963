"""BM25's parameters in the keyword index (Lucene's and bm25s's defaults)."""

K1, B = 1.5, 0.75
