"""The GGUF fuzz test: a few hundred seeded mutants of the fixture models, vocabularies and
small synthetic models (llama F32, qwen2 Q8_0, bitnet TQ2_0, llama Q4_K, BERT F32), each
loaded and exercised (tokenize, generate, chat, embed) in a worker subprocess whose numba
kernels are the bounds-checked builds, under an address-space limit and a timeout. Each must
run or fail with an error of the documented LlmError family: a crash, an IndexError from a
kernel, any other exception, or more than 10 s of work is a failure naming the mutant.

The longer run: python -m tests.fuzz.fuzz_gguf --count 3000 --seed 1 (see there).
"""

import collections
import io
import time

from tests.fuzz.fuzz_gguf import fuzz, make_bases, report, schedule
from tests.fuzz.runner import Runner

COUNT = 300
SEED = 19


def test_mutants_fail_only_with_documented_errors(tmp_path):
    start = time.monotonic()
    with Runner(slow_seconds=10.0) as runner:
        bases = make_bases(tmp_path)
        results = list(fuzz(bases, schedule(bases, COUNT), SEED, runner, tmp_path))
        out = io.StringIO()
        failures = report(results, time.monotonic() - start, runner, out=out)
    print(out.getvalue())
    assert not failures, out.getvalue()
    outcomes = collections.Counter(r["outcome"] for *_, r in results)
    classes = {r["class"] for *_, r in results}
    assert len(results) >= COUNT
    # the mutants reach every check and, often enough, the kernels
    assert outcomes["ok"] >= 0.15 * len(results), outcomes
    expected = {"MalformedModelError", "TruncatedModelError", "VocabularyError"}
    assert expected | {"UnsupportedModelError"} <= classes, classes


def test_the_runner_catches_crashes_hangs_and_out_of_bounds_indexes():
    with Runner(timeout=3.0) as runner:
        crash = runner.run({"kind": "abort", "path": ""})
        hang = runner.run({"kind": "sleep", "path": "60"})
        assert (crash["outcome"], crash["class"]) == ("crash", "SIGABRT")
        assert hang["outcome"] == "hang" and runner.restarts == 2
    with Runner(timeout=120.0) as runner:
        oob = runner.run({"kind": "out-of-bounds", "path": ""})
    assert (oob["outcome"], oob["class"]) == ("undocumented", "builtins.IndexError"), oob
