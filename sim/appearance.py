"""Visual randomisation: per-episode changes of colours and light, and per-frame pixel noise,
within stated bounds, so that a policy trained on rendered frames cannot key on one palette.

An :class:`Appearance` is drawn once per episode (:func:`draw_appearance`) from an
:class:`AppearanceConfig` and a seed or ``np.random.Generator``, and
:meth:`sim.render.Renderer.with_appearance` renders with it. Each part is scaled by its config
field (0: off, 1: the full bound below):

- **object colours**: every object type's colour is changed by one :class:`ColorShift` per
  episode (a turn of its chroma about the grey axis, a saturation gain and a value gain), the
  same for every instance of the type, which keeps its small per-asset variation. Closed door
  panels and windows count as two more types;
- **surface colours**: one shift for all walls, one for all floors (the ground outside the
  house included) and one for the ceiling;
- **lighting**: the horizontal light direction turns (which wall and box faces are brighter)
  and the overall brightness scales every colour;
- **pixel noise**: uniform integer noise per pixel and channel, a pure function of the
  episode's draw and the frame's index within the episode.

Colours stay in 0-255 (a shifted colour is clipped; the renderer clips shaded colours).
Geometry, depth and instance ids do not change; the zero config changes nothing (the same
bytes as a plain render).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, fields
from numbers import Real

import numpy as np

from common.errors import InputError
from sim.scene import DOOR_PANEL, WINDOW, Boxes, Pieces

OBJECT_HUE_MAX = 10.0
"""Degrees: the largest turn of an object type's chroma about the grey axis."""

OBJECT_SATURATION_MAX = 0.15
"""An object type's saturation gain lies in [1 - this, 1 + this]."""

OBJECT_VALUE_MAX = 0.15
"""An object type's value (brightness) gain lies in [1 - this, 1 + this]."""

SURFACE_HUE_MAX = 30.0
"""Degrees: the largest turn of the walls', floors' or ceiling's chroma about the grey axis."""

SURFACE_SATURATION_MAX = 0.3
"""The walls', floors' or ceiling's saturation gain lies in [1 - this, 1 + this]."""

SURFACE_VALUE_MAX = 0.2
"""The walls', floors' or ceiling's value gain lies in [1 - this, 1 + this]."""

LIGHT_TURN_MAX = 180.0
"""Degrees: the largest turn of the horizontal light direction (at 180 any direction)."""

BRIGHTNESS_MAX = 0.2
"""The overall brightness gain lies in [1 - this, 1 + this]."""

NOISE_MAX = 10
"""Grey levels (of 255): the largest per-pixel, per-channel noise amplitude."""

DOOR_PANEL_TYPE, WINDOW_TYPE = "<door panel>", "<window>"
"""The object types closed door panels and windows take their colour shift from."""

_WALLS, _FLOORS, _CEILING, _LIGHT = range(4)  # streams of one draw, by part
_GREY = np.full((3, 3), 1.0 / 3.0)  # projection onto the grey axis
_CROSS = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]]) / math.sqrt(3)
"""The cross product with the unit grey axis (1, 1, 1) / sqrt 3, as a matrix."""


@dataclass(frozen=True)
class AppearanceConfig:
    """How much an appearance changes, per part, as a fraction of its bounds (0: off)."""

    object_colors: float = 0.0
    """Object-type colour shifts, as a fraction of the OBJECT_* bounds (0-1)."""
    surface_colors: float = 0.0
    """Wall, floor and ceiling colour shifts, as a fraction of the SURFACE_* bounds (0-1)."""
    lighting: float = 0.0
    """Light direction turn and brightness gain, as a fraction of their bounds (0-1)."""
    noise: float = 0.0
    """Per-pixel noise amplitude, as a fraction of NOISE_MAX (0-1; rounded to grey levels)."""

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value <= 1:
                raise InputError(f"appearance.{f.name}: {value!r} is not a number in [0, 1]; "
                                 "set 0 for off, 1 for the full bounds of sim.appearance")

    @classmethod
    def uniform(cls, strength: float) -> AppearanceConfig:
        """Every part at the same fraction ``strength`` of its bounds."""
        return cls(strength, strength, strength, strength)

    @property
    def enabled(self) -> bool:
        """Whether any part changes anything."""
        return any(getattr(self, f.name) > 0 for f in fields(self))


@dataclass(frozen=True)
class ColorShift:
    """A linear change of RGB colours: the chroma (a colour minus its grey, the mean of its
    channels) turned about the grey axis by ``hue`` radians and scaled by ``saturation``,
    then the whole colour scaled by ``value``. Greys stay grey."""

    hue: float = 0.0
    saturation: float = 1.0
    value: float = 1.0

    @property
    def is_identity(self) -> bool:
        return self.hue == 0 and self.saturation == 1 and self.value == 1

    def matrix(self) -> np.ndarray:
        """(3, 3) float64 M, with a shifted colour ``M @ rgb``."""
        return shift_matrices(self.hue, self.saturation, self.value)

    def apply(self, rgb) -> np.ndarray:
        """(..., 3) colours (0-255) -> (..., 3) float64 shifted colours clipped to 0-255
        (the same values, as float64, for the identity)."""
        rgb = np.asarray(rgb, dtype=np.float64)
        if self.is_identity:
            return rgb.copy()
        return np.clip(rgb @ self.matrix().T, 0.0, 255.0)


def shift_matrices(hue, saturation, value) -> np.ndarray:
    """(..., 3, 3) float64 matrices of the colour shifts (:class:`ColorShift`) with these
    fields, given as arrays of one shape or as floats."""
    hue, saturation, value = (np.asarray(v, dtype=np.float64)[..., None, None]
                              for v in (hue, saturation, value))
    c, s = np.cos(hue), np.sin(hue)
    turn = c * np.eye(3) + s * _CROSS + (1.0 - c) * _GREY  # Rodrigues, about the grey axis
    return value * (_GREY + saturation * (turn - _GREY))


def _draw_shift(rng: np.random.Generator, strength: float, hue_max: float,
               saturation_max: float, value_max: float) -> ColorShift:
    """A shift with hue uniform in +-``strength * hue_max`` degrees and gains uniform in
    1 +- ``strength`` times their bounds (the identity for strength 0)."""
    if strength == 0:
        return ColorShift()
    h, s, v = rng.uniform(-strength, strength, size=3)
    return ColorShift(math.radians(float(h) * hue_max), 1.0 + float(s) * saturation_max,
                      1.0 + float(v) * value_max)


@dataclass(frozen=True)
class Appearance:
    """One episode's drawn appearance; a pure function of ``(config, key)``
    (:meth:`from_key`). Per-type shifts are derived from the key and the type's name
    (:meth:`object_shift`), so they do not depend on which types a house holds."""

    config: AppearanceConfig
    key: int  # 0 <= key < 2**63: the draw, which also seeds the per-frame noise
    walls: ColorShift
    floors: ColorShift
    ceiling: ColorShift
    light_turn: float  # radians the light direction turns (counter-clockwise in x, z)
    brightness: float  # gain on every colour
    noise: int  # per-pixel, per-channel noise amplitude in grey levels (0: none)

    @classmethod
    def from_key(cls, config: AppearanceConfig, key: int) -> Appearance:
        """The appearance of ``key`` under ``config``: each part draws from its own stream,
        so changing one part's strength leaves the others as they were."""
        key = int(key)
        if not 0 <= key < 2**63:
            raise InputError(f"appearance key {key} is not in [0, 2**63)")

        def stream(part: int) -> np.random.Generator:
            return np.random.default_rng([key, part])

        surface = (config.surface_colors, SURFACE_HUE_MAX, SURFACE_SATURATION_MAX,
                   SURFACE_VALUE_MAX)
        turn, gain = (stream(_LIGHT).uniform(-config.lighting, config.lighting, size=2)
                      if config.lighting > 0 else (0.0, 0.0))
        return cls(config=config, key=key,
                   walls=_draw_shift(stream(_WALLS), *surface),
                   floors=_draw_shift(stream(_FLOORS), *surface),
                   ceiling=_draw_shift(stream(_CEILING), *surface),
                   light_turn=math.radians(float(turn) * LIGHT_TURN_MAX),
                   brightness=1.0 + float(gain) * BRIGHTNESS_MAX,
                   noise=int(round(config.noise * NOISE_MAX)))

    @classmethod
    def identity(cls) -> Appearance:
        """The appearance that changes nothing."""
        return cls.from_key(AppearanceConfig(), 0)

    def object_shift(self, object_type: str) -> ColorShift:
        """The colour shift of every instance of ``object_type`` in this episode: three
        uniforms in [-1, 1) from a hash of the type's name keyed by ``key`` (cheaper than a
        generator per type), scaled by the strength and the OBJECT_* bounds."""
        strength = self.config.object_colors
        if strength == 0:
            return ColorShift()
        digest = hashlib.blake2b(object_type.encode(), digest_size=24,
                                 key=self.key.to_bytes(8, "little")).digest()
        h, s, v = (float(u) for u in np.frombuffer(digest, dtype="<u8") / 2.0**63 - 1.0)
        return ColorShift(math.radians(strength * h * OBJECT_HUE_MAX),
                          1.0 + strength * s * OBJECT_SATURATION_MAX,
                          1.0 + strength * v * OBJECT_VALUE_MAX)

    def box_colors(self, boxes: Boxes) -> np.ndarray:
        """(M, 3) float64 base colour (0-255) of every box, its type's shift applied (the
        same values as ``object_shift(type).apply``, computed for all types at once)."""
        rgb = boxes.color.astype(np.float64).reshape(-1, 3)
        if self.config.object_colors == 0:
            return rgb
        types = sorted(set(boxes.object_type))
        row = {t: k for k, t in enumerate(types)}
        shifts = [self.object_shift(t) for t in types]
        mats = shift_matrices(*np.array([(s.hue, s.saturation, s.value) for s in shifts]).T)
        per_box = mats[[row[t] for t in boxes.object_type]]  # (M, 3, 3)
        return np.clip(np.einsum("mij,mj->mi", per_box, rgb), 0.0, 255.0)

    def piece_colors(self, pieces: Pieces) -> np.ndarray:
        """(N, 3) float64 base colour (0-255) of every wall piece: walls take the walls'
        shift, door panels and windows their own types' shifts."""
        out = pieces.color.astype(np.float64).reshape(-1, 3)
        kinds = {DOOR_PANEL: self.object_shift(DOOR_PANEL_TYPE),
                 WINDOW: self.object_shift(WINDOW_TYPE)}
        rows = ~np.isin(pieces.kind, list(kinds))
        out[rows] = self.walls.apply(out[rows])
        for kind, shift in kinds.items():
            rows = pieces.kind == kind
            out[rows] = shift.apply(out[rows])
        return out


APPEARANCE_STREAM = 0xA99E
"""Tags the seed sequences appearances are drawn from (training's per-episode looks, the
evaluation's probe) apart from their callers' other streams."""


def draw_appearance(config: AppearanceConfig,
                    rng: np.random.Generator | int) -> Appearance:
    """One episode's appearance drawn from ``rng`` (a Generator, or a seed for one; the
    same seed gives the same appearance). It draws one key from ``rng`` whatever the config,
    so a caller's later draws do not depend on which parts are on."""
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(int(rng))
    return Appearance.from_key(config, int(rng.integers(0, 2**63)))
