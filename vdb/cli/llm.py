"""`vdb llm info|generate|chat|swap|bench`: GGUF generation models, here or on a server."""

import sys
from collections import Counter

import click

import vdb
from vdb.cli.common import echo_json
from vdb.cli.model import model_file

MODEL = "a name from `vdb model list` (see `vdb model pull`) or a .gguf file"


@click.group("llm")
def llm_group():
    """Inspect GGUF models and generate text with llama-family ones."""


@llm_group.command()
@click.argument("model", callback=model_file)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(model, as_json):
    """Metadata, tensor types and sizes of MODEL (a name from `vdb model list` or a .gguf
    file)."""
    from llm.gguf_file import GGUFFile

    f = GGUFFile(model)
    types = Counter(t.type_name for t in f.tensors.values())
    sizes = Counter()
    for t in f.tensors.values():
        sizes[t.type_name] += t.nbytes
    meta = {
        k: (v if isinstance(v, str | int | float | bool) else f"[{len(v)} values]")
        for k, v in f.metadata.items()
    }
    data = {
        "path": str(f.path),
        "bytes": f.path.stat().st_size,
        "architecture": f.architecture,
        "tensors": {name: {"count": n, "bytes": sizes[name]} for name, n in types.items()},
        "metadata": meta,
    }
    if as_json:
        echo_json(data)
        return
    click.echo(f"{f.path} ({data['bytes'] / 1e6:.1f} MB), architecture {f.architecture}")
    for name, n in sorted(types.items()):
        click.echo(f"  {n:4d} tensors {name:6s} {sizes[name] / 1e6:10.2f} MB")
    for key, value in meta.items():
        click.echo(f"  {key} = {value}")


_SAMPLER_OPTIONS = [
    click.option(
        "--temperature",
        "-t",
        type=float,
        default=0.8,
        show_default=True,
        help="Sampling temperature; 0 is greedy.",
    ),
    click.option(
        "--top-k", type=int, default=40, show_default=True, help="Keep the k best; 0: all."
    ),
    click.option(
        "--top-p",
        type=float,
        default=0.95,
        show_default=True,
        help="Keep the smallest set of tokens with this probability mass.",
    ),
    click.option(
        "--min-p",
        type=float,
        default=0.05,
        show_default=True,
        help="Drop tokens below this share of the best token's probability.",
    ),
    click.option(
        "--typical-p", type=float, default=1.0, show_default=True, help="Typical sampling; 1: off."
    ),
    click.option(
        "--tfs-z", type=float, default=1.0, show_default=True, help="Tail-free sampling; 1: off."
    ),
    click.option(
        "--repeat-penalty",
        type=float,
        default=1.0,
        show_default=True,
        help="Penalty on recent tokens; 1 is off.",
    ),
    click.option(
        "--frequency-penalty",
        type=float,
        default=0.0,
        show_default=True,
        help="Subtracted from a recent token's logit once per time it occurred.",
    ),
    click.option(
        "--presence-penalty",
        type=float,
        default=0.0,
        show_default=True,
        help="Subtracted once from the logit of every recent token.",
    ),
    click.option(
        "--repeat-last-n",
        type=click.IntRange(0),
        default=64,
        show_default=True,
        help="How many recent tokens the penalties look at.",
    ),
    click.option(
        "--mirostat",
        type=click.IntRange(0, 2),
        default=0,
        show_default=True,
        help="Mirostat sampling, version 1 or 2; 0: off.",
    ),
    click.option(
        "--mirostat-tau",
        type=float,
        default=5.0,
        show_default=True,
        help="Mirostat's target surprise, bits.",
    ),
    click.option(
        "--mirostat-eta",
        type=float,
        default=0.1,
        show_default=True,
        help="Mirostat's learning rate.",
    ),
    click.option(
        "--logit-bias",
        multiple=True,
        metavar="ID=BIAS",
        help="Add BIAS to token ID's logit (-inf bans it); repeat for several.",
    ),
    click.option("--seed", type=int, help="Seed of the sampler (default: random)."),
]
_SAMPLER_KEYS = (
    "temperature top_k top_p min_p typical_p tfs_z repeat_penalty frequency_penalty "
    "presence_penalty repeat_last_n mirostat mirostat_tau mirostat_eta logit_bias seed"
).split()


def sampler_options(fn):
    """Adds the sampler options; the command receives them together as `sampler`."""
    for option in reversed(_SAMPLER_OPTIONS):
        fn = option(fn)

    def wrapper(**kwargs):
        sampler = {k: kwargs.pop(k) for k in _SAMPLER_KEYS}
        sampler["logit_bias"] = _logit_bias(sampler["logit_bias"])
        return fn(sampler=sampler, **kwargs)

    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    wrapper.__click_params__ = fn.__click_params__
    del fn.__click_params__
    return wrapper


def _logit_bias(pairs) -> dict:
    out = {}
    for pair in pairs:
        token, _, bias = pair.partition("=")
        try:
            out[int(token)] = float(bias)
        except ValueError:
            raise click.BadParameter(
                f"{pair!r} is not ID=BIAS", param_hint="--logit-bias"
            ) from None
    return out


_CTX = click.option(
    "--ctx", "n_ctx", type=click.IntRange(1), help="Context size (default: the model's)."
)
_STOP = click.option("--stop", multiple=True, help="Stop before this text; repeat for several.")


def _stream(pieces) -> str:
    text = []
    for piece in pieces:
        text.append(piece)
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return "".join(text)


def _open_model(ctx, model, n_ctx):
    """The model MODEL (a cached name or a .gguf file), or the model of the server given
    with --server."""
    obj = ctx.obj
    if obj.get("server"):
        if model is not None:
            raise click.UsageError("give either MODEL or --server, not both")
        return vdb.connect_model(obj["server"], api_key=obj["api_key"], tls=obj["tls_ca"])
    if model is None:
        raise click.UsageError(f"MODEL ({MODEL}) is required without --server")
    import llm
    from vdb.models import resolve

    return llm.load(resolve(model), n_ctx=n_ctx)


@llm_group.command()
@click.argument("args", nargs=-1, required=True, metavar="[MODEL] PROMPT")
@click.option(
    "--max-tokens",
    "-n",
    type=click.IntRange(1),
    default=128,
    show_default=True,
    help="Tokens to generate at most.",
)
@sampler_options
@_STOP
@_CTX
@click.pass_context
def generate(ctx, args, max_tokens, sampler, stop, n_ctx):
    """Continue PROMPT with MODEL (a name from `vdb model list` or a .gguf file), or with the
    server's model given --server, streaming the text."""
    if len(args) > 2:
        raise click.UsageError("expected [MODEL] PROMPT")
    *model, prompt = args
    m = _open_model(ctx, model[0] if model else None, n_ctx)
    _stream(m.generate(prompt, max_tokens=max_tokens, stop=stop, stream=True, **sampler))


@llm_group.command("chat")
@click.argument("model", required=False)
@click.option("--system", help="A system message to begin the conversation with.")
@click.option(
    "--max-tokens",
    "-n",
    type=click.IntRange(1),
    default=512,
    show_default=True,
    help="Tokens per reply at most.",
)
@sampler_options
@_STOP
@_CTX
@click.pass_context
def chat_command(ctx, model, system, max_tokens, sampler, stop, n_ctx):
    """Talk with MODEL (a cached name or a .gguf file), or with the server's model given
    --server: type a message, read the streamed reply. Uses the model's chat template (a
    plain transcript when it has none). An empty line or end of input quits; /reset starts
    over."""
    m = _open_model(ctx, model, n_ctx)
    start = [{"role": "system", "content": system}] if system else []
    messages = list(start)
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            click.echo("> ", nl=False)
        line = sys.stdin.readline()
        if not line.strip():
            return
        if line.strip() == "/reset":
            messages = list(start)
            continue
        messages.append({"role": "user", "content": line.rstrip("\n")})
        try:
            reply = _stream(
                m.chat(messages, max_tokens=max_tokens, stop=stop, stream=True, **sampler)
            )
        except KeyboardInterrupt:
            sys.stdout.write("\n")
            messages.pop()
            continue
        messages.append({"role": "assistant", "content": reply})


@llm_group.command("swap")
@click.argument("name")
@click.option(
    "--drain-timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds in-flight streams get to finish; those still running then end (ABORTED).",
)
@click.pass_context
def swap_command(ctx, name, drain_timeout):
    """Replace the generation model of the server given with --server by NAME, a file in
    the server's model directory, without restarting it. Needs an admin key when the server
    has keys; the old model keeps serving if NAME fails to load."""
    if not ctx.obj.get("server"):
        raise click.UsageError("swap needs --server")
    with _open_model(ctx, None, None) as m:
        echo_json(m.swap(name, drain_timeout))


@llm_group.command("bench")
@click.argument("model", callback=model_file)
@click.option(
    "--prompt-tokens",
    type=click.IntRange(1),
    default=512,
    show_default=True,
    help="Length of the (random) prompt, sent to generate() whole (its passes take up to "
    "256 tokens each).",
)
@click.option(
    "--gen-tokens",
    type=click.IntRange(1),
    default=128,
    show_default=True,
    help="Tokens generated one at a time after it.",
)
@click.option(
    "--parallel",
    type=click.IntRange(1),
    default=None,
    help="N streams at once, decoded together: aggregate and per-stream tokens/s and each "
    "stream's time to first token.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def bench_command(model, prompt_tokens, gen_tokens, parallel, as_json):
    """Speed of MODEL (a cached name or a .gguf file) here: prompt and generation tokens/s,
    time to first token, and inter-token latency percentiles; with --parallel N, the same
    for N concurrent streams."""
    import llm
    from llm import bench

    m = llm.load(model, n_ctx=prompt_tokens + gen_tokens)
    if parallel is not None:
        p = bench.run_parallel(m, parallel, prompt_tokens, gen_tokens)
        if as_json:
            echo_json(p.as_dict())
            return
        per = ", ".join(f"{t:.2f}" for t in p.stream_tps)
        firsts = ", ".join(f"{t:.0f}" for t in p.ttft_ms)
        click.echo(f"streams     {p.streams:10d} ({p.prompt_tokens} + {p.gen_tokens} tokens each)")
        click.echo(f"aggregate   {p.aggregate_tps:10.2f} tokens/s")
        click.echo(f"per stream  {per} tokens/s")
        click.echo(f"first token {firsts} ms")
        click.echo(f"steps       {p.steps:10d} (at most {p.widest} streams decoded in one)")
        return
    r = bench.run(m, prompt_tokens, gen_tokens)
    if as_json:
        echo_json(r.as_dict())
        return
    click.echo(f"prompt      {r.prompt_tps:10.1f} tokens/s ({r.prompt_tokens} tokens)")
    click.echo(f"generation  {r.gen_tps:10.2f} tokens/s ({r.gen_tokens} tokens)")
    click.echo(f"first token {r.ttft_ms:10.1f} ms")
    click.echo(
        f"inter-token p50 {r.itl_p50_ms:.1f} ms, p90 {r.itl_p90_ms:.1f} ms, "
        f"p99 {r.itl_p99_ms:.1f} ms"
    )
    click.echo(f"peak RSS    {r.peak_rss_mib:10.0f} MiB")
