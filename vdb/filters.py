"""Payload filters: a Mongo-style language compiled to a boolean mask over internal ids.

    {"genre": "drama"}                                   equality (shorthand for $eq)
    {"year": {"$gte": 1990, "$lt": 2000}}                several operators on one key: all hold
    {"$or": [{"tags": {"$in": ["a", "b"]}}, {"meta.lang": "en"}]}
    {"$not": {"draft": True}}

Operators: $eq $ne $gt $gte $lt $lte $in $nin $exists on keys; $and $or $not combine filters.
Dotted keys reach into nested objects. A key holding a list matches when any element matches
($eq, $in, ranges), and $ne / $nin hold when no element matches. As in MongoDB, $ne and $nin
also match points without the key, and {"k": None} matches null or a missing key. Ranges compare
numbers with numbers and strings with strings (by code point); booleans are not numbers.

The PayloadIndex keeps one set of dense columns per key path (number, string code, boolean,
null, present) plus (row, value) pairs for list elements, so a filter is evaluated with numpy
over columns, never by decoding payloads.
"""

import math

import numpy as np

from vdb.errors import FilterError, shown

FIELD_OPS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists")
RANGE_OPS = ("$gt", "$gte", "$lt", "$lte")
LOGIC_OPS = ("$and", "$or", "$not")
_NEGATED = {"$ne": "$eq", "$nin": "$in"}


# ---------------------------------------------------------------- parsing


MAX_DEPTH = 64  # nesting of $and / $or / $not
MAX_TERMS = 100_000  # conditions plus the values listed in $in / $nin, in one filter


def parse(flt):
    """Validate a filter and return its tree: ("and"|"or", [nodes]), ("not", node), or
    ("cmp", path, op, operand). None and {} match everything (returns None). Filters nested
    deeper than MAX_DEPTH or larger than MAX_TERMS raise FilterError while parsing."""
    if flt is None:
        return None
    return _parse(flt, "filter", _Budget())


class _Budget:
    """How much of a filter has been parsed: raises once it passes the limits."""

    def __init__(self):
        self.terms = 0

    def spend(self, n: int) -> None:
        self.terms += n
        if self.terms > MAX_TERMS:
            raise FilterError(f"the filter has more than {MAX_TERMS:,} conditions and values")


def _parse(flt, where, budget, depth=0):
    if depth > MAX_DEPTH:
        raise FilterError(f"the filter nests $and / $or / $not more than {MAX_DEPTH} deep")
    if not isinstance(flt, dict):
        raise FilterError(f"{where} must be an object (dict), got {_show(flt)}")
    if not flt:
        return ("and", [])
    parts = []
    for key, value in flt.items():
        if not isinstance(key, str):
            raise FilterError(f"filter keys must be strings, got {_show(key)} in {where}")
        if key in LOGIC_OPS:
            parts.append(_parse_logic(key, value, budget, depth + 1))
        elif key.startswith("$"):
            raise FilterError(
                f"unknown operator {shown(key)} at the top of {where}; "
                f"expected a key or one of {', '.join(LOGIC_OPS)}"
            )
        else:
            parts.extend(_parse_field(key, value, budget))
    return parts[0] if len(parts) == 1 else ("and", parts)


def _parse_logic(op, value, budget, depth):
    budget.spend(1)
    if op == "$not":
        if not isinstance(value, dict) or not value:
            raise FilterError(f"$not takes a non-empty filter object, got {_show(value)}")
        return ("not", _parse(value, "$not", budget, depth))
    if not isinstance(value, list) or not value:
        raise FilterError(f"{op} takes a non-empty list of filters, got {_show(value)}")
    budget.spend(len(value))
    return (op[1:], [_parse(item, f"{op}[{i}]", budget, depth) for i, item in enumerate(value)])


def _parse_field(path, value, budget):
    budget.spend(1)
    if not path or any(not seg for seg in path.split(".")):
        raise FilterError(f"invalid key {shown(path)}: dotted keys need non-empty segments")
    if not isinstance(value, dict):
        _check_scalar(path, "$eq", value)
        return [("cmp", path, "$eq", value)]
    if not value:
        raise FilterError(f"key {shown(path)} has an empty operator object")
    out = []
    for op, operand in value.items():
        if op not in FIELD_OPS:
            if isinstance(op, str) and not op.startswith("$"):
                raise FilterError(
                    f"key {shown(path)} is compared with an object; use dotted keys such as "
                    f"{shown(f'{path}.{op}')} to reach into nested payloads"
                )
            raise FilterError(
                f"unknown operator {_show(op)} for key {shown(path)}; expected one of "
                f"{', '.join(FIELD_OPS)}"
            )
        if op in ("$in", "$nin") and isinstance(operand, list | tuple):
            budget.spend(len(operand))
        _check_operand(path, op, operand)
        out.append(("cmp", path, op, operand))
    return out


def _check_scalar(path, op, value):
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise FilterError(f"{op} on {shown(path)} compares with {value!r}, which is not finite")
        return
    raise FilterError(
        f"{op} on {shown(path)} takes a string, number, boolean or null, got {_show(value)}"
        + ("; use $in for a list of values" if isinstance(value, list | tuple) else "")
    )


def _check_operand(path, op, operand):
    if op in ("$eq", "$ne"):
        _check_scalar(path, op, operand)
    elif op in RANGE_OPS:
        if isinstance(operand, bool) or not isinstance(operand, int | float | str):
            raise FilterError(
                f"{op} on {shown(path)} takes a number or a string, got {_show(operand)}"
            )
        _check_scalar(path, op, operand)
    elif op in ("$in", "$nin"):
        if not isinstance(operand, list | tuple):
            raise FilterError(f"{op} on {shown(path)} takes a list of values, got {_show(operand)}")
        for item in operand:
            _check_scalar(path, op, item)
    elif op == "$exists":
        if not isinstance(operand, bool):
            raise FilterError(f"$exists on {shown(path)} takes true or false, got {_show(operand)}")


def _show(value) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} ({type(value).__name__})"


# ---------------------------------------------------------------- columns


class _Grow:
    """A growable 1-D numpy array."""

    def __init__(self, dtype, fill):
        self.data = np.full(16, fill, dtype=dtype)
        self.fill = fill
        self.n = 0

    def append(self, value) -> int:
        if self.n == len(self.data):
            data = np.full(2 * len(self.data), self.fill, dtype=self.data.dtype)
            data[: self.n] = self.data
            self.data = data
        self.data[self.n] = value
        self.n += 1
        return self.n - 1

    def view(self) -> np.ndarray:
        return self.data[: self.n]


class _Field:
    """Columns of one key path. Dense per-row scalars, plus pairs for list elements."""

    def __init__(self, capacity: int):
        self.present = np.zeros(capacity, np.bool_)  # key exists (any type)
        self.num = np.full(capacity, np.nan)  # float64 number or NaN
        self.sid = np.full(capacity, -1, np.int32)  # string code or -1
        self.bval = np.full(capacity, -1, np.int8)  # 0/1 boolean or -1
        self.null = np.zeros(capacity, np.bool_)  # explicit null
        self.p_row = _Grow(np.int64, -1)  # list elements: row of each pair
        self.p_num = _Grow(np.float64, np.nan)
        self.p_sid = _Grow(np.int32, -1)
        self.p_bval = _Grow(np.int8, -1)
        self.p_null = _Grow(np.bool_, False)
        self.pairs_of: dict[int, list[int]] = {}  # row -> its pair positions
        self.vocab: dict[str, int] = {}
        self.words: list[str] = []
        self._words_arr = None

    def grow(self, capacity: int) -> None:
        old = len(self.present)
        for name, fill in (
            ("present", False),
            ("num", np.nan),
            ("sid", -1),
            ("bval", -1),
            ("null", False),
        ):
            col = getattr(self, name)
            new = np.full(capacity, fill, dtype=col.dtype)
            new[:old] = col
            setattr(self, name, new)

    def code(self, text: str, add: bool) -> int:
        code = self.vocab.get(text, -1)
        if code < 0 and add:
            code = len(self.words)
            self.vocab[text] = code
            self.words.append(text)
            self._words_arr = None
        return code

    def words_array(self) -> np.ndarray:
        if self._words_arr is None:
            self._words_arr = np.array(self.words, dtype=object)
        return self._words_arr

    def set_scalar(self, row: int, value) -> None:
        self.present[row] = True
        if value is None:
            self.null[row] = True
        elif isinstance(value, bool):
            self.bval[row] = int(value)
        elif isinstance(value, int | float):
            self.num[row] = float(value)
        elif isinstance(value, str):
            self.sid[row] = self.code(value, add=True)

    def set_scalars(self, rows: list, values: list) -> None:
        """set_scalar(row, value) for each pair, of distinct rows and values of type str,
        int, float, bool or None, one numpy write per column."""
        num_rows, nums, sid_rows, sids, bool_rows, bools, nulls = [], [], [], [], [], [], []
        for row, value in zip(rows, values, strict=True):
            kind = type(value)
            if kind is str:
                sid_rows.append(row)
                sids.append(self.code(value, add=True))
            elif kind is int or kind is float:
                num_rows.append(row)
                nums.append(float(value))
            elif kind is bool:
                bool_rows.append(row)
                bools.append(value)
            else:
                nulls.append(row)
        self.present[rows] = True
        if num_rows:
            self.num[num_rows] = np.array(nums, dtype=np.float64)
        if sid_rows:
            self.sid[sid_rows] = np.array(sids, dtype=np.int32)
        if bool_rows:
            self.bval[bool_rows] = np.array(bools, dtype=np.int8)
        if nulls:
            self.null[nulls] = True

    def add_element(self, row: int, value) -> None:
        self.present[row] = True
        pos = self.p_row.append(row)
        self.p_num.append(np.nan)
        self.p_sid.append(-1)
        self.p_bval.append(-1)
        self.p_null.append(False)
        if value is None:
            self.p_null.data[pos] = True
        elif isinstance(value, bool):
            self.p_bval.data[pos] = int(value)
        elif isinstance(value, int | float):
            self.p_num.data[pos] = float(value)
        elif isinstance(value, str):
            self.p_sid.data[pos] = self.code(value, add=True)
        self.pairs_of.setdefault(row, []).append(pos)

    def clear(self, rows: list) -> None:
        """Forget the values of distinct rows: scalars and list elements."""
        self.present[rows] = False
        self.num[rows] = np.nan
        self.sid[rows] = -1
        self.bval[rows] = -1
        self.null[rows] = False
        if self.pairs_of:
            for row in rows:
                for pos in self.pairs_of.pop(row, ()):
                    self.p_row.data[pos] = -1

    # -- evaluation: each returns a bool mask of length n, True where some value matches

    def match(self, op: str, operand, n: int) -> np.ndarray:
        if op == "$exists":
            return self.present[:n].copy() if operand else ~self.present[:n]
        if op == "$in":
            return self._match_in(operand, n)
        scalar = self._scalar_match(op, operand, n)
        if self.p_row.n:
            rows = self.p_row.view()
            hit = self._pair_match(op, operand) & (rows >= 0) & (rows < n)
            scalar[rows[hit]] = True
        if op == "$eq" and operand is None:
            scalar |= ~self.present[:n]
        return scalar

    def _match_in(self, values, n: int) -> np.ndarray:
        """$in as one pass per column (np.isin), whatever the number of values."""
        nums = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        codes = [c for v in values if isinstance(v, str) and (c := self.code(v, add=False)) >= 0]
        bools = [int(v) for v in values if isinstance(v, bool)]
        null = any(v is None for v in values)

        def hits(num, sid, bval, nul):
            out = np.isin(num, nums) if nums else np.zeros(len(num), np.bool_)
            if codes:
                out |= np.isin(sid, codes)
            if bools:
                out |= np.isin(bval, bools)
            if null:
                out |= nul
            return out

        scalar = hits(self.num[:n], self.sid[:n], self.bval[:n], self.null[:n])
        if self.p_row.n:
            rows = self.p_row.view()
            pairs = hits(
                self.p_num.view(), self.p_sid.view(), self.p_bval.view(), self.p_null.view()
            )
            scalar[rows[pairs & (rows >= 0) & (rows < n)]] = True
        if null:
            scalar |= ~self.present[:n]
        return scalar

    def _scalar_match(self, op, v, n):
        return _compare(self, op, v, self.num[:n], self.sid[:n], self.bval[:n], self.null[:n])

    def _pair_match(self, op, v):
        return _compare(
            self,
            op,
            v,
            self.p_num.view(),
            self.p_sid.view(),
            self.p_bval.view(),
            self.p_null.view(),
        )


def _compare(field, op, v, num, sid, bval, null):
    if v is None:
        return null.copy() if op == "$eq" else np.zeros(len(null), np.bool_)
    if isinstance(v, bool):
        return bval == int(v) if op == "$eq" else np.zeros(len(bval), np.bool_)
    if isinstance(v, int | float):
        v = float(v)
        with np.errstate(invalid="ignore"):
            if op == "$eq":
                return num == v
            if op == "$gt":
                return num > v
            if op == "$gte":
                return num >= v
            if op == "$lt":
                return num < v
            return num <= v
    if op == "$eq":
        code = field.code(v, add=False)
        return sid == code if code >= 0 else np.zeros(len(sid), np.bool_)
    words = field.words_array()
    if not len(words):
        return np.zeros(len(sid), np.bool_)
    if op == "$gt":
        ok = words > v
    elif op == "$gte":
        ok = words >= v
    elif op == "$lt":
        ok = words < v
    else:
        ok = words <= v
    table = np.append(ok.astype(np.bool_), False)  # index -1 (no string) -> False
    return table[sid]


class PayloadIndex:
    """Columnar index of every payload key path, rows addressed by internal id."""

    def __init__(self, capacity: int = 0):
        self.capacity = capacity
        self.fields: dict[str, _Field] = {}
        self.paths_of: dict[int, list[str]] = {}  # row -> key paths it set

    def reserve(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        for field in self.fields.values():
            field.grow(capacity)
        self.capacity = capacity

    def _field(self, path: str) -> _Field:
        field = self.fields.get(path)
        if field is None:
            field = self.fields[path] = _Field(self.capacity)
        return field

    def set(self, rows, payloads) -> None:
        """Index payloads (dict or None) at rows, replacing what those rows held."""
        rows = _int_list(rows)
        if len(set(rows)) < len(rows):  # a later payload of a row replaces an earlier one
            for row, payload in zip(rows, payloads, strict=True):
                self.clear([row])
                self._add_payload(row, payload)
            return
        self.clear(rows)
        if not self._set_flat(rows, payloads):
            for row, payload in zip(rows, payloads, strict=True):
                self._add_payload(row, payload)

    def _add_payload(self, row: int, payload) -> None:
        """Index one payload at a cleared row, key by key."""
        if payload:
            paths = []
            _index(self, row, payload, "", paths, in_list=False)
            self.paths_of[row] = paths

    def _set_flat(self, rows: list, payloads) -> bool:
        """Index payloads at distinct cleared rows if every one is flat: a dict (or None)
        whose keys are plain names (str, not empty, no dot) holding a str, int, float, bool
        or None. The values are gathered per key, then written column by column; fields are
        created and strings coded in the order a row-by-row pass would meet them. False,
        with nothing written, when some payload is not flat."""
        columns: dict[str, tuple[list, list]] = {}  # key -> (rows, values)
        for row, payload in zip(rows, payloads, strict=True):
            if not payload:
                continue
            if type(payload) is not dict:
                return False
            for key, value in payload.items():
                column = columns.get(key)
                if column is None:
                    if type(key) is not str or not key or "." in key:
                        return False
                    column = columns[key] = ([], [])
                kind = type(value)
                if not (kind is str or kind is int or kind is float or kind is bool):
                    if value is not None:
                        return False
                column[0].append(row)
                column[1].append(value)
        for row, payload in zip(rows, payloads, strict=True):
            if payload:
                self.paths_of[row] = list(payload)
        for key, (key_rows, values) in columns.items():
            self._field(key).set_scalars(key_rows, values)
        return True

    def clear(self, rows) -> None:
        """Forget the payloads of rows: one write per column of each key path they set."""
        by_path: dict[str, list[int]] = {}
        for row in _int_list(rows):
            for path in self.paths_of.pop(row, ()):
                cleared = by_path.get(path)
                if cleared is None:
                    cleared = by_path[path] = []
                cleared.append(row)
        for path, cleared in by_path.items():
            self.fields[path].clear(cleared)

    def numbers(self, path: str, rows: np.ndarray) -> np.ndarray:
        """(len(rows),) float64: the number each row holds at the key path (NaN where it holds
        none, or something else)."""
        field = self.fields.get(path)
        return np.full(len(rows), np.nan) if field is None else field.num[rows]

    def mask(self, node, n: int) -> np.ndarray:
        """Evaluate a parsed filter over rows [0, n): (n,) bool."""
        if node is None:
            return np.ones(n, np.bool_)
        kind = node[0]
        if kind == "and":
            out = np.ones(n, np.bool_)
            for child in node[1]:
                out &= self.mask(child, n)
            return out
        if kind == "or":
            out = np.zeros(n, np.bool_)
            for child in node[1]:
                out |= self.mask(child, n)
            return out
        if kind == "not":
            return ~self.mask(node[1], n)
        _, path, op, operand = node
        negate = op in _NEGATED
        op = _NEGATED.get(op, op)
        field = self.fields.get(path)
        if field is None:
            hit = np.zeros(n, np.bool_)
            matches_missing = (
                (op == "$eq" and operand is None)
                or (op == "$in" and any(v is None for v in operand))
                or (op == "$exists" and not operand)
            )
            if matches_missing:
                hit[:] = True
        else:
            hit = field.match(op, operand, n)
        return ~hit if negate else hit


def _int_list(rows) -> list[int]:
    """Row numbers (a numpy array or any iterable of ints) as a list of Python ints."""
    return rows.tolist() if isinstance(rows, np.ndarray) else [int(row) for row in rows]


def _index(index: PayloadIndex, row: int, value, path: str, paths: list, in_list: bool) -> None:
    if isinstance(value, dict):
        if path:
            _mark(index, row, path, paths)
        for key, item in value.items():
            _index(index, row, item, f"{path}.{key}" if path else key, paths, in_list)
        return
    if isinstance(value, list | tuple):
        _mark(index, row, path, paths)
        for item in value:
            if isinstance(item, dict | list | tuple):
                _index(index, row, item, path, paths, in_list=True)
            else:
                _add(index, row, path, paths).add_element(row, item)
        return
    field = _add(index, row, path, paths)
    if in_list:
        field.add_element(row, value)
    else:
        field.set_scalar(row, value)


def _add(index: PayloadIndex, row: int, path: str, paths: list) -> _Field:
    field = index._field(path)
    if path not in paths:
        paths.append(path)
    return field


def _mark(index: PayloadIndex, row: int, path: str, paths: list) -> None:
    _add(index, row, path, paths).present[row] = True
