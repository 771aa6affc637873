"""Top-down views of a scene: a fast raster for episode videos and a labelled matplotlib map.

Map orientation: +x to the right and +z up (looking down on AI2-THOR's left-handed frame), so
an agent turning right (yaw + 90) turns clockwise on the map.

- :func:`topdown_image` returns an (H, W, 3) uint8 image: rooms in their floor colours, walls
  dark (door holes left open, closed doors brown, windows light blue), objects as coloured
  footprints, reachable lattice cells as dots, plus an optional path and agent arrow. The
  static layer is cached per scene, so a video frame costs only the path and arrow.
- :func:`save_map` writes a PNG with matplotlib: rooms labelled by type, walls, doors,
  windows, objects labelled by type, reachable cells, an optional pose. Used by
  ``spoc-houses show`` and ``spoc-sim render``.
"""

from __future__ import annotations

import math
import weakref
from pathlib import Path

import numpy as np
import shapely

from sim.scene import DOOR_PANEL, WALL, WINDOW, Scene

BACKGROUND = (40, 40, 44)
WALL_COLOR = (25, 25, 25)
DOOR_COLOR = (120, 84, 52)
WINDOW_COLOR = (150, 200, 235)
CELL_COLOR = (70, 150, 70)
PATH_COLOR = (230, 40, 40)
AGENT_COLOR = (255, 220, 0)
FLOOR_LEVEL = 0.05  # wall pieces starting above this height (lintels) are door holes


# --------------------------------------------------------------------------- raster helpers


class MapFrame:
    """World (x, z) <-> pixel (row, col) for a scene at ``px_per_m`` with a margin."""

    def __init__(self, scene: Scene, px_per_m: float, margin: float = 0.3):
        xmin, zmin, xmax, zmax = scene.bounds
        self.x0, self.z1, self.s = xmin - margin, zmax + margin, float(px_per_m)
        self.width = int(math.ceil((xmax - xmin + 2 * margin) * px_per_m))
        self.height = int(math.ceil((zmax - zmin + 2 * margin) * px_per_m))

    def to_px(self, xz: np.ndarray) -> np.ndarray:
        """(..., 2) world (x, z) -> (..., 2) float pixel (col, row)."""
        xz = np.asarray(xz, dtype=np.float64)
        return np.stack([(xz[..., 0] - self.x0) * self.s, (self.z1 - xz[..., 1]) * self.s], -1)

    def pixel_centres(self, c0: int, c1: int, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        """World (x, z) of the centres of pixel window [r0, r1) x [c0, c1), each (h, w)."""
        cc, rr = np.meshgrid(np.arange(c0, c1) + 0.5, np.arange(r0, r1) + 0.5)
        return self.x0 + cc / self.s, self.z1 - rr / self.s


def _window(img: np.ndarray, pts_px: np.ndarray, pad: float) -> tuple[int, int, int, int]:
    """Clipped integer pixel window (c0, c1, r0, r1) around points (n, 2) plus ``pad``."""
    c0 = max(int(math.floor(pts_px[:, 0].min() - pad)), 0)
    c1 = min(int(math.ceil(pts_px[:, 0].max() + pad)) + 1, img.shape[1])
    r0 = max(int(math.floor(pts_px[:, 1].min() - pad)), 0)
    r1 = min(int(math.ceil(pts_px[:, 1].max() + pad)) + 1, img.shape[0])
    return c0, c1, r0, r1


def fill_polygon(img: np.ndarray, poly_px: np.ndarray, color) -> None:
    """Fill a polygon given in pixel coordinates (n, 2) (col, row) in place (even-odd)."""
    c0, c1, r0, r1 = _window(img, poly_px, 1)
    if c1 <= c0 or r1 <= r0:
        return
    cc, rr = np.meshgrid(np.arange(c0, c1) + 0.5, np.arange(r0, r1) + 0.5)
    inside = shapely.contains_xy(shapely.Polygon(poly_px), cc, rr)
    img[r0:r1, c0:c1][inside] = color


def draw_segment(img: np.ndarray, p: np.ndarray, q: np.ndarray, color, width: float) -> None:
    """Draw a thick segment between pixel points p and q (col, row) in place."""
    c0, c1, r0, r1 = _window(img, np.stack([p, q]), width)
    if c1 <= c0 or r1 <= r0:
        return
    cc, rr = np.meshgrid(np.arange(c0, c1) + 0.5, np.arange(r0, r1) + 0.5)
    d = q - p
    L2 = float(d @ d)
    t = np.zeros_like(cc) if L2 == 0 else np.clip(((cc - p[0]) * d[0] + (rr - p[1]) * d[1])
                                                   / L2, 0, 1)
    dist2 = (cc - p[0] - t * d[0]) ** 2 + (rr - p[1] - t * d[1]) ** 2
    img[r0:r1, c0:c1][dist2 <= (width / 2) ** 2] = color


def _draw_static(scene: Scene, frame: MapFrame, lattice) -> np.ndarray:
    img = np.empty((frame.height, frame.width, 3), np.uint8)
    img[:] = BACKGROUND
    for room in scene.rooms:
        fill_polygon(img, frame.to_px(room.polygon), room.floor_color)
    if lattice is not None:
        dot = max(1, int(round(frame.s * 0.03)))
        for i, j in np.argwhere(lattice.reachable):
            c, r = frame.to_px(np.array(lattice.position(i, j))).astype(int)
            img[max(r - dot // 2, 0):r + (dot + 1) // 2,
                max(c - dot // 2, 0):c + (dot + 1) // 2] = CELL_COLOR
    b = scene.boxes
    order = np.argsort(b.center[:, 1] + b.half[:, 1], kind="stable")  # higher on top
    feet = b.footprints()
    for m in order:
        fill_polygon(img, frame.to_px(feet[m]), b.color[m])
    p = scene.pieces
    width = max(2.0, 0.08 * frame.s)
    for k in range(len(p)):
        if p.y0[k] > FLOOR_LEVEL and p.kind[k] == WALL:
            continue  # a lintel: leave the door hole open
        color = {WALL: WALL_COLOR, DOOR_PANEL: DOOR_COLOR, WINDOW: WINDOW_COLOR}[int(p.kind[k])]
        draw_segment(img, frame.to_px(p.a[k]), frame.to_px(p.b[k]), color, width)
    return img


_STATIC: dict[tuple, tuple[weakref.ref, MapFrame, np.ndarray]] = {}


def _static_layer(scene: Scene, lattice, px_per_m: float) -> tuple[MapFrame, np.ndarray]:
    """The cached static layer of (scene, lattice) at ``px_per_m``."""
    key = (id(scene), id(lattice), float(px_per_m))
    hit = _STATIC.get(key)
    if hit is not None and hit[0]() is scene:
        return hit[1], hit[2]
    for k in [k for k, v in _STATIC.items() if v[0]() is None]:
        del _STATIC[k]  # drop layers of scenes that are gone
    frame = MapFrame(scene, px_per_m)
    img = _draw_static(scene, frame, lattice)
    _STATIC[key] = (weakref.ref(scene), frame, img)
    return frame, img


def agent_triangle(x: float, z: float, yaw_deg: float, size: float) -> np.ndarray:
    """(3, 2) world (x, z) corners of an arrow head at (x, z) pointing along yaw."""
    yaw = math.radians(yaw_deg)
    f = np.array([math.sin(yaw), math.cos(yaw)])
    r = np.array([math.cos(yaw), -math.sin(yaw)])
    c = np.array([x, z])
    return np.stack([c + size * f, c - 0.6 * size * f + 0.5 * size * r,
                     c - 0.6 * size * f - 0.5 * size * r])


def topdown_image(scene: Scene, lattice=None, path=None, pose=None, px_per_m: float = 40.0
                  ) -> np.ndarray:
    """(H, W, 3) uint8 top-down raster of ``scene`` (+x right, +z up).

    Args:
        scene: The scene.
        lattice: Optional :class:`sim.lattice.Lattice`; its reachable cells are dotted.
        path: Optional (T, 2) world (x, z) positions drawn as a red polyline.
        pose: Optional (x, z, yaw_deg) (or a :class:`sim.env.Pose`) drawn as a yellow arrow.
        px_per_m: Pixels per metre.
    """
    frame, static = _static_layer(scene, lattice, px_per_m)
    img = static.copy()
    if path is not None and len(path) > 1:
        pts = frame.to_px(np.asarray(path, dtype=np.float64)[:, :2])
        for a, b in zip(pts[:-1], pts[1:]):
            draw_segment(img, a, b, PATH_COLOR, max(1.5, 0.05 * px_per_m))
    if pose is not None:
        x, z, yaw = (pose.x, pose.z, pose.yaw) if hasattr(pose, "yaw") else pose
        tri = agent_triangle(x, z, yaw, 0.35)
        fill_polygon(img, frame.to_px(tri), AGENT_COLOR)
    return img


# --------------------------------------------------------------------------- matplotlib map


def _rgb01(color) -> tuple[float, float, float]:
    return tuple(float(c) / 255.0 for c in color)


def _draw_rooms(ax, scene: Scene) -> None:
    from matplotlib.patches import Polygon

    for room in scene.rooms:
        ax.add_patch(Polygon(room.polygon, closed=True, facecolor=_rgb01(room.floor_color),
                             edgecolor="none", zorder=0))
        pt = shapely.Polygon(room.polygon).point_on_surface()
        ax.text(pt.x, pt.y, room.room_type, ha="center", va="center", fontsize=9,
                weight="bold", color="black", alpha=0.55, zorder=6)


def _draw_walls(ax, scene: Scene) -> None:
    from matplotlib.collections import LineCollection

    p = scene.pieces
    low = p.y0 <= FLOOR_LEVEL
    styles = [((p.kind == WALL) & low, "black", 2.0, "-"),
              ((p.kind == WALL) & ~low, "0.55", 0.8, ":"),  # lintels over door holes
              (p.kind == DOOR_PANEL, _rgb01(DOOR_COLOR), 2.5, "-"),
              (p.kind == WINDOW, _rgb01(WINDOW_COLOR), 2.5, "-")]
    for mask, color, lw, ls in styles:
        if mask.any():
            segs = np.stack([p.a[mask], p.b[mask]], axis=1)
            ax.add_collection(LineCollection(segs, colors=[color], linewidths=lw,
                                             linestyles=ls, zorder=4))


def _label_boxes(scene: Scene) -> np.ndarray:
    """(M,) bool: boxes worth a text label (all of them in sparse scenes; in cluttered ones
    skip small objects and objects standing on another object's footprint)."""
    b = scene.boxes
    area = 4 * b.half[:, 0] * b.half[:, 2]
    if len(b) <= 40:
        return np.ones(len(b), bool)
    bottom = b.center[:, 1] - b.half[:, 1]
    return (area >= 0.06) & (bottom < 0.3)


def _draw_boxes(ax, scene: Scene) -> None:
    from matplotlib.patches import Polygon

    b = scene.boxes
    feet = b.footprints()
    labels = _label_boxes(scene)
    order = np.argsort(b.center[:, 1] + b.half[:, 1], kind="stable")
    for z, m in enumerate(order):
        ax.add_patch(Polygon(feet[m], closed=True, facecolor=_rgb01(b.color[m]), alpha=0.85,
                             edgecolor="0.2", linewidth=0.4, zorder=2 + z / (len(b) + 1)))
        if labels[m]:
            ax.text(b.center[m, 0], b.center[m, 2], b.object_type[m], fontsize=4,
                    ha="center", va="center", zorder=5, color="black")


def save_map(scene: Scene, out_png: str | Path, lattice=None, pose=None, title: str | None = None,
             path=None) -> Path:
    """Write a labelled top-down map of ``scene`` to ``out_png``; returns the path.

    Args:
        scene: The scene.
        out_png: Output PNG path.
        lattice: Optional lattice; its reachable cells are drawn as dots.
        pose: Optional (x, z, yaw_deg) or :class:`sim.env.Pose`, drawn as an arrow.
        title: Figure title (default: the house id).
        path: Optional (T, 2) world (x, z) polyline.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xmin, zmin, xmax, zmax = scene.bounds
    w, h = xmax - xmin + 1.0, zmax - zmin + 1.0
    scale = 9.0 / max(w, h)
    fig = Figure(figsize=(max(w * scale, 4.0), max(h * scale, 4.0) + 0.4), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    _draw_rooms(ax, scene)
    if lattice is not None:
        cells = np.argwhere(lattice.reachable)
        xz = np.array([lattice.position(i, j) for i, j in cells]).reshape(-1, 2)
        ax.scatter(xz[:, 0], xz[:, 1], s=0.8, c=[_rgb01(CELL_COLOR)], zorder=1, linewidths=0)
    _draw_boxes(ax, scene)
    _draw_walls(ax, scene)
    if path is not None and len(path) > 1:
        pts = np.asarray(path, dtype=np.float64)
        ax.plot(pts[:, 0], pts[:, 1], color=_rgb01(PATH_COLOR), lw=1.2, zorder=7)
    if pose is not None:
        x, z, yaw = (pose.x, pose.z, pose.yaw) if hasattr(pose, "yaw") else pose
        yr = math.radians(yaw)
        ax.arrow(x, z, 0.3 * math.sin(yr), 0.3 * math.cos(yr), width=0.06, head_width=0.22,
                 head_length=0.18, color="red", zorder=8, length_includes_head=True)
    ax.set_xlim(xmin - 0.5, xmax + 0.5)
    ax.set_ylim(zmin - 0.5, zmax + 0.5)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("z (m)")
    ax.set_title(title if title is not None else scene.house_id, fontsize=9)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png)
    return out_png
