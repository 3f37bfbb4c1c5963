"""Fixed-size min-heaps of (score, id): the k best scores of one query during an exact scan."""

from numba import njit

# fastmath without the no-NaN/no-Inf assumptions: heaps start at -inf and must compare right.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@njit(nogil=True, fastmath=FASTMATH, cache=True, inline="always")
def _push(hs, hi, k, s, i):
    """Replace the root of a size-k min-heap (hs[0] is the worst kept score) and sift down."""
    pos = 0
    while True:
        c = 2 * pos + 1
        if c >= k:
            break
        if c + 1 < k and hs[c + 1] < hs[c]:
            c += 1
        if hs[c] >= s:
            break
        hs[pos] = hs[c]
        hi[pos] = hi[c]
        pos = c
    hs[pos] = s
    hi[pos] = i
