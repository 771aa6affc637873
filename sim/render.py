"""The embedded egocentric renderer: compiled (numba), exact for level and pitched cameras.

Walls are vertical rectangles and objects are oriented boxes standing on (or floating above)
a flat floor under a flat ceiling, so every visible surface is a planar rectangle: a wall
piece, or a box side, top or bottom. Pixel rays are the pitched camera's (``K R K^-1``: the
camera centre does not move); nothing is sheared.

:func:`render_frame` rasterises the rectangles along image columns. Along one image column
(fixed ``u``, rows ``k``) the inverse depth of a ray on a plane is affine in ``k``, and the
rows whose rays meet the rectangle's inside form one interval, cut by the rectangle's four
edge planes through the eye (each also affine in ``k``). Per frame, :func:`_faces` lists every
rectangle the eye is in front of, with the image columns its azimuths span; each image column
starts with the floor/ceiling's inverse depth per row, and each rectangle writes itself over
its row interval where its inverse depth along the pixel's own ray is larger. So every pixel
sees the nearest surface along its own ray (up to floating point: a pixel centre exactly on an
edge counts as inside, so seams between pieces stay closed). Occlusion culling keeps the work
small: a full-height wall that both level columns ``j`` and ``j + 1`` of the column table
(``col_tan``) hit blocks every ray between them beyond the farther hit (distance is convex
along a segment), and a rectangle is skipped in an image column when its nearest point lies
beyond that distance in every column pair the two share. Ids agree with the numpy reference
(:mod:`sim.render_ref`, per-pixel 3D rays against every rectangle and box, a different
algorithm) on every pixel of the tested poses; see ``tests/test_render.py`` and
``docs/performance.md``.

Shading is deliberately simple so that geometry is legible: a fixed light gives each wall or
box face its own brightness (box tops brighter, bottoms darker), brightness falls off with
distance, object types carry a cheap pattern (stripes or checker in box-local coordinates) and
the floor has a faint 0.5 m checker. :meth:`Renderer.with_appearance` renders the same
geometry under a drawn :class:`sim.appearance.Appearance` (colour shifts, another light,
per-frame pixel noise); depth and ids do not change.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import shapely
from numba import njit

from common.errors import InputError
from sim.appearance import Appearance
from sim.camera import CameraConfig
from sim.scene import WALL, Scene

FLOOR_CELL = 0.05
"""Cell size in metres of the top-down room raster that colours the floor."""

OUTSIDE_COLOR = (96, 96, 96)
"""Floor colour outside every room (seen through an open exterior door)."""

LIGHT_XZ = (0.6, 0.8)
"""Horizontal direction the light comes from (unit, in x, z)."""

_NEAR = 1e-3  # metres: geometry closer than this in front of the eye is ignored
_TILE_OFFSET = 8192.0  # even; added before int() so floor-tile parity works for x > -4 km


@dataclass
class Frame:
    """One rendered view; arrays are freshly allocated per call (never reused)."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32, metres along the optical axis
    ids: np.ndarray  # (H, W) int32 instance ids: box row + 1, 0 = structure


# --------------------------------------------------------------------------- shading helpers


def face_shade(nx: np.ndarray | float, nz: np.ndarray | float,
               light_xz: tuple[float, float] = LIGHT_XZ):
    """Brightness factor of a vertical face with unit normal (nx, nz) under a light from the
    unit horizontal direction ``light_xz``: 0.61..0.95."""
    return 0.78 + 0.17 * (nx * light_xz[0] + nz * light_xz[1])


def turned_light(turn: float) -> tuple[float, float]:
    """LIGHT_XZ turned by ``turn`` radians (counter-clockwise in x, z)."""
    c, s = math.cos(turn), math.sin(turn)
    return (LIGHT_XZ[0] * c - LIGHT_XZ[1] * s, LIGHT_XZ[0] * s + LIGHT_XZ[1] * c)


TOP_SHADE, BOTTOM_SHADE, FLOOR_SHADE, CEILING_SHADE = 1.0, 0.5, 0.92, 0.85
PATTERN_DARK = 0.68  # brightness of the dark stripes/squares of a patterned box
FLOOR_TILE, FLOOR_TILE_DARK = 0.5, 0.93
FALLOFF = 0.045  # brightness = 1 / (1 + FALLOFF * distance in metres)


# --------------------------------------------------------------------------- camera tables


def level_rays(camera: CameraConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel rays (z = 1 in the pitched camera) rotated into the level camera frame.

    Returns ``(dx, dy, dz)``, each (H, W): right, *down* and forward components.
    """
    rays = camera.pixel_rays()
    th = math.radians(camera.pitch)
    dx = rays[..., 0]
    dy = rays[..., 1] * math.cos(th) + math.sin(th)
    dz = math.cos(th) - rays[..., 1] * math.sin(th)
    return dx, dy, dz


def column_tangents(camera: CameraConfig, dz_rows: np.ndarray, oversample: float = 1.0
                    ) -> np.ndarray:
    """(K,) sorted azimuth tangents of the columns that cover every pixel.

    The densest image row (largest forward component ``dz``) gets exactly its own pixel
    azimuths; beyond its range the step grows to the spacing of the densest row that still
    reaches that far, divided by ``oversample``.
    """
    f, W = camera.focal, camera.width
    half = (W / 2 - 0.5) / (f * dz_rows)  # (H,) tangent of each row's outermost pixel
    top = int(np.argmax(dz_rows))
    n_core = int(round(W * oversample))
    core = (np.arange(n_core) + 0.5 - n_core / 2) / (f * dz_rows[top] * oversample)
    outer = []
    t = core[-1]
    while t < half.max():
        reach = dz_rows[half >= t - 1e-12]
        t = t + 1.0 / (f * reach.max() * oversample)
        outer.append(t)
    outer = np.array(outer)
    return np.concatenate([-outer[::-1], core, outer])


def plane_light(camera: CameraConfig, ceiling: float) -> np.ndarray:
    """(P,) float32 (P = H * W, row-major) light of each pixel's floor or ceiling point:
    distance falloff x CEILING_SHADE (the floor's shade is in its colours); 0 on a level
    ray, which always meets a wall."""
    dx, dy, dz = level_rays(camera)
    h = np.hypot(dx, dz)
    tan_el = -dy / h
    eye = camera.eye_height
    with np.errstate(divide="ignore"):
        r_plane = np.where(tan_el < 0, eye / -tan_el,
                           np.where(tan_el > 0, (ceiling - eye) / tan_el, np.inf))
    dist_scale = np.sqrt(1 + tan_el**2)
    with np.errstate(divide="ignore"):  # r_plane = inf -> light 0
        light = 1.0 / (1.0 + FALLOFF * r_plane * dist_scale)
    light = light * np.where(tan_el >= 0, CEILING_SHADE, 1.0)
    return np.ascontiguousarray(light.ravel(), np.float32)


# --------------------------------------------------------------------------- scene tables


def room_raster(scene: Scene, cell: float = FLOOR_CELL) -> tuple[np.ndarray, float, float]:
    """(GX, GZ) int16 index of the room under each cell centre (-1 outside), and the grid
    origin (x0, z0)."""
    xmin, zmin, xmax, zmax = scene.bounds
    x0, z0 = xmin - cell, zmin - cell
    nx, nz = int(math.ceil((xmax - x0) / cell)) + 2, int(math.ceil((zmax - z0) / cell)) + 2
    xs, zs = np.meshgrid(x0 + (np.arange(nx) + 0.5) * cell, z0 + (np.arange(nz) + 0.5) * cell,
                         indexing="ij")
    grid = np.full((nx, nz), -1, dtype=np.int16)
    for k, room in enumerate(scene.rooms):
        poly = shapely.Polygon(room.polygon)
        inside = shapely.contains_xy(poly, xs, zs) & (grid < 0)
        grid[inside] = k
    return grid, x0, z0


@dataclass
class SceneTables:
    """Scene arrays in the layout the kernels read."""

    wa: np.ndarray  # (N, 2) wall base start
    wb: np.ndarray  # (N, 2) wall base end
    wy: np.ndarray  # (N, 2) wall bottom, top
    wn: np.ndarray  # (N, 2) wall unit normal (front side)
    wfull: np.ndarray  # (N,) bool: covers floor to ceiling (blocks what lies behind it)
    wcolor: np.ndarray  # (N, 3) float64 shaded colour
    bc: np.ndarray  # (M, 3) box centre
    bh: np.ndarray  # (M, 3) box half extents
    bcs: np.ndarray  # (M, 2) cos, sin of box yaw
    bcolor: np.ndarray  # (M, 3) float64 base colour
    bsh: np.ndarray  # (M, 10) float64 per-box shading constants, see _box_shade_table
    room_grid: np.ndarray  # (GX, GZ) int16 room under each cell centre, R outside (also the
    # cells along the raster's edges)
    grid_origin: np.ndarray  # (3,) x0, z0, cell
    floor_colors: np.ndarray  # (R + 1, 2, 3) float64 floor colour x FLOOR_SHADE per room
    # and tile parity (light, dark); the last room is OUTSIDE_COLOR
    ceiling_rgb: np.ndarray  # (3,) float64 ceiling colour (CEILING_SHADE is in plane_light)


def _box_shade_table(yaw: np.ndarray, half: np.ndarray, pattern: np.ndarray,
                     light_xz: tuple[float, float] = LIGHT_XZ, brightness: float = 1.0
                     ) -> np.ndarray:
    """(M, 10) per box: brightness of faces 0-3 (sides +x, -x, +z, -z), the pattern (as a
    float), top and bottom brightness (5, 6) and the inverse pattern cell size along box x,
    y, z (7-9); the face brightnesses under a light from ``light_xz``, times
    ``brightness``."""
    c, s = np.cos(yaw), np.sin(yaw)
    half = np.asarray(half, np.float64).reshape(-1, 3)
    out = np.zeros((len(half), 10))
    for face, (nx, nz) in enumerate(((c, -s), (-c, s), (s, c), (-s, -c))):
        out[:, face] = face_shade(nx, nz, light_xz) * brightness
    out[:, 4] = pattern
    out[:, 5], out[:, 6] = TOP_SHADE * brightness, BOTTOM_SHADE * brightness
    out[:, 7:10] = 1.0 / np.maximum(half / 3.0, 0.015)
    return np.ascontiguousarray(out)


def _floor_table(rgb: np.ndarray) -> np.ndarray:
    """(R + 1, 3) float64 floor colour per room (the last: outside) -> (R + 1, 2, 3) colour x
    FLOOR_SHADE per tile parity (light, dark), at most 255."""
    return np.ascontiguousarray(np.minimum(
        rgb[:, None, :] * FLOOR_SHADE * np.array([1.0, FLOOR_TILE_DARK])[None, :, None], 255.0))


def scene_tables(scene: Scene) -> SceneTables:
    p, b = scene.pieces, scene.boxes
    full = (p.kind == WALL) & (p.y0 <= 1e-6) & (p.y1 >= scene.ceiling_height - 1e-6)
    shade = face_shade(p.normal[:, 0], p.normal[:, 1])
    grid, x0, z0 = room_raster(scene)
    rooms = [r.floor_color for r in scene.rooms] + [OUTSIDE_COLOR]
    f64 = np.float64
    return SceneTables(
        wa=np.ascontiguousarray(p.a, f64).reshape(-1, 2),
        wb=np.ascontiguousarray(p.b, f64).reshape(-1, 2),
        wy=np.ascontiguousarray(np.stack([p.y0, p.y1], axis=1), f64).reshape(-1, 2),
        wn=np.ascontiguousarray(p.normal, f64).reshape(-1, 2),
        wfull=np.ascontiguousarray(full, np.bool_),
        wcolor=np.ascontiguousarray(p.color.astype(f64) * shade[:, None]).reshape(-1, 3),
        bc=np.ascontiguousarray(b.center, f64).reshape(-1, 3),
        bh=np.ascontiguousarray(b.half, f64).reshape(-1, 3),
        bcs=np.ascontiguousarray(np.stack([np.cos(b.yaw), np.sin(b.yaw)], axis=1),
                                 f64).reshape(-1, 2),
        bcolor=np.ascontiguousarray(b.color, f64).reshape(-1, 3),
        bsh=_box_shade_table(b.yaw, b.half, b.pattern),
        room_grid=np.where(grid < 0, len(scene.rooms), grid).astype(np.int16),
        grid_origin=np.array([x0, z0, FLOOR_CELL]),
        floor_colors=_floor_table(np.array(rooms, dtype=f64)),
        ceiling_rgb=np.array(scene.ceiling_color, dtype=f64),
    )


def appearance_tables(scene: Scene, tables: SceneTables, appearance: Appearance
                      ) -> SceneTables:
    """``tables`` (the scene's, :func:`scene_tables`) with every colour and shading table
    computed again from the scene under ``appearance``: shifted colours, a turned light and a
    brightness gain. The geometry arrays are the same objects; the identity appearance gives
    equal tables."""
    p, b = scene.pieces, scene.boxes
    light, gain = turned_light(appearance.light_turn), appearance.brightness
    shade = face_shade(p.normal[:, 0], p.normal[:, 1], light) * gain
    rooms = np.array([r.floor_color for r in scene.rooms] + [OUTSIDE_COLOR], dtype=np.float64)
    bsh = _box_shade_table(b.yaw, b.half, b.pattern, light, gain)
    return dataclasses.replace(
        tables,
        wcolor=np.ascontiguousarray(appearance.piece_colors(p) * shade[:, None]).reshape(-1, 3),
        bcolor=np.ascontiguousarray(appearance.box_colors(b)).reshape(-1, 3),
        bsh=bsh,
        floor_colors=_floor_table(appearance.floors.apply(rooms) * gain),
        ceiling_rgb=appearance.ceiling.apply(scene.ceiling_color) * gain,
    )


# --------------------------------------------------------------------------- kernel
#
# Every visible surface is a planar rectangle (a wall piece, a box side, top or bottom), so
# along one image column (fixed u, rows k) a ray's inverse depth on a surface is affine in k
# and the rows that see the surface's inside form one interval (four edge planes through
# the eye, each affine in k). Each surface is written over its row interval of every image
# column it spans with a per-pixel inverse-depth test: the nearest surface along each
# pixel's own ray, exactly.


@dataclass
class RasterTables:
    """Pose-independent tables of :func:`render_frame` (image column c, row k).

    The ray of pixel (k, c), scaled so that its parameter is the depth along the optical
    axis, is ``(u[c], up0 + k * dup, fwd0 + k * dfwd)`` in the level camera frame (x right,
    y up, z forward), with ``row_dir = (up0, dup, fwd0, dfwd)``.
    """

    u: np.ndarray  # (W,) float64 right component of each image column's rays
    row_dir: np.ndarray  # (4,) float64 up0, dup, fwd0, dfwd
    w_plane: np.ndarray  # (H,) float64 inverse depth of the floor/ceiling per row (0: level)
    s_plane: np.ndarray  # (H,) float64 depth of the floor/ceiling per row (inf: level)
    falloff: np.ndarray  # (P,) float32 FALLOFF x each pixel's ray length per unit depth
    plane_light: np.ndarray  # (P,) float32 falloff x shade of each pixel's floor/ceiling
    col_tan: np.ndarray  # (K,) float64 sorted azimuth tangents of the columns (column_tangents)
    col_pu: np.ndarray  # (K,) float64 level-frame right component of each column's direction
    col_pv: np.ndarray  # (K,) float64 forward component
    tau_lo: np.ndarray  # (W,) float64 smallest azimuth tangent of an image column's pixels
    tau_hi: np.ndarray  # (W,) float64 largest
    pair_lo: np.ndarray  # (W,) int32 first column pair (col_tan[j], col_tan[j + 1]) that
    pair_hi: np.ndarray  # (W,) int32 last       a pixel of the image column lies in
    log2: np.ndarray  # (K,) int32 floor(log2(n)), n >= 1, for the range-maximum table


def raster_tables(camera: CameraConfig, ceiling: float, column_oversample: float = 1.0
                  ) -> RasterTables:
    """Tables of :func:`render_frame` for ``camera`` under a ceiling ``ceiling`` metres high
    (``column_oversample``: see :func:`column_tangents`)."""
    dz = level_rays(camera)[2]
    if dz.min() <= 0.05:
        raise InputError(f"camera.pitch {camera.pitch} with vfov {camera.vfov}: the embedded "
                         "renderer needs |pitch| + vfov/2 below about 85 degrees")
    col_tan = column_tangents(camera, dz[:, 0], column_oversample)
    f, H, W = camera.focal, camera.height, camera.width
    th = math.radians(camera.pitch)
    u = (np.arange(W) + 0.5 - W / 2) / f
    v = (np.arange(H) + 0.5 - H / 2) / f
    up = -(v * math.cos(th) + math.sin(th))
    fwd = math.cos(th) - v * math.sin(th)
    v0, dv = (0.5 - H / 2) / f, 1.0 / f
    row_dir = np.array([-(v0 * math.cos(th) + math.sin(th)), -dv * math.cos(th),
                        math.cos(th) - v0 * math.sin(th), -dv * math.sin(th)])
    eye = camera.eye_height
    with np.errstate(divide="ignore"):
        s_plane = np.where(up < 0, eye / -up, np.where(up > 0, (ceiling - eye) / up, np.inf))
    w_plane = np.where(np.isinf(s_plane), 0.0, 1.0 / s_plane)
    tau_top, tau_bottom = u / fwd.max(), u / fwd.min()
    tau_lo, tau_hi = np.minimum(tau_top, tau_bottom), np.maximum(tau_top, tau_bottom)
    K = len(col_tan)
    pair_lo = np.clip(np.searchsorted(col_tan, tau_lo, side="right") - 1, 0, K - 2)
    pair_hi = np.clip(np.searchsorted(col_tan, tau_hi, side="right") - 1, 0, K - 2)
    norm = 1.0 / np.sqrt(1.0 + col_tan**2)
    log2 = np.zeros(K, np.int32)
    log2[1:] = np.floor(np.log2(np.arange(1, K))).astype(np.int32)
    ray_length = np.sqrt(1.0 + u[None, :] ** 2 + v[:, None] ** 2)  # (H, W) per unit depth
    return RasterTables(u=u, row_dir=row_dir, w_plane=w_plane, s_plane=s_plane,
                        falloff=np.ascontiguousarray((FALLOFF * ray_length).ravel(), np.float32),
                        plane_light=plane_light(camera, ceiling), col_tan=col_tan,
                        col_pu=col_tan * norm, col_pv=norm.copy(), tau_lo=tau_lo, tau_hi=tau_hi,
                        pair_lo=pair_lo.astype(np.int32), pair_hi=pair_hi.astype(np.int32),
                        log2=log2)


FACE_GEOM = 16
"""Columns of the per-frame face table: inverse depth, 4 edge planes (each as the (u, 1, k)
coefficients of its value along a pixel ray, <= 0 inside) and the near distance."""
_EDGE_TOL = 1e-10  # edge planes are unit: a seam between two pieces is closed on both


@njit(cache=True, error_model="numpy")
def _along_ray(x, y, z, rd):
    """(a_u, a_1, a_k): the dot product of (x, y, z) with the ray of pixel (k, c) is
    a_u u[c] + a_1 + a_k k (see RasterTables.row_dir)."""
    return x, y * rd[0] + z * rd[2], y * rd[1] + z * rd[3]


@njit(cache=True, error_model="numpy")
def _add_face(ft, fi, fs, f, nx, ny, nz, qx, qy, qz, ax, ay, az, ea, bx, by, bz, eb, rd,
              near, c0, c1, j0, j1, ident, pat, cr, cg, cb, inv_a, inv_b):
    """Write face ``f``: the rectangle of centre q, unit normal n (towards the eye) and
    half extents ea, eb along unit axes a, b (all in the level camera frame relative to the
    eye) as ray coefficients (see FACE_GEOM); its image columns [c0, c1], column pairs
    [j0, j1], id, pattern, shaded colour and pattern coordinates (cells from the corner
    along a and b). Returns False (nothing written) when the eye is not in front of it."""
    h = nx * qx + ny * qy + nz * qz
    if h > -1e-9:
        return False
    # Inverse depth along a ray d: (n . d) / h.
    ft[f, 0], ft[f, 1], ft[f, 2] = _along_ray(nx / h, ny / h, nz / h, rd)
    for e in range(4):
        gx, gy, gz, ext = (ax, ay, az, ea) if e < 2 else (bx, by, bz, eb)
        if e % 2 == 1:
            gx, gy, gz = -gx, -gy, -gz
        # g . X <= k on the plane n . X = h  <=>  (g - k / h n) . d <= 0 for a ray d.
        k = (gx * qx + gy * qy + gz * qz + ext) / h
        mx, my, mz = gx - k * nx, gy - k * ny, gz - k * nz
        inv = 1.0 / math.sqrt(mx * mx + my * my + mz * mz)
        ft[f, 3 + 3 * e], ft[f, 4 + 3 * e], ft[f, 5 + 3 * e] = _along_ray(
            mx * inv, my * inv, mz * inv, rd)
    ft[f, 15] = near
    fi[f, 0], fi[f, 1], fi[f, 2], fi[f, 3], fi[f, 4], fi[f, 5] = c0, c1, j0, j1, ident, pat
    fs[f, 0], fs[f, 1], fs[f, 2] = cr, cg, cb
    # Pattern coordinates: (a . d) * depth + ea - a . q cells along a, the same along b.
    fs[f, 3], fs[f, 4], fs[f, 5] = _along_ray(ax * inv_a, ay * inv_a, az * inv_a, rd)
    fs[f, 6] = (ea - (ax * qx + ay * qy + az * qz)) * inv_a
    fs[f, 7], fs[f, 8], fs[f, 9] = _along_ray(bx * inv_b, by * inv_b, bz * inv_b, rd)
    fs[f, 10] = (eb - (bx * qx + by * qy + bz * qz)) * inv_b
    return True


@njit(cache=True, error_model="numpy")
def _pair_range(col_tan, tmin, tmax):
    """Column pairs [j0, j1] whose wedge (col_tan[j], col_tan[j + 1]) overlaps [tmin, tmax]."""
    j0 = np.searchsorted(col_tan, tmin, side="right") - 1
    j1 = np.searchsorted(col_tan, tmax, side="right") - 1
    return max(j0, 0), min(j1, len(col_tan) - 2)


@njit(cache=True, error_model="numpy")
def _image_range(tau_lo, tau_hi, pair_lo, pair_hi, col_tan, tmin, tmax, behind):
    """(c0, c1, j0, j1): the image columns and column pairs whose azimuths can meet a
    surface spanning azimuth tangents [tmin, tmax] (everything when it reaches behind)."""
    if behind:
        return 0, len(tau_lo) - 1, 0, len(col_tan) - 2
    c0 = np.searchsorted(tau_hi, tmin - 1e-9, side="left")
    c1 = np.searchsorted(tau_lo, tmax + 1e-9, side="right") - 1
    j0, j1 = _pair_range(col_tan, tmin - 1e-9, tmax + 1e-9)
    return c0, c1, j0, j1


@njit(cache=True, error_model="numpy")
def _faces(cx, cz, yaw, eye, wa, wb, wy, wn, wfull, wcolor, bc, bh, bcs, bcolor, bsh,
           col_tan, col_pu, col_pv, tau_lo, tau_hi, pair_lo, pair_hi, rd, ft, fi, fs, rmax):
    """Per-frame face table (see :func:`_add_face`) of every wall piece and box face the eye
    is in front of, and ``rmax`` (K - 1,): the distance within which a full-height wall
    blocks every ray of each column pair (inf: none). Returns (faces, rx, rz, fx, fz)."""
    sy, cy = math.sin(yaw), math.cos(yaw)
    fx, fz, rx, rz = sy, cy, cy, -sy  # forward and right in world (x, z)
    rmax[:] = np.inf
    nf = 0
    for w in range(wa.shape[0]):
        ax, az, bx, bz = wa[w, 0] - cx, wa[w, 1] - cz, wb[w, 0] - cx, wb[w, 1] - cz
        if wn[w, 0] * -ax + wn[w, 1] * -az <= 0.0:
            continue  # the eye is behind this face
        ua, va = ax * rx + az * rz, ax * fx + az * fz  # camera right, forward coordinates
        ub, vb = bx * rx + bz * rz, bx * fx + bz * fz
        if va <= _NEAR and vb <= _NEAR:
            continue
        eu, ev = ub - ua, vb - va
        length = math.hypot(eu, ev)
        if length < 1e-9:
            continue
        cua, cva, cub, cvb = ua, va, ub, vb
        if va <= _NEAR:
            s = (_NEAR - va) / (vb - va)
            cua, cva = ua + s * (ub - ua), _NEAR
        elif vb <= _NEAR:
            s = (_NEAR - vb) / (va - vb)
            cub, cvb = ub + s * (ua - ub), _NEAR
        ta, tb = cua / cva, cub / cvb
        c0, c1, j0, j1 = _image_range(tau_lo, tau_hi, pair_lo, pair_hi, col_tan,
                                      min(ta, tb), max(ta, tb), False)
        if c1 < c0:
            continue
        s = min(max(-(ua * eu + va * ev) / (length * length), 0.0), 1.0)
        near = math.hypot(ua + s * eu, va + s * ev)
        nu, nv = wn[w, 0] * rx + wn[w, 1] * rz, wn[w, 0] * fx + wn[w, 1] * fz
        y0, y1 = wy[w, 0], wy[w, 1]
        if not _add_face(ft, fi, fs, nf, nu, 0.0, nv, 0.5 * (ua + ub), 0.5 * (y0 + y1) - eye,
                         0.5 * (va + vb), eu / length, 0.0, ev / length, 0.5 * length,
                         0.0, 1.0, 0.0, 0.5 * (y1 - y0), rd, near, c0, c1, j0, j1, 0, 0,
                         min(wcolor[w, 0], 255.0), min(wcolor[w, 1], 255.0),
                         min(wcolor[w, 2], 255.0), 0.0, 0.0):
            continue
        nf += 1
        if wfull[w]:  # which column pairs it blocks: both columns hit it
            det_k = eu * va - ev * ua
            prev = np.inf
            for k in range(j0, j1 + 2):
                pu, pv = col_pu[k], col_pv[k]
                det = eu * pv - ev * pu
                cur = np.inf
                if abs(det) >= 1e-12:
                    r = det_k / det
                    sp = (pu * va - pv * ua) / det
                    if r > _NEAR and -1e-9 <= sp <= 1.0 + 1e-9:
                        cur = r
                if k > j0 and prev < np.inf and cur < np.inf:
                    rmax[k - 1] = min(rmax[k - 1], max(prev, cur))
                prev = cur
    for m in range(bc.shape[0]):
        c, s = bcs[m, 0], bcs[m, 1]
        ox, oz = bc[m, 0] - cx, bc[m, 2] - cz  # centre relative to the eye
        hx, hy, hz = bh[m, 0], bh[m, 1], bh[m, 2]
        tmin, tmax, behind, front = 1e30, -1e30, False, False
        for sx in (-1.0, 1.0):
            for sz in (-1.0, 1.0):
                px = ox + sx * hx * c + sz * hz * s  # object +x = (c, -s), +z = (s, c)
                pz = oz - sx * hx * s + sz * hz * c
                u, v = px * rx + pz * rz, px * fx + pz * fz
                if v <= _NEAR:
                    behind = True
                else:
                    front = True
                    t = u / v
                    tmin, tmax = min(tmin, t), max(tmax, t)
        if not front:
            continue
        c0, c1, j0, j1 = _image_range(tau_lo, tau_hi, pair_lo, pair_hi, col_tan, tmin, tmax,
                                      behind)
        if c1 < c0:
            continue
        lox, loz = -(ox * c - oz * s), -(ox * s + oz * c)  # the eye in box coordinates
        near = math.hypot(max(abs(lox) - hx, 0.0), max(abs(loz) - hz, 0.0))
        qx, qy, qz = ox * rx + oz * rz, bc[m, 1] - eye, ox * fx + oz * fz  # centre, camera
        xu, xv = c * rx - s * rz, c * fx - s * fz  # box +x in the camera frame
        zu, zv = s * rx + c * rz, s * fx + c * fz  # box +z
        pat, cr, cg, cb = int(bsh[m, 4]), bcolor[m, 0], bcolor[m, 1], bcolor[m, 2]
        for face in range(7):
            if face == 4:
                continue
            if face < 2:  # +x / -x side: pattern along box z and up
                sg = 1.0 if face == 0 else -1.0
                if sg * lox <= hx:
                    continue
                nx, ny, nz, d = sg * xu, 0.0, sg * xv, hx
                a = (zu, 0.0, zv, hz, bsh[m, 9])
                b = (0.0, 1.0, 0.0, hy, bsh[m, 8])
            elif face < 4:  # +z / -z side: pattern along box x and up
                sg = 1.0 if face == 2 else -1.0
                if sg * loz <= hz:
                    continue
                nx, ny, nz, d = sg * zu, 0.0, sg * zv, hz
                a = (xu, 0.0, xv, hx, bsh[m, 7])
                b = (0.0, 1.0, 0.0, hy, bsh[m, 8])
            else:  # top (bottom): the eye above (below) it; pattern along box x and z
                sg = 1.0 if face == 5 else -1.0
                if sg * (eye - bc[m, 1]) <= hy:
                    continue
                nx, ny, nz, d = 0.0, sg, 0.0, hy
                a = (xu, 0.0, xv, hx, bsh[m, 7])
                b = (zu, 0.0, zv, hz, bsh[m, 9])
            fp = 0 if face == 6 else pat
            sh = bsh[m, face]
            if _add_face(ft, fi, fs, nf, nx, ny, nz, qx + d * nx, qy + d * ny, qz + d * nz,
                         a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], rd, near, c0, c1,
                         j0, j1, m + 1, fp, min(cr * sh, 255.0), min(cg * sh, 255.0),
                         min(cb * sh, 255.0), a[4], b[4]):
                nf += 1
    return nf, rx, rz, fx, fz


@njit(cache=True, error_model="numpy", fastmath={"nsz", "arcp", "contract"})
def _raster(nf, ft, fi, u, w_plane, pair_lo, pair_hi, log2, rmax, rtab, wbuf, fbuf):
    """Fill ``fbuf`` (W * H, column-major) with the face each pixel sees (-1: the floor or
    ceiling) and ``wbuf`` with its inverse depth: each image column starts with the
    floor/ceiling per row; each of the ``nf`` faces, in every image column of its range
    where no full-height wall hides it (its nearest point beyond the largest ``rmax`` of the
    column pairs the two share; ``rtab`` (L, K - 1) holds range maxima of ``rmax``), takes
    the rows inside its four edge planes where its inverse depth is larger."""
    H, W = w_plane.shape[0], u.shape[0]
    n_pairs = rmax.shape[0]
    rtab[0, :] = rmax
    span = 1
    for lv in range(1, rtab.shape[0]):  # rtab[lv, j] = max(rmax[j:j + 2 ** lv])
        for j in range(n_pairs - 2 * span + 1):
            rtab[lv, j] = max(rtab[lv - 1, j], rtab[lv - 1, j + span])
        span *= 2
    for c in range(W):
        base = c * H
        for k in range(H):
            wbuf[base + k] = w_plane[k]
            fbuf[base + k] = -1
    hm = H - 1.0
    for f in range(nf):
        c0, c1, j0, j1, near = fi[f, 0], fi[f, 1], fi[f, 2], fi[f, 3], ft[f, 15]
        w_u, w_1, w_k = ft[f, 0], ft[f, 1], ft[f, 2]
        for c in range(c0, c1 + 1):
            q0, q1 = max(j0, pair_lo[c]), min(j1, pair_hi[c])
            if q0 <= q1:  # hidden behind a full-height wall in every shared pair?
                lv = log2[q1 - q0 + 1]
                if near > max(rtab[lv, q0], rtab[lv, q1 - (1 << lv) + 1]) * (1.0 + 1e-9):
                    continue
            uc = u[c]
            lo, hi = 0.0, hm
            for e in range(3, 15, 3):
                a, b = ft[f, e] * uc + ft[f, e + 1], ft[f, e + 2]
                if b > 0.0:
                    hi = min(hi, (_EDGE_TOL - a) / b)
                elif b < 0.0:
                    lo = max(lo, (_EDGE_TOL - a) / b)
                elif a > _EDGE_TOL:
                    hi = -1.0
            if hi < lo:
                continue
            a = w_u * uc + w_1
            base = c * H
            for k in range(int(math.ceil(lo)), int(math.floor(hi)) + 1):
                wv = a + w_k * k
                if wv > wbuf[base + k]:
                    wbuf[base + k] = wv
                    fbuf[base + k] = f


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@njit(cache=True, error_model="numpy")
def _mix64(z):
    """splitmix64's finaliser: a uint64 bijection whose output bits all depend on every
    input bit."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, error_model="numpy")
def noise_seed(key, frame):
    """The uint64 seed of frame ``frame`` (>= 0) of the episode drawn as ``key`` (uint64)."""
    return _mix64(key ^ _mix64((np.uint64(frame) + np.uint64(1)) * _GOLDEN))


@njit(cache=True, error_model="numpy")
def _add_noise(rgb, p0, seed, amplitude):
    """Add to ``rgb`` ((3 n,) uint8: pixels p0 .. p0 + n - 1 of a frame, channels last; in
    place) integer noise uniform in [-amplitude, amplitude] per pixel and channel, saturating
    at 0 and 255: a pure function of (``seed``, pixel). One 64-bit hash per pixel gives its
    three channels 16 bits each. (Flat indexing: about 3x faster than an (n, 3) array.)"""
    span = np.uint64(2 * amplitude + 1)
    for q in range(rgb.shape[0] // 3):
        h = _mix64(seed + np.uint64(p0 + q) * _GOLDEN)
        for ch in range(3):
            r = (h >> np.uint64(16 * ch)) & np.uint64(0xFFFF)
            v = np.int64((r * span) >> np.uint64(16)) - amplitude
            rgb[3 * q + ch] = min(max(np.int64(rgb[3 * q + ch]) + v, 0), 255)


@njit(cache=True, error_model="numpy", fastmath={"nsz", "arcp", "contract"})
def render_frame(cx, cz, yaw, eye, u, rd, w_plane, s_plane, falloff, plane_light,
                 col_tan, col_pu, col_pv, tau_lo, tau_hi, pair_lo, pair_hi, log2,
                 wa, wb, wy, wn, wfull, wcolor, bc, bh, bcs, bcolor, bsh,
                 room_grid, grid_origin, floor_colors, ceiling_rgb, height, width,
                 ft, fi, fs, rmax, rtab, wbuf, fbuf, mode, noise=0, seed=0):
    """Render one view from eye (cx, eye, cz) at ``yaw`` radians.

    ``mode`` 0: rgb (H, W, 3) uint8, depth (H, W) float32 and ids (H, W) int32, newly
    allocated; 1: ids only (no shading, no depth); 2: only ``counts``, the (M + 1,) int64 pixel
    count of every id; 3: rgb only (no depth or ids). Arrays a mode does not produce come back
    empty. ``ft``/``fi``/``fs`` (faces), ``rmax`` (K - 1), ``rtab`` (L, K - 1),
    ``wbuf``/``fbuf`` (W * H, column-major) are scratch buffers reused between frames.

    1. :func:`_faces`: every wall piece and box face the eye is in front of, with the image
       columns its azimuths span, and per column pair the distance within which a
       full-height wall blocks every ray (``rmax``).
    2. :func:`_raster`: the nearest face (or the floor/ceiling) and its inverse depth along
       every pixel's own ray.
    3. Ids (modes 0, 1), counts (mode 2), or shading (modes 0, 3): depth = 1 / inverse depth,
       colours as described in the module; with ``noise`` > 0, each RGB row gets pixel
       noise of that amplitude (:func:`_add_noise`, ``seed``: :func:`noise_seed`) while it
       is in cache.
    """
    nf, rx, rz, fx, fz = _faces(cx, cz, yaw, eye, wa, wb, wy, wn, wfull, wcolor, bc, bh, bcs,
                                bcolor, bsh, col_tan, col_pu, col_pv, tau_lo, tau_hi,
                                pair_lo, pair_hi, rd, ft, fi, fs, rmax)
    H, W = height, width
    _raster(nf, ft, fi, u, w_plane, pair_lo, pair_hi, log2, rmax, rtab, wbuf, fbuf)
    P = H * W
    full, with_ids = mode == 0, mode <= 1
    rgb = np.empty((P if full or mode == 3 else 0, 3), np.uint8)
    depth = np.empty(P if full else 0, np.float32)
    ids = np.empty(P if with_ids else 0, np.int32)
    counts = np.zeros(bc.shape[0] + 1, np.int64)
    if mode == 2:
        run, prev = 0, fbuf[0]
        for q in range(P):  # count runs of one face: no chain of increments on one counter
            f = fbuf[q]
            if f != prev:
                counts[fi[prev, 4] if prev >= 0 else 0] += run
                run, prev = 0, f
            run += 1
        counts[fi[prev, 4] if prev >= 0 else 0] += run
        return (rgb.reshape(-1, width, 3), depth.reshape(-1, width), ids.reshape(-1, width),
                counts)
    if mode == 1:
        for k in range(H):
            for c in range(W):
                f = fbuf[c * H + k]
                ids[k * W + c] = fi[f, 4] if f >= 0 else 0
        return (rgb.reshape(-1, width, 3), depth.reshape(-1, width), ids.reshape(-1, width),
                counts)
    x0, z0, inv_cell = grid_origin[0], grid_origin[1], 1.0 / grid_origin[2]
    inv_tile = 1.0 / FLOOR_TILE
    gx, gz = room_grid.shape[0] - 1.0, room_grid.shape[1] - 1.0
    up0, dup, fwd0, dfwd = rd[0], rd[1], rd[2], rd[3]
    for k in range(H):
        upk, fwdk, sk = up0 + k * dup, fwd0 + k * dfwd, s_plane[k]
        # The floor point of pixel (k, c) in world x, z is affine in u[c]: (hx0, hz0) + u (hx1,
        # hz1); so are its raster cell (grid units) and its tile (tile units, offset).
        hx0, hz0, hx1, hz1 = cx + sk * fwdk * fx, cz + sk * fwdk * fz, sk * rx, sk * rz
        gu0, gv0 = (hx0 - x0) * inv_cell, (hz0 - z0) * inv_cell
        gu1, gv1 = hx1 * inv_cell, hz1 * inv_cell
        tu0, tv0 = hx0 * inv_tile + _TILE_OFFSET, hz0 * inv_tile + _TILE_OFFSET
        tu1, tv1 = hx1 * inv_tile, hz1 * inv_tile
        for c in range(W):
            p, q = k * W + c, c * H + k
            f = fbuf[q]
            if f < 0:
                if full:
                    ids[p] = 0
                    depth[p] = sk
                light = np.float64(plane_light[p])
                if upk >= 0.0:
                    for ch in range(3):
                        rgb[p, ch] = min(ceiling_rgb[ch] * light, 255.0)
                    continue
                uc = u[c]
                # Beyond the raster's edge cells (outside every room) counts as outside.
                kr = room_grid[int(min(max(gu0 + uc * gu1, 0.0), gx)),
                               int(min(max(gv0 + uc * gv1, 0.0), gz))]
                # int() of a positive number is floor; the even offset keeps the parity.
                odd = (int(tu0 + uc * tu1) + int(tv0 + uc * tv1)) & 1
                for ch in range(3):  # colour <= 255 (scene_tables), light <= 1
                    rgb[p, ch] = floor_colors[kr, odd, ch] * light
                continue
            w = wbuf[q]
            s = 1.0 / w
            if full:
                ids[p] = fi[f, 4]
                depth[p] = s
            shade = w / (w + np.float64(falloff[p]))  # 1 / (1 + FALLOFF x distance)
            pat = fi[f, 5]
            if pat != 0:
                uc = u[c]
                pa = (fs[f, 3] * uc + fs[f, 4] + fs[f, 5] * k) * s + fs[f, 6]
                pb = (fs[f, 7] * uc + fs[f, 8] + fs[f, 9] * k) * s + fs[f, 10]
                ia, ib = int(pa + _TILE_OFFSET) & 1, int(pb + _TILE_OFFSET) & 1
                odd = ib if pat == 1 else (ia if pat == 2 else ia ^ ib)
                if odd:
                    shade *= PATTERN_DARK
            for ch in range(3):  # colour <= 255 (_faces), shade <= 1
                rgb[p, ch] = fs[f, ch] * shade
        if noise > 0:
            _add_noise(rgb.reshape(-1)[3 * k * W:3 * (k + 1) * W], k * W, np.uint64(seed),
                       noise)
    return (rgb.reshape(-1, width, 3), depth.reshape(-1, width), ids.reshape(-1, width),
            counts)


# --------------------------------------------------------------------------- renderer


class Renderer:
    """Renders a scene from agent poses with one camera.

    ``render(x, z, yaw_deg)``: the eye is at (x, camera.eye_height, z) looking along yaw
    (0 = +z, 90 = +x), pitched down by ``camera.pitch`` degrees. ``render_ids`` and
    ``render_counts`` resolve the same pixels but skip shading and depth; ``render_rgb``
    skips depth and ids. ``with_appearance`` gives a view that renders the same geometry
    under a drawn appearance (:mod:`sim.appearance`).

    Every wall piece and box face is rasterised along image columns with a per-pixel
    inverse-depth test (:func:`render_frame`): the nearest surface along each pixel's own
    ray. ``column_oversample`` densifies the column table that culls surfaces hidden behind
    full-height walls (speed only: the output does not depend on it). See
    ``docs/performance.md``.
    """

    def __init__(self, scene: Scene, camera: CameraConfig = CameraConfig(),
                 column_oversample: float = 1.0):
        self.scene, self.camera = scene, camera
        rt = self.raster = raster_tables(camera, scene.ceiling_height, column_oversample)
        s = self.tables = scene_tables(scene)
        K, F = len(rt.col_tan), len(s.wa) + 3 * len(s.bc)
        H, W = camera.height, camera.width
        levels = int(math.floor(math.log2(max(K - 1, 1)))) + 1
        self._scratch = (np.empty((F, FACE_GEOM)), np.empty((F, 6), np.int32),
                         np.empty((F, 11)), np.empty(K - 1), np.empty((levels, K - 1)),
                         np.empty(H * W), np.empty(H * W, np.int32))
        self.appearance: Appearance | None = None
        self._args = self._kernel_args()

    def _kernel_args(self) -> tuple:
        """The arguments of :func:`render_frame` before ``mode``."""
        rt, s, cam = self.raster, self.tables, self.camera
        return (float(cam.eye_height), rt.u, rt.row_dir, rt.w_plane, rt.s_plane,
                rt.falloff, rt.plane_light, rt.col_tan, rt.col_pu, rt.col_pv,
                rt.tau_lo, rt.tau_hi, rt.pair_lo, rt.pair_hi, rt.log2,
                s.wa, s.wb, s.wy, s.wn, s.wfull, s.wcolor, s.bc, s.bh, s.bcs, s.bcolor,
                s.bsh, s.room_grid, s.grid_origin, s.floor_colors, s.ceiling_rgb,
                cam.height, cam.width, *self._scratch)

    def with_appearance(self, appearance: Appearance) -> Renderer:
        """A view of this renderer under ``appearance`` (drawn once per episode,
        :func:`sim.appearance.draw_appearance`): it shares the scene, camera, geometry and
        raster tables and scratch buffers (so render from one of them at a time), with its
        own colour and shading tables (:func:`appearance_tables`, computed from the scene,
        so a view of a view does not compound). Depth and ids are this renderer's; the
        identity appearance gives the same RGB bytes. With noise on, ``render`` and
        ``render_rgb`` need ``frame``, the frame's index within its episode."""
        view = copy.copy(self)
        view.appearance = appearance
        view.tables = appearance_tables(self.scene, self.tables, appearance)
        view._args = view._kernel_args()
        return view

    def _noise_args(self, frame: int | None) -> tuple:
        """The noise arguments of :func:`render_frame` for ``frame``: none without an
        appearance that adds noise."""
        a = self.appearance
        if a is None or a.noise == 0:
            return ()
        if frame is None or int(frame) < 0:
            raise ValueError(f"frame={frame!r}: this renderer's appearance adds per-frame "
                             "noise, so render and render_rgb need frame=<the frame's index "
                             "(>= 0) within its episode>")
        return a.noise, np.uint64(noise_seed(np.uint64(a.key), int(frame)))

    @property
    def num_columns(self) -> int:
        """Columns in the occlusion-culling column table."""
        return len(self.raster.col_tan)

    def _frame(self, x, z, yaw_deg, mode, *noise):
        return render_frame(float(x), float(z), math.radians(float(yaw_deg)), *self._args, mode,
                            *noise)

    def render(self, x: float, z: float, yaw_deg: float, frame: int | None = None) -> Frame:
        """One frame: RGB (H, W, 3) uint8, depth (H, W) float32 m, ids (H, W) int32.
        ``frame`` (the frame's index within its episode) seeds an appearance's pixel noise;
        without noise it is not needed and changes nothing."""
        rgb, depth, ids, _ = self._frame(x, z, yaw_deg, 0, *self._noise_args(frame))
        return Frame(rgb, depth, ids)

    def render_rgb(self, x: float, z: float, yaw_deg: float, frame: int | None = None
                   ) -> np.ndarray:
        """Only the (H, W, 3) uint8 RGB of :meth:`render` (identical to its ``rgb``), without
        writing depth and ids."""
        return self._frame(x, z, yaw_deg, 3, *self._noise_args(frame))[0]

    def render_ids(self, x: float, z: float, yaw_deg: float) -> np.ndarray:
        """Only the (H, W) int32 instance ids of :meth:`render` (identical to its ``ids``),
        skipping shading and depth."""
        return self._frame(x, z, yaw_deg, 1)[2]

    def render_counts(self, x: float, z: float, yaw_deg: float) -> np.ndarray:
        """(M + 1,) int64 pixel count of every instance id of :meth:`render_ids` (index 0:
        structure, floor and ceiling; box row k at k + 1), without an id image."""
        return self._frame(x, z, yaw_deg, 2)[3]
