"""GGUF runtime: reader, quantized kernels, tokenizers and llama-family generation."""
