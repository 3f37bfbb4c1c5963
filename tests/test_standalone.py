"""The tests stand alone: they read files of the repository only, and a run ends by counting
its skips by reason."""

import os
import re
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import FIXTURES, ROOT, fixture_file

# A path outside the checkout: the parent of the repository, or a sibling shared/ directory.
OUTSIDE = re.compile(r"ROOT\.parent\b|[\"']shared[\"']|\.\./shared")
# The script that writes tests/fixtures/ from its sources is the one that may name them.
SOURCES = FIXTURES / "make_fixtures.py"


def test_no_test_reads_a_path_outside_the_repository():
    offending = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path != SOURCES
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not offending, "\n".join(offending)


def test_a_missing_fixture_is_an_error_naming_it():
    assert fixture_file("models", "stories260K.gguf").is_file()
    with pytest.raises(FileNotFoundError, match=r"tests/fixtures/models/absent\.gguf"):
        fixture_file("models", "absent.gguf")


def test_the_run_ends_with_one_line_per_skip_reason(tmp_path):
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_terminal_summary  # noqa: F401\n", encoding="utf-8"
    )
    (tmp_path / "test_some.py").write_text(
        textwrap.dedent(
            """
            import pytest

            from tests.conftest import needs_peer

            @needs_peer("no_module_of_this_name", "no-package-of-this-name")
            @pytest.mark.parametrize("i", [1, 2])
            def test_compared(i):
                pass

            def test_elsewhere():
                pytest.skip("not on this platform")

            def test_runs():
                pass
            """
        ),
        encoding="utf-8",
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-3:-1] == [
        "2 tests skipped: optional peer no-package-of-this-name is not installed",
        "1 test skipped: not on this platform",
    ], done.stdout
    assert "1 passed, 3 skipped" in lines[-1]
