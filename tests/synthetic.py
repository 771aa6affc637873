"""Tiny hand-built houses (schema 1.0.0) for tests whose answer is known by construction."""

from __future__ import annotations


def _pt(x, z, y=0.0):
    return {"x": x, "y": y, "z": z}


def _walls(room_id: str, poly: list[tuple[float, float]], height: float) -> list[dict]:
    out = []
    for (x0, z0), (x1, z1) in zip(poly, poly[1:] + poly[:1]):
        out.append({
            "id": f"wall|{room_id}|{x0:.2f}|{z0:.2f}|{x1:.2f}|{z1:.2f}",
            "roomId": f"room|{room_id}",
            "material": {"name": "PureWhite"},
            "polygon": [_pt(x0, z0), _pt(x1, z1), _pt(x0, z0, height), _pt(x1, z1, height)],
        })
    return out


def two_room_house(door: str | None = "Doorframe_1", openness: float = 1.0,
                   objects: list[dict] | None = None, height: float = 2.5,
                   hole: tuple[float, float] = (1.5, 2.5)) -> dict:
    """Two 4 x 4 m rooms side by side along x (x in [0, 4] and [4, 8], z in [0, 4]).

    The shared wall at x = 4 has a 2.1 m tall hole spanning ``hole`` along room 1's wall,
    which runs from (4, 4) to (4, 0), so the hole is at z in [4 - hole[1], 4 - hole[0]]
    (default z = 1.5 .. 2.5) when ``door`` is an asset id (``None``: no door).
    """
    a = [(0.0, 0.0), (0.0, 4.0), (4.0, 4.0), (4.0, 0.0)]
    b = [(4.0, 0.0), (4.0, 4.0), (8.0, 4.0), (8.0, 0.0)]
    rooms = [
        {"id": "room|1", "roomType": "Kitchen", "floorMaterial": {"name": "Wood"},
         "floorPolygon": [_pt(x, z) for x, z in a]},
        {"id": "room|2", "roomType": "Bedroom", "floorMaterial": {"name": "Tile"},
         "floorPolygon": [_pt(x, z) for x, z in b]},
    ]
    walls = _walls("1", a, height) + _walls("2", b, height)
    doors = []
    if door is not None:
        # The shared wall of room 1 runs (4, 4) -> (4, 0): wall-local x = 4 - z.
        doors.append({
            "id": "door|1|2", "assetId": door, "openness": openness, "openable": True,
            "room0": "room|1", "room1": "room|2",
            "wall0": "wall|1|4.00|4.00|4.00|0.00", "wall1": "wall|2|4.00|0.00|4.00|4.00",
            "holePolygon": [{"x": hole[0], "y": 0.0, "z": 0}, {"x": hole[1], "y": 2.1, "z": 0}],
            "assetPosition": {"x": (hole[0] + hole[1]) / 2, "y": 1.05, "z": 0},
        })
    return {
        "rooms": rooms, "walls": walls, "doors": doors, "windows": [],
        "objects": objects or [],
        "proceduralParameters": {"ceilingMaterial": {"name": "PureWhite"}},
        "metadata": {"schema": "1.0.0", "houseId": "two-room"},
    }


def box_object(asset_id: str, x: float, z: float, y: float, yaw: float = 0.0,
               oid: str | None = None, children: list[dict] | None = None) -> dict:
    """An object record; ``y`` is the bounding-box centre height."""
    return {"id": oid or f"{asset_id}|{x}|{z}", "assetId": asset_id, "position": _pt(x, z, y),
            "rotation": {"x": 0, "y": yaw, "z": 0}, "kinematic": True,
            "children": children or []}
