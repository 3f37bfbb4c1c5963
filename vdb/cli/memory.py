"""`vdb memory`: an agent's long-term memories and conversation buffers (vdb.memory)."""

import dataclasses
from contextlib import contextmanager

import click

from vdb.cli.common import echo_json, open_db, parse_json
from vdb.cli.model import model_file

_agent = click.option(
    "--agent",
    "-a",
    envvar="VDB_AGENT",
    default="default",
    show_default=True,
    help="Whose memory (env VDB_AGENT); each agent has its own collection memory.AGENT.",
)
_user = click.option(
    "--user", "-u", "user_id", help="The user's memories (default: the agent's own)."
)
_session = click.option("--session", "-s", "session_id", help="Within this session only.")
_kind = click.option(
    "--kind",
    type=click.Choice(["fact", "event", "preference", "summary", "turn"]),
    help="Only this kind.",
)
_json = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _options(fn):
    for option in reversed((_agent, _json)):
        fn = option(fn)
    return click.pass_context(fn)


@contextmanager
def _memory(ctx, agent, generator=None):
    with open_db(ctx) as db:
        mem = db.memory(agent, **memory_options(ctx, generator))
        try:
            yield mem
        finally:
            mem.flush()


def memory_options(ctx, generator) -> dict:
    """Memory options for a generation model given on the command line: a local database
    takes it; a server summarizes with its own model."""
    if generator is None:
        return {}
    if ctx.obj.get("server"):
        raise click.UsageError(
            "with --server the server's model writes the summaries; --model is for --data"
        )
    return {"generator": generator}


def _as_dict(value):
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def _show(record, score=None) -> str:
    scope = "".join(
        f" {k}={v}" for k, v in (("user", record.user_id), ("session", record.session_id)) if v
    )
    head = f"{score:.3f}  " if score is not None else ""
    state = "" if record.current else " (closed)"
    label = record.role if record.kind == "turn" else record.kind
    return f"{head}{record.id}  [{label}]{scope}{state}  {record.text}"


def _records(records, as_json) -> None:
    if as_json:
        echo_json([_as_dict(r) for r in records])
        return
    for r in records:
        click.echo(_show(r))


@click.group("memory")
def memory_group():
    """An agent's memory: facts, events, preferences and summaries that last, recalled by
    relevance, recency and importance; updates keep every version; conversation buffers per
    session spill their oldest turns into summaries. Works with --data or --server."""


@memory_group.command("add")
@click.argument("text")
@_kind
@click.option(
    "--importance", type=click.FloatRange(0, 1), default=0.5, show_default=True, help="In [0, 1]."
)
@_user
@_session
@click.option("--ttl", type=click.FloatRange(0, min_open=True), help="Seconds until it expires.")
@click.option("--metadata", help="JSON object kept with the memory.")
@_options
def add(ctx, text, kind, importance, user_id, session_id, ttl, metadata, agent, as_json):
    """Remember TEXT (a near-duplicate of a current memory reinforces it instead)."""
    meta = parse_json(metadata, "--metadata") if metadata else None
    if kind == "turn":
        raise click.BadParameter("add turns with `vdb memory turn`", param_hint="--kind")
    with _memory(ctx, agent) as mem:
        r = mem.remember(
            text,
            kind=kind or "fact",
            importance=importance,
            metadata=meta,
            user_id=user_id,
            session_id=session_id,
            ttl=ttl,
        )
    if as_json:
        echo_json(_as_dict(r))
    else:
        click.echo(("reinforced " if r.count > 1 else "remembered ") + _show(r))


@memory_group.command("recall")
@click.argument("query")
@click.option("-k", "k", type=click.IntRange(1), default=5, show_default=True, help="Memories.")
@_kind
@_user
@_session
@click.option("--all-users", is_flag=True, help="Every user's memories, not one scope's.")
@click.option("--history", is_flag=True, help="Closed versions too (refreshes nothing).")
@click.option("--filter", "filter_json", help="Payload filter (JSON) on the memories.")
@_options
def recall(
    ctx, query, k, kind, user_id, session_id, all_users, history, filter_json, agent, as_json
):
    """The K memories most useful for QUERY, best first: score, id, kind, text."""
    flt = parse_json(filter_json, "--filter") if filter_json else None
    with _memory(ctx, agent) as mem:
        found = mem.recall(
            query,
            k=k,
            kind=kind,
            user_id=user_id,
            session_id=session_id,
            all_users=all_users,
            history=history,
            filter=flt,
        )
    if as_json:
        echo_json([_as_dict(r) for r in found])
        return
    for r in found:
        click.echo(_show(r.memory, r.score))


@memory_group.command("list")
@_kind
@_user
@_session
@click.option("--all-users", is_flag=True, help="Every user's memories, not one scope's.")
@click.option("--history", is_flag=True, help="Closed versions too.")
@_options
def list_(ctx, kind, user_id, session_id, all_users, history, agent, as_json):
    """The memories of a scope, oldest first."""
    with _memory(ctx, agent) as mem:
        found = mem.list(
            kind=kind, user_id=user_id, session_id=session_id, all_users=all_users, history=history
        )
    _records(found, as_json)


@memory_group.command("get")
@click.argument("memory_id")
@_options
def get(ctx, memory_id, agent, as_json):
    """One memory, with every field."""
    with _memory(ctx, agent) as mem:
        r = mem.get(memory_id)
    echo_json(_as_dict(r)) if as_json else click.echo(_show(r))


@memory_group.command("update")
@click.argument("memory_id")
@click.argument("text")
@click.option("--importance", type=click.FloatRange(0, 1), help="New importance (default: kept).")
@_options
def update(ctx, memory_id, text, importance, agent, as_json):
    """Replace a current memory's text: the old version is closed and linked, not lost."""
    with _memory(ctx, agent) as mem:
        r = mem.update(memory_id, text, importance=importance)
    echo_json(_as_dict(r)) if as_json else click.echo("updated " + _show(r))


@memory_group.command("forget")
@click.argument("memory_id", required=False)
@click.option("--filter", "filter_json", help="Every current memory matching this filter (JSON).")
@click.option("--hard", is_flag=True, help="Delete from disk with every version, not close.")
@_options
def forget(ctx, memory_id, filter_json, hard, agent, as_json):
    """Forget MEMORY_ID, or the memories matching --filter: closed (kept for history, never
    recalled) unless --hard."""
    if (memory_id is None) == (filter_json is None):
        raise click.UsageError("give a MEMORY_ID or --filter")
    flt = parse_json(filter_json, "--filter") if filter_json else None
    with _memory(ctx, agent) as mem:
        n = mem.forget(memory_id, filter=flt, hard=hard)
    echo_json({"forgotten": n, "hard": hard}) if as_json else click.echo(
        f"{'deleted' if hard else 'closed'} {n} memor{'y' if n == 1 else 'ies'}"
    )


@memory_group.command("history")
@click.argument("memory_id")
@_options
def history(ctx, memory_id, agent, as_json):
    """Every version of a memory, oldest first."""
    with _memory(ctx, agent) as mem:
        found = mem.history(memory_id)
    _records(found, as_json)


@memory_group.command("stats")
@_options
def stats(ctx, agent, as_json):
    """Counts of memories, turns, versions, kinds and users."""
    with _memory(ctx, agent) as mem:
        s = mem.stats()
    if as_json:
        echo_json(s)
        return
    for key, value in s.items():
        click.echo(f"{key}: {value}")


@memory_group.command("turn")
@click.argument("role", type=click.Choice(["system", "user", "assistant", "tool"]))
@click.argument("text")
@click.option("--session", "-s", "session_id", required=True, help="The conversation.")
@_user
@click.option(
    "--model",
    "model_path",
    metavar="NAME|FILE",
    callback=model_file,
    help="A generation model (a name from `vdb model list` or a .gguf file) that counts "
    "tokens and writes summaries (default: extracts, counted by the embedder).",
)
@_options
def turn(ctx, role, text, session_id, user_id, model_path, agent, as_json):
    """Add a turn to a session's buffer; turns over its budget leave it as a summary."""
    generator = None
    if model_path:
        import llm

        generator = llm.load(model_path)
    with _memory(ctx, agent, generator) as mem:
        t, summaries = mem.add_turn(role, text, session_id, user_id=user_id)
    if as_json:
        echo_json({"turn": _as_dict(t), "summaries": [_as_dict(s) for s in summaries]})
        return
    click.echo("added " + _show(t))
    for s in summaries:
        click.echo("summarized into " + _show(s))


@memory_group.command("turns")
@click.option("--session", "-s", "session_id", required=True, help="The conversation.")
@_user
@_options
def turns(ctx, session_id, user_id, agent, as_json):
    """The turns in a session's buffer, oldest first."""
    with _memory(ctx, agent) as mem:
        found = mem.turns(session_id, user_id=user_id)
    _records(found, as_json)


@memory_group.command("context")
@click.argument("query")
@click.option(
    "--budget", type=click.IntRange(1), default=1024, show_default=True, help="Tokens at most."
)
@_user
@click.option("--session", "-s", "session_id", help="Add this session's recent turns.")
@click.option(
    "-k", "k", type=click.IntRange(1), default=20, show_default=True, help="Memories considered."
)
@_options
def context(ctx, query, budget, user_id, session_id, k, agent, as_json):
    """The prompt block for QUERY: the most useful memories and the session's recent turns,
    within --budget tokens."""
    with _memory(ctx, agent) as mem:
        c = mem.context(query, budget, user_id=user_id, session_id=session_id, k=k)
    if as_json:
        echo_json(_as_dict(c))
    else:
        click.echo(c.text)
