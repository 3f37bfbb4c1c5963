"""`vdb ask`: answers from a collection's documents, with their sources."""

import sys

import click

from vdb.cli.common import echo_json, open_db, parse_json
from vdb.cli.llm import sampler_options
from vdb.cli.model import model_file


def _where(s) -> str:
    place = s.source or s.file or str(s.id)
    if s.headings:
        place += " > " + " > ".join(s.headings)
    if s.start is not None and s.end is not None:
        place += f" (chars {s.start}-{s.end})"
    return place


def _remote(ctx, url, name, key, completions, n_ctx, sampler):
    """(the OpenAI-compatible generator, the sampler settings to send it: the main ones and
    those set away from their defaults)."""
    from vdb.openai_compatible import OpenAICompatible

    defaults = {p.name: p.default for p in ctx.command.params}
    kept = ("temperature", "top_p", "top_k", "seed")
    sent = {k: v for k, v in sampler.items() if k in kept or (v and v != defaults.get(k, v))}
    try:
        llm = OpenAICompatible(
            url, model=name, api_key=key, chat=not completions, context_length=n_ctx
        )
    except ImportError as exc:
        raise click.ClickException(str(exc)) from None
    return llm, sent


@click.command("ask")
@click.argument("question")
@click.option("--collection", "-c", required=True, help="The collection to answer from.")
@click.option(
    "--model",
    "model_path",
    metavar="NAME|FILE",
    callback=model_file,
    help="A generation model: a name from `vdb model list` (see `vdb model pull`) or a .gguf "
    "file; without one the answer is extractive.",
)
@click.option("-k", "k", type=click.IntRange(1), default=5, show_default=True, help="Sources.")
@click.option("--filter", "filter_json", help="Payload filter (JSON) on the sources.")
@click.option(
    "--max-tokens",
    "-n",
    type=click.IntRange(1),
    default=256,
    show_default=True,
    help="Tokens of the generated answer at most.",
)
@click.option("--ctx", "n_ctx", type=click.IntRange(1), help="Context size of the model.")
@click.option(
    "--llm-url",
    metavar="URL",
    help="Generate the answer on a server of the OpenAI API (llama.cpp's server, ollama, vLLM, "
    "`vdb serve --http-port`), its base URL such as http://127.0.0.1:8080/v1.",
)
@click.option("--llm-model", metavar="NAME", help="With --llm-url: the model (default: its first).")
@click.option("--llm-key", metavar="KEY", envvar="VDB_LLM_KEY", help="With --llm-url: its API key.")
@click.option(
    "--llm-completions",
    is_flag=True,
    help="With --llm-url: a base model, sent the few-shot document on /v1/completions instead "
    "of chat messages.",
)
@click.option("--agent", "-a", help="Also draw on this agent's memory (see `vdb memory`).")
@click.option("--user", "-u", "user_id", help="With --agent: this user's memories.")
@click.option(
    "--session",
    "-s",
    "session_id",
    help="With --agent: this session's recent turns; the question and answer join them.",
)
@click.option(
    "--memory-tokens",
    type=click.IntRange(1),
    default=512,
    show_default=True,
    help="With --agent: tokens of memories and turns at most.",
)
@sampler_options
@click.option("--json", "as_json", is_flag=True, help="Print answer, citations and sources.")
@click.pass_context
def ask_cmd(
    ctx,
    question,
    collection,
    model_path,
    k,
    filter_json,
    max_tokens,
    n_ctx,
    llm_url,
    llm_model,
    llm_key,
    llm_completions,
    agent,
    user_id,
    session_id,
    memory_tokens,
    sampler,
    as_json,
):
    """Answer QUESTION from COLLECTION (see `vdb ingest`): hybrid retrieval of the best
    chunks, then a generated answer citing them as [n] when --model is given, or else the
    sentence of the best chunk that best answers it (extractive), with its source.

    With --agent, the memories most useful for the question (and with --session, the
    session's recent turns) go into the prompt beside the sources, and are printed."""
    from vdb import rag

    if agent is None and (user_id or session_id):
        raise click.UsageError("--user and --session need --agent")

    model = None
    if model_path and llm_url:
        raise click.UsageError("give --model or --llm-url, not both")
    if (llm_model or llm_key or llm_completions) and not llm_url:
        raise click.UsageError("--llm-model, --llm-key and --llm-completions need --llm-url")
    if model_path:
        import llm

        model = llm.load(model_path, n_ctx=n_ctx)
    elif llm_url:
        model, sampler = _remote(ctx, llm_url, llm_model, llm_key, llm_completions, n_ctx, sampler)
    flt = parse_json(filter_json, "--filter") if filter_json else None

    started = []

    def show(piece):
        if model is None:  # a quoted sentence: its line breaks are the file's wrapping
            piece = " ".join(piece.split())
            if not started:
                click.echo(
                    "Extractive answer (no generation model; give --model NAME or FILE.gguf "
                    "to generate one):"
                )
        started.append(piece)
        sys.stdout.write(piece)
        sys.stdout.flush()

    with open_db(ctx, read_only=agent is None) as db:
        col = db.get_collection(collection)
        memory = None
        if agent is not None:
            local = {"generator": model} if model_path and not ctx.obj.get("server") else {}
            mem = db.memory(agent, **local)
            memory = mem.context(question, memory_tokens, user_id=user_id, session_id=session_id)
        answer = rag.ask(
            col,
            question,
            model,
            k=k,
            filter=flt,
            max_tokens=max_tokens,
            on_piece=None if as_json else show,
            memory=memory.text if memory is not None else None,
            **sampler,
        )
        if agent is not None:
            if session_id is not None:
                mem.add_turn("user", question, session_id, user_id=user_id)
                mem.add_turn("assistant", answer.text, session_id, user_id=user_id)
            mem.flush()
    if as_json:
        out = answer.as_dict()
        if memory is not None:
            out["memory"] = memory.text
        echo_json(out)
        return
    click.echo("\n")
    if memory is not None and memory.text:
        click.echo(f"From {agent}'s memory:\n{memory.text}\n")
    cited = [s for s in answer.sources if s.number in answer.cited]
    if answer.extractive and cited:
        click.echo(f"from [{cited[0].number}] {_where(cited[0])}")
        return
    click.echo("Sources cited:" if cited else "Sources (none cited):")
    for s in cited or answer.sources:
        click.echo(f"  [{s.number}] {_where(s)}")
