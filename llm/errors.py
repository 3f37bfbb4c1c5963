"""Errors of the GGUF runtime. Each is a ValueError: the file or the request is at fault."""


class LlmError(ValueError):
    """Base class of the runtime's errors."""


class ModelError(LlmError):
    """A model file cannot be used."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """No model file (or known model name) at the given place."""


class NotGGUFError(ModelError):
    """The file is not a GGUF file."""


class TruncatedModelError(ModelError):
    """The GGUF file ends before its header, metadata or tensors do."""


class UnsupportedModelError(ModelError):
    """The architecture, tokenizer or a tensor type is not supported, or a tensor is missing."""


class TokenizerError(ModelError):
    """Texts given to a tokenizer are not strings."""


class SamplerError(LlmError):
    """A sampler setting is out of range."""


class PromptError(LlmError):
    """A prompt is empty or holds token ids outside the vocabulary."""


class ContextOverflowError(LlmError):
    """The prompt and the tokens to generate do not fit in the context."""
