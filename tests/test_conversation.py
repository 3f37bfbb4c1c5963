"""Conversation buffers: the token budget, turns spilling into summary memories (extracts, or
written by a generation model), context blocks within a budget, `vdb ask` drawing on an
agent's memory, and the `vdb memory` command line."""

import json

import pytest
from click.testing import CliRunner

import llm
import vdb
from tests.conftest import fixture_file
from tests.test_memory import Clock
from vdb import rag
from vdb.cli.main import main as cli
from vdb.memory import Memory
from vdb.results import Hit

CHAT = [
    ("user", "Hi, I am Alice and I live in Lisbon. I love green tea."),
    ("assistant", "Nice to meet you, Alice! Lisbon is a lovely city."),
    ("user", "My sister Carla visits next week. She is allergic to nuts."),
    ("assistant", "Noted: no nuts in anything I suggest while Carla is here."),
    ("user", "We want to cook something together on Friday evening."),
    ("assistant", "A vegetable curry would work well, and it is nut free."),
    ("user", "Great, and remind me to buy rice on Thursday."),
]


@pytest.fixture
def mem(tmp_path):
    with vdb.open(tmp_path / "db") as db:
        yield Memory(db, "assistant", buffer_tokens=64, clock=Clock())


def test_buffer_keeps_its_budget_and_spills_into_summaries(mem):
    summaries = []
    for role, text in CHAT:
        turn, made = mem.add_turn(role, text, "s1", user_id="alice")
        assert turn.tokens == mem.count_tokens(f"{role}: {text}")
        assert sum(t.tokens for t in mem.turns("s1", user_id="alice")) <= 64
        summaries += made
    kept = mem.turns("s1", user_id="alice")
    assert [t.seq for t in kept] == list(range(7 - len(kept), 7))
    assert [t.text for t in kept] == [text for _, text in CHAT[-len(kept) :]]
    assert summaries and all(s.kind == "summary" and s.session_id == "s1" for s in summaries)
    moved = [tid for s in summaries for tid in s.metadata["turns"]]
    assert len(moved) == 7 - len(kept) and all(s.metadata["extractive"] for s in summaries)
    for tid in moved:  # out of the buffer, not lost
        t = mem.get(tid)
        assert not t.in_buffer and t.summary in {s.id for s in summaries} and t.current
    facts = " ".join(s.text for s in summaries)
    assert "allergic to nuts" in facts and facts.startswith("user: ")
    # summaries are memories; past turns are searchable as turns
    assert mem.recall("what is Carla allergic to", k=1, user_id="alice")[0].memory.kind == "summary"
    assert "Carla" in mem.recall("Carla", kind="turn", user_id="alice", k=1)[0].memory.text
    assert mem.turns("other", user_id="alice") == [] and mem.turns("s1") == []  # scopes
    assert mem.stats()["turns"] == 7


def test_buffer_survives_a_reopen(tmp_path):
    with vdb.open(tmp_path / "db") as db:
        mem = Memory(db, "assistant")
        for role, text in CHAT[:3]:
            mem.add_turn(role, text, "s1")
    with vdb.open(tmp_path / "db") as db:
        mem = Memory(db, "assistant")
        assert [t.text for t in mem.turns("s1")] == [text for _, text in CHAT[:3]]
        assert mem.add_turn("user", "And one more.", "s1")[0].seq == 3


def test_a_generation_model_counts_and_summarizes(tmp_path):
    model = llm.load(fixture_file("models", "stories260K.gguf"))
    with vdb.open(tmp_path / "db") as db:
        mem = Memory(db, "assistant", generator=model, buffer_tokens=80)
        made = []
        for role, text in CHAT:
            turn, summaries = mem.add_turn(role, text, "s1")
            assert turn.tokens == len(model.tokenize(f"{role}: {text}"))
            made += summaries
        assert made and not any(s.metadata["extractive"] for s in made)
        messages = [{"role": "system", "content": mem_summary_prompt()}, {"role": "user"}]
        moved = [mem.get(i) for i in made[0].metadata["turns"]]
        messages[1]["content"] = "\n".join(f"{t.role}: {t.text}" for t in moved)
        expected = model.chat(messages, max_tokens=160, temperature=0.0).strip()
        assert made[0].text == expected


def mem_summary_prompt():
    from vdb.memory.conversation import SUMMARY_PROMPT

    return SUMMARY_PROMPT


def test_context_fits_its_budget(mem):
    for role, text in CHAT:
        mem.add_turn(role, text, "s1", user_id="alice")
    mem.remember("Alice prefers green tea to coffee", kind="preference", user_id="alice")
    mem.remember("Bob drinks coffee", user_id="bob")
    c = mem.context("what should I offer Alice to drink", 200, user_id="alice", session_id="s1")
    assert c.text.startswith("Memories:\n- (preference) Alice prefers green tea to coffee")
    assert "Bob" not in c.text  # another user's memory
    assert c.turns and c.turns[-1].text == CHAT[-1][1]  # the newest turn is in
    assert "Recent conversation:\nuser: " in c.text or "Recent conversation:\nassistant: " in c.text
    assert mem.count_tokens(c.text) <= c.tokens <= 200
    small = mem.context("what should I offer Alice to drink", 20, user_id="alice", session_id="s1")
    assert small.tokens <= 20 and len(small.memories) + len(small.turns) == 1
    only_memories = mem.context("Alice drink", 500, user_id="alice")
    assert not only_memories.turns and len(only_memories.memories) >= 2


def test_bad_turns(mem):
    for args in (("robot", "x", "s1"), ("user", " ", "s1"), ("user", "x", None), ("user", "x", "")):
        with pytest.raises(ValueError):
            mem.add_turn(*args)
    with pytest.raises(ValueError):
        mem.context("x", 0)
    with pytest.raises(ValueError):
        mem.turns(None)
    with pytest.raises(ValueError):
        Memory(None, buffer_tokens=0)
    assert mem.stats()["turns"] == 0


def test_ask_draws_on_memory(tmp_path):
    model = llm.load(fixture_file("models", "stories260K.gguf"))
    block = "Memories:\n- (preference) Alice prefers green tea"
    sources = rag.as_sources([Hit("t", 1.0, {"file": "tea.txt"}, "Green tea is green.")])
    used, messages = rag.prompt_messages(model, "What tea?", sources, 16, block)
    assert block in messages[1]["content"] and used == sources
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "tea.txt").write_text("Green tea is made from unoxidized leaves.\n")
    runner = CliRunner()
    data = ["--data", str(tmp_path / "db")]
    assert runner.invoke(cli, [*data, "ingest", str(notes), "-c", "notes"]).exit_code == 0
    add = [*data, "memory", "add", "Alice prefers green tea", "--agent", "helper", "-u", "alice"]
    assert runner.invoke(cli, add).exit_code == 0
    ask = [*data, "ask", "What is green tea made of?", "-c", "notes", "--agent", "helper"]
    out = runner.invoke(cli, [*ask, "-u", "alice", "-s", "chat1", "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.output)
    assert "Alice prefers green tea" in got["memory"] and got["extractive"]
    turns = runner.invoke(
        cli, [*data, "memory", "turns", "-a", "helper", "-u", "alice", "-s", "chat1"]
    )
    assert "[user]" in turns.output and "[assistant]" in turns.output
    out = runner.invoke(cli, [*data, "ask", "x", "-c", "notes", "-u", "alice"])
    assert out.exit_code == 2 and "--agent" in out.output


def test_memory_cli(tmp_path):
    runner = CliRunner()
    base = ["--data", str(tmp_path / "db"), "memory"]

    def run(*args):
        out = runner.invoke(cli, [*base, *args])
        assert out.exit_code == 0, out.output
        return out.output

    added = json.loads(run("add", "The printer is on floor 3", "--kind", "fact", "--json"))
    assert added["kind"] == "fact" and added["count"] == 1
    assert "reinforced" in run("add", "The printer is on floor 3.")
    assert "The printer is on floor 3" in run("recall", "where is the printer")
    new = json.loads(run("update", added["id"], "The printer moved to floor 4", "--json"))
    chain = json.loads(run("history", new["id"], "--json"))
    assert [m["text"] for m in chain] == [
        "The printer is on floor 3",
        "The printer moved to floor 4",
    ]
    assert "floor 4" in run("list") and "floor 3" not in run("list")
    assert "(closed)" in run("list", "--history")
    assert json.loads(run("stats", "--json"))["memories"] == 1
    run("turn", "user", "Where do I print?", "-s", "s1")
    assert "Where do I print?" in run("context", "printer", "-s", "s1")
    assert "closed 1 memory" in run("forget", new["id"])
    assert "deleted 2 memories" in run("forget", new["id"], "--hard")
    bad = runner.invoke(cli, [*base, "get", "nope"])
    assert bad.exit_code == 1 and "MemoryNotFoundError" in bad.output
    bad = runner.invoke(cli, [*base, "forget"])
    assert bad.exit_code == 2


def test_memory_cli_against_a_server(tmp_path):
    from tests.rpc import serving

    runner = CliRunner()
    with serving(tmp_path / "db") as (_, address):
        base = ["--server", address, "memory"]
        out = runner.invoke(cli, [*base, "add", "The printer is on floor 3", "-a", "office"])
        assert out.exit_code == 0, out.output
        out = runner.invoke(cli, [*base, "recall", "where is the printer", "-a", "office"])
        assert out.exit_code == 0 and "floor 3" in out.output
        out = runner.invoke(cli, [*base, "turn", "user", "hello", "-s", "s1", "-a", "office"])
        assert out.exit_code == 0, out.output
        model = str(fixture_file("models", "stories260K.gguf"))
        out = runner.invoke(cli, [*base, "turn", "user", "hi", "-s", "s1", "--model", model])
        assert out.exit_code == 2 and "--server" in out.output
