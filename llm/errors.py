"""Errors of the GGUF runtime. Each is a ValueError: the file or the request is at fault."""


class LlmError(ValueError):
    """Base class of the runtime's errors."""


class ModelError(LlmError):
    """A model file cannot be used."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """No model file (or known model name) at the given place."""


class NotGGUFError(ModelError):
    """The file is not a GGUF file."""


class MalformedModelError(ModelError):
    """A field of the GGUF file is out of range or contradicts another: a count, length,
    offset, dimension, metadata value, hyper-parameter, tensor shape or token id. The message
    names the field and its value."""


class TruncatedModelError(MalformedModelError):
    """The GGUF file ends before its header, metadata or tensors do."""


class UnsupportedModelError(ModelError):
    """The architecture, tokenizer or a tensor type is not supported, or a tensor is missing."""


class TokenizerError(ModelError):
    """Texts given to a tokenizer are not strings, or the file's vocabulary makes none."""


class VocabularyError(TokenizerError, MalformedModelError):
    """The file's vocabulary cannot make a tokenizer: its tokens, scores, token types, merges
    or special token ids are out of range, or sentencepiece or tokenizers refused them."""


class ModelMemoryError(ModelError):
    """Running the model would need more memory than this process may allocate (the KV cache
    of its context, or the weights it copies at load); a smaller context may fit."""


class SamplerError(LlmError):
    """A sampler setting is out of range."""


class PromptError(LlmError):
    """A prompt is empty or holds token ids outside the vocabulary."""


class ContextOverflowError(LlmError):
    """The prompt and the tokens to generate do not fit in the context."""
