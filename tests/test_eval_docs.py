"""The documentation development set (bench/data/docs_questions.json) and the answer check of
bench/eval_docs.py; the benchmark itself fetches sdists and is run by hand."""

import json

import pytest

from bench import eval_docs


def test_questions_are_well_formed_and_cover_both_sets():
    questions = eval_docs.load_questions(eval_docs.QUESTIONS)
    per_set = {name: [q for q in questions if q["set"] == name] for name in eval_docs.SETS}
    assert all(len(qs) >= 24 for qs in per_set.values())
    assert len({q["question"] for q in questions}) == len(questions)
    for qs in per_set.values():  # spread over many files
        assert len({g for q in qs for g in eval_docs.gold_files(q)}) >= 15


def test_malformed_question_is_refused(tmp_path):
    path = tmp_path / "q.json"
    path.write_text(json.dumps([{"set": "flask", "question": "q?", "answers": [], "file": "a"}]))
    with pytest.raises(SystemExit, match="question 0 is malformed"):
        eval_docs.load_questions(path)


@pytest.mark.parametrize(
    ("text", "answers", "found"),
    [
        ("Defaults to `600`.", ["600"], True),
        ("Defaults to 6000.", ["600"], False),  # not inside a longer number
        ("accepts positive floating point values", ["float"], False),
        ("a **shallow**\n  copy of the state", ["shallow copy"], True),
        ("Set X-Forwarded-For and X-Forwarded-Proto", ["X-Forwarded-"], True),
        ("use ``flask run --extra-files a:b``", ["--extra-files"], True),
        ("nothing here", ["AirPlay Receiver", "airplay"], False),
        ("Search for AIRPLAY receiver", ["AirPlay Receiver", "airplay"], True),
    ],
)
def test_contains(text, answers, found):
    assert eval_docs.contains(text, answers) is found
