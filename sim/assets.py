"""The asset database shipped in the ``procthor`` package: sizes and object types by assetId."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class AssetInfo:
    asset_id: str
    object_type: str
    size: tuple[float, float, float]  # (x, y, z) extent of the bounding box in metres, asset frame


@lru_cache(maxsize=1)
def asset_database() -> dict[str, AssetInfo]:
    """assetId -> AssetInfo for every asset in ``procthor/databases/asset-database.json``."""
    path = resources.files("procthor") / "databases" / "asset-database.json"
    raw = json.loads(path.read_text())
    out: dict[str, AssetInfo] = {}
    for object_type, assets in sorted(raw.items()):
        for a in assets:
            bb = a["boundingBox"]
            out[a["assetId"]] = AssetInfo(
                a["assetId"], a.get("objectType", object_type), (bb["x"], bb["y"], bb["z"])
            )
    return out


def object_types() -> list[str]:
    """Every object type in the asset database, sorted."""
    return sorted({a.object_type for a in asset_database().values()})
