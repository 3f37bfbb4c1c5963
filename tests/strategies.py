"""Hypothesis strategies for payloads and filters over a small shared vocabulary."""

from hypothesis import strategies as st

KEYS = ["a", "b", "c", "n.x"]
WORDS = ["red", "green", "blue", ""]

scalars = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.5, 2.0]),
    st.sampled_from(WORDS),
    st.booleans(),
    st.none(),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3))
payloads = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "a": values,
            "b": values,
            "c": values,
            "n": st.one_of(
                st.fixed_dictionaries({}, optional={"x": values}),
                st.lists(st.fixed_dictionaries({}, optional={"x": scalars}), max_size=2),
            ),
        },
    ),
)

range_operand = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 1.5]), st.sampled_from(WORDS))
field_cond = st.one_of(
    scalars,
    st.builds(lambda op, v: {op: v}, st.sampled_from(["$eq", "$ne"]), scalars),
    st.builds(
        lambda op, v: {op: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), range_operand
    ),
    st.builds(
        lambda op, v: {op: v}, st.sampled_from(["$in", "$nin"]), st.lists(scalars, max_size=3)
    ),
    st.builds(lambda v: {"$exists": v}, st.booleans()),
)
leaf = st.dictionaries(st.sampled_from(KEYS), field_cond, min_size=1, max_size=2)
filters = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda fs: {"$and": fs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda fs: {"$or": fs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda f: {"$not": f}, inner),
    ),
    max_leaves=6,
)
