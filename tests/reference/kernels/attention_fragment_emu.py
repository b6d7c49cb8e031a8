#!/usr/bin/env python3
"""Lane-level numpy emulation of the attention kernels' index logic.

Without a GPU, this is how the fragment mappings of kernels/attention_fwd_impl.cuh
and kernels/attention_bwd_impl.cuh were checked: every shared-memory fragment
load, ldmatrix.trans, mma.m16n8k16 (operands rebuilt from the per-lane
registers exactly as the PTX ISA defines the fragment layouts), the C->A
register reuse, masking, online softmax, the transposed-frame backward, the dS
tile and the dQ split are transcribed per warp and per lane, run in fp64
without bf16 rounding, and compared with a plain softmax reference (errors
must be < 1e-9). Rows past a sequence end are NaN in the sources, so a tile
that reads them instead of zero-filling fails. The paged decode kernel
(kernels/paged_decode.cu) is emulated the same way per block, warp and 4-key
step, including the split-K partial states and their merge.

It checks the transcription, not the CUDA code itself: keep it in step with
the kernels, and trust the [gpu] tests over it. About 30 s:

    /usr/bin/python3 tests/reference/kernels/attention_fragment_emu.py
"""
import numpy as np
LANES = np.arange(32); G = LANES // 4; Tq = LANES % 4
NAN = np.nan

def load_pair(flat, idx):  # idx [32] -> [32,2]
    return np.stack([flat[idx], flat[idx + 1]], axis=1)

def mma(c, a, b):  # c [32,4], a [32,4,2], b [32,2,2]
    A = np.full((16, 16), NAN); B = np.full((16, 8), NAN)
    for l in range(32):
        g, t = l // 4, l % 4
        A[g, 2*t:2*t+2] = a[l, 0]; A[g+8, 2*t:2*t+2] = a[l, 1]
        A[g, 2*t+8:2*t+10] = a[l, 2]; A[g+8, 2*t+8:2*t+10] = a[l, 3]
        B[2*t:2*t+2, g] = b[l, 0]; B[2*t+8:2*t+10, g] = b[l, 1]
    assert not np.isnan(A).any() and not np.isnan(B).any(), "nan operand"
    Cm = A @ B
    out = c.copy()
    for l in range(32):
        g, t = l // 4, l % 4
        out[l, 0] += Cm[g, 2*t]; out[l, 1] += Cm[g, 2*t+1]
        out[l, 2] += Cm[g+8, 2*t]; out[l, 3] += Cm[g+8, 2*t+1]
    return out

def ldmatrix_x4_trans(flat, addr):  # addr [32] element offsets -> [32,4,2]
    r = np.zeros((32, 4, 2))
    for i in range(4):
        M = np.stack([flat[addr[8*i + j]: addr[8*i + j] + 8] for j in range(8)])  # stored 8x8
        for l in range(32):
            g, t = l // 4, l % 4
            r[l, i] = (M[2*t, g], M[2*t+1, g])
    return r

def quad_max(x):  # x [32]
    return x.reshape(8, 4).max(axis=1).repeat(4)
def quad_sum(x):
    return x.reshape(8, 4).sum(axis=1).repeat(4)

def load_tile(rows, D, pitch, src, row0, rows_valid):
    # src: [Ntok, D] slice for this head; returns flat smem tile
    flat = np.full(rows * pitch, NAN)
    for r in range(rows):
        flat[r*pitch: r*pitch + D] = src[row0 + r] if r < rows_valid else 0.0
    return flat

def fwd_cta(q, k, v, out, lse, seq_begin, seqlen, m_block, h, hk, causal, scale, D):
    BM, BN, pitch = 64, 64, D + 8
    m0 = m_block * BM
    if m0 >= seqlen: return
    qh = q[seq_begin:seq_begin+seqlen, h]; kh = k[seq_begin:seq_begin+seqlen, hk]; vh = v[seq_begin:seq_begin+seqlen, hk]
    # pad sources so reading rows past seqlen would be NaN (they must be zero-filled instead)
    pad = lambda x: np.concatenate([x, np.full((256, D), NAN)])
    qh, kh, vh = pad(qh), pad(kh), pad(vh)
    sQ = load_tile(BM, D, pitch, qh, m0, seqlen - m0)
    n_end = min(seqlen, m0 + BM) if causal else seqlen
    n_blocks = (n_end + BN - 1) // BN
    sl2 = scale * np.log2(np.e)
    for warp in range(4):
        row_lo = m0 + warp*16 + G; row_hi = row_lo + 8
        o_acc = np.zeros((D//8, 32, 4)); row_max = [np.full(32, -np.inf)]*2; row_sum = [np.zeros(32)]*2
        row_max = [row_max[0].copy(), row_max[1].copy()]; row_sum = [row_sum[0].copy(), row_sum[1].copy()]
        qr = (warp*16 + G) * pitch + 2*Tq
        qf = [np.stack([load_pair(sQ, qr + ks*16), load_pair(sQ, qr + 8*pitch + ks*16),
                        load_pair(sQ, qr + ks*16 + 8), load_pair(sQ, qr + 8*pitch + ks*16 + 8)], axis=1) for ks in range(D//16)]
        for nb in range(n_blocks):
            n0 = nb * BN
            sK = load_tile(BN, D, pitch, kh, n0, seqlen - n0); sV = load_tile(BN, D, pitch, vh, n0, seqlen - n0)
            s = np.zeros((BN//8, 32, 4))
            for ks in range(D//16):
                for nt in range(BN//8):
                    kr = (nt*8 + G) * pitch + ks*16 + 2*Tq
                    bf = np.stack([load_pair(sK, kr), load_pair(sK, kr + 8)], axis=1)
                    s[nt] = mma(s[nt], qf[ks], bf)
            for nt in range(BN//8):
                for i in range(4):
                    key = n0 + nt*8 + 2*Tq + (i & 1)
                    row = row_lo if i < 2 else row_hi
                    m = (key >= seqlen) | ((key > row) if causal else False)
                    s[nt, :, i] = np.where(m, -np.inf, s[nt, :, i])
            resc = []
            for r in range(2):
                mx = row_max[r].copy()
                for nt in range(BN//8): mx = np.maximum(mx, np.maximum(s[nt, :, 2*r], s[nt, :, 2*r+1]))
                mx = quad_max(mx)
                base = np.where(mx == -np.inf, 0.0, mx * sl2)
                rs = np.exp2(row_max[r]*sl2 - base); resc.append(rs)
                row_max[r] = mx
                sm = np.zeros(32)
                for nt in range(BN//8):
                    for cc in range(2):
                        s[nt, :, 2*r+cc] = np.exp2(s[nt, :, 2*r+cc]*sl2 - base); sm += s[nt, :, 2*r+cc]
                row_sum[r] = row_sum[r]*rs + sm
            for dt in range(D//8):
                o_acc[dt, :, 0] *= resc[0]; o_acc[dt, :, 1] *= resc[0]; o_acc[dt, :, 2] *= resc[1]; o_acc[dt, :, 3] *= resc[1]
            for kt in range(BN//16):
                pf = np.stack([s[2*kt][:, 0:2], s[2*kt][:, 2:4], s[2*kt+1][:, 0:2], s[2*kt+1][:, 2:4]], axis=1)
                vr = (kt*16 + (LANES & 15)) * pitch + (LANES >> 4) * 8
                for dt in range(0, D//8, 2):
                    vf = ldmatrix_x4_trans(sV, vr + dt*8)
                    o_acc[dt] = mma(o_acc[dt], pf, vf[:, 0:2]); o_acc[dt+1] = mma(o_acc[dt+1], pf, vf[:, 2:4])
        for r in range(2):
            row = row_lo if r == 0 else row_hi
            total = quad_sum(row_sum[r])
            for l in range(32):
                if row[l] >= seqlen: continue
                inv = 1/total[l] if total[l] > 0 else 0
                for dt in range(D//8):
                    col = dt*8 + 2*Tq[l]
                    out[seq_begin + row[l], h, col] = o_acc[dt, l, 2*r]*inv
                    out[seq_begin + row[l], h, col+1] = o_acc[dt, l, 2*r+1]*inv
                if Tq[l] == 0:
                    lse[h, seq_begin + row[l]] = row_max[r][l]*scale + np.log(total[l])

def bwd_cta(q, k, v, o, do, lse, delta, dq_acc, dk, dv, seq_begin, seqlen, n_block, hk, H, Hkv, causal, scale, D):
    BN = 64; BM = 64 if D <= 64 else 32; pitch = D + 8; pitchS = BN + 8
    n0 = n_block * BN
    if n0 >= seqlen: return
    group = H // Hkv
    pad = lambda x: np.concatenate([x, np.full((256, D), NAN)])
    kh = pad(k[seq_begin:seq_begin+seqlen, hk]); vh = pad(v[seq_begin:seq_begin+seqlen, hk])
    sK = load_tile(BN, D, pitch, kh, n0, seqlen - n0); sV = load_tile(BN, D, pitch, vh, n0, seqlen - n0)
    sl2 = scale * np.log2(np.e)
    dv_acc = np.zeros((4, D//8, 32, 4)); dk_acc = np.zeros((4, D//8, 32, 4))
    m_first = n0 // BM if causal else 0
    m_blocks = (seqlen + BM - 1) // BM
    for hq in range(hk*group, (hk+1)*group):
        qh = pad(q[seq_begin:seq_begin+seqlen, hq]); doh = pad(do[seq_begin:seq_begin+seqlen, hq])
        for mb in range(m_first, m_blocks):
            m0 = mb*BM
            sQ = load_tile(BM, D, pitch, qh, m0, seqlen - m0); sdO = load_tile(BM, D, pitch, doh, m0, seqlen - m0)
            sLse = np.array([lse[hq, seq_begin+m0+i]*np.log2(np.e) if m0+i < seqlen else np.inf for i in range(BM)])
            sDelta = np.array([delta[hq, seq_begin+m0+i] if m0+i < seqlen else 0.0 for i in range(BM)])
            sdS = np.full(BM*pitchS, NAN)
            for warp in range(4):
                key_lo = n0 + warp*16 + G; key_hi = key_lo + 8
                s = np.zeros((BM//8, 32, 4)); dp = np.zeros((BM//8, 32, 4))
                for ks in range(D//16):
                    kr = (warp*16 + G)*pitch + ks*16 + 2*Tq
                    kf = np.stack([load_pair(sK, kr), load_pair(sK, kr + 8*pitch), load_pair(sK, kr + 8), load_pair(sK, kr + 8*pitch + 8)], axis=1)
                    vf = np.stack([load_pair(sV, kr), load_pair(sV, kr + 8*pitch), load_pair(sV, kr + 8), load_pair(sV, kr + 8*pitch + 8)], axis=1)
                    for mt in range(BM//8):
                        qr = (mt*8 + G)*pitch + ks*16 + 2*Tq
                        qf = np.stack([load_pair(sQ, qr), load_pair(sQ, qr + 8)], axis=1)
                        dof = np.stack([load_pair(sdO, qr), load_pair(sdO, qr + 8)], axis=1)
                        s[mt] = mma(s[mt], kf, qf); dp[mt] = mma(dp[mt], vf, dof)
                for mt in range(BM//8):
                    for i in range(4):
                        ql = mt*8 + 2*Tq + (i & 1); query = m0 + ql
                        key = key_lo if i < 2 else key_hi
                        vis = (key < seqlen) & (query < seqlen) & ((key <= query) if causal else True)
                        with np.errstate(invalid='ignore'):
                            pv = np.where(vis, np.exp2(s[mt, :, i]*sl2 - sLse[ql]), 0.0)
                        s[mt, :, i] = pv; dp[mt, :, i] = pv*(dp[mt, :, i] - sDelta[ql])
                for kt in range(BM//16):
                    pf = np.stack([s[2*kt][:, 0:2], s[2*kt][:, 2:4], s[2*kt+1][:, 0:2], s[2*kt+1][:, 2:4]], axis=1)
                    dsf = np.stack([dp[2*kt][:, 0:2], dp[2*kt][:, 2:4], dp[2*kt+1][:, 0:2], dp[2*kt+1][:, 2:4]], axis=1)
                    ro = (kt*16 + (LANES & 15))*pitch + (LANES >> 4)*8
                    for dt in range(0, D//8, 2):
                        bf = ldmatrix_x4_trans(sdO, ro + dt*8)
                        dv_acc[warp, dt] = mma(dv_acc[warp, dt], pf, bf[:, 0:2]); dv_acc[warp, dt+1] = mma(dv_acc[warp, dt+1], pf, bf[:, 2:4])
                        bf = ldmatrix_x4_trans(sQ, ro + dt*8)
                        dk_acc[warp, dt] = mma(dk_acc[warp, dt], dsf, bf[:, 0:2]); dk_acc[warp, dt+1] = mma(dk_acc[warp, dt+1], dsf, bf[:, 2:4])
                for mt in range(BM//8):
                    for i in range(4):
                        ql = mt*8 + 2*Tq + (i & 1); kl = warp*16 + G + (0 if i < 2 else 8)
                        sdS[ql*pitchS + kl] = dp[mt, :, i]
            # __syncthreads
            RG = BM // 16; CS = 4 // RG; DTW = (D//8) // CS
            for warp in range(4):
                rg = warp % RG; dt0 = (warp // RG) * DTW
                dqf = np.zeros((DTW, 32, 4))
                for kt in range(BN//16):
                    ar = (rg*16 + G)*pitchS + kt*16 + 2*Tq
                    af = np.stack([load_pair(sdS, ar), load_pair(sdS, ar + 8*pitchS), load_pair(sdS, ar + 8), load_pair(sdS, ar + 8*pitchS + 8)], axis=1)
                    kr = (kt*16 + (LANES & 15))*pitch + (LANES >> 4)*8
                    for j in range(0, DTW, 2):
                        bf = ldmatrix_x4_trans(sK, kr + (dt0 + j)*8)
                        dqf[j] = mma(dqf[j], af, bf[:, 0:2]); dqf[j+1] = mma(dqf[j+1], af, bf[:, 2:4])
                for r in range(2):
                    query = m0 + rg*16 + G + 8*r
                    for l in range(32):
                        if query[l] >= seqlen: continue
                        for j in range(DTW):
                            col = (dt0 + j)*8 + 2*Tq[l]
                            dq_acc[seq_begin + query[l], hq, col] += dqf[j, l, 2*r]*scale
                            dq_acc[seq_begin + query[l], hq, col+1] += dqf[j, l, 2*r+1]*scale
    for warp in range(4):
        for r in range(2):
            key = n0 + warp*16 + G + 8*r
            for l in range(32):
                if key[l] >= seqlen: continue
                for dt in range(D//8):
                    col = dt*8 + 2*Tq[l]
                    dk[seq_begin + key[l], hk, col:col+2] = dk_acc[warp, dt, l, 2*r:2*r+2]*scale
                    dv[seq_begin + key[l], hk, col:col+2] = dv_acc[warp, dt, l, 2*r:2*r+2]

def reference(q, k, v, do, cu, H, Hkv, causal, scale):
    N, _, D = q.shape
    out = np.zeros_like(q); lse = np.zeros((H, N)); dq = np.zeros_like(q); dk = np.zeros_like(k); dv = np.zeros_like(v)
    for b in range(len(cu)-1):
        s0, s1 = cu[b], cu[b+1]; T = s1 - s0
        if T == 0: continue
        for h in range(H):
            hk = h // (H // Hkv)
            S = q[s0:s1, h] @ k[s0:s1, hk].T * scale
            if causal: S = np.where(np.triu(np.ones((T, T), bool), 1), -np.inf, S)
            m = S.max(1, keepdims=True); P = np.exp(S - m); l = P.sum(1, keepdims=True); P /= l
            lse[h, s0:s1] = (m + np.log(l))[:, 0]
            out[s0:s1, h] = P @ v[s0:s1, hk]
            dO = do[s0:s1, h]; dP = dO @ v[s0:s1, hk].T
            dS = P * (dP - (dP*P).sum(1, keepdims=True)) * scale
            dq[s0:s1, h] = dS @ k[s0:s1, hk]; dk[s0:s1, hk] += dS.T @ q[s0:s1, h]; dv[s0:s1, hk] += P.T @ dO
    return out, lse, dq, dk, dv

def run(cu, H, Hkv, D, causal, seed=0):
    rng = np.random.default_rng(seed)
    N = cu[-1]
    q = rng.standard_normal((N, H, D)); k = rng.standard_normal((N, Hkv, D)); v = rng.standard_normal((N, Hkv, D)); do = rng.standard_normal((N, H, D))
    scale = 1/np.sqrt(D)
    out = np.full((N, H, D), NAN); lse = np.full((H, N), NAN)
    maxlen = max(cu[i+1]-cu[i] for i in range(len(cu)-1))
    for b in range(len(cu)-1):
        for h in range(H):
            for mb in range((maxlen + 63)//64):
                fwd_cta(q, k, v, out, lse, cu[b], cu[b+1]-cu[b], mb, h, h // (H//Hkv), causal, scale, D)
    # preprocess
    delta = np.einsum('nhd,nhd->hn', out, do)
    dq_acc = np.zeros((N, H, D)); dk = np.full((N, Hkv, D), NAN); dv = np.full((N, Hkv, D), NAN)
    for b in range(len(cu)-1):
        for hk in range(Hkv):
            for nb in range((maxlen + 63)//64):
                bwd_cta(q, k, v, out, do, lse, delta, dq_acc, dk, dv, cu[b], cu[b+1]-cu[b], nb, hk, H, Hkv, causal, scale, D)
    ref = reference(q, k, v, do, cu, H, Hkv, causal, scale)
    errs = [np.abs(a - r).max() if a.size else 0 for a, r in zip((out, lse, dq_acc, dk, dv), ref)]
    print(f"cu={cu} H={H} Hkv={Hkv} D={D} causal={causal}: out {errs[0]:.2e} lse {errs[1]:.2e} dq {errs[2]:.2e} dk {errs[3]:.2e} dv {errs[4]:.2e}")
    assert all(np.isfinite(e) and e < 1e-9 for e in errs), errs


def paged_decode_emu(q, k_cache, v_cache, table, seq_lens, H, Hkv, D, page_size, scale, num_splits, max_len):
    """kernels/paged_decode.cu per block, warp and 4-key step, with split-K."""
    B = len(seq_lens)
    per_lane = D // 32
    tps = max(1, (max_len + num_splits - 1) // num_splits)
    ws_m = np.zeros((B, H, num_splits)); ws_l = np.zeros((B, H, num_splits)); ws_acc = np.zeros((B, H, num_splits, D))
    out = np.full((B, H, D), NAN)
    for split in range(num_splits):
        for b in range(B):
            for h in range(H):
                hk = h // (H // Hkv)
                t_begin = split * tps; t_end = min(seq_lens[b], t_begin + tps)
                qv = q[b, h] * scale * np.log2(np.e)
                states = []
                for warp in range(4):
                    m, l, acc = -np.inf, 0.0, np.zeros(D)
                    t0 = t_begin + warp * 4
                    while t0 < t_end:
                        offs = [t if t < t_end else -1 for t in range(t0, t0 + 4)]
                        rows = [None if t < 0 else table[b][t // page_size] * page_size + t % page_size for t in offs]
                        score = [(-np.inf if r is None else float(qv @ k_cache[r, hk])) for r in rows]
                        m_new = max([m] + score)
                        resc = np.exp2(m - m_new); l *= resc; acc = acc * resc
                        for j, r in enumerate(rows):
                            if r is None: continue
                            pj = np.exp2(score[j] - m_new); l += pj; acc = acc + pj * v_cache[r, hk]
                        m = m_new
                        t0 += 16
                    states.append((m, l, acc))
                bm = max(st[0] for st in states)
                w = [0.0 if bm == -np.inf else np.exp2(st[0] - bm) for st in states]
                bl = sum(st[1] * wi for st, wi in zip(states, w))
                o = sum(st[2] * wi for st, wi in zip(states, w))
                if num_splits == 1:
                    out[b, h] = o / bl if bl > 0 else 0.0
                else:
                    ws_m[b, h, split] = bm; ws_l[b, h, split] = bl; ws_acc[b, h, split] = o
    if num_splits > 1:
        for b in range(B):
            for h in range(H):
                m_all = ws_m[b, h].max()
                l_all = 0.0 if m_all == -np.inf else sum(ws_l[b, h, s] * np.exp2(ws_m[b, h, s] - m_all) for s in range(num_splits))
                o = np.zeros(D)
                for s in range(num_splits):
                    if ws_m[b, h, s] != -np.inf: o += ws_acc[b, h, s] * np.exp2(ws_m[b, h, s] - m_all)
                out[b, h] = o / l_all if l_all > 0 else 0.0
    return out

def run_decode(seq_lens, H, Hkv, D, page_size, num_splits, seed=0):
    rng = np.random.default_rng(seed)
    B = len(seq_lens); max_len = max(seq_lens)
    mp = max(1, -(-max_len // page_size)); pages = rng.permutation(B * mp + 2)
    table = [[int(pages[b * mp + i]) for i in range(mp)] for b in range(B)]
    rows = len(pages) * page_size
    kc = rng.standard_normal((rows, Hkv, D)); vc = rng.standard_normal((rows, Hkv, D)); q = rng.standard_normal((B, H, D))
    scale = 1 / np.sqrt(D)
    got = paged_decode_emu(q, kc, vc, table, seq_lens, H, Hkv, D, page_size, scale, num_splits, max_len)
    err = 0.0
    for b in range(B):
        for h in range(H):
            hk = h // (H // Hkv)
            if seq_lens[b] == 0:
                err = max(err, np.abs(got[b, h]).max()); continue
            idx = [table[b][t // page_size] * page_size + t % page_size for t in range(seq_lens[b])]
            sc = kc[idx, hk] @ q[b, h] * scale; p = np.exp(sc - sc.max()); p /= p.sum()
            err = max(err, np.abs(got[b, h] - p @ vc[idx, hk]).max())
    print(f"decode lens={seq_lens} H={H} Hkv={Hkv} D={D} page={page_size} splits={num_splits}: err {err:.2e}")
    assert np.isfinite(err) and err < 1e-9, err

if __name__ == "__main__":
    import sys
    run([0, 1], 1, 1, 64, False)
    run([0, 5], 3, 1, 128, True)
    run([0, 0, 1, 8, 75], 2, 1, 64, True)
    run([0, 0, 1, 8, 75], 2, 1, 64, False)
    run([0, 70, 170], 2, 2, 128, True)
    run([0, 130], 3, 1, 128, False)
    run_decode([5, 16, 17, 0, 33], 6, 2, 64, 16, 1)
    run_decode([5, 16, 17, 0, 33], 6, 2, 64, 16, 4)
    run_decode([1, 70], 3, 3, 128, 8, 37)
    run_decode([130, 2], 4, 1, 64, 32, 3)
