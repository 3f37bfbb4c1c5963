"""The external id of every internal slot of a collection, held in memory so that a search maps
its internal ids to the user's ids in one vectorized step, without reading LMDB.

Integer ids sit in an int64 array; string ids in a numpy StringDType array (short strings
inline, longer ones in one arena); a kind byte per slot says which, or that the slot is free.
"""

import numpy as np

EMPTY, INT, STR = 0, 1, 2
STRINGS = np.dtypes.StringDType()


class IdArray:
    def __init__(self, capacity: int = 0):
        self.kind = np.zeros(capacity, np.int8)  # (capacity,) EMPTY | INT | STR
        self.ints = np.zeros(capacity, np.int64)  # (capacity,) the id where kind == INT
        self.strs = np.full(capacity, "", STRINGS)  # (capacity,) the id where kind == STR
        self.n_str = 0  # slots holding a string id

    @property
    def capacity(self) -> int:
        return len(self.kind)

    def reserve(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        capacity = max(capacity, 2 * self.capacity, 1024)
        old = self.capacity
        for name, fill in (("kind", 0), ("ints", 0), ("strs", "")):
            arr = getattr(self, name)
            grown = np.full(capacity, fill, arr.dtype)
            grown[:old] = arr
            setattr(self, name, grown)

    def set(self, rows: np.ndarray, ids: list) -> None:
        """Slots rows (n,) int64 now hold ids (n Python ints and strs)."""
        if not len(rows):
            return
        self.reserve(int(rows.max()) + 1)
        self.clear(rows)
        is_str = np.fromiter((isinstance(i, str) for i in ids), np.bool_, len(ids))
        if is_str.any():
            s_rows = rows[is_str]
            self.strs[s_rows] = [i for i in ids if isinstance(i, str)]
            self.kind[s_rows] = STR
            self.n_str += len(s_rows)
        if not is_str.all():
            i_rows = rows[~is_str]
            self.ints[i_rows] = [i for i in ids if not isinstance(i, str)]
            self.kind[i_rows] = INT

    def clear(self, rows: np.ndarray) -> None:
        rows = rows[rows < self.capacity]
        was_str = self.kind[rows] == STR
        self.n_str -= int(np.count_nonzero(was_str))
        self.strs[rows[was_str]] = ""
        self.kind[rows] = EMPTY

    def lookup(self, rows: np.ndarray) -> np.ndarray:
        """The ids at rows (any shape, -1 for none): int64 (-1 where none) while the
        collection holds only integer ids, else an object array of int and str (None where
        none)."""
        valid = rows >= 0
        safe = np.where(valid, rows, 0)
        if not self.n_str:
            return np.where(valid, self.ints[safe], -1)
        out = self.ints[safe].astype(object)
        is_str = (self.kind[safe] == STR) & valid
        out[is_str] = self.strs[safe[is_str]].astype(object)
        out[~valid] = None
        return out

    def take(self, rows: np.ndarray) -> np.ndarray:
        """As lookup, for rows that all hold a point."""
        if not self.n_str:
            return self.ints[rows]
        return self.lookup(rows)

    def one(self, row: int):
        """The id at one slot (None when free)."""
        kind = self.kind[row]
        if kind == EMPTY:
            return None
        return int(self.ints[row]) if kind == INT else str(self.strs[row])

    def state(self, size: int) -> dict:
        """Arrays for a checkpoint, slots [0, size)."""
        self.reserve(size)
        kind = self.kind[:size]
        text = "".join(self.strs[:size][kind == STR].tolist()).encode("utf-8", "surrogatepass")
        lengths = np.strings.str_len(self.strs[:size][kind == STR]).astype(np.int64)
        return {
            "id_kind": kind,
            "id_int": self.ints[:size],
            "id_str_len": lengths,  # (n_str,) characters of each string id, in slot order
            "id_str": np.frombuffer(text, np.uint8),  # their UTF-8, one after another
        }

    @classmethod
    def restore(cls, arrays: dict, size: int) -> "IdArray":
        """From state(); ValueError when the arrays do not fit together."""
        kind, ints = arrays["id_kind"], arrays["id_int"]
        lengths, text = arrays["id_str_len"], arrays["id_str"]
        for name, arr, dtype in (
            ("id_kind", kind, np.int8),
            ("id_int", ints, np.int64),
            ("id_str_len", lengths, np.int64),
            ("id_str", text, np.uint8),
        ):
            if arr.dtype != dtype or arr.ndim != 1:
                raise ValueError(f"array {name} is {arr.dtype} {arr.shape}")
        is_str = kind == STR
        if len(kind) != size or len(ints) != size or ((kind < EMPTY) | (kind > STR)).any():
            raise ValueError("the id arrays do not cover the index's slots")
        if len(lengths) != int(np.count_nonzero(is_str)) or (lengths <= 0).any():
            raise ValueError("the string ids do not match their slots")
        try:
            joined = text.tobytes().decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise ValueError("the string ids are not UTF-8") from None
        if int(lengths.sum()) != len(joined):
            raise ValueError("the string ids do not add up to their lengths")
        ends = np.cumsum(lengths).tolist()
        starts = [0, *ends][: len(ends)]
        out = cls(size)
        out.kind[:] = kind
        out.ints[:] = ints
        out.strs[is_str] = [joined[a:b] for a, b in zip(starts, ends, strict=True)]
        out.n_str = len(lengths)
        return out
