"""Agent memory: scopes, ranking by relevance, recency and importance, updates that keep
history, soft and hard forgetting, near-duplicates, time-to-live, size limits, bad input,
and acknowledged memories surviving kill -9."""

import signal
import subprocess
import sys
import textwrap

import pytest

import vdb
from tests.conftest import ROOT
from vdb.memory import Memory, MemoryNotFoundError


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def mem(tmp_path, clock):
    with vdb.open(tmp_path / "db") as db:
        yield Memory(db, "assistant", clock=clock)


def texts(recalled):
    return [r.memory.text for r in recalled]


def test_scopes_keep_users_and_agents_apart(tmp_path, clock):
    with vdb.open(tmp_path / "db") as db:
        mem = Memory(db, "assistant", clock=clock)
        other = Memory(db, "planner", clock=clock)
        mem.remember("Alice is vegetarian", user_id="alice")
        mem.remember("Bob is vegetarian", user_id="bob")
        mem.remember("The office closes at six", kind="fact")
        mem.remember("Alice's flight leaves Monday", kind="event", user_id="alice", session_id="s1")
        other.remember("Alice likes meat", user_id="alice")
        assert texts(mem.recall("diet", user_id="alice", k=5)) == [
            "Alice is vegetarian",
            "Alice's flight leaves Monday",
        ]
        assert texts(mem.recall("diet", user_id="bob")) == ["Bob is vegetarian"]
        assert texts(mem.recall("diet")) == ["The office closes at six"]  # the agent's own
        assert texts(mem.recall("flight", user_id="alice", session_id="s1")) == [
            "Alice's flight leaves Monday"
        ]
        assert len(mem.recall("diet", all_users=True, k=10)) == 4
        assert texts(other.recall("diet", user_id="alice")) == ["Alice likes meat"]
        assert [m.text for m in mem.list(user_id="bob")] == ["Bob is vegetarian"]
        assert mem.stats()["users"] == ["alice", "bob"]


def test_new_agents_embed_in_q8_0_and_existing_ones_keep_their_model(tmp_path):
    with vdb.open(tmp_path / "db") as db:
        assert Memory(db, "fresh").col.config.embedder == "all-MiniLM-L6-v2:q8_0"
        Memory(db, "older", embedder="all-MiniLM-L6-v2")
        assert Memory(db, "older").col.config.embedder == "all-MiniLM-L6-v2"


def test_ranking_weighs_recency_and_importance(mem, clock):
    old = mem.remember("The user likes jazz music", kind="preference", importance=0.5)
    clock.now += 30 * 86400  # a month later
    new = mem.remember("The user likes rock music", kind="preference", importance=0.5)
    top = mem.recall("what music does the user like", k=2)
    assert [r.memory.id for r in top] == [new.id, old.id]  # equal relevance: fresher first
    assert top[0].recency == pytest.approx(1.0) and top[1].recency < 0.1
    assert all(0 <= r.relevance <= 1 and r.score > 0 for r in top)
    vital = mem.remember("The user likes classical music", importance=1.0, kind="preference")
    assert mem.recall("what music does the user like", k=1)[0].memory.id == vital.id
    # recall refreshed the last access of what it returned
    assert mem.get(vital.id).last_access == clock.now
    # relevance stays first: an important memory about something else does not win
    mem.remember("The user's passport expires in May", importance=1.0)
    assert "music" in mem.recall("favourite music genre", k=1)[0].memory.text


def test_updates_keep_history(mem, clock):
    first = mem.remember("Carol lives in Paris", user_id="carol")
    clock.now += 100
    second = mem.update(first.id, "Carol lives in Berlin")
    clock.now += 100
    third = mem.update(second.id, "Carol lives in Rome", importance=0.9)
    assert texts(mem.recall("where does Carol live", user_id="carol", k=5)) == [
        "Carol lives in Rome"
    ]
    chain = mem.history(second.id)
    assert [m.text for m in chain] == [
        "Carol lives in Paris",
        "Carol lives in Berlin",
        "Carol lives in Rome",
    ]
    assert [m.current for m in chain] == [False, False, True]
    assert chain[0].valid_to == chain[1].valid_from and chain[0].next == second.id
    assert chain[2].previous == second.id and third.importance == 0.9
    past = mem.recall("where does Carol live", user_id="carol", k=5, history=True)
    assert len(past) == 3
    with pytest.raises(ValueError, match="not current"):
        mem.update(first.id, "Carol lives in Oslo")


def test_forget_soft_and_hard(mem):
    a = mem.remember("Dan's password hint is his dog's name", user_id="dan")
    b = mem.update(a.id, "Dan's password hint is his cat's name")
    assert mem.forget(b.id) == 1
    assert mem.recall("password hint", user_id="dan") == []
    assert [m.current for m in mem.history(a.id)] == [False, False]  # still on disk
    assert mem.forget(memory_id=a.id, hard=True) == 2
    assert mem.col.get([a.id, b.id]) == []
    with pytest.raises(MemoryNotFoundError):
        mem.history(a.id)
    mem.remember("Eve likes tennis", user_id="eve", kind="preference")
    mem.remember("Eve met Frank", user_id="eve", kind="event")
    assert mem.forget(filter={"kind": "event"}) == 1
    assert [m.text for m in mem.list(user_id="eve")] == ["Eve likes tennis"]


def test_near_duplicates_reinforce(mem, clock):
    a = mem.remember("Gina is allergic to penicillin", importance=0.4, user_id="gina")
    clock.now += 50
    b = mem.remember("Gina is allergic to penicillin.", importance=0.8, user_id="gina")
    assert b.id == a.id and b.count == 2 and b.importance == pytest.approx(0.6)
    assert b.last_access == clock.now
    other = mem.remember("Gina is allergic to penicillin", user_id="hank")  # another scope
    assert other.id != a.id
    assert len(mem.list(all_users=True)) == 2


def test_ttl_and_size_limit(tmp_path, clock):
    with vdb.open(tmp_path / "db") as db:
        mem = Memory(db, "short", clock=clock, max_memories=3)
        mem.remember("The meeting room is B2", ttl=60)
        clock.now += 61
        assert mem.recall("meeting room") == [] and mem.stats()["expired"] == 1
        for i, imp in enumerate((0.9, 0.1, 0.8, 0.7)):
            clock.now += 10
            mem.remember(
                f"Note {i}: the code word is {['alpha', 'bravo', 'charlie', 'delta'][i]}",
                importance=imp,
            )
        kept = sorted(m.text for m in mem.list())
        assert len(kept) == 3 and not any("bravo" in t for t in kept)  # the lowest value went


def test_bad_input(mem):
    for kwargs in (
        {"text": ""},
        {"text": "x", "kind": "rumour"},
        {"text": "x", "importance": 2},
        {"text": "x", "importance": True},
        {"text": "x", "ttl": 0},
        {"text": "x", "user_id": ""},
    ):
        with pytest.raises(ValueError):
            mem.remember(**kwargs)
    with pytest.raises(ValueError):
        mem.recall("x", k=0)
    with pytest.raises(ValueError):
        mem.recall("   ")
    with pytest.raises(KeyError):
        mem.get("nope")
    with pytest.raises(ValueError):
        mem.forget()
    with pytest.raises(ValueError):
        Memory(None, weights={"relevance": -1})  # checked before the database is used
    with pytest.raises(ValueError):
        Memory(None, half_life=0)


def test_bad_input_is_caught_before_anything_is_written(mem):
    first = mem.remember("The gate code is 1234")
    before = mem.stats()
    with pytest.raises(ValueError):  # not JSON: caught before the first batch is written
        mem.remember_many(["first", {"text": "second", "metadata": {"x": {1, 2}}}], batch_size=1)
    with pytest.raises(ValueError):
        mem.update(first.id, "The gate code is 4321", metadata=["not", "a", "dict"])
    assert mem.stats() == before
    with pytest.raises(ValueError):
        mem.recall(["two", "queries"])
    with pytest.raises(ValueError):
        mem.recall([[0.1] * 384, [0.2] * 384])
    with pytest.raises(ValueError):
        mem.list(kind="rumour")
    with pytest.raises(ValueError):
        mem.recall("gate", user_id=5)
    with pytest.raises(ValueError) as info:
        mem.forget(filter={"$bad": 1})
    assert "$and[" not in str(info.value)
    with pytest.raises(ValueError) as info:
        mem.recall("gate", filter={"n": {"$regex": "x"}})
    assert "$and[" not in str(info.value)


REMEMBER = textwrap.dedent(
    """
    import sys
    import vdb
    from vdb.memory import Memory

    with vdb.open(sys.argv[1]) as db:
        mem = Memory(db, "durable")
        for i in range(1000):
            m = mem.remember(f"Fact number {i} about topic {i * 7919 % 1000}", user_id="u")
            print(m.id, flush=True)
    """
)


def test_acknowledged_memories_survive_kill_9(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", REMEMBER, str(tmp_path / "db")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    acked = []
    for line in proc.stdout:
        acked.append(line.strip())
        if len(acked) == 15:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    proc.stdout.close()
    with vdb.open(tmp_path / "db") as db:
        mem = Memory(db, "durable")
        for pid in acked:
            assert mem.get(pid).user_id == "u"


def distractors(n: int) -> list[str]:
    people = ["Ann", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun"]
    things = ["bicycle", "laptop", "umbrella", "guitar", "camera", "notebook", "kettle", "lamp"]
    places = ["garage", "attic", "office", "kitchen", "car", "library", "garden", "basement"]
    verbs = ["left", "repaired", "painted", "sold", "borrowed", "found", "cleaned", "moved"]
    return [
        f"{people[i % 10]} {verbs[i // 10 % 8]} the {things[i // 80 % 8]} in the "
        f"{places[i // 640 % 8]} on day {i}"
        for i in range(n)
    ]


def test_planted_facts_among_thousands_of_distractors(mem):
    records = mem.remember_many(distractors(3000), batch_size=500)
    assert len({r.id for r in records}) > 2500  # only near-identical sentences merged
    planted = {
        "The wifi password at the beach house is seashell42": "what is the wifi password",
        "Maria is allergic to penicillin": "which medicine must Maria avoid",
        "The team standup moved to 9:30 on Tuesdays": "when is the standup meeting",
    }
    ids = {text: mem.remember(text).id for text in planted}
    for text, query in planted.items():
        assert mem.recall(query, k=3)[0].memory.id == ids[text]


def test_remember_many_batches_dedups_and_checks_first(mem, clock):
    got = mem.remember_many(
        [
            "Paris is the capital of France",
            {"text": "Paris is the capital of France.", "importance": 0.9},
            {"text": "Bob plays the cello", "user_id": "bob", "kind": "preference"},
        ],
        session_id="s1",
    )
    assert got[0].id == got[1].id and got[1].count == 2 and got[1].importance == 0.7
    assert got[2].user_id == "bob" and got[2].session_id == "s1" and got[2].kind == "preference"
    assert len(mem.list(all_users=True)) == 2
    again = mem.remember_many(["Paris is the capital of France"])  # against what is stored
    assert again[0].id == got[0].id and again[0].count == 3
    before = mem.stats()
    for bad in (["ok", {"text": "x", "kind": "rumour"}], ["ok", 5], [{"text": "x", "colour": 1}]):
        with pytest.raises(ValueError):
            mem.remember_many(bad)
    with pytest.raises(ValueError):
        mem.remember_many(["a", "b"], vectors=[[0.0] * 384])
    assert mem.stats() == before  # nothing half-written
    vec = mem.col.embedder.embed(["Lisbon is the capital of Portugal"])
    r = mem.remember_many(["Lisbon is the capital of Portugal"], vectors=vec)[0]
    assert mem.recall(vec[0], k=1)[0].memory.id == r.id  # a vector query works too


def test_access_refreshes_are_batched_but_seen_at_once(tmp_path, clock):
    with vdb.open(tmp_path / "db") as db:
        mem = Memory(db, "assistant", clock=clock, flush_interval=60)
        a = mem.remember("The boiler was serviced in March")
        clock.now += 10
        mem.recall("boiler service", k=1)
        assert mem.get(a.id).last_access == clock.now  # seen before it is written
        other = Memory(db, "assistant", clock=clock)  # the same agent: the same refreshes
        assert other.get(a.id).last_access == clock.now
        assert mem.col.get([a.id])[0].payload["last_access"] == clock.now - 10  # not yet
        clock.now += 61
        mem.recall("boiler service", k=1)  # the pending refresh is old enough: written
        assert mem.col.get([a.id])[0].payload["last_access"] == clock.now
        clock.now += 5
        mem.recall("boiler service", k=1)
        mem.remember("The roof was checked in May")  # a write takes pending refreshes along
        assert mem.col.get([a.id])[0].payload["last_access"] == clock.now
        clock.now += 5
        mem.recall("boiler service", k=1)
        assert mem.flush() == 1
    with vdb.open(tmp_path / "db") as db:
        assert Memory(db, "assistant", clock=clock).get(a.id).last_access == clock.now


def test_recall_by_text_fuses_keyword_relevance(mem):
    facts = [
        f"Ticket {code} is about a printer on floor {i}"
        for i, code in enumerate(["QX-7781", "ZB-1204", "LM-5530", "RT-9902", "HG-3317"])
    ]
    made = mem.remember_many(facts)
    assert mem.col.config.text is not None
    top = mem.recall("what is ticket LM-5530 about", k=1)
    assert top[0].memory.id == made[2].id and top[0].relevance <= 1
    by_vector = mem.recall(mem.col.embedder.embed(["printer ticket"])[0], k=5)
    assert len(by_vector) == 5 and all(0 <= r.relevance <= 1 for r in by_vector)


def test_an_agent_without_a_keyword_index_gets_one(tmp_path):
    with vdb.open(tmp_path / "db") as db:
        from vdb.database import MEMORY_EMBEDDER

        db.create_collection("memory.old", embedder=MEMORY_EMBEDDER)
        mem = Memory(db, "old")
        assert mem.col.config.text is not None
        mem.remember("The code word is PELICAN-42")
        assert texts(mem.recall("PELICAN-42", k=1)) == ["The code word is PELICAN-42"]
