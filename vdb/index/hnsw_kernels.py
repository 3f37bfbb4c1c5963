"""Numba kernels of the HNSW index: layer search, neighbour selection, batch insertion, search.

Similarity is maximized everywhere: the dot product (cosine on normalized rows, or dot), or the
negated squared Euclidean distance for l2.

Graph layout (see hnsw.py): level 0 is links0 (capacity, M0) int32 with counts0 (capacity,);
level l >= 1 is links_up[l - 1] (upper capacity, M) int32 with counts_up[l - 1], addressed by
upper_row[node]. Scratch buffers are allocated once per call, one row per thread.
"""

import warnings

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from vdb.index.kernels import FASTMATH

MAX_LEVEL = 16
GROUP = 4  # nodes a thread takes at a time while linking a batch
PHASE2_CHUNK = 64  # reverse-edge groups a thread takes at a time
TAG_MAX = 65535  # visited marks are uint16 (half the cache footprint of int32)

# Inlining _sim into prange bodies trips a pedantic internal IR check in numba that does not
# affect the compiled code; inlining is kept because it is measurably faster (8.5k vs 7k QPS).
warnings.filterwarnings(
    "ignore", message=r"variable '.*' is not in scope", category=numba.NumbaIRAssumptionWarning
)
AHEAD = 6  # rows requested ahead of their scoring in a list of known rows
PREFETCH_LINES = 2  # cache lines of a vector requested ahead of its distance computation


@intrinsic
def _prefetch(typingctx, arr, row, line):
    """Ask the CPU to load the cache line `line` of row `row` of a 2-D array, or the line
    `line` from element `row` of a 1-D array (no fault)."""

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        row_ = context.cast(builder, args[1], sig.args[1], types.intp)
        line_ = context.cast(builder, args[2], sig.args[2], types.intp)
        zero = context.get_constant(types.intp, 0)
        index = [row_] + [zero] * (aryty.ndim - 1)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, index)
        i8p = ir.IntType(8).as_pointer()
        offset = builder.mul(line_, context.get_constant(types.intp, 64))
        ptr = builder.gep(builder.bitcast(ptr, i8p), [offset])
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(arr, row, line), codegen


def _sim(X, node, q, l2):
    """Similarity of node `node` to q: X a float32 array, or the pair (int8 codes, their norms)
    with q in code units (see HnswIndex._code_queries)."""
    raise NotImplementedError


@overload(_sim, inline="always", jit_options={"fastmath": FASTMATH})
def _sim_impl(X, node, q, l2):
    if isinstance(X, types.BaseTuple):

        def sim_codes(X, node, q, l2):
            # <code, q> - norm: minus the l2 distance up to a constant of the query (for the
            # dot product, <code, q> alone ranks like it)
            codes, norms = X
            acc = np.float32(0.0)
            for j in range(q.shape[0]):
                acc += np.float32(codes[node, j]) * q[j]
            return acc - norms[node] if l2 else acc

        return sim_codes

    def sim_float(X, node, q, l2):
        d = q.shape[0]
        acc = np.float32(0.0)
        if l2:
            for j in range(d):
                t = X[node, j] - q[j]
                acc -= t * t
        else:
            for j in range(d):
                acc += X[node, j] * q[j]
        return acc

    return sim_float


def _prefetch_node(X, node, lines, l2):
    """Request the first `lines` cache lines of node `node`'s row (and its code norm)."""
    raise NotImplementedError


@overload(_prefetch_node, inline="always")
def _prefetch_node_impl(X, node, lines, l2):
    if isinstance(X, types.BaseTuple):

        def prefetch_codes(X, node, lines, l2):
            codes, norms = X
            for line in range(lines):
                _prefetch(codes, node, line)
            if l2:
                _prefetch(norms, node, 0)

        return prefetch_codes

    def prefetch_float(X, node, lines, l2):
        for line in range(lines):
            _prefetch(X, node, line)

    return prefetch_float


def _row_lines(X):
    """Cache lines of one row of X (of the codes, for a pair of codes and norms)."""
    raise NotImplementedError


@overload(_row_lines, inline="always")
def _row_lines_impl(X):
    if isinstance(X, types.BaseTuple):
        return lambda X: (X[0].shape[1] * X[0].itemsize + 63) // 64
    return lambda X: (X.shape[1] * X.itemsize + 63) // 64


@njit(nogil=True, cache=True, inline="always")
def _heap_push(hk, hv, n, key, val):
    """Push onto a max-heap of (key, value) pairs of size n; returns the new size."""
    pos = n
    while pos > 0:
        parent = (pos - 1) >> 1
        if hk[parent] >= key:
            break
        hk[pos] = hk[parent]
        hv[pos] = hv[parent]
        pos = parent
    hk[pos] = key
    hv[pos] = val
    return n + 1


@njit(nogil=True, cache=True, inline="always")
def _heap_replace_top(hk, hv, n, key, val):
    """Replace the top of a max-heap of size n >= 1 by (key, val)."""
    pos = 0
    while True:
        c = 2 * pos + 1
        if c >= n:
            break
        if c + 1 < n and hk[c + 1] > hk[c]:
            c += 1
        if hk[c] <= key:
            break
        hk[pos] = hk[c]
        hv[pos] = hv[c]
        pos = c
    hk[pos] = key
    hv[pos] = val


@njit(nogil=True, cache=True, inline="always")
def _heap_pop(hk, hv, n):
    """Remove the top of a max-heap of size n; returns the new size."""
    n -= 1
    if n > 0:  # the last entry takes the top's place
        _heap_replace_top(hk, hv, n, hk[n], hv[n])
    return n


@njit(nogil=True, cache=True, inline="always")
def _next_tag(visited, tags, t):
    """A fresh tag for thread t's visited marks (uint16: cleared when the tags run out)."""
    if tags[t] >= TAG_MAX:
        visited[:] = 0
        tags[t] = 0
    tags[t] += 1


@njit(nogil=True, cache=True, inline="always")
def _row(node, level, upper_row):
    return node if level == 0 else upper_row[node]


@njit(nogil=True, fastmath=FASTMATH, cache=True)
def _greedy(X, q, ep, ep_sim, level, upper_row, links_up, counts_up, l2):
    """Walk level `level` (>= 1) greedily towards q; returns the closest node and its sim."""
    links = links_up[level - 1]
    counts = counts_up[level - 1]
    changed = True
    while changed:
        changed = False
        r = upper_row[ep]
        for j in range(counts[r]):
            nb = links[r, j]
            s = _sim(X, nb, q, l2)
            if s > ep_sim:
                ep_sim = s
                ep = nb
                changed = True
    return ep, ep_sim


@njit(nogil=True, fastmath=FASTMATH, cache=True)
def _search_layer(
    X,
    q,
    ep,
    ep_sim,
    ef,
    level,
    links,
    counts,
    upper_row,
    l2,
    visited,
    tag,
    mask,
    use_mask,
    ck,
    cv,
    rk,
    rv,
    nbuf,
):
    """Best-first search of one layer. Hot spot of both build and query.

    Candidates live in a max-heap (ck, cv) by similarity; results in a max-heap (rk, rv) keyed
    by -similarity, so its top is the worst kept. With use_mask, every node is traversed but
    only nodes whose mask is True enter the results. Returns the number of results.
    """
    cap = ck.shape[0]
    visited[ep] = tag
    nc = _heap_push(ck, cv, 0, ep_sim, ep)
    nr = 0
    if (not use_mask) or mask[ep]:
        nr = _heap_push(rk, rv, 0, -ep_sim, ep)
    lines = min(PREFETCH_LINES, _row_lines(X))
    link_lines = (links.shape[1] * links.itemsize + 63) // 64
    sbuf = np.empty(links.shape[1], np.float32)
    while nc > 0:
        cs = ck[0]
        c = cv[0]
        if nr >= ef and cs < -rk[0]:
            break
        nc = _heap_pop(ck, cv, nc)
        if nc > 0:  # the next candidate's neighbour list, while this one is scored
            nxt = _row(cv[0], level, upper_row)
            for line in range(link_lines):
                _prefetch(links, nxt, line)
            _prefetch(counts, nxt, 0)
        r = _row(c, level, upper_row)
        # gather the unvisited neighbours and prefetch their vectors before scoring any
        m = 0
        for j in range(counts[r]):
            nb = links[r, j]
            if visited[nb] != tag:
                visited[nb] = tag
                nbuf[m] = nb
                m += 1
                _prefetch_node(X, nb, lines, l2)
        for j in range(m):  # scored apart from the heap updates, so the scores overlap
            sbuf[j] = _sim(X, nbuf[j], q, l2)
        for j in range(m):
            nb = nbuf[j]
            s = sbuf[j]
            if nr < ef or s > -rk[0]:
                if nc < cap:
                    nc = _heap_push(ck, cv, nc, s, nb)
                if (not use_mask) or mask[nb]:
                    if nr < ef:
                        nr = _heap_push(rk, rv, nr, -s, nb)
                    else:  # better than the worst kept, which it replaces
                        _heap_replace_top(rk, rv, nr, -s, nb)
    return nr


@njit(nogil=True, fastmath=FASTMATH, cache=True, inline="always")
def _prefetched_sims(X, ids, n, q, l2, out):
    """out[i] = similarity of row ids[i] of X to q for i < n, each row requested from memory
    AHEAD rows before it is scored."""
    lines = (X.shape[1] * X.itemsize + 63) // 64
    for i in range(min(n, AHEAD)):
        for line in range(lines):
            _prefetch(X, ids[i], line)
    for i in range(n):
        if i + AHEAD < n:
            for line in range(lines):
                _prefetch(X, ids[i + AHEAD], line)
        out[i] = _sim(X, ids[i], q, l2)


@njit(nogil=True, cache=True, inline="always")
def _sort_best_first(sims, ids, n):
    """Sort sims[:n] (and ids[:n] alike) by similarity, best first, in place; equal sims keep
    their order (as a stable argsort of -sims). Insertion sort: the lists are short, or
    nearly sorted already."""
    for i in range(1, n):
        s = sims[i]
        v = ids[i]
        j = i - 1
        while j >= 0 and sims[j] < s:
            sims[j + 1] = sims[j]
            ids[j + 1] = ids[j]
            j -= 1
        sims[j + 1] = s
        ids[j + 1] = v


@njit(nogil=True, fastmath=FASTMATH, cache=True)
def _select(X, base_sims, cands, n, m, out, l2):
    """HNSW neighbour heuristic: cands[:n] sorted by similarity to the base (descending).

    Keep a candidate only if it is closer to the base than to every neighbour kept so far.
    Writes up to m ids into out; returns how many.
    """
    kept = 0
    for i in range(n):
        c = cands[i]
        good = True
        for j in range(kept):
            if _sim(X, out[j], X[c], l2) > base_sims[i]:
                good = False
                break
        if good:
            out[kept] = c
            kept += 1
            if kept == m:
                break
    return kept


@njit(nogil=True, cache=True)
def _sorted_results(rk, rv, nr, sims_out, ids_out):
    """Drain a results heap into arrays sorted by similarity, best first."""
    for i in range(nr - 1, -1, -1):
        sims_out[i] = -rk[0]
        ids_out[i] = rv[0]
        nr = _heap_pop(rk, rv, nr)


@njit(nogil=True, fastmath=FASTMATH, cache=True)
def _link_one(V, q, rescore, X, p, lvl, graph, M, efc, l2, nomask, scratch):
    """Choose node p's forward neighbours on every level it has, walking V (float32 vectors,
    or int8 codes with q in code units and rescore=True). Writes only p's own lists."""
    links0, counts0, upper_row, links_up, counts_up, entry, top_level = graph
    visited, tags, t, ck, cv, rk, rv, nbuf, sel_s, sel_i = scratch
    ep = entry
    ep_sim = _sim(V, ep, q, l2)
    for level in range(top_level, lvl, -1):
        ep, ep_sim = _greedy(V, q, ep, ep_sim, level, upper_row, links_up, counts_up, l2)
    for level in range(min(lvl, top_level), -1, -1):
        _next_tag(visited, tags, t)
        if level == 0:
            links = links0
            counts = counts0
        else:
            links = links_up[level - 1]
            counts = counts_up[level - 1]
        nr = _search_layer(
            V,
            q,
            ep,
            ep_sim,
            efc,
            level,
            links,
            counts,
            upper_row,
            l2,
            visited,
            tags[t],
            nomask,
            False,
            ck,
            cv,
            rk,
            rv,
            nbuf,
        )
        _sorted_results(rk, rv, nr, sel_s, sel_i)
        # drop the node itself (re-insertion of an updated vector)
        w = 0
        for i in range(nr):
            if sel_i[i] != p:
                sel_s[w] = sel_s[i]
                sel_i[w] = sel_i[i]
                w += 1
        if w == 0:
            continue
        if rescore:  # exact similarities, best first, for the neighbour heuristic
            _prefetched_sims(X, sel_i, w, X[p], l2, sel_s)
            _sort_best_first(sel_s, sel_i, w)  # nearly sorted already: the walk's order
            ep = sel_i[0]
            ep_sim = _sim(V, ep, q, l2)
        else:
            ep = sel_i[0]
            ep_sim = sel_s[0]
        r = _row(p, level, upper_row)
        counts[r] = _select(X, sel_s, sel_i, w, M, links[r], l2)


def insert_batch(
    X,
    nodes,
    levels,
    graph,
    M,
    efc,
    l2,
    scratch,
    nomask,
    group_of,
    C,
    CQ,
    use_codes,
):
    """Link new nodes into the graph as it stood before the batch (phase 1), then add the
    reverse edges grouped by target node and prune overfull lists (phase 2). Lock-free: in
    phase 1 each thread writes only its own new nodes' lists; in phase 2 each target's list is
    written by one thread. The result does not depend on thread scheduling.

    graph: (links0, counts0, upper_row, links_up, counts_up, entry, top_level); scratch:
    (visited, tags, ck, cv, rk, rv, nbuf, sel_s, sel_i), one row per numba thread; group_of:
    (capacity,) int32, -1 everywhere (left so)."""
    # nodes differ widely in linking cost: threads take GROUP nodes at a time (measured 5-10%
    # faster builds than the default static split); most reverse-edge groups only append
    chunksize = numba.set_parallel_chunksize(1)
    try:
        _link_forward(X, nodes, levels, graph, M, efc, l2, scratch, nomask, C, CQ, use_codes)
        numba.set_parallel_chunksize(PHASE2_CHUNK)
        _link_reverse(X, nodes, levels, graph, l2, scratch[7], scratch[8], group_of)
    finally:
        numba.set_parallel_chunksize(chunksize)


@njit(nogil=True, fastmath=FASTMATH, cache=True, parallel=True)
def _link_forward(X, nodes, levels, graph, M, efc, l2, bufs, nomask, C, CQ, use_codes):
    """Phase 1 of insert_batch: each new node's own lists, searched in the old graph."""
    visited, tags, ck, cv, rk, rv, nbuf, sel_s, sel_i = bufs
    nb_new = nodes.shape[0]
    # nodes go to threads GROUP at a time: a thread's scratch rows are taken once per group
    for g in prange((nb_new + GROUP - 1) // GROUP):
        t = numba.get_thread_id()
        scratch = (visited[t], tags, t, ck[t], cv[t], rk[t], rv[t], nbuf[t], sel_s[t], sel_i[t])
        for b in range(g * GROUP, min(nb_new, (g + 1) * GROUP)):
            p = nodes[b]
            if use_codes:  # walk the int8 codes, choose neighbours on float32 similarities
                _link_one(C, CQ[b], True, X, p, levels[p], graph, M, efc, l2, nomask, scratch)
            else:
                _link_one(X, X[p], False, X, p, levels[p], graph, M, efc, l2, nomask, scratch)


@njit(nogil=True, fastmath=FASTMATH, cache=True, parallel=True)
def _link_reverse(X, nodes, levels, graph, l2, sel_s, sel_i, group_of):
    """Phase 2 of insert_batch: the reverse edges of the new nodes' lists."""
    links0, counts0, upper_row, links_up, counts_up, entry, top_level = graph
    nb_new = nodes.shape[0]
    M0 = links0.shape[1]
    M = links_up.shape[2]
    # reverse edges, grouped by (level, target), each group's sources in batch order. Level 0
    # (nearly every edge) by a counting sort over group numbers that group_of (-1 for every
    # node between calls) hands out; the few upper-level edges by a sort.
    n0 = 0
    nu = 0
    for b in range(nb_new):
        p = nodes[b]
        n0 += counts0[p]
        for level in range(1, min(levels[p], top_level) + 1):
            nu += counts_up[level - 1][upper_row[p]]
    cap_nodes = links0.shape[0]
    g_key = np.empty(n0 + nu, dtype=np.int64)  # level * cap_nodes + target, per group
    starts = np.zeros(n0 + nu + 1, dtype=np.int64)
    srcs = np.empty(n0 + nu, dtype=np.int32)  # sources, grouped
    edge_group = np.empty(n0, dtype=np.int32)
    ng = 0
    e = 0
    for b in range(nb_new):
        p = nodes[b]
        for j in range(counts0[p]):
            x = links0[p, j]
            g = group_of[x]
            if g < 0:
                g = ng
                group_of[x] = g
                g_key[g] = x
                ng += 1
            edge_group[e] = g
            starts[g + 1] += 1
            e += 1
    for g in range(ng):
        group_of[g_key[g]] = -1
        starts[g + 1] += starts[g]
    fill = starts[:ng].copy()
    e = 0
    for b in range(nb_new):
        p = nodes[b]
        for _ in range(counts0[p]):
            g = edge_group[e]
            srcs[fill[g]] = p
            fill[g] += 1
            e += 1
    if nu:
        keys = np.empty(nu, dtype=np.int64)
        up_srcs = np.empty(nu, dtype=np.int32)
        e = 0
        for b in range(nb_new):
            p = nodes[b]
            r = upper_row[p]
            for level in range(1, min(levels[p], top_level) + 1):
                for j in range(counts_up[level - 1][r]):
                    keys[e] = level * cap_nodes + links_up[level - 1][r, j]
                    up_srcs[e] = p
                    e += 1
        order = np.argsort(keys, kind="mergesort")
        for i in range(nu):
            if i == 0 or keys[order[i]] != keys[order[i - 1]]:
                g_key[ng] = keys[order[i]]
                starts[ng] = n0 + i
                ng += 1
            srcs[n0 + i] = up_srcs[order[i]]
    starts[ng] = n0 + nu
    for g in prange(ng):
        t = numba.get_thread_id()
        key = g_key[g]
        level = key // cap_nodes
        target = key - level * cap_nodes
        if level == 0:
            links = links0
            counts = counts0
            cap = M0
        else:
            links = links_up[level - 1]
            counts = counts_up[level - 1]
            cap = M
        r = _row(target, level, upper_row)
        c = counts[r]
        # pool = existing neighbours + new sources (distinct), in sel_i[t]
        n = 0
        for j in range(c):
            sel_i[t, n] = links[r, j]
            n += 1
        for i in range(starts[g], starts[g + 1]):
            s = srcs[i]
            dup = False
            for j in range(n):
                if sel_i[t, j] == s:
                    dup = True
                    break
            if not dup and s != target:
                sel_i[t, n] = s
                n += 1
        if n <= cap:
            for j in range(c, n):
                links[r, j] = sel_i[t, j]
            counts[r] = n
            continue
        # prune: sort the pool by similarity to the target, then the heuristic
        _prefetched_sims(X, sel_i[t], n, X[target], l2, sel_s[t])
        _sort_best_first(sel_s[t], sel_i[t], n)
        counts[r] = _select(X, sel_s[t], sel_i[t], n, cap, links[r], l2)


@njit(nogil=True, fastmath=FASTMATH, cache=True, parallel=True)
def search_batch(X, Q, k, ef, l2, graph, mask, use_mask, bufs, out_s, out_i, C, CQ, use_codes):
    """Top-k per query (prange over queries). Results best first in out_s/out_i, -1 padded.
    graph: (links0, counts0, upper_row, links_up, counts_up, entry, top_level); bufs:
    (visited, tags, ck, cv, rk, rv, nbuf), one row per numba thread."""
    visited, tags, ck, cv, rk, rv, nbuf = bufs
    for qi in prange(Q.shape[0]):
        t = numba.get_thread_id()
        scratch = (visited[t], tags, t, ck[t], cv[t], rk[t], rv[t], nbuf[t])
        _search_query(
            X, Q, qi, k, ef, l2, graph, mask, use_mask, scratch, out_s, out_i, C, CQ, use_codes
        )


@njit(nogil=True, fastmath=FASTMATH, cache=True)
def search_serial(X, Q, k, ef, l2, graph, mask, use_mask, bufs, out_s, out_i, C, CQ, use_codes):
    """search_batch on the calling thread alone (scratch row 0): no parallel region, so no
    worker threads wake for a query, or spin after it beside the caller's other work."""
    visited, tags, ck, cv, rk, rv, nbuf = bufs
    scratch = (visited[0], tags, 0, ck[0], cv[0], rk[0], rv[0], nbuf[0])
    for qi in range(Q.shape[0]):
        _search_query(
            X, Q, qi, k, ef, l2, graph, mask, use_mask, scratch, out_s, out_i, C, CQ, use_codes
        )


@njit(nogil=True, fastmath=FASTMATH, cache=True)
def _search_query(
    X, Q, qi, k, ef, l2, graph, mask, use_mask, scratch, out_s, out_i, C, CQ, use_codes
):
    """The k best of query qi into row qi of out_s/out_i, best first, -1 padded."""
    rk, rv = scratch[5], scratch[6]
    if use_codes:  # two call sites: the int8 and float32 walks compile separately
        nr = _descend_and_search(C, CQ[qi], ef, l2, graph, mask, use_mask, scratch)
    else:
        nr = _descend_and_search(X, Q[qi], ef, l2, graph, mask, use_mask, scratch)
    # the k best of the results, best first; the int8 walk's are rescored in float32
    kk = 0
    for i in range(nr):
        node = rv[i]
        s = _sim(X, node, Q[qi], l2) if use_codes else -rk[i]
        if kk < k:
            pos = kk
            kk += 1
        elif s > out_s[qi, k - 1]:
            pos = k - 1
        else:
            continue
        while pos > 0 and out_s[qi, pos - 1] < s:
            out_s[qi, pos] = out_s[qi, pos - 1]
            out_i[qi, pos] = out_i[qi, pos - 1]
            pos -= 1
        out_s[qi, pos] = s
        out_i[qi, pos] = node
    for i in range(kk, k):
        out_s[qi, i] = -np.inf
        out_i[qi, i] = -1


@njit(nogil=True, fastmath=FASTMATH, cache=True)
def _descend_and_search(X, q, ef, l2, graph, mask, use_mask, scratch):
    """Greedy descent through the upper levels, then a level-0 search; returns the result
    count (results in the heap rk/rv of the scratch)."""
    links0, counts0, upper_row, links_up, counts_up, entry, top_level = graph
    visited, tags, t, ck, cv, rk, rv, nbuf = scratch
    ep = entry
    ep_sim = _sim(X, ep, q, l2)
    for level in range(top_level, 0, -1):
        ep, ep_sim = _greedy(X, q, ep, ep_sim, level, upper_row, links_up, counts_up, l2)
    _next_tag(visited, tags, t)
    return _search_layer(
        X,
        q,
        ep,
        ep_sim,
        ef,
        0,
        links0,
        counts0,
        upper_row,
        l2,
        visited,
        tags[t],
        mask,
        use_mask,
        ck,
        cv,
        rk,
        rv,
        nbuf,
    )


@njit(nogil=True, fastmath=FASTMATH, cache=True, parallel=True)
def repair(
    X,
    alive,
    levels,
    links0,
    counts0,
    upper_row,
    links_up,
    counts_up,
    M,
    l2,
    pool_i,
    pool_s,
    sort_s,
    sort_i,
):
    """Drop deleted neighbours from the lists of live nodes, replacing them from the deleted
    nodes' own neighbours (pruned with the heuristic). Each live node rewrites only its own
    lists and reads only deleted nodes' lists, which this pass leaves alone: lock-free and
    independent of thread scheduling. Returns nothing; deleted nodes' lists stay as they were.
    """
    n = alive.shape[0]
    for ui in prange(n):
        u = np.int64(ui)  # the prange index is unsigned; keep node ids signed
        if not alive[u] or levels[u] < 0:
            continue
        t = numba.get_thread_id()
        for level in range(levels[u] + 1):
            if level == 0:
                links = links0
                counts = counts0
                cap = links0.shape[1]
            else:
                links = links_up[level - 1]
                counts = counts_up[level - 1]
                cap = M
            r = _row(u, level, upper_row)
            c = counts[r]
            stale = False
            for j in range(c):
                if not alive[links[r, j]]:
                    stale = True
                    break
            if not stale:
                continue
            m = 0
            for j in range(c):
                v = links[r, j]
                if alive[v]:
                    m = _add_unique(pool_i[t], m, v, u)
                else:
                    rv_ = _row(v, level, upper_row)
                    for jj in range(counts[rv_]):
                        w = links[rv_, jj]
                        if alive[w]:
                            m = _add_unique(pool_i[t], m, w, u)
            for j in range(m):
                pool_s[t, j] = _sim(X, pool_i[t, j], X[u], l2)
            order = np.argsort(-pool_s[t, :m], kind="mergesort")
            for j in range(m):
                sort_s[t, j] = pool_s[t, order[j]]
                sort_i[t, j] = pool_i[t, order[j]]
            counts[r] = _select(X, sort_s[t], sort_i[t], m, cap, links[r], l2)


@njit(nogil=True, cache=True, inline="always")
def _add_unique(buf, m, v, exclude):
    if v == exclude:
        return m
    for j in range(m):
        if buf[j] == v:
            return m
    buf[m] = v
    return m + 1


@njit(nogil=True, cache=True, parallel=True)
def quantize(V, rows, dims, mid, step, codes):
    """codes[r, d] = clip(rint((V[r, d] - mid[d]) / step[d]), -127, 127) for r in rows and
    d in dims."""
    for i in prange(rows.shape[0]):
        r = rows[i]
        for jj in range(dims.shape[0]):
            d = dims[jj]
            c = np.rint((V[r, d] - mid[d]) / step[d])
            codes[r, d] = np.int8(min(max(c, np.float32(-127.0)), np.float32(127.0)))


@njit(nogil=True, fastmath=FASTMATH, cache=True)
def code_norms(codes, rows, w, out):
    """out[r] = sum(w * codes[r]^2) for each r in rows (the same sum whatever the rows)."""
    for i in range(rows.shape[0]):
        r = rows[i]
        acc = np.float32(0.0)
        for j in range(codes.shape[1]):
            c = np.float32(codes[r, j])
            acc += w[j] * c * c
        out[r] = acc


@njit(nogil=True, cache=True)
def graph_in_bounds(levels, links0, counts0, upper_row, links_up, counts_up, entry, top):
    """Whether a graph read from a checkpoint is safe to walk: every level in range, every
    node with upper levels owning an upper row, every count within its list, every edge to a
    node in the graph at that level, and the entry point on the top level."""
    n, n_upper = levels.shape[0], counts_up.shape[1]
    cap0, cap = links0.shape[1], links_up.shape[2]
    if entry >= 0 and levels[entry] != top:
        return False
    for p in range(n):
        lvl = levels[p]
        if lvl < -1 or lvl > MAX_LEVEL:
            return False
        c = counts0[p]
        if c < 0 or c > cap0:
            return False
        for j in range(c):
            q = links0[p, j]
            if q < 0 or q >= n or levels[q] < 0:
                return False
        if lvl < 1:
            continue
        r = upper_row[p]
        if r < 0 or r >= n_upper:
            return False
        for level in range(1, lvl + 1):
            c = counts_up[level - 1, r]
            if c < 0 or c > cap:
                return False
            for j in range(c):
                q = links_up[level - 1, r, j]
                if q < 0 or q >= n or levels[q] < level:
                    return False
    return True
