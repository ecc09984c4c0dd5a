"""What colour is a surface point, and the sky in a direction? Procedural materials (numba).

Textures are functions of each triangle's texture coordinates (u, v in metres) and of the world
position, so they are the same from every viewpoint (a lane shift sees the same paint, bricks
and leaves). Every pattern is *filtered* by the sample's footprint on the surface (fu, fv: the
extent of the pixel, or sub-pixel, along u and v, from ray differentials): stripes, dashes,
windows and lines are exact box-filtered pulse trains, noise bands fade out before they alias.
So one sample per pixel is already anti-aliased inside a triangle and the renderer supersamples
only where triangles meet.

Shading is Lambertian (sun with shadow-map shadows + sky ambient), with a little specular and sky
reflection on paint and glass. Radiance is linear; `tonemap` maps it to display values.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from faithfusion.synth import materials as M

NOISE_SIZE = 256
NOISE_CYCLES = (4.0, 8.0, 16.0, 32.0, 48.0, 64.0)  # cycles per tile of each band

# road_p layout
R_LANES_R, R_LANE_W, R_NF, R_NB, R_CURB_R, R_CURB_L, R_CENTRE, R_DASH, R_GAP, R_CROSS = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
R_SIDEWALK_W, R_TILE, R_SIDEWALK, R_LOT, R_CURB_H, R_ASPHALT = 10, 11, 12, 15, 18, 20
R_WET = 23  # wetness of road, curbs and sidewalks (0 = dry: the classic look)
# sky_p layout
S_ZENITH, S_HORIZON, S_HAZE, S_COVER, S_CSCALE, S_COFF, S_SUN, S_SUNC, S_AMB = 0, 3, 6, 9, 10, 11, 13, 16, 19


def make_noise(seed: int) -> np.ndarray:  # [C, N, N] float32, zero mean, unit std, tileable
    """Band-limited tileable noise: white noise band-passed in Fourier space to one octave per channel."""
    rng = np.random.default_rng(seed)
    N = NOISE_SIZE
    f = np.fft.fftfreq(N) * N
    fr = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    out = np.empty((len(NOISE_CYCLES), N, N), np.float32)
    for k, c in enumerate(NOISE_CYCLES):
        spec = np.fft.fft2(rng.normal(size=(N, N)))
        band_ = np.exp(-0.5 * (np.log2(np.maximum(fr, 1e-6) / c) / 0.45) ** 2)
        x = np.real(np.fft.ifft2(spec * band_))
        out[k] = (x - x.mean()) / x.std()
    return out


def make_tonemap_lut(n: int = 8192, top: float = 16.0, exposure: float = 1.0) -> np.ndarray:  # [n + 1] display values of linear x in [0, top]
    """The tone curve sampled at linear radiance x; `exposure` scales x first (the camera's exposure)."""
    x = np.linspace(0.0, top, n + 1)
    if exposure != 1.0:
        x = x * exposure
    y = x * (1.0 + x / 9.0) / (1.0 + x)
    return np.clip(y, 0.0, 1.0) ** (1.0 / 2.2)


TONEMAP_LUT = make_tonemap_lut()


@njit(cache=True)
def tonemap(x, lut):
    """Linear radiance to a display value in [0, 1] (soft shoulder, gamma 2.2) by table lookup."""
    n = lut.shape[0] - 1
    f = x * (n / 16.0)
    if f <= 0.0:
        return lut[0]
    if f >= n:
        return lut[n]
    i = int(f)
    t = f - i
    return lut[i] * (1.0 - t) + lut[i + 1] * t


# --- filtered building blocks ------------------------------------------------------------------


@njit(cache=True)
def clamp01(x):
    return min(max(x, 0.0), 1.0)


@njit(cache=True)
def smoothstep(a, b, x):
    t = clamp01((x - a) / (b - a))
    return t * t * (3.0 - 2.0 * t)


@njit(cache=True)
def mix(a, b, t):
    return a + (b - a) * t


@njit(cache=True)
def hash2(i, j, seed):
    """A float in [0, 1) from two integers and a seed (deterministic integer mixing)."""
    h = (np.int64(i) * 374761393 + np.int64(j) * 668265263 + np.int64(seed) * 982451653) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * 1274126177) & 0xFFFFFFFF
    h = h ^ (h >> 16)
    return h / 4294967296.0


@njit(cache=True)
def fade(lam, foot):
    """Weight of a detail of wavelength `lam` seen with footprint `foot`: 1 when resolved, 0 when it would alias."""
    return clamp01(lam / foot - 1.5)


@njit(cache=True)
def _isq(x, period, duty):
    """Integral from 0 to x of the pulse train 1[(t mod period) < duty]."""
    k = math.floor(x / period)
    return k * duty + min(x - k * period, duty)


@njit(cache=True)
def pulse(x, period, duty, f):
    """Box-filtered (width f) pulse train: 1 on [k period, k period + duty)."""
    f = max(f, 1e-6)
    return (_isq(x + 0.5 * f, period, duty) - _isq(x - 0.5 * f, period, duty)) / f


@njit(cache=True)
def lines(x, period, hw, f):
    """Box-filtered lines of half-width hw centred on multiples of `period`."""
    return pulse(x + hw, period, 2.0 * hw, f)


@njit(cache=True)
def interval(x, a, b, f):
    """Box-filtered indicator of [a, b]."""
    f = max(f, 1e-6)
    return clamp01((min(x + 0.5 * f, b) - max(x - 0.5 * f, a)) / f)


@njit(cache=True)
def rect(u, v, u0, u1, v0, v1, fu, fv):
    return interval(u, u0, u1, fu) * interval(v, v0, v1, fv)


@njit(cache=True)
def disc(d, radius, f):
    """Filtered coverage of a disc at distance d from its centre."""
    return clamp01((radius - d) / max(f, 1e-6) + 0.5)


@njit(cache=True)
def band(noise, ch, x, y):
    """Bilinear, wrapped lookup of noise channel `ch` at tile coordinates (x, y)."""
    N = noise.shape[1]
    fx = x * N
    fy = y * N
    ix = math.floor(fx)
    iy = math.floor(fy)
    tx = fx - ix
    ty = fy - iy
    i0 = int(ix) & (N - 1)
    j0 = int(iy) & (N - 1)
    i1 = (i0 + 1) & (N - 1)
    j1 = (j0 + 1) & (N - 1)
    a = noise[ch, j0, i0] * (1 - tx) + noise[ch, j0, i1] * tx
    b = noise[ch, j1, i0] * (1 - tx) + noise[ch, j1, i1] * tx
    return a * (1 - ty) + b * ty


@njit(cache=True)
def nz(noise, ch, x, y, lam, foot):
    """Noise of wavelength `lam` metres at (x, y) metres, faded by the footprint."""
    w = fade(lam, foot)
    if w <= 0.0:
        return 0.0
    c = 1.0 / (lam * NOISE_CYCLES[ch])
    return w * band(noise, ch, x * c, y * c)


# --- the sky -----------------------------------------------------------------------------------


@njit(cache=True)
def sky_gradient(dz, sky_p):
    """The sky without sun and clouds (for reflections)."""
    g = math.sqrt(max(dz, 0.0))
    return mix(sky_p[S_HORIZON], sky_p[S_ZENITH], g), mix(sky_p[S_HORIZON + 1], sky_p[S_ZENITH + 1], g), mix(sky_p[S_HORIZON + 2], sky_p[S_ZENITH + 2], g)


@njit(cache=True)
def sky(dx, dy, dz, sky_p, noise, pix):
    """Radiance of the sky in the unit direction d: a function of direction only (at infinity).
    `pix` is the angular size of the sample, used to filter the clouds."""
    t = max(dz, 0.0)
    g = math.sqrt(t)
    r = mix(sky_p[S_HORIZON], sky_p[S_ZENITH], g)
    gg = mix(sky_p[S_HORIZON + 1], sky_p[S_ZENITH + 1], g)
    b = mix(sky_p[S_HORIZON + 2], sky_p[S_ZENITH + 2], g)
    if dz < 0.0:
        h = clamp01(-dz * 12.0)
        r = mix(r, sky_p[S_HAZE], h)
        gg = mix(gg, sky_p[S_HAZE + 1], h)
        b = mix(b, sky_p[S_HAZE + 2], h)
    mu = dx * sky_p[S_SUN] + dy * sky_p[S_SUN + 1] + dz * sky_p[S_SUN + 2]
    if mu > 0.0:
        m2 = mu * mu
        m8 = m2 * m2 * m2 * m2
        glow = 0.05 * m8
        if mu > 0.98:
            glow += 0.6 * math.exp(400.0 * math.log(mu)) + 6.0 * clamp01((mu - 0.99994) / 0.00002)
        r += glow * sky_p[S_SUNC]
        gg += glow * sky_p[S_SUNC + 1]
        b += glow * sky_p[S_SUNC + 2]
    if dz > 0.015:
        sc = sky_p[S_CSCALE]
        cx = dx / dz * sc + sky_p[S_COFF]
        cy = dy / dz * sc + sky_p[S_COFF + 1]
        foot = pix * sc / (dz * dz)  # footprint on the cloud plane
        n = 0.55 * band(noise, 0, cx * 0.08, cy * 0.08) + 0.3 * nz(noise, 1, cx, cy, 0.9, foot) + 0.15 * nz(noise, 3, cx, cy, 0.25, foot)
        cover = sky_p[S_COVER]
        c = smoothstep(1.1 - 2.0 * cover, 1.6 - 2.0 * cover, n) * smoothstep(0.015, 0.12, dz)
        if c > 0.0:
            shade = 0.82 + 0.25 * clamp01(0.5 + 0.35 * (n - (1.3 - 2.0 * cover)) + 0.15 * nz(noise, 2, cx, cy, 0.5, foot))
            lum = 1.15 * shade * (0.85 + 0.15 * max(mu, 0.0))
            r = mix(r, lum * 0.98, c * 0.92)
            gg = mix(gg, lum * 0.99, c * 0.92)
            b = mix(b, lum * 1.02, c * 0.92)
    return r, gg, b


# --- materials ---------------------------------------------------------------------------------


@njit(cache=True)
def road_albedo(s, l, fs, fl, road_p, noise):
    """Asphalt with wear and painted markings (s along the road, l across); returns (r, g, b, paint)."""
    foot = max(fs, fl)
    fine = nz(noise, 5, s, l, 0.04, foot)
    grain = 1.0 + 0.06 * nz(noise, 1, s, l, 2.0, foot) + 0.10 * nz(noise, 3, s, l, 0.18, foot) + 0.16 * fine
    lw = road_p[R_LANE_W]
    lr = road_p[R_LANES_R]
    nf = int(road_p[R_NF])
    nlanes = nf + int(road_p[R_NB])
    ll = (l - lr) / lw
    lane = math.floor(ll)
    a = grain
    if lane >= 0 and lane < nlanes:
        d = abs((ll - lane - 0.5) * lw)
        a *= 1.0 - 0.09 * math.exp(-((d - 0.85) / 0.3) ** 2)  # tyre tracks
    r = road_p[R_ASPHALT] * a
    g = road_p[R_ASPHALT + 1] * a
    b = road_p[R_ASPHALT + 2] * a
    white = 0.0
    yellow = 0.0
    k = int(math.floor(ll + 0.5))  # the nearest lane boundary
    lb = lr + k * lw
    if k >= 0 and k <= nlanes and abs(l - lb) < 0.3 + fl:
        dash = pulse(s, road_p[R_DASH] + road_p[R_GAP], road_p[R_DASH], fs)
        if k == 0 or k == nlanes:
            white = interval(l - lb, -0.075, 0.075, fl)
        elif k == nf:
            style = int(road_p[R_CENTRE])
            if style == 0:
                yellow = interval(l - lb, -0.165, -0.055, fl) + interval(l - lb, 0.055, 0.165, fl)
            elif style == 1:
                yellow = interval(l - lb, -0.165, -0.055, fl) + dash * interval(l - lb, 0.055, 0.165, fl)
            else:
                yellow = dash * interval(l - lb, -0.06, 0.06, fl)
        else:
            white = dash * interval(l - lb, -0.075, 0.075, fl)
    cs = road_p[R_CROSS]
    if abs(s - cs) < 4.0:
        lcr = road_p[R_CURB_R] + 0.3
        lcl = road_p[R_CURB_L] - 0.3
        # zebra bars along the road, 0.5 m wide every 1.0 m across it
        white = max(white, interval(s, cs - 1.6, cs + 1.6, fs) * interval(l, lcr, lcl, fl) * pulse(l - lcr, 1.0, 0.5, fl))
        # stop lines before the crossing, one for each direction
        white = max(white, interval(s, cs - 3.4, cs - 3.0, fs) * interval(l, lr, lr + nf * lw, fl))
        white = max(white, interval(s, cs + 3.0, cs + 3.4, fs) * interval(l, lr + nf * lw, lr + nlanes * lw, fl))
    cover = min(white + yellow, 1.0)
    if cover > 0.0:
        cover *= clamp01(0.95 + 0.3 * fine)  # worn paint
        y = yellow / max(white + yellow, 1e-6)
        pr = mix(0.66, 0.62, y)
        pg = mix(0.66, 0.40, y)
        pb = mix(0.64, 0.04, y)
        r = mix(r, pr, cover)
        g = mix(g, pg, cover)
        b = mix(b, pb, cover)
    return r, g, b, cover


@njit(cache=True)
def wet_cover(u, v, fu, fv, mat, road_p, noise):
    """How wet a ground point is, in [0, 1]: the scene's wetness, patchy on the road (puddles in the
    low-frequency noise, drier in the tyre tracks), lighter on the raised sidewalks and curbs."""
    wet = road_p[R_WET]
    foot = max(fu, fv)
    patch = clamp01(0.55 + 0.45 * band(noise, 0, u * 0.05, v * 0.05) + 0.25 * nz(noise, 2, u, v, 1.5, foot))
    if mat != M.ROAD:
        return wet * 0.6 * patch
    return wet * clamp01(0.35 + 0.75 * patch)


@njit(cache=True)
def facade_albedo(u, v, fu, fv, hw, top, prm, noise, glass):
    """Wall (stucco, brick or panels), shop fronts, windows, cornice (u from the face centre, v up).
    glass[0] receives the weight of glass at the point."""
    pattern = int(prm[M.B_PATTERN])
    fh = prm[M.B_FLOOR]
    ww = prm[M.B_WIN_W]
    wh = prm[M.B_WIN_H]
    sp = prm[M.B_WIN_SP]
    seed = int(prm[M.B_SEED] * 997)
    foot = max(fu, fv)
    r, g, b = prm[0], prm[1], prm[2]
    tr, tg, tb = prm[M.B_TRIM], prm[M.B_TRIM + 1], prm[M.B_TRIM + 2]
    dirt = 1.0 + 0.10 * nz(noise, 0, u, v, 8.0, foot) - 0.10 * clamp01(1.0 - v / 1.3)
    if pattern == 1:  # brick: courses of 77 mm, bricks 235 mm, half-bond
        course = 0.077
        bl = 0.235
        row = math.floor(v / course)
        off = 0.5 * bl * (row % 2)
        col = math.floor((u + off) / bl)
        tint = 1.0 + 0.36 * (hash2(col, row, seed) - 0.5) * fade(bl, foot) + 0.06 * nz(noise, 4, u, v, 0.06, foot)
        mortar = max(lines(v, course, 0.005, fv), lines(u + off, bl, 0.005, fu) * fade(course, fv))
        r = mix(r * tint, 0.40, mortar)
        g = mix(g * tint, 0.38, mortar)
        b = mix(b * tint, 0.35, mortar)
    elif pattern == 2:  # concrete panels
        joint = max(lines(v, fh * 0.5, 0.012, fv), lines(u, 1.5, 0.012, fu))
        t = (1.0 + 0.08 * nz(noise, 2, u, v, 0.5, foot) + 0.05 * nz(noise, 5, u, v, 0.05, foot)) * (1.0 - 0.45 * joint)
        r, g, b = r * t, g * t, b * t
    else:  # stucco
        t = 1.0 + 0.07 * nz(noise, 3, u, v, 0.3, foot) + 0.06 * nz(noise, 5, u, v, 0.04, foot)
        r, g, b = r * t, g * t, b * t
    r, g, b = r * dirt, g * dirt, b * dirt
    gf = fh * 1.15 + 0.45  # top of the ground floor (v is measured from 0.3 m below the ground)
    # floor bands between storeys (not on brick)
    if pattern != 1:
        fb = lines(v - gf, fh, 0.05, fv) * interval(v, gf - 0.1, top - 0.5, fv) * 0.7
        r, g, b = mix(r, tr, fb), mix(g, tg, fb), mix(b, tb, fb)
    # --- upper-floor windows: a grid of framed windows with mullions and sills
    if v > gf - 0.2 and v < top - 0.9:
        cmax = math.floor((hw - 0.5 - 0.5 * ww) / sp)
        if cmax >= 0:
            rmax = math.floor((top - 1.2 - gf - 0.95 - wh) / fh)
            u_in = interval(u, -cmax * sp - 0.5 * ww, cmax * sp + 0.5 * ww, fu)
            v_in = interval(v, gf + 0.95 - 0.15, gf + rmax * fh + 0.95 + wh, fv) if rmax >= 0 else 0.0
            cw = math.floor(u / sp + 0.5)
            dw = (v - gf - 0.95) - math.floor((v - gf - 0.95) / fh) * fh
            if dw > fh - 0.12:
                dw -= fh
            far = fu < 0.5 * (sp - ww) - 0.1 and fv < 0.2 * fh and (
                abs(u - cw * sp) > 0.5 * ww + 0.08 + fu or dw < -0.12 - fv or dw > wh + fv)
            if u_in * v_in > 0.0 and not far:
                pu = pulse(u + 0.5 * ww, sp, ww, fu)
                pv = pulse(v - gf - 0.95, fh, wh, fv)
                outer = pu * pv * u_in * v_in
                iw, ih = ww - 0.14, wh - 0.14
                inner = pulse(u + 0.5 * iw, sp, iw, fu) * pulse(v - gf - 1.02, fh, ih, fv) * u_in * v_in
                sill = pulse(u + 0.5 * ww + 0.08, sp, ww + 0.16, fu) * pulse(v - gf - 0.83, fh, 0.12, fv) * u_in * v_in
                mull = max(pulse(u + 0.025, sp, 0.05, fu), pulse(v - gf - 0.95 - 0.62 * wh + 0.025, fh, 0.05, fv)) * inner
                col = math.floor(u / sp + 0.5)
                row = math.floor((v - gf - 0.95) / fh)
                vary = fade(sp, fu)
                lit = hash2(col, row, seed) < prm[M.B_LIT]
                k = 0.55 + 0.3 * mix(0.5, hash2(col, row, seed + 3), vary)
                gr, gg_, gb = prm[M.B_GLASS] * k, prm[M.B_GLASS + 1] * k, prm[M.B_GLASS + 2] * k
                if lit:
                    gr, gg_, gb = mix(gr, 0.5, vary), mix(gg_, 0.42, vary), mix(gb, 0.28, vary)
                edge = max(outer, sill)
                r, g, b = mix(r, tr, edge), mix(g, tg, edge), mix(b, tb, edge)
                gw = inner * (1.0 - mull)
                r, g, b = mix(r, gr, gw), mix(g, gg_, gw), mix(b, gb, gw)
                glass[0] = gw
    # --- ground floor: shop bays with big windows, doors and a sign band
    if v < gf + 0.1:
        bay = 2.0 * sp
        bmax = math.floor((hw - 0.3) / bay - 0.5)
        if bmax >= 0:
            u_in = interval(u, -(bmax + 0.5) * bay + 0.25, (bmax + 0.5) * bay - 0.25, fu)
            bc = math.floor(u / bay + 0.5)
            du = u - bc * bay
            door = hash2(bc, 99, seed) < 0.4
            vary = fade(bay, fu)
            # sign band with lettering
            band_ = interval(v, gf - 0.75, gf - 0.15, fv) * u_in
            sr, sg, sb = prm[M.B_SHOP], prm[M.B_SHOP + 1], prm[M.B_SHOP + 2]
            r, g, b = mix(r, sr, band_), mix(g, sg, band_), mix(b, sb, band_)
            cell = math.floor(du / 0.2)
            letter = pulse(du, 0.2, 0.13, fu) * interval(v, gf - 0.6, gf - 0.3, fv) * interval(du, -0.35 * bay, 0.35 * bay, fu) * u_in
            letter *= mix(0.55, 1.0 if hash2(cell, bc, seed + 7) < 0.7 else 0.0, fade(0.2, fu))
            r, g, b = mix(r, 0.85, letter), mix(g, 0.85, letter), mix(b, 0.82, letter)
            # shop window (frame + glass), leaving the door opening
            frame = rect(du, v, -0.5 * bay + 0.3, 0.5 * bay - 0.3, 0.85, gf - 0.85, fu, fv) * u_in
            win = rect(du, v, -0.5 * bay + 0.38, 0.5 * bay - 0.38, 0.93, gf - 0.93, fu, fv) * u_in
            if door:
                d_out = rect(du, v, -0.58, 0.58, 0.0, 2.6, fu, fv) * vary
                d_in = rect(du, v, -0.5, 0.5, 0.3, 2.52, fu, fv) * vary
                d_glass = rect(du, v, -0.38, 0.38, 1.0, 2.35, fu, fv) * vary
                frame = max(frame, d_out)
                win = win * (1.0 - d_out)
            lit = hash2(bc, 7, seed) < 0.5
            gr = mix(prm[M.B_GLASS] * 0.6, 0.45 if lit else prm[M.B_GLASS] * 0.6, vary)
            gg_ = mix(prm[M.B_GLASS + 1] * 0.6, 0.36 if lit else prm[M.B_GLASS + 1] * 0.6, vary)
            gb = mix(prm[M.B_GLASS + 2] * 0.6, 0.22 if lit else prm[M.B_GLASS + 2] * 0.6, vary)
            r, g, b = mix(r, tr, frame), mix(g, tg, frame), mix(b, tb, frame)
            r, g, b = mix(r, gr, win), mix(g, gg_, win), mix(b, gb, win)
            glass[0] = max(glass[0], win)
            if door:
                r, g, b = mix(r, 0.10, d_in), mix(g, 0.07, d_in), mix(b, 0.05, d_in)
                r, g, b = mix(r, prm[M.B_GLASS] * 0.5, d_glass), mix(g, prm[M.B_GLASS + 1] * 0.5, d_glass), mix(b, prm[M.B_GLASS + 2] * 0.5, d_glass)
                glass[0] = max(glass[0], d_glass)
    # cornice at the top
    cor = interval(v, top - 0.55, top + 1.0, fv)
    if cor > 0.0:
        c = 1.0 - 0.3 * lines(v - (top - 0.3), 1.0, 0.03, fv)
        r, g, b = mix(r, tr * c, cor), mix(g, tg * c, cor), mix(b, tb * c, cor)
        glass[0] *= 1.0 - cor
    return r, g, b


@njit(cache=True)
def car_albedo(mat, u, v, fu, fv, aux0, prm, glass):
    """Paint, glass, lights, plates, trims and wheels of a vehicle (u, v local metres)."""
    cr, cg, cb = prm[0], prm[1], prm[2]
    W, H, hood = prm[M.V_WID], prm[M.V_HGT], prm[M.V_HOOD]
    x0, x1, wx = prm[M.V_CAB0], prm[M.V_CAB1], prm[M.V_WHEEL_X]
    van = prm[M.V_KIND] == 3.0
    rw = 0.36 if van else 0.33 * H / 1.45
    foot = max(fu, fv)
    if mat == M.CAR_SIDE:
        xm = x0 + 0.5 * (x1 - x0)
        seam = max(lines(u - xm, 100.0, 0.005, fu), lines(u - (x1 - 0.05), 100.0, 0.005, fu)) * interval(v, 0.36, hood, fv)
        seam = max(seam, lines(v - (hood - 0.03), 100.0, 0.004, fv) * 0.6)
        k = 1.0 - 0.7 * seam
        k *= 1.0 - 0.5 * (rect(u, v, xm - 0.45, xm - 0.25, hood - 0.2, hood - 0.14, fu, fv) + rect(u, v, x1 - 0.5, x1 - 0.3, hood - 0.2, hood - 0.14, fu, fv))
        r, g, b = cr * k, cg * k, cb * k
        sill = interval(v, -1.0, 0.36, fv)
        r, g, b = mix(r, 0.04, sill), mix(g, 0.04, sill), mix(b, 0.045, sill)
        arch = max(disc(math.sqrt((u - wx) ** 2 + (v - rw) ** 2), rw + 0.08, foot), disc(math.sqrt((u + wx) ** 2 + (v - rw) ** 2), rw + 0.08, foot))
        return mix(r, 0.015, arch), mix(g, 0.015, arch), mix(b, 0.015, arch)
    if mat == M.CAR_FRONT or mat == M.CAR_BACK:
        r, g, b = cr, cg, cb
        hwid = 0.5 * W
        if mat == M.CAR_FRONT:
            lamp = rect(abs(u), v, hwid - 0.42, hwid - 0.08, hood - 0.2, hood - 0.07, fu, fv)
            r, g, b = mix(r, 0.85, lamp), mix(g, 0.85, lamp), mix(b, 0.78, lamp)
            grille = rect(u, v, -hwid + 0.5, hwid - 0.5, 0.6, hood - 0.08, fu, fv)
            k = 0.04 + 0.08 * lines(v, 0.045, 0.01, fv)
            r, g, b = mix(r, k, grille), mix(g, k, grille), mix(b, k, grille)
        else:
            lamp = rect(abs(u), v, hwid - 0.36, hwid - 0.06, hood - 0.22, hood - 0.06, fu, fv)
            r, g, b = mix(r, 0.45, lamp), mix(g, 0.02, lamp), mix(b, 0.02, lamp)
            ind = rect(abs(u), v, hwid - 0.42, hwid - 0.36, hood - 0.22, hood - 0.06, fu, fv)
            r, g, b = mix(r, 0.7, ind), mix(g, 0.45, ind), mix(b, 0.1, ind)
        bumper = interval(v, -1.0, 0.42, fv)
        r, g, b = mix(r, 0.05, bumper), mix(g, 0.05, bumper), mix(b, 0.055, bumper)
        plate = rect(u, v, -0.26, 0.26, 0.44, 0.56, fu, fv)
        chars = pulse(u + 0.22, 0.055, 0.038, fu) * rect(u, v, -0.22, 0.22, 0.47, 0.53, fu, fv)
        chars *= mix(0.7, 1.0 if hash2(math.floor((u + 0.22) / 0.055), int(prm[M.V_LEN] * 1000), 5) < 0.7 else 0.0, fade(0.055, fu))
        r, g, b = mix(r, 0.8, plate), mix(g, 0.8, plate), mix(b, 0.75, plate)
        return mix(r, 0.03, chars), mix(g, 0.03, chars), mix(b, 0.03, chars)
    if mat == M.CAR_TOP:
        return cr, cg, cb
    if mat == M.CAR_UNDER:
        return 0.02, 0.02, 0.02
    if mat == M.CABIN_TOP:
        if prm[M.V_KIND] == 1.0:
            return 0.03, 0.03, 0.03
        return cr, cg, cb
    if mat == M.CABIN_SIDE:
        f = (v - hood) / max(H - hood, 1e-3)
        sb = (0.02 if van else 0.18) * (x1 - x0)
        sf = (0.12 if van else 0.32) * (x1 - x0)
        xm = x0 + 0.5 * (x1 - x0)
        gw = interval(v, hood + 0.07, H - 0.07, fv) * interval(u, x0 + sb * f + 0.1, x1 - sf * f - 0.1, fu) * (1.0 - interval(u, xm - 0.06, xm + 0.06, fu))
        glass[0] = gw
        return mix(cr, 0.02, gw), mix(cg, 0.025, gw), mix(cb, 0.03, gw)
    if mat == M.CABIN_FRONT or mat == M.CABIN_BACK:
        f = (v - hood) / max(H - hood, 1e-3)
        half = (0.5 * W - 0.04) - 0.08 * f
        gw = interval(v, hood + 0.06, H - 0.06, fv) * interval(u, -half + 0.09, half - 0.09, fu)
        glass[0] = gw
        return mix(cr, 0.02, gw), mix(cg, 0.025, gw), mix(cb, 0.03, gw)
    if mat == M.TIRE:
        k = 0.03 * (1.0 + 0.3 * lines(u, 0.08, 0.015, fu))
        return k, k, k
    # hub: u, v are the disc coordinates, aux0 the wheel radius
    rad = math.sqrt(u * u + v * v)
    rr = rad / max(aux0, 1e-3)
    fr = foot / max(aux0, 1e-3)
    ang = math.atan2(v, u) / (2.0 * math.pi) * 5.0
    spoke = lines(ang, 1.0, 0.18, fr / max(rr * 2.0 * math.pi / 5.0, 1e-3))
    k = 0.06 + 0.45 * spoke
    k = mix(k, 0.35, disc(rr, 0.12, fr))
    k = mix(0.25, k, disc(rr, 0.58, fr))
    k = mix(0.03, k, disc(rr, 0.66, fr))
    return k, k, k * 1.02


@njit(cache=True)
def sign_albedo(u, v, fu, fv, design):
    """Sign plates: blue direction sign, white speed sign, yellow diamond, red stop-like sign."""
    if design == 0:
        r, g, b = 0.85, 0.85, 0.85
        inner = rect(u, v, -0.34, 0.34, -0.34, 0.34, fu, fv)
        r, g, b = mix(r, 0.02, inner), mix(g, 0.08, inner), mix(b, 0.35, inner)
        shaft = rect(u, v, -0.06, 0.06, -0.25, 0.1, fu, fv)
        head = interval(v, 0.1, 0.25, fv) * interval(abs(u), -1.0, 0.25 - (v - 0.1) * 1.5, fu)
        a = max(shaft, head)
        return mix(r, 0.85, a), mix(g, 0.85, a), mix(b, 0.85, a)
    if design == 1:
        inner = rect(u, v, -0.28, 0.28, -0.41, 0.41, fu, fv)
        c = mix(0.03, 0.85, inner)
        digit = rect(abs(u), v, 0.05, 0.17, -0.25, 0.05, fu, fv) * (1.0 - rect(abs(u), v, 0.08, 0.14, -0.2, 0.0, fu, fv))
        bar = rect(u, v, -0.2, 0.2, 0.15, 0.22, fu, fv)
        c = mix(c, 0.03, max(digit, bar))
        return c, c, c
    if design == 2:
        inner = rect(u, v, -0.33, 0.33, -0.33, 0.33, fu, fv)
        r, g, b = mix(0.03, 0.75, inner), mix(0.03, 0.55, inner), mix(0.03, 0.02, inner)
        mark = rect(u, v, -0.05, 0.05, -0.2, 0.2, fu, fv)
        return mix(r, 0.03, mark), mix(g, 0.03, mark), mix(b, 0.03, mark)
    inner = rect(u, v, -0.34, 0.34, -0.34, 0.34, fu, fv)
    r, g, b = mix(0.85, 0.45, inner), mix(0.85, 0.02, inner), mix(0.85, 0.02, inner)
    text = rect(u, v, -0.26, 0.26, -0.08, 0.08, fu, fv) * pulse(u + 0.045, 0.13, 0.09, fu)
    return mix(r, 0.85, text), mix(g, 0.85, text), mix(b, 0.85, text)


@njit(cache=True)
def albedo(mat, u, v, fu, fv, fp, aux0, aux1, px, py, pz, prm, road_p, noise, glass):
    """Albedo (linear) of a surface point: (u, v) texture coordinates with footprints (fu, fv), fp the
    isotropic footprint for world-position textures. `glass[0]` is set to the glass weight."""
    foot = max(fu, fv)
    if mat == M.ROAD:
        r, g, b, _ = road_albedo(u, v, fu, fv, road_p, noise)
        return r, g, b
    if mat == M.SIDEWALK:
        tile = road_p[R_TILE]
        i = math.floor(u / tile)
        j = math.floor(v / tile)
        t = (1.0 + 0.12 * (hash2(i, j, 11) - 0.5) * fade(tile, foot)) * (1.0 + 0.10 * nz(noise, 4, u, v, 0.08, foot))
        joint = max(lines(u, tile, 0.008, fu), lines(v, tile, 0.008, fv))
        t *= 1.0 - 0.45 * joint
        return road_p[R_SIDEWALK] * t, road_p[R_SIDEWALK + 1] * t, road_p[R_SIDEWALK + 2] * t
    if mat == M.CURB:
        t = 1.0 + 0.12 * nz(noise, 3, u, v, 0.12, foot) - 0.3 * lines(u, 1.0, 0.006, fu)
        return 0.32 * t, 0.31 * t, 0.30 * t
    if mat == M.LOT or mat == M.FAR_GROUND:
        t = 1.0 + 0.3 * nz(noise, 0, u, v, 9.0, foot) + 0.25 * nz(noise, 4, u, v, 0.12, foot)
        return road_p[R_LOT] * t, road_p[R_LOT + 1] * t, road_p[R_LOT + 2] * t
    if mat == M.FACADE:
        return facade_albedo(u, v, fu, fv, aux0, aux1, prm, noise, glass)
    if mat == M.ROOF:
        t = 1.0 + 0.15 * nz(noise, 1, u, v, 2.0, foot)
        return prm[M.B_ROOF] * t, prm[M.B_ROOF + 1] * t, prm[M.B_ROOF + 2] * t
    if mat == M.AWNING:
        s = pulse(u + v, 0.5, 0.25, max(fu, fv))
        return mix(prm[M.B_SHOP], 0.8, s), mix(prm[M.B_SHOP + 1], 0.8, s), mix(prm[M.B_SHOP + 2], 0.78, s)
    if mat >= M.CAR_SIDE and mat <= M.HUB:
        return car_albedo(mat, u, v, fu, fv, aux0, prm, glass)
    if mat == M.BARK:
        t = 1.0 + 0.35 * nz(noise, 4, u * 4.0, v * 0.6, 0.3, foot * 4.0) + 0.15 * nz(noise, 1, u, v, 1.0, foot)
        return 0.09 * t, 0.065 * t, 0.045 * t
    if mat == M.LEAVES:
        s = prm[M.T_SEED] * 100.0
        n = 0.7 * nz(noise, 3, px + py + s, pz, 0.35, fp) + 0.6 * nz(noise, 5, px - py, pz - s, 0.09, fp)
        t = max(1.0 + 0.5 * n, 0.2)
        return prm[0] * t, prm[1] * t, prm[2] * t
    if mat == M.METAL:
        t = 1.0 + 0.08 * nz(noise, 2, u, v, 0.3, foot)
        return prm[0] * t, prm[1] * t, prm[2] * t
    if mat == M.SIGN_FACE:
        return sign_albedo(u, v, fu, fv, int(prm[M.S_DESIGN]))
    if mat == M.LAMP:
        return 0.9, 0.88, 0.8
    if mat == M.SIGNAL:
        return 0.03, 0.03, 0.03
    return 0.5, 0.5, 0.5


@njit(cache=True)
def emission(mat, u, v, fu, fv):
    """Light emitted by lamps and signals (radiance added after lighting)."""
    if mat == M.SIGNAL:
        # face coordinates: u from the face centre, v the height above the bottom of the head
        f = max(fu, fv)
        green = disc(math.sqrt(u * u + (v - 0.2) ** 2), 0.1, f)
        return 0.05 * green, 1.0 * green, 0.35 * green
    if mat == M.LAMP:
        return 0.3, 0.28, 0.22
    return 0.0, 0.0, 0.0


@njit(cache=True)
def light(ar, ag, ab, nx, ny, nz_, dx, dy, dz, glass, spec, shadow, sky_p):
    """Sun (Lambert, shadowed) + sky ambient; glass and paint add a specular sun and a sky reflection."""
    sx, sy, sz = sky_p[S_SUN], sky_p[S_SUN + 1], sky_p[S_SUN + 2]
    ndl = max(nx * sx + ny * sy + nz_ * sz, 0.0) * shadow
    hemi = 0.62 + 0.38 * nz_
    r = ar * (sky_p[S_SUNC] * ndl + sky_p[S_AMB] * hemi)
    g = ag * (sky_p[S_SUNC + 1] * ndl + sky_p[S_AMB + 1] * hemi)
    b = ab * (sky_p[S_SUNC + 2] * ndl + sky_p[S_AMB + 2] * hemi)
    if glass > 0.0 or spec > 0.0:
        dn = dx * nx + dy * ny + dz * nz_
        rx, ry, rz = dx - 2 * dn * nx, dy - 2 * dn * ny, dz - 2 * dn * nz_
        m = 1.0 - min(abs(dn), 1.0)
        m2 = m * m
        fres = 0.04 + 0.96 * m2 * m2 * m
        k = glass * (0.10 + 0.6 * fres) + spec * (0.03 + 0.3 * fres)
        if k > 0.0:
            sr, sg, sb = sky_gradient(rz, sky_p)
            r += k * sr
            g += k * sg
            b += k * sb
        hx, hy, hz = sx - dx, sy - dy, sz - dz
        hn = math.sqrt(hx * hx + hy * hy + hz * hz) + 1e-9
        nh = max((hx * nx + hy * ny + hz * nz_) / hn, 0.0)
        if nh > 0.9:
            sp = (glass + spec) * 0.6 * math.exp(60.0 * math.log(nh)) * shadow
            r += sp * sky_p[S_SUNC]
            g += sp * sky_p[S_SUNC + 1]
            b += sp * sky_p[S_SUNC + 2]
    return r, g, b
