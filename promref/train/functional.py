"""Float32 kernels for training, forward and backward side by side.

Layouts are NHWC float32.  The 1x1 convs and the stem are matrix products
(NumPy/BLAS); what BLAS cannot do well -- the depthwise 3x3 conv and the
element-wise batch-norm/ReLU6 chains -- is written out here in Numba, fused
so each tensor is read once.
"""
import numba
import numpy as np

_jit = dict(parallel=True, cache=True, fastmath=False)


# ---------------------------------------------------------------- depthwise


@numba.njit(**_jit)
def depthwise_forward(x, w, stride, pad):
    """x [N, H, W, C] float32, w [3, 3, C] -> y [N, Ho, Wo, C]; zero padding ``pad`` on each side."""
    n, h, wd, c = x.shape
    k = w.shape[0]
    ho = (h + 2 * pad - k) // stride + 1
    wo = (wd + 2 * pad - k) // stride + 1
    # np.empty, not np.zeros: the first tap writes ``0 + x * w`` -- the very sum a zeroed
    # output would hold after it (-0.0 included) -- and saves a pass over y
    y = np.empty((n, ho, wo, c), np.float32)
    zero = np.float32(0)
    for b_i in numba.prange(n * ho):
        b, i = b_i // ho, b_i % ho
        for j in range(wo):
            first = True
            for a in range(k):
                r = i * stride + a - pad
                if r < 0 or r >= h:
                    continue
                for e in range(k):
                    s = j * stride + e - pad
                    if s < 0 or s >= wd:
                        continue
                    if first:
                        for ch in range(c):  # channels innermost: contiguous, vectorises
                            y[b, i, j, ch] = zero + x[b, r, s, ch] * w[a, e, ch]
                        first = False
                    else:
                        for ch in range(c):
                            y[b, i, j, ch] += x[b, r, s, ch] * w[a, e, ch]
            if first:  # no tap inside the image (a padding wider than the kernel)
                for ch in range(c):
                    y[b, i, j, ch] = zero
    return y


@numba.njit(**_jit)
def depthwise_backward(x, w, dy, stride, pad):
    """Gradients of :func:`depthwise_forward`: -> (dx [N, H, W, C], dw [3, 3, C])."""
    n, h, wd, c = x.shape
    k = w.shape[0]
    _, ho, wo, _ = dy.shape
    dx = np.zeros_like(x)
    # per-image partial weight gradients, summed after the parallel loop (no races)
    dw_part = np.zeros((n, k, k, c), np.float32)
    for b in numba.prange(n):
        for i in range(ho):
            for j in range(wo):
                for a in range(k):
                    r = i * stride + a - pad
                    if r < 0 or r >= h:
                        continue
                    for e in range(k):
                        s = j * stride + e - pad
                        if s < 0 or s >= wd:
                            continue
                        for ch in range(c):
                            g = dy[b, i, j, ch]
                            dx[b, r, s, ch] += g * w[a, e, ch]
                            dw_part[b, a, e, ch] += g * x[b, r, s, ch]
    return dx, dw_part.sum(axis=0)


# --------------------------------------------------------------- stem conv


def im2col(x, k, stride, pad):
    """x [N, H, W, C] -> patches [N, Ho, Wo, k*k*C] (tap-major, channel-minor), zero padded."""
    n, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    ho = (h + 2 * pad - k) // stride + 1
    wo = (w + 2 * pad - k) // stride + 1
    cols = [xp[:, a:a + stride * (ho - 1) + 1:stride, e:e + stride * (wo - 1) + 1:stride, :]
            for a in range(k) for e in range(k)]
    return np.concatenate(cols, axis=-1)


# ------------------------------------------------------ quantized tensors (QAT)


@numba.njit(**_jit)
def dequantize(q, zero_point, scale):
    """int8 q [...] -> float32 ``(q - zero_point) * scale``, in float32 like the NumPy
    expression ``(q.astype(float32) - float32(zp)) * float32(scale)`` (same bits)."""
    flat = q.ravel()
    out = np.empty(flat.size, np.float32)
    zp, s = np.float32(zero_point), np.float32(scale)
    for i in numba.prange(flat.size):
        out[i] = (np.float32(flat[i]) - zp) * s
    return out.reshape(q.shape)


@numba.njit(**_jit)
def straight_through(dy, q, lo, hi):
    """The straight-through gradient of a clamped int8 output: ``dy`` where
    ``lo < q < hi``, 0 where the output saturated.  dy float32, q int8, same shape."""
    g, codes = dy.ravel(), q.ravel()
    out = np.empty(g.size, np.float32)
    for i in numba.prange(g.size):
        out[i] = g[i] if lo < codes[i] < hi else np.float32(0)
    return out.reshape(dy.shape)


@numba.njit(**_jit)
def dequantize_channel_major(q, zero_point, scale):
    """int8 q [C, N, H, W] (the fast backend's layout) -> float32 [N, H, W, C], each value
    exactly :func:`dequantize`'s.  An (image, row) job gathers row ``h`` of every channel
    plane into an L1-sized [W, C] tile, then writes the NHWC row from it contiguously."""
    c, n, h, w = q.shape
    out = np.empty((n, h, w, c), np.float32)
    zp, s = np.float32(zero_point), np.float32(scale)
    for job in numba.prange(n * h):
        b, i = job // h, job % h
        tile = np.empty((w, c), np.float32)
        for ch in range(c):
            row = q[ch, b, i]
            for j in range(w):
                tile[j, ch] = row[j]
        dst = out[b, i]
        for j in range(w):
            for ch in range(c):
                dst[j, ch] = (tile[j, ch] - zp) * s
    return out


@numba.njit(**_jit)
def straight_through_real(dy, real, lo_real, hi_real):
    """:func:`straight_through` from the dequantized codes ``real`` (float32, dy's shape and
    layout) instead of the codes: ``dy`` where ``lo_real < real < hi_real``.  The same mask
    when lo_real, hi_real are the clamp bounds dequantized by the same formula, because
    ``k -> (k - zp) * scale`` is strictly increasing on the int8 codes for a normal scale."""
    g, r = dy.ravel(), real.ravel()
    out = np.empty(g.size, np.float32)
    lo, hi = np.float32(lo_real), np.float32(hi_real)
    for i in numba.prange(g.size):
        out[i] = g[i] if lo < r[i] < hi else np.float32(0)
    return out.reshape(dy.shape)


# ------------------------------------------------------ batch norm + ReLU6


@numba.njit(**_jit)
def channel_mean_var(z):
    """z [P, C] -> (mean [C], biased variance [C]) in float64 for stability."""
    p, c = z.shape
    chunks = 16
    s1 = np.zeros((chunks, c))
    s2 = np.zeros((chunks, c))
    for t in numba.prange(chunks):
        # each chunk sums a contiguous block of rows into its own local rows
        a1 = np.zeros(c)
        a2 = np.zeros(c)
        for i in range(t * p // chunks, (t + 1) * p // chunks):
            for ch in range(c):
                v = np.float64(z[i, ch])
                a1[ch] += v
                a2[ch] += v * v
        s1[t] = a1
        s2[t] = a2
    mean = s1.sum(axis=0) / p
    return mean, np.maximum(s2.sum(axis=0) / p - mean * mean, 0.0)


@numba.njit(**_jit)
def affine_act_forward(z, scale, shift, relu6):
    """y = clip(z * scale + shift, 0, 6) (or no clip): z [P, C], scale/shift [C] float32."""
    p, c = z.shape
    y = np.empty_like(z)
    for i in numba.prange(p):
        for ch in range(c):
            v = z[i, ch] * scale[ch] + shift[ch]
            if relu6:
                v = min(max(v, np.float32(0)), np.float32(6))
            y[i, ch] = v
    return y


@numba.njit(**_jit)
def bn_act_backward(dy, y, z, mean, inv_std, gamma, relu6, batch_stats):
    """Backward of y = act(gamma * (z - mean) * inv_std + beta) over z [P, C].

    With batch statistics the mean and variance depend on z (the usual BN
    backward); with frozen statistics they are constants.  Returns
    (dz [P, C], dgamma [C], dbeta [C]).
    """
    p, c = z.shape
    chunks = 16
    sg = np.zeros((chunks, c))   # sum of dy_pre
    sgx = np.zeros((chunks, c))  # sum of dy_pre * xhat
    for t in numba.prange(chunks):
        a1 = np.zeros(c)
        a2 = np.zeros(c)
        for i in range(t * p // chunks, (t + 1) * p // chunks):
            for ch in range(c):
                g = np.float64(dy[i, ch])
                if relu6 and (y[i, ch] <= 0 or y[i, ch] >= 6):
                    g = 0.0
                a1[ch] += g
                a2[ch] += g * (z[i, ch] - mean[ch]) * inv_std[ch]
        sg[t] = a1
        sgx[t] = a2
    dbeta = sg.sum(axis=0)
    dgamma = sgx.sum(axis=0)
    dz = np.empty_like(z)
    for i in numba.prange(p):
        for ch in range(c):
            g = dy[i, ch]
            if relu6 and (y[i, ch] <= 0 or y[i, ch] >= 6):
                g = 0.0
            k = gamma[ch] * inv_std[ch]
            if batch_stats:
                xhat = (z[i, ch] - mean[ch]) * inv_std[ch]
                dz[i, ch] = k * (g - dbeta[ch] / p - xhat * dgamma[ch] / p)
            else:
                dz[i, ch] = k * g
    return dz, dgamma.astype(np.float32), dbeta.astype(np.float32)
