"""The examples in docstrings run as written."""

import doctest

import pytest

import vdb
import vdb.collection
import vdb.database
import vdb.rpc.server
import vdb.text.bm25


@pytest.mark.parametrize(
    "module", [vdb, vdb.collection, vdb.database, vdb.rpc.server, vdb.text.bm25]
)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
