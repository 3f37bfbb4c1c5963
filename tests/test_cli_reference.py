"""README's CLI tables and the click command tree agree: every command of the tree has a
usage line in README and every usage line names a command, with the same options (each
option of a command appears in one of its usage lines, and every option a line names is
one of that command's) and the same arguments; and a short option means one thing in every
command."""

import re
from collections import defaultdict

import click
import pytest

from tests.conftest import ROOT
from vdb.cli.main import main

README = (ROOT / "README.md").read_text(encoding="utf-8")
TABLE_HEADER = "| command | what it does |"
SAMPLER = "[sampler options]"


def readme_usages() -> list[str]:
    """The code spans that begin with `vdb` in the first cell of README's command tables."""
    usages, in_table = [], False
    for line in README.splitlines():
        if line.strip() == TABLE_HEADER:
            in_table = True
            continue
        if not (in_table and line.startswith("|")):
            in_table = False
            continue
        first_cell = re.split(r"(?<!\\)\|", line)[1]
        for span in re.findall(r"`([^`]+)`", first_cell):
            if span == "vdb" or span.startswith("vdb "):
                usages.append(span.replace("\\|", "|"))
    return usages


def sampler_options() -> str:
    """README's list of sampler options (the paragraph after the generation commands), as
    option names to stand for `[sampler options]` in a usage line."""
    paragraph = re.search(r"^Sampler options: (.+?)\n\n", README, re.M | re.S).group(1)
    names = [span.split()[0] for span in re.findall(r"`([^`]+)`", paragraph)]
    return " ".join(part for name in names for part in name.split("/"))


def tokens(usage: str) -> list[str]:
    """Words of a usage line: brackets, parentheses, alternatives and ellipses dropped,
    quoted values kept whole."""
    usage = usage.replace(SAMPLER, sampler_options())
    words = re.findall(r"'[^']*'|\"[^\"]*\"|[^\s\[\]()]+", usage)
    return [w.removesuffix("...") for w in words if w not in ("|", "...")]


def option(command: click.Command, word: str) -> click.Option:
    """The option of command that word names."""
    for param in command.params:
        if isinstance(param, click.Option) and word in (*param.opts, *param.secondary_opts):
            return param
    raise AssertionError(f"{command.name} has no option {word}")


def resolve(usage: str):
    """(command path, {path: option names used}, the arguments named) of one usage line."""
    words = tokens(usage)
    assert words[0] == "vdb", usage
    command, path = main, ()
    used: dict[tuple, set] = defaultdict(set)
    arguments: list[str] = []
    i = 1
    while i < len(words):
        word = words[i]
        i += 1
        if word.startswith("-") and len(word) > 1:
            param = option(command, word)
            used[path].add(param.name)
            takes_value = not (param.is_flag or param.count)
            if takes_value and i < len(words) and not words[i].startswith("-"):
                i += 1
        elif isinstance(command, click.Group) and not arguments and word in command.commands:
            command, path = command.commands[word], (*path, word)
        else:
            arguments.append(word.strip("'\""))
    return path, used, arguments


def tree():
    """(path, command) for the root and every command and group under it."""
    out = []

    def walk(command, path):
        out.append((path, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(main, ())
    return out


def documented(command: click.Command) -> dict[str, str]:
    """The options a usage line should show (all but hidden ones and --help): parameter
    name -> its option names, e.g. n_ctx -> "--ctx"."""
    return {
        p.name: "/".join((*p.opts, *p.secondary_opts))
        for p in command.params
        if isinstance(p, click.Option) and not p.hidden and p.name != "help"
    }


def argument_words(command: click.Command) -> list[str]:
    """The command's arguments as usage words, e.g. `[MODEL] PROMPT` -> MODEL, PROMPT."""
    words = []
    for p in command.params:
        if isinstance(p, click.Argument):
            metavar = p.metavar or p.name.upper()
            words += [w.removesuffix("...").strip("[]") for w in metavar.split()]
    return words


def test_readme_usages_name_real_commands_options_and_arguments():
    usages = readme_usages()
    assert len(usages) > 30
    commands = dict(tree())
    for usage in usages:
        path, _, arguments = resolve(usage)
        command = commands[path]
        if isinstance(command, click.Group):
            assert arguments in ([], ["COMMAND"]), usage
            continue
        expected = argument_words(command)
        assert len(arguments) == len(expected), f"{usage!r}: arguments {expected}"
        for word, real in zip(arguments, expected, strict=True):
            assert word == real or word in real.split("|"), f"{usage!r}: {word} is not {real}"


def test_every_command_and_option_is_in_readme():
    used: dict[tuple, set] = defaultdict(set)
    named = set()
    for usage in readme_usages():
        path, options, _ = resolve(usage)
        named.add(path)
        for where, names in options.items():
            used[where] |= names
    for path, command in tree():
        if isinstance(command, click.Group) and path:
            continue  # a group is named by its commands' lines
        name = " ".join(("vdb", *path))
        assert path in named, f"README's CLI tables have no line for `{name}`"
        missing = [opts for key, opts in documented(command).items() if key not in used[path]]
        assert not missing, f"README's `{name}` lines lack the options {sorted(missing)}"


def short_options() -> dict[str, set[str]]:
    """Short option -> the long names (or, with none, parameter names) it stands for."""
    meanings: dict[str, set[str]] = defaultdict(set)
    for path, command in tree():
        with click.Context(command, info_name=path[-1] if path else "vdb") as ctx:
            params = command.get_params(ctx)  # with --help / -h
        for p in params:
            if not isinstance(p, click.Option):
                continue
            names = (*p.opts, *p.secondary_opts)
            longs = [n for n in names if n.startswith("--")]
            for short in (n for n in names if not n.startswith("--")):
                meanings[short].add(longs[0] if longs else p.name)
    return meanings


def test_a_short_option_means_one_thing_everywhere():
    clashes = {s: sorted(names) for s, names in short_options().items() if len(names) > 1}
    assert not clashes


def test_readme_lists_every_short_option():
    sentence = re.search(r"A short option means one thing in every command:(.+?)\.\s", README, re.S)
    listed = set(re.findall(r"`(-\w)`", sentence.group(1)))
    assert listed == set(short_options()) - {"-h"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["search", "a question", "-c", "docs", "--vector", "[1]"], "--vector: for a vector"),
        (["search", "pts", "--text", "a", "--vector", "[1]"], "exactly one of"),
        (["embed", "x", "--model", "a", "--embedder", "b"], "once, with --embedder"),
    ],
)
def test_contradictory_options_are_usage_errors(tmp_path, args, message):
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["--data", str(tmp_path / "db"), *args])
    assert result.exit_code == 2 and message in result.output
