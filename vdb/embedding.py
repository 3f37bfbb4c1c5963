"""Embedders attached to collections. A collection records its embedder's model name in its
config and loads it (through the `embed` package, imported only then) the first time it has
text to embed; an Embedder object passed in is used as it is."""

from vdb.errors import DimensionError, InvalidArgumentError


def resolve(embedder) -> tuple[str | None, object | None]:
    """(model name to record, loaded embedder or None) for an embedder argument: None, a model
    name or .gguf path, or an object with .embed(texts), .dim and .name."""
    if embedder is None:
        return None, None
    if isinstance(embedder, str):
        return embedder, None
    if not (hasattr(embedder, "embed") and hasattr(embedder, "dim")):
        raise InvalidArgumentError(
            f"embedder must be a model name or an Embedder, got {type(embedder).__name__}"
        )
    return str(getattr(embedder, "name", None) or type(embedder).__name__), embedder


def load(name: str):
    import embed

    return embed.load(name)


def dimension(dim, embedder) -> int | None:
    """The collection dimension: dim, or the embedder's; they must agree when both are given."""
    if embedder is None:
        return dim
    if dim is not None and dim != embedder.dim:
        raise DimensionError(f"dim={dim} but the embedder makes {embedder.dim}-dimensional vectors")
    return embedder.dim


def texts(values) -> list[str] | None:
    """values as a list of texts when it is a str or a non-empty list of str, else None."""
    if isinstance(values, str):
        return [values]
    if isinstance(values, list | tuple) and values and all(isinstance(v, str) for v in values):
        return list(values)
    return None
