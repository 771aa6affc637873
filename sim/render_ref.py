"""A slow, simple numpy reference renderer used to check :mod:`sim.render`.

A different algorithm on purpose: every pixel's full 3D ray is intersected with every wall
rectangle (front faces only), every oriented box (3D slab test) and the floor and ceiling
planes, keeping the nearest hit in a depth buffer. No columns, no azimuth rounding, no hit
lists. Floor colours come from exact point-in-polygon tests. Shading uses the same formulas
as the compiled renderer so that images can be compared by eye, but tests compare ids and
depth.
"""

from __future__ import annotations

import math

import numpy as np
import shapely

from sim.camera import CameraConfig
from sim.render import (
    BOTTOM_SHADE,
    CEILING_SHADE,
    FALLOFF,
    FLOOR_SHADE,
    FLOOR_TILE,
    FLOOR_TILE_DARK,
    OUTSIDE_COLOR,
    PATTERN_DARK,
    TOP_SHADE,
    Frame,
    face_shade,
)
from sim.scene import Scene

_NEAR = 1e-3


def camera_basis(camera: CameraConfig, yaw_deg: float) -> np.ndarray:
    """(3, 3) rows: the camera's right, image-down and forward axes in world (x, y up, z)."""
    yaw, th = math.radians(yaw_deg), math.radians(camera.pitch)
    right = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])
    fwd = np.array([math.sin(yaw), 0.0, math.cos(yaw)])
    down = np.array([0.0, -1.0, 0.0])
    return np.stack([right, math.cos(th) * down - math.sin(th) * fwd,
                     math.sin(th) * down + math.cos(th) * fwd])


def world_rays(camera: CameraConfig, yaw_deg: float) -> np.ndarray:
    """(H, W, 3) world (x, y up, z) direction of each pixel's ray, scaled so that the ray
    parameter is the depth along the optical axis."""
    return camera.pixel_rays() @ camera_basis(camera, yaw_deg)


def _window(corners: np.ndarray, o: np.ndarray, basis: np.ndarray, camera: CameraConfig):
    """Pixel window (r0, r1, c0, c1) that may see the convex hull of (n, 3) corners, or None
    when it is out of view."""
    rel = (corners - o) @ basis.T  # camera coordinates
    ahead = rel[:, 2] > _NEAR
    if not ahead.any():
        return None
    if not ahead.all():
        return 0, camera.height, 0, camera.width
    u = camera.focal * rel[:, 0] / rel[:, 2] + camera.width / 2
    v = camera.focal * rel[:, 1] / rel[:, 2] + camera.height / 2
    c0, c1 = max(int(np.floor(u.min())) - 1, 0), min(int(np.ceil(u.max())) + 1, camera.width)
    r0, r1 = max(int(np.floor(v.min())) - 1, 0), min(int(np.ceil(v.max())) + 1, camera.height)
    return (r0, r1, c0, c1) if r1 > r0 and c1 > c0 else None


def _walls(scene: Scene, camera, o, basis, d, zbuf, prim, face):
    """Depth-test every front-facing wall rectangle (d, zbuf, prim, face are (H, W, ...))."""
    p = scene.pieces
    for w in range(len(p)):
        if p.normal[w] @ (o[[0, 2]] - p.a[w]) <= 0:
            continue  # seen from behind: never drawn
        corners = np.array([[x, y, z] for x, z in (p.a[w], p.b[w]) for y in (p.y0[w], p.y1[w])])
        win = _window(corners, o, basis, camera)
        if win is None:
            continue
        sl = np.s_[win[0]:win[1], win[2]:win[3]]
        dd, zb = d[sl], zbuf[sl]
        n = np.array([p.normal[w, 0], 0.0, p.normal[w, 1]])
        a = np.array([p.a[w, 0], 0.0, p.a[w, 1]])
        e = np.array([p.b[w, 0] - p.a[w, 0], 0.0, p.b[w, 1] - p.a[w, 1]])
        denom = dd @ n
        with np.errstate(divide="ignore", invalid="ignore"):
            t = ((a - o) @ n) / denom
        hit = o + t[..., None] * dd
        s = ((hit - a) @ e) / (e @ e)
        ok = (denom < 0) & (t > _NEAR) & (t < zb) & (s >= 0) & (s <= 1) & \
            (hit[..., 1] >= p.y0[w]) & (hit[..., 1] <= p.y1[w])
        zb[ok], prim[sl][ok], face[sl][ok] = t[ok], w, 0


def _slab(lo: np.ndarray, ld: np.ndarray, half: np.ndarray):
    """3D ray/box slab test in box coordinates: (t_in, t_out, entry face) per ray; faces
    0/1 = +x/-x side, 2/3 = +z/-z side, 5 top, 6 bottom."""
    tmin = np.full(ld.shape[:-1], -np.inf)
    tmax = np.full(ld.shape[:-1], np.inf)
    fmin = np.zeros(ld.shape[:-1], np.int8)
    for k, (f_pos, f_neg) in enumerate([(0, 1), (5, 6), (2, 3)]):
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (-half[k] - lo[k]) / ld[..., k]
            t2 = (half[k] - lo[k]) / ld[..., k]
        parallel = ld[..., k] == 0
        near = np.where(parallel, -np.inf, np.minimum(t1, t2))
        far = np.where(parallel, np.where(abs(lo[k]) > half[k], -np.inf, np.inf),
                       np.maximum(t1, t2))
        entry = np.where(ld[..., k] > 0, f_neg, f_pos)  # moving +k enters the -k face
        better = near > tmin
        tmin, fmin = np.where(better, near, tmin), np.where(better, entry, fmin)
        tmax = np.minimum(tmax, far)
    return tmin, tmax, fmin


def _boxes(scene: Scene, camera, o, basis, d, zbuf, prim, face):
    """Depth-test every oriented box (3D slab test in the box's frame)."""
    b = scene.boxes
    signs = np.array([(sx, sy, sz) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    for m in range(len(b)):
        c, s = math.cos(b.yaw[m]), math.sin(b.yaw[m])
        axes = np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])  # object x, y, z
        corners = b.center[m] + (signs * b.half[m]) @ axes
        win = _window(corners, o, basis, camera)
        if win is None:
            continue
        sl = np.s_[win[0]:win[1], win[2]:win[3]]
        tmin, tmax, fmin = _slab(axes @ (o - b.center[m]), d[sl] @ axes.T, b.half[m])
        ok = (tmin <= tmax) & (tmin > _NEAR) & (tmin < zbuf[sl])
        zbuf[sl][ok], prim[sl][ok], face[sl][ok] = tmin[ok], -(m + 1), fmin[ok]


def _planes(scene: Scene, o: np.ndarray, d: np.ndarray, zbuf, prim, face):
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = -o[1] / d[:, 1]
        t_ceil = (scene.ceiling_height - o[1]) / d[:, 1]
    t = np.where(d[:, 1] < 0, t_floor, np.where(d[:, 1] > 0, t_ceil, np.inf))
    ok = t < zbuf
    zbuf[ok], prim[ok] = t[ok], np.iinfo(np.int32).max
    face[ok] = np.where(d[ok, 1] < 0, 7, 8)  # 7 floor, 8 ceiling


def _floor_rooms(scene: Scene, xs: np.ndarray, zs: np.ndarray) -> np.ndarray:
    """Index of the room containing each floor point, len(rooms) outside."""
    out = np.full(len(xs), len(scene.rooms))
    for k, room in reversed(list(enumerate(scene.rooms))):
        out[shapely.contains_xy(shapely.Polygon(room.polygon), xs, zs)] = k
    return out


def _pattern(pat: np.ndarray, a, b, ha, hb) -> np.ndarray:
    sa, sb = np.maximum(ha / 3.0, 0.015), np.maximum(hb / 3.0, 0.015)
    ia = np.floor((a + ha) / sa).astype(np.int64) & 1
    ib = np.floor((b + hb) / sb).astype(np.int64) & 1
    odd = np.where(pat == 1, ib, np.where(pat == 2, ia, ia ^ ib))
    return np.where((pat > 0) & (odd == 1), PATTERN_DARK, 1.0)


def _shade(scene: Scene, o, d, zbuf, prim, face) -> np.ndarray:
    """(P, 3) float colours, the same formulas as the compiled renderer."""
    P = len(d)
    hit = o + zbuf[:, None] * d
    color = np.zeros((P, 3))
    light = 1.0 / (1.0 + FALLOFF * zbuf * np.linalg.norm(d, axis=1))
    walls = (prim >= 0) & (face < 7)
    pc = scene.pieces
    wshade = face_shade(pc.normal[:, 0], pc.normal[:, 1])
    color[walls] = pc.color[prim[walls]] * wshade[prim[walls], None]
    floor, ceil = face == 7, face == 8
    rooms = np.array([r.floor_color for r in scene.rooms] + [OUTSIDE_COLOR], dtype=np.float64)
    fx, fz = hit[floor, 0], hit[floor, 2]
    odd = (np.floor(fx / FLOOR_TILE).astype(np.int64) + np.floor(fz / FLOOR_TILE).astype(
        np.int64)) & 1
    color[floor] = rooms[_floor_rooms(scene, fx, fz)] * (
        FLOOR_SHADE * np.where(odd == 1, FLOOR_TILE_DARK, 1.0))[:, None]
    color[ceil] = np.array(scene.ceiling_color) * CEILING_SHADE
    box = prim < 0
    if box.any():
        b = scene.boxes
        m, f = -prim[box] - 1, face[box]
        c, s = np.cos(b.yaw[m]), np.sin(b.yaw[m])
        w = hit[box] - b.center[m]
        lx, ly, lz = w[:, 0] * c - w[:, 2] * s, w[:, 1], w[:, 0] * s + w[:, 2] * c
        hx, hy, hz = b.half[m, 0], b.half[m, 1], b.half[m, 2]
        sg = np.where((f == 0) | (f == 2), 1.0, -1.0)
        nx = np.where(f < 2, sg * c, sg * s)
        nz = np.where(f < 2, -sg * s, sg * c)
        pat = b.pattern[m]
        side_x = face_shade(nx, nz) * _pattern(pat, lz, ly, hz, hy)
        side_z = face_shade(nx, nz) * _pattern(pat, lx, ly, hx, hy)
        top = TOP_SHADE * _pattern(pat, lx, lz, hx, hz)
        shade = np.where(f == 5, top, np.where(f == 6, BOTTOM_SHADE,
                                               np.where(f < 2, side_x, side_z)))
        color[box] = b.color[m] * shade[:, None]
    return color * light[:, None]


def render_reference(scene: Scene, camera: CameraConfig, x: float, z: float, yaw_deg: float
                     ) -> Frame:
    """The frame :class:`sim.render.Renderer` should produce, by brute force (~1 s)."""
    H, W = camera.height, camera.width
    basis = camera_basis(camera, yaw_deg)
    d = world_rays(camera, yaw_deg)  # (H, W, 3)
    o = np.array([x, camera.eye_height, z])
    zbuf = np.full((H, W), np.inf)
    prim = np.zeros((H, W), np.int64)
    face = np.zeros((H, W), np.int8)
    _walls(scene, camera, o, basis, d, zbuf, prim, face)
    _boxes(scene, camera, o, basis, d, zbuf, prim, face)
    d, zbuf, prim, face = d.reshape(-1, 3), zbuf.ravel(), prim.ravel(), face.ravel()
    _planes(scene, o, d, zbuf, prim, face)
    rgb = np.clip(_shade(scene, o, d, zbuf, prim, face), 0, 255).astype(np.uint8)
    ids = np.where(prim < 0, -prim, 0).astype(np.int32)
    return Frame(rgb.reshape(H, W, 3), zbuf.astype(np.float32).reshape(H, W), ids.reshape(H, W))
