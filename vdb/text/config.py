"""How a collection indexes text for keyword search: the analyzer, and which text of a point
(its document, or a string field of its payload)."""

from dataclasses import dataclass

from vdb.errors import InvalidArgumentError, shown
from vdb.text import analyzer

MAX_FIELD = 256  # characters of a payload field path


@dataclass(frozen=True)
class TextConfig:
    analyzer: str = "en"  # see vdb.text.analyzer.NAMES
    field: str | None = None  # None: the document; else a payload key (dotted for nested)

    @classmethod
    def parse(cls, value) -> "TextConfig | None":
        """From None or False (no text index), True (the defaults), an analyzer name, a dict
        with keys analyzer and field, or a TextConfig. InvalidArgumentError otherwise."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, TextConfig):
            return _checked(value)
        if isinstance(value, str):
            return _checked(cls(analyzer=value))
        if not isinstance(value, dict):
            raise InvalidArgumentError(
                f"text must be an analyzer name, a dict with analyzer and field, or true; got "
                f"{shown(value)}"
            )
        unknown = set(value) - {"analyzer", "field"}
        if unknown:
            names = ", ".join(sorted(shown(k, 40) for k in unknown))
            raise InvalidArgumentError(f"unknown text option(s): {names}")
        return _checked(cls(**value))

    def text_of(self, payload, document):
        """The text a point indexes: a non-empty string, or None."""
        if self.field is None:
            value = document
        else:
            value = payload
            for key in self.field.split("."):
                if not isinstance(value, dict):
                    return None
                value = value.get(key)
        return value if isinstance(value, str) and value else None


def _checked(cfg: TextConfig) -> TextConfig:
    analyzer.check_name(cfg.analyzer)
    field = cfg.field
    if field is not None and (
        not isinstance(field, str)
        or not 0 < len(field) <= MAX_FIELD
        or any(not part for part in field.split("."))
    ):
        raise InvalidArgumentError(
            f"text field must be None (the document) or a payload key of 1 to {MAX_FIELD} "
            f"characters, dotted for nested keys; got {shown(field)}"
        )
    return cfg
