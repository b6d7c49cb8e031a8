#!/usr/bin/env python3
"""Thread-level numpy emulation of the wgmma attention forward
(kernels/attention_fwd_sm90_impl.cuh and kernels/attention_wgmma.cuh).

Two halves, kept apart on purpose:
  * the kernel's side, transcribed: the swizzled tile stores, the 1024-byte
    alignment of the dynamic shared memory, the descriptors it builds (start
    address, LBO, SBO per k-step and panel), the register fragments it hands
    to wgmma and everything it does with the accumulators;
  * the hardware's side, written from the PTX ISA alone: a descriptor is
    decoded into the canonical K-major or MN-major 128B-swizzle layout
    (Swizzle<3,4,3> o ((8,m),(T,2k)):((8T,SBO),(1,T)) and
    Swizzle<3,4,3> o ((T,8,m),(8,k)):((1,T,LBO),(8T,SBO)), T = 8), the swizzle
    is applied to the absolute byte address (bits [4,7) ^= bits [7,10)), and
    the m64nNk16 register layouts place A and D.
A mismatch between how the kernel stores a tile and what its descriptors
tell the hardware shows up as a wrong product or a NaN (shared memory starts
as NaN, rows past a sequence end are NaN in the sources). It checks the
transcription against this reading of the PTX ISA, not the silicon: the
[gpu][attention_wgmma] test is the proof. About 20 s:

    /usr/bin/python3 tests/reference/kernels/attention_wgmma_emu.py
"""
import numpy as np

NAN = np.nan
TID = np.arange(128)                      # threads of one warpgroup
WARP, LANE = TID // 32, TID % 32
G, TQ = LANE // 4, LANE % 4
LINE, ATOM = 128, 1024


# ---- hardware side (PTX ISA) ------------------------------------------------
def hw_swizzle(addr):
    return addr ^ (((addr >> 7) & 7) << 4)


def hw_decode(desc):
    start = (desc & 0x3FFF) << 4
    lbo = ((desc >> 16) & 0x3FFF) << 4
    sbo = ((desc >> 32) & 0x3FFF) << 4
    assert (desc >> 62) == 1, "expected the 128B swizzle mode"
    assert ((desc >> 49) & 7) == 0, "expected base offset 0"
    return start, lbo, sbo


def hw_read(smem, addr):
    assert addr % 2 == 0
    return smem[addr // 2]


def hw_kmajor(smem, desc, rows):
    """[rows, 16] operand, K-major: ((8,m),(T,2k)):((8T,SBO),(1,T)) in elements."""
    start, _, sbo = hw_decode(desc)
    out = np.empty((rows, 16))
    for r in range(rows):
        for k in range(16):
            a = start + (r % 8) * LINE + (r // 8) * sbo + (k % 8) * 2 + (k // 8) * 16
            out[r, k] = hw_read(smem, hw_swizzle(a))
    return out


def hw_mnmajor(smem, desc, n_cols):
    """[16, n_cols] operand (k x n), MN-major: ((T,8,m),(8,k)):((1,T,LBO),(8T,SBO))."""
    start, lbo, sbo = hw_decode(desc)
    out = np.empty((16, n_cols))
    for k in range(16):
        for n in range(n_cols):
            a = start + (n % 8) * 2 + ((n // 8) % 8) * 16 + (n // 64) * lbo + (k % 8) * LINE + (k // 8) * sbo
            out[k, n] = hw_read(smem, hw_swizzle(a))
    return out


def hw_d_coords(n_cols):
    """Row and column of each thread's accumulator register j (m64nNk16, f32)."""
    j = np.arange(n_cols // 2)
    i, r = j // 4, j % 4
    row = 16 * WARP[:, None] + G[:, None] + 8 * (r[None, :] // 2)
    col = 8 * i[None, :] + 2 * TQ[:, None] + (r[None, :] % 2)
    return row, col


def hw_regs_to_matrix(d, n_cols):
    row, col = hw_d_coords(n_cols)
    m = np.full((64, n_cols), NAN)
    m[row, col] = d
    return m


def hw_matrix_to_regs(m, n_cols):
    row, col = hw_d_coords(n_cols)
    return m[row, col]


def hw_a_from_regs(a):
    """a [128, 4, 2]: the m64k16 register A operand (mma.m16n8k16 A layout per warp)."""
    m = np.full((64, 16), NAN)
    for tid in range(128):
        w, g, t = tid // 32, (tid % 32) // 4, tid % 4
        r0 = 16 * w + g
        m[r0, 2 * t:2 * t + 2] = a[tid, 0]
        m[r0 + 8, 2 * t:2 * t + 2] = a[tid, 1]
        m[r0, 2 * t + 8:2 * t + 10] = a[tid, 2]
        m[r0 + 8, 2 * t + 8:2 * t + 10] = a[tid, 3]
    return m


def hw_wgmma_ss(d, smem, desc_a, desc_b):  # d [128, 32]; D(64x64) += A(64x16) B(16x64), both K-major
    A = hw_kmajor(smem, desc_a, 64)
    B = hw_kmajor(smem, desc_b, 64).T
    assert not np.isnan(A).any() and not np.isnan(B).any(), "NaN operand (unwritten or unmasked shared memory)"
    return hw_matrix_to_regs(hw_regs_to_matrix(d, 64) + A @ B, 64)


def hw_wgmma_rs_mn_b(d, a, smem, desc_b):  # A from registers, B MN-major (imm-trans-b = 1)
    A = hw_a_from_regs(a)
    B = hw_mnmajor(smem, desc_b, 64)
    assert not np.isnan(A).any() and not np.isnan(B).any(), "NaN operand"
    return hw_matrix_to_regs(hw_regs_to_matrix(d, 64) + A @ B, 64)


# ---- kernel side (transcribed from kernels/attention_*sm90*.cuh) -------------
def swizzled_offset(rows, row, col):
    return (col // 64) * (rows * LINE) + row * LINE + (((col % 64) // 8) ^ (row % 8)) * 16 + (col % 8) * 2


def load_tile_swizzled(smem, dst, src, row0, rows, D, rows_valid):
    for row in range(rows):
        for col in range(0, D, 8):
            off = (dst + swizzled_offset(rows, row, col)) // 2
            smem[off:off + 8] = src[row0 + row, col:col + 8] if row < rows_valid else 0.0


def desc_sw128(addr, lbo, sbo):
    return ((addr & 0x3FFFF) >> 4) | (((lbo & 0x3FFFF) >> 4) << 16) | (((sbo & 0x3FFFF) >> 4) << 32) | (1 << 62)


def quad(x, f):  # x [128] -> the reduction over each quad, broadcast back
    return np.repeat(f(x.reshape(32, 4), axis=1), 4)


def fwd_cta(q, k, v, out, lse, seq_begin, seqlen, m_block, h, hk, causal, scale, D, smem_raw, wgs):
    BM, BN, panels = 64 * wgs, 64, D // 64
    m0 = m_block * BM
    if m0 >= seqlen:
        return
    pad = lambda x: np.concatenate([x, np.full((256, D), NAN)])
    qh = pad(q[seq_begin:seq_begin + seqlen, h])
    kh = pad(k[seq_begin:seq_begin + seqlen, hk])
    vh = pad(v[seq_begin:seq_begin + seqlen, hk])
    smem = np.full(1 << 17, NAN)  # the shared window, byte address / 2
    sQ = smem_raw + ((ATOM - smem_raw % ATOM) % ATOM)
    sK = sQ + BM * D * 2
    sV = sK + BN * D * 2
    assert sV + BN * D * 2 <= smem_raw + BM * D * 2 + 2 * BN * D * 2 + ATOM  # fits the launch's bytes
    load_tile_swizzled(smem, sQ, qh, m0, BM, D, seqlen - m0)
    n_end = min(seqlen, m0 + BM) if causal else seqlen
    n_blocks = (n_end + BN - 1) // BN
    sl2 = scale * np.log2(np.e)
    state = []
    for wg in range(wgs):
        row_lo = m0 + (4 * wg + WARP) * 16 + G
        state.append(dict(row_lo=row_lo, row_hi=row_lo + 8, o=np.zeros((128, D // 2)),
                          mx=[np.full(128, -np.inf), np.full(128, -np.inf)], sm=[np.zeros(128), np.zeros(128)]))
    for nb in range(n_blocks):
        n0 = nb * BN
        smem[sK // 2:(sK + 2 * BN * D * 2) // 2] = NAN  # the previous tiles are gone
        load_tile_swizzled(smem, sK, kh, n0, BN, D, seqlen - n0)
        load_tile_swizzled(smem, sV, vh, n0, BN, D, seqlen - n0)
        for wg in range(wgs):
            st = state[wg]
            sQ_rows = sQ + wg * 64 * LINE
            s = np.zeros((128, 32))
            for ks in range(D // 16):
                q_off = (ks // 4) * (BM * LINE) + (ks % 4) * 32
                k_off = (ks // 4) * (BN * LINE) + (ks % 4) * 32
                s = hw_wgmma_ss(s, smem, desc_sw128(sQ_rows + q_off, 16, ATOM), desc_sw128(sK + k_off, 16, ATOM))
            s = s.reshape(128, 8, 4)
            for nt in range(8):
                for i in range(4):
                    key = n0 + nt * 8 + 2 * TQ + (i & 1)
                    row = st["row_lo"] if i < 2 else st["row_hi"]
                    m = (key >= seqlen) | ((key > row) if causal else False)
                    s[:, nt, i] = np.where(m, -np.inf, s[:, nt, i])
            resc = []
            for r in range(2):
                mx = st["mx"][r].copy()
                for nt in range(8):
                    mx = np.maximum(mx, np.maximum(s[:, nt, 2 * r], s[:, nt, 2 * r + 1]))
                mx = quad(mx, np.max)
                base = np.where(mx == -np.inf, 0.0, mx * sl2)
                rs = np.exp2(st["mx"][r] * sl2 - base)
                resc.append(rs)
                st["mx"][r] = mx
                total = np.zeros(128)
                for nt in range(8):
                    for c in range(2):
                        s[:, nt, 2 * r + c] = np.exp2(s[:, nt, 2 * r + c] * sl2 - base)
                        total += s[:, nt, 2 * r + c]
                st["sm"][r] = st["sm"][r] * rs + total
            o = st["o"].reshape(128, D // 8, 4)
            o[:, :, 0:2] *= resc[0][:, None, None]
            o[:, :, 2:4] *= resc[1][:, None, None]
            p_frag = [np.stack([s[:, 2 * kt, 0:2], s[:, 2 * kt, 2:4], s[:, 2 * kt + 1, 0:2], s[:, 2 * kt + 1, 2:4]],
                               axis=1) for kt in range(BN // 16)]
            for kt in range(BN // 16):
                for panel in range(panels):
                    v_off = panel * (BN * LINE) + kt * 16 * LINE
                    acc = o[:, panel * 8:(panel + 1) * 8, :].reshape(128, 32)
                    acc = hw_wgmma_rs_mn_b(acc, p_frag[kt], smem, desc_sw128(sV + v_off, BN * LINE, ATOM))
                    o[:, panel * 8:(panel + 1) * 8, :] = acc.reshape(128, 8, 4)
            st["o"] = o.reshape(128, D // 2)
    for wg in range(wgs):
        st = state[wg]
        o = st["o"].reshape(128, D // 8, 4)
        for r in range(2):
            row = st["row_lo"] if r == 0 else st["row_hi"]
            total = quad(st["sm"][r], np.sum)
            for tid in range(128):
                if row[tid] >= seqlen:
                    continue
                inv = 1 / total[tid] if total[tid] > 0 else 0
                for dt in range(D // 8):
                    col = dt * 8 + 2 * TQ[tid]
                    out[seq_begin + row[tid], h, col:col + 2] = o[tid, dt, 2 * r:2 * r + 2] * inv
                if TQ[tid] == 0:
                    lse[h, seq_begin + row[tid]] = st["mx"][r][tid] * scale + np.log(total[tid])


def reference(q, k, v, cu, H, Hkv, causal, scale):
    N, D = q.shape[0], q.shape[2]
    out = np.zeros((N, H, D))
    lse = np.zeros((H, N))
    for b in range(len(cu) - 1):
        s0, s1 = cu[b], cu[b + 1]
        if s1 == s0:
            continue
        for h in range(H):
            hk = h // (H // Hkv)
            sc = q[s0:s1, h] @ k[s0:s1, hk].T * scale
            if causal:
                sc = np.where(np.tril(np.ones((s1 - s0, s1 - s0), bool)), sc, -np.inf)
            m = sc.max(axis=1, keepdims=True)
            p = np.exp(sc - m)
            out[s0:s1, h] = p @ v[s0:s1, hk] / p.sum(axis=1, keepdims=True)
            lse[h, s0:s1] = (m + np.log(p.sum(axis=1, keepdims=True)))[:, 0]
    return out, lse


def run(cu, H, Hkv, D, causal, smem_raw, wgs, seed=0):
    rng = np.random.default_rng(seed)
    N = cu[-1]
    q = rng.standard_normal((N, H, D))
    k = rng.standard_normal((N, Hkv, D))
    v = rng.standard_normal((N, Hkv, D))
    scale = 1 / np.sqrt(D)
    out = np.full((N, H, D), NAN)
    lse = np.full((H, N), NAN)
    maxlen = max(cu[i + 1] - cu[i] for i in range(len(cu) - 1))
    for b in range(len(cu) - 1):
        for h in range(H):
            for mb in range((maxlen + 64 * wgs - 1) // (64 * wgs)):
                fwd_cta(q, k, v, out, lse, cu[b], cu[b + 1] - cu[b], mb, h, h // (H // Hkv), causal, scale, D, smem_raw,
                        wgs)
    ref_out, ref_lse = reference(q, k, v, cu, H, Hkv, causal, scale)
    e_out = np.abs(out - ref_out).max() if N else 0.0
    e_lse = np.abs(lse - ref_lse).max() if N else 0.0
    print(f"wgmma fwd cu={cu} H={H} Hkv={Hkv} D={D} causal={causal} warpgroups={wgs} smem@{smem_raw}: out {e_out:.2e} lse {e_lse:.2e}")
    assert np.isfinite(e_out) and np.isfinite(e_lse) and e_out < 1e-9 and e_lse < 1e-9, (e_out, e_lse)


if __name__ == "__main__":
    for wgs in (1, 2):
        run([0, 1], 1, 1, 64, True, smem_raw=0, wgs=wgs)
        run([0, 5, 75], 2, 1, 128, True, smem_raw=16, wgs=wgs)
        run([0, 0, 70], 2, 2, 64, False, smem_raw=1008, wgs=wgs)
        run([0, 130, 131], 3, 1, 128, False, smem_raw=512, wgs=wgs)
        run([0, 200], 1, 1, 64, True, smem_raw=48, wgs=wgs)
