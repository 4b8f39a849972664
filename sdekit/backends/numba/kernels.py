"""The Numba kernels: fixed-step SDE/ODE solves over chunks of paths, and adaptive ODE solves.

Paths are split into chunks of `chunk` rows; each chunk (one thread at a time) copies its
state into a local C-contiguous array, runs every step of the grid segment, and writes
saves and the final state back. Nothing is allocated per step except what the user's
batch functions return (one array per call, amortised over the chunk); per-path functions
(`evaluate`) write into buffers allocated once per chunk. Kernels are serial and
release the GIL; the runner splits chunks (or paths) between Python threads, so threads
never change results, compile once, and small problems run on the calling thread.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from sdekit.backends.numba.evaluate import F_SITES, G_SITES, path_buffers, unmanaged
from sdekit.noise.levy_area import AUX_LEVY_AREA, draw_area_increments
from sdekit.noise.streams import next_normal_row, seed_stream
from sdekit.noise.streams32 import draw_block32

_INV_SQRT3 = 1.0 / math.sqrt(3.0)


@nb.njit(cache=True)
def draw_increments(rng_w, rng_z, start, nc, m, substeps, use_aux, habs, dw, dz, k_tab, w_tab, f_tab):
    """dW (and I_(1,0)) of paths start..start+nc over a step of length habs, from `substeps` fine draws.

    dW = sum_q xi_q, I10 = sum_q [W_q hf + hf/2 (xi_q + eta_q / sqrt 3)], xi, eta ~ N(0, hf),
    W_q the sum of the earlier xi (VALIDATION.md §4: coarse I10 from fine increments).
    """
    hf = habs / substeps
    sqf = math.sqrt(hf)
    if substeps == 1 and not use_aux:
        for r in range(nc):
            for j in range(m):
                dw[r, j] = sqf * next_normal_row(rng_w, start + r, k_tab, w_tab, f_tab)
        return
    for r in range(nc):
        for j in range(m):
            dw[r, j] = 0.0
            dz[r, j] = 0.0
        for _q in range(substeps):
            for j in range(m):
                xi = sqf * next_normal_row(rng_w, start + r, k_tab, w_tab, f_tab)
                if use_aux:
                    eta = sqf * next_normal_row(rng_z, start + r, k_tab, w_tab, f_tab)
                    dz[r, j] += dw[r, j] * hf + 0.5 * hf * (xi + eta * _INV_SQRT3)
                dw[r, j] += xi


@nb.njit(cache=True)
def draw_block(rng_w, start, nc, n_draws, zbuf, k_tab, w_tab, f_tab):
    """zbuf[r, :n_draws] = the next n_draws standard normals of path start + r.

    Drawing several steps ahead per path keeps the generator on one stream at a time (its
    state in registers), which is faster than one draw per path per step; the numbers and
    their order on each path's stream are unchanged.
    """
    for r in range(nc):
        for j in range(n_draws):
            zbuf[r, j] = next_normal_row(rng_w, start + r, k_tab, w_tab, f_tab)


def draw_plain(rng_w, start, nc, n_draws, zbuf, k_tab, w_tab, f_tab):
    """zbuf[r, :n_draws] = the next n_draws normals of path start + r, in zbuf's precision: float64 normals
    (`draw_block`, 4-word states) into a float64 buffer, float32 normals (`sdekit.noise.streams32.draw_block32`,
    5-word states, the float32 tables) into a float32 one. Chosen when the kernel compiles (one kernel per buffer
    dtype), so the float64 kernel is the one it always was."""
    if zbuf.dtype == np.float32:
        draw_block32(rng_w, start, nc, n_draws, zbuf, k_tab, w_tab, f_tab)
    else:
        draw_block(rng_w, start, nc, n_draws, zbuf, k_tab, w_tab, f_tab)


@nb.extending.overload(draw_plain)
def _draw_plain_ov(rng_w, start, nc, n_draws, zbuf, k_tab, w_tab, f_tab):
    if isinstance(zbuf, nb.types.Array) and zbuf.dtype == nb.types.float32:
        def impl32(rng_w, start, nc, n_draws, zbuf, k_tab, w_tab, f_tab):
            draw_block32(rng_w, start, nc, n_draws, zbuf, k_tab, w_tab, f_tab)
        return impl32

    def impl64(rng_w, start, nc, n_draws, zbuf, k_tab, w_tab, f_tab):
        draw_block(rng_w, start, nc, n_draws, zbuf, k_tab, w_tab, f_tab)
    return impl64


@nb.njit(cache=True)
def draw_increments_kept(rng_w, rng_z, start, nc, m, substeps, use_aux, habs, dw, dz, k_tab, w_tab, f_tab, xi_q,
                         zeta_q):
    """`draw_increments` (the same numbers, the same sums) that also keeps each substep's increment xi_q[r, q, j] and
    its own I_(1,0), zeta_q[r, q, j] = hf/2 (xi + eta / sqrt 3) (0 without auxiliary noise): for saves inside the
    step (`sdekit.backends.save_bridge`)."""
    hf = habs / substeps
    sqf = math.sqrt(hf)
    for r in range(nc):
        for j in range(m):
            dw[r, j] = 0.0
            dz[r, j] = 0.0
        for q in range(substeps):
            for j in range(m):
                xi = sqf * next_normal_row(rng_w, start + r, k_tab, w_tab, f_tab)
                zeta_q[r, q, j] = 0.0
                if use_aux:
                    eta = sqf * next_normal_row(rng_z, start + r, k_tab, w_tab, f_tab)
                    zeta_q[r, q, j] = 0.5 * hf * (xi + eta * _INV_SQRT3)
                    dz[r, j] += dw[r, j] * hf + 0.5 * hf * (xi + eta * _INV_SQRT3)
                xi_q[r, q, j] = xi
                dw[r, j] += xi


@nb.njit(cache=True)
def bridge_increments(dw, dz, xi_q, zeta_q, hf, coef, z, start, nc, m, dwp, dzp):
    """The increments over the first u of a step, bridged from the step's draws (`sdekit.backends.save_bridge`):
    coef = (a_ww, a_wj, a_jw, a_jj, l_ww, l_jw, l_jj, q0, u'), z[start + r, 2 j + (0, 1)] the save's normals of path
    start + r, component j. One substep (xi_q empty): (W', J') = A (dw, dz) + L z; else W_pre, J_pre of the
    substeps before q0 (hf wide) plus (W', J') bridged from substep q0's (xi, zeta)."""
    q0 = int(coef[7])
    u_in = coef[8]
    split = xi_q.shape[0] > 0
    for r in range(nc):
        for j in range(m):
            w_pre = 0.0
            j_pre = 0.0
            yw = dw[r, j]
            yj = dz[r, j]
            if split:
                for q in range(q0):
                    j_pre += w_pre * hf + zeta_q[r, q, j]
                    w_pre += xi_q[r, q, j]
                yw = xi_q[r, q0, j]
                yj = zeta_q[r, q0, j]
            z1 = z[start + r, 2 * j]
            z2 = z[start + r, 2 * j + 1]
            dwp[r, j] = w_pre + (coef[0] * yw + coef[1] * yj + coef[4] * z1)
            dzp[r, j] = j_pre + w_pre * u_in + (coef[2] * yw + coef[3] * yj + coef[5] * z1 + coef[6] * z2)


@nb.njit(cache=True)
def copy_rows(dst, src):
    """dst[r, i] = src[r, i] (explicit loops: a slice assignment makes every kernel compile Numba's array-expression
    machinery, tripling the compile time of the fixed-step kernel)."""
    for r in range(dst.shape[0]):
        for i in range(dst.shape[1]):
            dst[r, i] = src[r, i]


@nb.njit(fastmath={"reassoc", "nsz"}, cache=True)
def all_finite(x):
    """True when every entry of x is finite: sum(x * 0) is 0 unless some entry is inf or NaN."""
    flat = x.reshape(-1)
    s = 0.0
    for i in range(flat.shape[0]):
        s += flat[i] * 0.0
    return s == 0.0


@nb.njit(cache=True)
def first_nonfinite(x, dead, start, mask):
    """Row of x that just turned non-finite (-1 if none).

    With mask, every such row is marked dead and reset to 0 (finite and inert: it is written
    out as NaN), and -1 is returned.
    """
    if all_finite(x):
        return -1
    for r in range(x.shape[0]):
        if dead[start + r]:
            continue
        finite = True
        for i in range(x.shape[1]):
            finite &= abs(x[r, i]) < np.inf
        if finite:
            continue
        if not mask:
            return r
        dead[start + r] = True
        for i in range(x.shape[1]):
            x[r, i] = 0.0
    return -1


@nb.njit(cache=True)
def write_rows(dst, start, x, dead):
    """dst[start + r] = x[r], or NaN for dead paths."""
    for r in range(x.shape[0]):
        dead_row = dead[start + r]
        for i in range(x.shape[1]):
            dst[start + r, i] = np.nan if dead_row else x[r, i]


@nb.njit(nogil=True)
def fixed_step(step, f, g, gdw, xs, rng_w, rng_z, ts, k_start, k_stop, save_steps, out, p, tab,
               m, substeps, use_aux, chunk, c_start, c_stop, n_work, carry, mask, dead, err_step, err_path,
               k_tab, w_tab, f_tab, save_offsets, bridge_coef, bridge_row, bridge_z, w_now, w_out):
    """Run grid steps [k_start, k_stop) on chunks [c_start, c_stop) of `chunk` paths each.

    carry (n_carry, n_paths, d): the first n_carry work arrays of each path, kept between calls (a solver whose
    step carries state from step to step, `steps.CARRIED_FAMILIES`); n_carry = 0 for the others.
    Save j is at ts[save_steps[j]] + save_offsets[j]; one strictly inside step k (offset != 0) is a partial step of
    the same solver from copies of x and work, with the increments bridged from the step's own (`save_bridge`:
    bridge_coef[j], normals bridge_z[bridge_row[j]]); the step itself is unchanged. w_now (n_paths, m), kept between
    calls, is W(t) - W(t0) (the sum of the step increments) when W is saved into w_out; both empty otherwise.
    """
    n_paths, d = xs.shape
    n_saves = save_steps.shape[0]
    mm = max(m, 1)
    for c in range(c_start, c_stop):
        start = c * chunk
        stop = min(n_paths, start + chunk)
        nc = stop - start
        x = np.empty((nc, d), dtype=xs.dtype)
        for r in range(nc):
            for i in range(d):
                x[r, i] = 0.0 if dead[start + r] else xs[start + r, i]
        work = np.empty((n_work, nc, d), dtype=xs.dtype)
        fbuf = path_buffers(f, F_SITES, x, mm)  # per-path functions' values (`evaluate`); empty for batch ones
        gbuf = path_buffers(g, G_SITES, x, mm)
        for q in range(carry.shape[0]):
            for r in range(nc):
                for i in range(d):
                    work[q, r, i] = carry[q, start + r, i]
        # the increments in the noise precision: float64, or float32 with the float32 tables (w_tab float32)
        dw = np.zeros((nc, mm), dtype=w_tab.dtype)
        dz = np.zeros((nc, mm * mm if use_aux == AUX_LEVY_AREA else mm), dtype=w_tab.dtype)  # I_(1,0), or A_jk
        # plain increments (one normal per component and step) are drawn `block` steps ahead; float32 normals in longer
        # blocks (the pair loop's per-row cost), a buffer of 32 KiB: its rows 128 bytes apart at 256 paths share the
        # L1 sets (64 steps, rows 256 bytes apart, overflowed them and slowed the column reads of the step)
        plain = m > 0 and substeps == 1 and not use_aux
        block = max(1, min(64, (2048 if w_tab.itemsize == 8 else 8192) // (nc * mm))) if plain else 1
        zbuf = np.empty((nc, block * mm) if plain else (0, 0), dtype=w_tab.dtype)
        n_inside = bridge_z.shape[0]  # saves inside steps: X_k and the work arrays are kept aside there
        x_kept = np.empty((nc if n_inside else 0, d), dtype=xs.dtype)
        work_kept = np.empty((n_work, nc if n_inside else 0, d), dtype=xs.dtype)
        split = substeps > 1 and n_inside > 0  # saves inside steps see each substep's draws
        xi_q = np.empty((nc if split else 0, substeps, mm))
        zeta_q = np.empty((nc if split else 0, substeps, mm))
        keep_w = w_out.shape[0] > 0
        wl = np.zeros((nc if keep_w else 0, mm))
        dwp = np.zeros((nc if n_inside else 0, mm), dtype=w_tab.dtype)  # a partial step's increments (dW, I_(1,0))
        dzp = np.zeros((nc if n_inside else 0, mm), dtype=w_tab.dtype)  # (and W at its save: wp)
        wp = np.zeros((nc if n_inside and keep_w else 0, mm))
        for r in range(wl.shape[0]):
            for j in range(m):
                wl[r, j] = w_now[start + r, j]
        s_idx = 0  # the first save not yet written: on-grid saves at k_start > 0 were written by the call before
        while s_idx < n_saves and (save_steps[s_idx] < k_start or (
                save_steps[s_idx] == k_start and save_offsets[s_idx] == 0.0 and k_start > 0)):
            s_idx += 1
        while s_idx < n_saves and save_steps[s_idx] == 0 and save_offsets[s_idx] == 0.0 and k_start == 0:
            write_rows(unmanaged(out)[s_idx], start, x, dead)
            if keep_w:
                write_rows(unmanaged(w_out)[s_idx], start, wl, dead)
            s_idx += 1
        for k in range(k_start, k_stop):
            t = ts[k]
            h = ts[k + 1] - ts[k]
            inside = s_idx < n_saves and save_steps[s_idx] == k and save_offsets[s_idx] != 0.0  # saves in step k
            if plain:
                q = (k - k_start) % block
                if q == 0:
                    draw_plain(rng_w, start, nc, min(block, k_stop - k) * m, zbuf, k_tab, w_tab, f_tab)
                sq = math.sqrt(abs(h))
                if m == 1:  # no inner loop at m = 1 (see steps.py on loop versioning)
                    for r in range(nc):
                        dw[r, 0] = sq * zbuf[r, q]
                else:
                    for r in range(nc):
                        for j in range(m):
                            dw[r, j] = sq * zbuf[r, q * m + j]
            elif m > 0 and use_aux == AUX_LEVY_AREA:  # (no save inside a step: refused before the solve)
                draw_area_increments(rng_w, rng_z, start, nc, m, substeps, abs(h), dw, dz, k_tab, w_tab, f_tab)
            elif m > 0 and inside and substeps > 1:
                draw_increments_kept(rng_w, rng_z, start, nc, m, substeps, use_aux, abs(h), dw, dz, k_tab, w_tab,
                                     f_tab, xi_q, zeta_q)
            elif m > 0:
                draw_increments(rng_w, rng_z, start, nc, m, substeps, use_aux, abs(h), dw, dz, k_tab, w_tab, f_tab)
            # saves inside step k: partial steps from X_k (kept aside and put back bit for bit), then the step itself;
            # one call site of `step` (a second one made the compiled kernel twice as large and slow to compile)
            n_in = 0
            while inside and s_idx + n_in < n_saves and save_steps[s_idx + n_in] == k and \
                    save_offsets[s_idx + n_in] != 0.0:
                n_in += 1
            if n_in > 0:
                copy_rows(x_kept, x)
                for q in range(n_work):
                    copy_rows(work_kept[q], work[q])
            bad = -1
            for j_sub in range(n_in + 1):
                last = j_sub == n_in
                hh = h
                dwu = unmanaged(dw)
                dzu = unmanaged(dz)
                if not last:
                    bridge_increments(dw, dz, xi_q, zeta_q, abs(h) / substeps, bridge_coef[s_idx],
                                      bridge_z[bridge_row[s_idx]], start, nc, m, dwp, dzp)
                    hh = save_offsets[s_idx]
                    dwu = unmanaged(dwp)
                    dzu = unmanaged(dzp)
                # arrays handed on without reference counting (`evaluate.unmanaged`): at one path it cost more
                # than the step
                step(f, g, gdw, unmanaged(x), t, hh, dwu, dzu, unmanaged(p), unmanaged(work), unmanaged(tab),
                     unmanaged(fbuf), unmanaged(gbuf))
                bad = first_nonfinite(unmanaged(x), dead, start, mask)
                if last or bad >= 0:
                    break
                write_rows(unmanaged(out)[s_idx], start, x, dead)
                if keep_w:
                    for r in range(nc):
                        for j in range(m):
                            wp[r, j] = wl[r, j] + dwp[r, j]
                    write_rows(unmanaged(w_out)[s_idx], start, wp, dead)
                s_idx += 1
                copy_rows(x, x_kept)
                for q in range(n_work):
                    copy_rows(work[q], work_kept[q])
            if bad >= 0:
                err_step[c] = k + 1
                err_path[c] = start + bad
                break
            if keep_w:
                for r in range(nc):
                    for j in range(m):
                        wl[r, j] += dw[r, j]
            while s_idx < n_saves and save_steps[s_idx] == k + 1 and save_offsets[s_idx] == 0.0:
                write_rows(unmanaged(out)[s_idx], start, x, dead)
                if keep_w:
                    write_rows(unmanaged(w_out)[s_idx], start, wl, dead)
                s_idx += 1
        for r in range(nc):
            for i in range(d):
                xs[start + r, i] = x[r, i]
        for q in range(carry.shape[0]):
            for r in range(nc):
                for i in range(d):
                    carry[q, start + r, i] = work[q, r, i]
        for r in range(wl.shape[0]):
            for j in range(m):
                w_now[start + r, j] = wl[r, j]


def _rms_norm(e, x0, x1, rtol, atol):
    acc = 0.0
    d = e.shape[1]
    for i in range(d):
        sc = atol + rtol * max(abs(x0[0, i]), abs(x1[0, i]))
        acc += (e[0, i] / sc) ** 2
    return math.sqrt(acc / d)


_rms_norm_jit = nb.njit(inline="always")(_rms_norm)


@nb.njit(nogil=True)
def adaptive(f, xs, t0, save_ts, out, p, a, bw, be, c, fsal, rtol, atol, h_init, max_steps,
             n_steps, n_rejected, n_evals, err_code, err_t, p_start, p_stop):
    """Embedded Runge–Kutta with step-size control on paths [p_start, p_stop), each on its own steps."""
    # err_code: 0 ok, 1 step budget exhausted, 2 step size underflow, 3 non-finite state
    n_paths, d = xs.shape
    n_st = bw.shape[0]
    n_saves = save_ts.shape[0]
    safety, fac_min, fac_max = 0.9, 0.2, 10.0
    for n in range(p_start, p_stop):
        x = np.empty((1, d), dtype=xs.dtype)
        for i in range(d):
            x[0, i] = xs[n, i]
        ks = np.empty((n_st, 1, d))
        xt = np.empty((1, d), dtype=xs.dtype)
        xn = np.empty((1, d), dtype=xs.dtype)
        e = np.empty((1, d))
        t = t0
        direction = 1.0 if save_ts[n_saves - 1] >= t0 else -1.0
        k0 = f(x, t, p)
        for i in range(d):
            ks[0, 0, i] = _at(k0, i)
        evals = 1
        h = h_init
        if h <= 0.0:  # Hairer, Nørsett & Wanner I, II.4: initial step from |x0|, |f0| and a trial Euler step
            d0 = 0.0
            d1 = 0.0
            for i in range(d):
                sc = atol + rtol * abs(x[0, i])
                d0 += (x[0, i] / sc) ** 2
                d1 += (ks[0, 0, i] / sc) ** 2
            d0 = math.sqrt(d0 / d)
            d1 = math.sqrt(d1 / d)
            h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
            for i in range(d):
                xt[0, i] = x[0, i] + direction * h0 * ks[0, 0, i]
            k1 = f(xt, t + direction * h0, p)
            evals += 1
            d2 = 0.0
            for i in range(d):
                sc = atol + rtol * abs(x[0, i])
                d2 += ((_at(k1, i) - ks[0, 0, i]) / sc) ** 2
            d2 = math.sqrt(d2 / d) / h0
            big = max(d1, d2)
            h1 = max(1e-6, h0 * 1e-3) if big <= 1e-15 else (0.01 / big) ** (1.0 / 5.0)
            h = min(100.0 * h0, h1)
        code = 0
        steps = 0
        rejected = 0
        last_nonfinite = False
        for s in range(n_saves):
            target = save_ts[s]
            while code == 0 and (target - t) * direction > 0.0:
                remaining = abs(target - t)
                last = remaining <= h
                hs = direction * (remaining if last else h)
                for st in range(1, n_st):
                    for i in range(d):
                        acc = x[0, i]
                        for j in range(st):
                            acc += hs * a[st, j] * ks[j, 0, i]
                        xt[0, i] = acc
                    kv = f(xt, t + c[st] * hs, p)
                    for i in range(d):
                        ks[st, 0, i] = _at(kv, i)
                evals += n_st - 1
                for i in range(d):
                    acc = 0.0
                    acc_e = 0.0
                    for st in range(n_st):
                        acc += bw[st] * ks[st, 0, i]
                        acc_e += be[st] * ks[st, 0, i]
                    xn[0, i] = x[0, i] + hs * acc
                    e[0, i] = hs * acc_e
                err = _rms_norm_jit(e, x, xn, rtol, atol)
                if err <= 1.0:
                    t = target if last else t + hs
                    for i in range(d):
                        x[0, i] = xn[0, i]
                    steps += 1
                    if fsal:
                        for i in range(d):
                            ks[0, 0, i] = ks[n_st - 1, 0, i]
                    else:
                        kv = f(x, t, p)
                        evals += 1
                        for i in range(d):
                            ks[0, 0, i] = _at(kv, i)
                    fac = fac_max if err == 0.0 else min(fac_max, max(fac_min, safety * err ** -0.2))
                    h = abs(hs) * fac
                    last_nonfinite = False
                else:
                    rejected += 1
                    last_nonfinite = not (err < np.inf)
                    fac = fac_min if last_nonfinite else max(fac_min, safety * err ** -0.2)
                    h = abs(hs) * min(1.0, fac)
                if steps + rejected >= max_steps:
                    code = 1
                elif h < 1e-14 * max(1.0, abs(t)):
                    code = 3 if last_nonfinite else 2
            if code != 0:
                break
            for i in range(d):
                out[s, n, i] = x[0, i]
        for i in range(d):
            xs[n, i] = x[0, i]
        n_steps[n] = steps
        n_rejected[n] = rejected
        n_evals[n] = evals
        err_code[n] = code
        err_t[n] = t


def _at(a, i):
    """Element i of a single-path field value of shape (), (dim,) or (1, dim)."""
    a = np.asarray(a)
    return a[()] if a.ndim == 0 else a.reshape(-1)[i]


@nb.extending.overload(_at, inline="always")
def _at_ov(a, i):
    if isinstance(a, nb.types.Number):
        return lambda a, i: a
    if isinstance(a, nb.types.Array) and a.ndim == 1:
        return lambda a, i: a[i]
    if isinstance(a, nb.types.Array) and a.ndim == 2:
        return lambda a, i: a[0, i]
    return None


@nb.njit(cache=True)
def seed_states(states, seed, stream, path_offset=0):
    """states[p] = initial xoshiro256++ state of (seed, path path_offset + p, stream)."""
    for p in range(states.shape[0]):
        seed_stream(states[p], seed, np.uint64(path_offset) + np.uint64(p), stream)
