"""Chat prompts: the model's own template (tokenizer.chat_template, a Jinja template rendered in
a sandbox, as Hugging Face renders it), or a plain transcript when the file has none.

Example:
    >>> render(None, [{"role": "user", "content": "Hi"}])
    'User: Hi\\n\\nAssistant:'
"""

from datetime import datetime
from functools import lru_cache

from llm.errors import PromptError

ROLES = ("system", "user", "assistant", "tool")
PLAIN_STOP = ("\nUser:", "\nSystem:")  # the plain transcript's next turns


def check_messages(messages) -> list[dict]:
    """Messages as a list of {"role", "content"} dicts; PromptError names what is wrong."""
    if isinstance(messages, str | bytes | dict) or not hasattr(messages, "__iter__"):
        raise PromptError("messages must be a list of {'role': ..., 'content': ...} dicts")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise PromptError(f"message {i} must be a dict with 'role' and 'content'")
        if m["role"] not in ROLES:
            raise PromptError(f"message {i}: role {m['role']!r} is not one of {ROLES}")
        if not isinstance(m["content"], str):
            raise PromptError(f"message {i}: content must be a string")
        out.append({"role": m["role"], "content": m["content"]})
    if not out:
        raise PromptError("messages is empty")
    return out


def render(
    template: str | None,
    messages,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    """The prompt text for messages, ending where the assistant's reply begins."""
    messages = check_messages(messages)
    if not template:
        return _plain(messages, add_generation_prompt)
    from jinja2 import TemplateError

    try:
        return _compile(template).render(
            messages=messages,
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
        )
    except TemplateError as exc:
        raise PromptError(f"the chat template failed: {str(exc)[:200]}") from None
    except Exception as exc:  # the template is the file's code: any error in it is the file's
        raise PromptError(
            f"the chat template failed: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None


def _plain(messages, add_generation_prompt: bool) -> str:
    turns = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    if add_generation_prompt:
        turns.append("Assistant:")
    return "\n\n".join(turns)


@lru_cache(maxsize=16)
def _compile(template: str):
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(template)
    except TemplateError as exc:
        raise PromptError(f"the chat template does not parse: {str(exc)[:200]}") from None
    except (RecursionError, MemoryError, ValueError, TypeError) as exc:  # deeply nested
        raise PromptError(f"the chat template does not parse: {type(exc).__name__}") from None
