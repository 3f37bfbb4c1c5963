"""Searches in many threads while another thread writes: no crash, no torn results."""

import threading

import numpy as np
import pytest

N, DIM = 300, 8


def vector(pid: int, version: int) -> np.ndarray:
    return np.random.default_rng(pid * 1000 + version).standard_normal(DIM).astype(np.float32)


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_concurrent_search_and_write(db, index):
    n = N if index == "flat" else 10_000  # enough points for the graph walk to run
    col = db.create_collection("c", dim=DIM, metric="dot", index=index)
    col.upsert(
        list(range(n)),
        np.stack([vector(i, 0) for i in range(n)]),
        payloads=[{"v": 0, "g": i % 3} for i in range(n)],
    )
    stop = threading.Event()
    errors = []

    def writer():
        rnd = np.random.default_rng(0)
        try:
            for version in range(1, 60):
                ids = rnd.choice(n, 40, replace=False).tolist()
                col.upsert(
                    ids,
                    np.stack([vector(i, version) for i in ids]),
                    payloads=[{"v": version, "g": i % 3} for i in ids],
                )
                col.delete(ids=ids[:5])
                col.upsert(
                    ids[:5],
                    np.stack([vector(i, version) for i in ids[:5]]),
                    payloads=[{"v": version, "g": i % 3} for i in ids[:5]],
                )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            stop.set()

    def reader(seed):
        rnd = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                q = rnd.standard_normal((4, DIM)).astype(np.float32)
                flt = {"g": int(rnd.integers(3))} if rnd.random() < 0.5 else None
                for qi, hits in zip(q, col.search(q, k=10, filter=flt), strict=True):
                    for h in hits:
                        expected = float(vector(h.id, h.payload["v"]) @ qi)
                        assert abs(h.score - expected) < 1e-4, "torn result"
                        assert flt is None or h.payload["g"] == flt["g"]
                    assert len(hits) == 10
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert col.count() == n
