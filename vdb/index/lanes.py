"""Exact top-k for a batch of queries held in vector lanes (kernels.topk's scan for batches).

The queries are packed in panels of LANES (16 where the CPU has AVX-512, else 8): panel p
holds queries p*LANES .. p*LANES + LANES - 1 dimension by dimension, so one vector load
gives one dimension of LANES queries (pack()). A block scores ROWS rows, read in place,
against 2 panels: for each dimension every row's value is broadcast and multiplied into 2
vectors, 12 accumulators of fused multiply-adds and no horizontal sums. The block's
scores are then compared, still in vectors, with each query's worst kept score, and only
those that beat it reach the heaps (most do not, once the heaps fill).

The block is LLVM IR written here (numba.extending.intrinsic, as llm/i8dot.py does):
numba's own loop vectorizer keeps to 256-bit vectors and to dot products along the
dimension, which end in a horizontal sum per (query, row); this form measured 1.3-1.8x
its throughput per core at 96-384 dimensions. Each score is a sum over the dimension in
order, one fused multiply-add at a time, whatever the batch it comes in.
"""

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from vdb.index.heaps import FASTMATH, _push

LANES = 16 if llvm.get_host_cpu_features().get("avx512f", False) else 8
ROWS = 6  # rows per block: 6 rows x 2 panels = 12 accumulators (and 2 + 1 more registers)
TILE = 16 * ROWS  # rows gathered per tile
_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


def width(lanes: int = LANES) -> tuple:
    """The argument that selects the lane count of the compiled scan (its type carries it)."""
    return (np.float32(0.0),) * lanes


def pack(Q: np.ndarray, lanes: int = LANES) -> np.ndarray:
    """(nq, d) queries -> (ceil(nq / lanes), d, lanes) float32 panels, zeros past nq."""
    nq, d = Q.shape
    panels = -(-nq // lanes)
    padded = np.zeros((panels * lanes, d), dtype=np.float32)
    padded[:nq] = Q
    return np.ascontiguousarray(padded.reshape(panels, lanes, d).transpose(0, 2, 1))


def _splat(builder, vec_type, value):
    """value in every lane of vec_type."""
    one = builder.insert_element(ir.Constant(vec_type, None), value, ir.Constant(_I32, 0))
    lanes = ir.Constant(ir.VectorType(_I32, vec_type.count), [0] * vec_type.count)
    return builder.shuffle_vector(one, one, lanes)


def _vector_at(builder, base, offset, vec_type):
    """Pointer to a vec_type at base (float pointer) + offset floats."""
    return builder.bitcast(builder.gep(base, [offset]), vec_type.as_pointer())


def _const(n: int):
    return ir.Constant(_I64, n)


def _block_of(panels: int):
    """The block intrinsic for 1 or 2 panels."""

    @intrinsic
    def block(typingctx, Qp, p0, X, src, r0, tb, scale, worst, S, M, lanes):
        """Scores of rows X[src[r0 : r0 + ROWS]] against query panels p0 .. p0 + panels - 1:
        S[r, v * W + l] = scale * <Q[(p0 + v) W + l], X[src[r0 + r]]> - tb[r0 + r]; M[2 r + v]
        gets the bits of the lanes whose score beats worst[(p0 + v) W + l]. True if any."""
        vec = ir.VectorType(_F32, lanes.count)

        def codegen(context, builder, sig, args):
            arrays = [
                context.make_array(sig.args[i])(context, builder, args[i]) for i in (0, 2, 3, 5)
            ]
            qa, xa, sra, tba = arrays
            wa, sa, ma = (
                context.make_array(sig.args[i])(context, builder, args[i]) for i in (7, 8, 9)
            )
            p0v, r0v, scalev = args[1], args[4], args[6]
            w = _const(vec.count)
            d = cgutils.unpack_tuple(builder, xa.shape)[1]
            rows = []
            for r in range(ROWS):
                row = builder.load(builder.gep(sra.data, [builder.add(r0v, _const(r))]))
                rows.append(builder.gep(xa.data, [builder.mul(row, d)]))
            panel = [builder.add(p0v, _const(v)) for v in range(panels)]
            qbase = [builder.gep(qa.data, [builder.mul(builder.mul(p, d), w)]) for p in panel]
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec] * 3), f"llvm.fma.v{vec.count}f32"
            )
            entry = builder.block
            loop = builder.append_basic_block("dims")
            done = builder.append_basic_block("scores")
            zero = ir.Constant(vec, [ir.Constant(_F32, 0.0)] * vec.count)
            builder.branch(loop)
            builder.position_at_end(loop)
            j = builder.phi(_I64)
            j.add_incoming(_const(0), entry)
            acc = [[builder.phi(vec) for _ in range(panels)] for _ in range(ROWS)]
            queries = [
                builder.load(_vector_at(builder, base, builder.mul(j, w), vec), align=4)
                for base in qbase
            ]
            new = []
            for r in range(ROWS):
                x = _splat(builder, vec, builder.load(builder.gep(rows[r], [j])))
                new.append([builder.call(fma, [x, queries[v], acc[r][v]]) for v in range(panels)])
            j_next = builder.add(j, _const(1))
            j.add_incoming(j_next, builder.block)
            for r in range(ROWS):
                for v in range(panels):
                    acc[r][v].add_incoming(zero, entry)
                    acc[r][v].add_incoming(new[r][v], builder.block)
            builder.cbranch(builder.icmp_signed("<", j_next, d), loop, done)

            builder.position_at_end(done)
            scale_vec = _splat(builder, vec, scalev)
            worst = [
                builder.load(_vector_at(builder, wa.data, builder.mul(p, w), vec), align=4)
                for p in panel
            ]
            any_hit = None
            bits_type = ir.IntType(vec.count)
            for r in range(ROWS):
                bias = builder.load(builder.gep(tba.data, [builder.add(r0v, _const(r))]))
                bias = _splat(builder, vec, bias)
                for v in range(panels):
                    score = builder.fsub(builder.fmul(scale_vec, new[r][v]), bias)
                    out = _const((r * 2 + v) * vec.count)
                    builder.store(score, _vector_at(builder, sa.data, out, vec), align=4)
                    hit = builder.fcmp_ordered(">", score, worst[v])
                    any_hit = hit if any_hit is None else builder.or_(any_hit, hit)
                    bits = builder.zext(builder.bitcast(hit, bits_type), _I32)
                    builder.store(bits, builder.gep(ma.data, [_const(r * 2 + v)]))
            all_bits = builder.bitcast(any_hit, bits_type)
            return builder.icmp_unsigned("!=", all_bits, ir.Constant(bits_type, 0))

        sig = types.boolean(Qp, p0, X, src, r0, tb, scale, worst, S, M, lanes)
        return sig, codegen

    return block


_block2 = _block_of(2)
_block1 = _block_of(1)


@intrinsic
def _lowest_bit(typingctx, bits):
    """Index of the lowest set bit of a non-zero uint32."""

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_I32, [_I32, ir.IntType(1)]), "llvm.cttz.i32"
        )
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 1)])

    return types.uint32(types.uint32), codegen


@intrinsic
def _prefetch(typingctx, X, row, col):
    """Ask for the cache line holding X[row, col] to be brought into L2, without waiting."""

    def codegen(context, builder, sig, args):
        xa = context.make_array(sig.args[0])(context, builder, args[0])
        d = cgutils.unpack_tuple(builder, xa.shape)[1]
        ptr = builder.gep(xa.data, [builder.add(builder.mul(args[1], d), args[2])])
        byte_ptr = ir.IntType(8).as_pointer()
        fn = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [byte_ptr, _I32, _I32, _I32]),
            "llvm.prefetch.p0",
        )
        read, keep_in_l2, data = (ir.Constant(_I32, v) for v in (0, 2, 1))
        builder.call(fn, [builder.bitcast(ptr, byte_ptr), read, keep_in_l2, data])
        return context.get_dummy_value()

    return types.void(X, row, col), codegen


@njit(nogil=True, cache=True, inline="always")
def prefetch_row(X, row):
    """Start loading row X[row] (every 64-byte line of it) into L2."""
    d = X.shape[1]
    for col in range(0, d, 16):
        _prefetch(X, row, col)
    _prefetch(X, row, d - 1)


@njit(nogil=True, fastmath=FASTMATH, cache=True)
def _keep(S, M, panels, p0, lanes, src, r0, worst, hs, hi, k):
    """Push the block's flagged scores (M) into the heaps, rows in order."""
    for r in range(ROWS):
        for v in range(panels):
            bits = M[r * 2 + v]
            while bits:
                lane = _lowest_bit(bits)
                bits &= bits - np.uint32(1)
                q = (p0 + v) * lanes + lane
                s = S[r, v * lanes + lane]
                if s > worst[q]:
                    _push(hs[q], hi[q], k, s, src[r0 + r])
                    worst[q] = hs[q, 0]


@njit(nogil=True, fastmath=FASTMATH, cache=True)
def _scan_tile(Qp, X, src, tb, m, scale, worst, hs, hi, k, S, M, lanes):
    """Score the m tile rows (m a multiple of ROWS) against every query panel."""
    n_panels = Qp.shape[0]
    w = len(lanes)
    p = 0
    while p + 2 <= n_panels:
        for r0 in range(0, m, ROWS):
            if _block2(Qp, p, X, src, r0, tb, scale, worst, S, M, lanes):
                _keep(S, M, 2, p, w, src, r0, worst, hs, hi, k)
        p += 2
    if p < n_panels:
        for r0 in range(0, m, ROWS):
            if _block1(Qp, p, X, src, r0, tb, scale, worst, S, M, lanes):
                _keep(S, M, 1, p, w, src, r0, worst, hs, hi, k)


@njit(nogil=True, fastmath=FASTMATH, cache=True, parallel=True)
def scan(Qp, nq, X, bias, use_bias, scale, mask, use_mask, rows, use_rows, k, nchunks, lanes):
    """As kernels._scan, for queries packed by pack(): per-chunk heaps (nchunks, nq, k)."""
    w = len(lanes)
    n = rows.shape[0] if use_rows else X.shape[0]
    HS = np.full((nchunks, nq, k), -np.inf, dtype=np.float32)
    HI = np.full((nchunks, nq, k), -1, dtype=np.int64)
    per = (n + nchunks - 1) // nchunks
    for c in prange(nchunks):
        lo = c * per
        hi_ = min(n, lo + per)
        src = np.empty(TILE, dtype=np.int64)  # rows of X to score
        tb = np.zeros(TILE, dtype=np.float32)  # their bias; +inf for padding
        worst = np.full(Qp.shape[0] * w, np.inf, dtype=np.float32)  # +inf: padding lanes
        worst[:nq] = -np.inf  # each query's worst kept score, as its heap's root
        S = np.empty((ROWS, 2 * w), dtype=np.float32)  # a block's scores
        M = np.zeros(2 * ROWS, dtype=np.uint32)  # a block's lanes that beat worst
        m = 0
        for p in range(lo, hi_):
            if p + TILE < hi_:  # the row that comes a tile later: in L2 by the time it is read
                ahead = rows[p + TILE] if use_rows else p + TILE
                if not use_mask or mask[ahead]:
                    prefetch_row(X, ahead)
            r = rows[p] if use_rows else p
            if use_mask and not mask[r]:
                continue
            src[m] = r
            tb[m] = bias[r] if use_bias else np.float32(0.0)
            m += 1
            if m == TILE:
                _scan_tile(Qp, X, src, tb, m, scale, worst, HS[c], HI[c], k, S, M, lanes)
                m = 0
        if m > 0:
            while m % ROWS:  # pad with a real row whose score is -inf: never kept
                src[m] = src[0]
                tb[m] = np.inf
                m += 1
            _scan_tile(Qp, X, src, tb, m, scale, worst, HS[c], HI[c], k, S, M, lanes)
    return HS, HI
