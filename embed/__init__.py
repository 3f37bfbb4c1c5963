"""Embedding models read from GGUF files (BERT family). Built on `llm`'s GGUF runtime."""
