"""GGUF runtime: reader, quantized kernels, tokenizers and llama-family generation."""

from llm.model import Model, load

__all__ = ["Model", "load"]
