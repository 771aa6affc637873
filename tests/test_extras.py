"""Optional packages stay optional: the embedded pipeline runs without the extras (``thor``:
ai2thor; ``cluster``: Ray; moviepy is not needed at all), a path that needs one says which
extra to install in one line, and the test command installs every extra so that their tests
run."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_layering import MODULES, imports

from common.optional import MissingExtraError, require
from datagen.houses import procthor_imports
from sim.camera import CameraConfig
from sim.env import make_env
from sim.house import write_house_json

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("ai2thor", "ray", "moviepy")
"""Packages of extras (or of none) that the embedded pipeline never imports."""
GUARDED = {("datagen.executors", "ray")}
"""Import statements of an optional package, each inside a try that names its extra."""
SMALL_MIX = {"kitchen-living-room": 1, "bedroom-bathroom": 1}


def block(monkeypatch, package: str) -> None:
    """Make ``package`` (and any of its modules already imported) unimportable."""
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, package, None)


def test_require_names_the_extra_in_one_line(monkeypatch):
    assert require("json", "thor", "x").dumps([1]) == "[1]"
    block(monkeypatch, "ai2thor")
    with pytest.raises(MissingExtraError) as e:
        require("ai2thor.controller", "thor", "the ai2thor backend")
    message = str(e.value)
    assert message.startswith("the ai2thor backend needs ai2thor, which is not installed (")
    assert message.endswith("): pip install -e '.[thor]'") and "\n" not in message


def test_ai2thor_backend_without_ai2thor_names_the_extra(monkeypatch):
    block(monkeypatch, "ai2thor")
    with pytest.raises(MissingExtraError, match=r"pip install -e '\.\[thor\]'$"):
        make_env("ai2thor", camera=CameraConfig(height=8, width=12))


def test_procthor_placeholders_raise_and_are_removed(monkeypatch):
    block(monkeypatch, "ai2thor")
    block(monkeypatch, "moviepy")
    with procthor_imports.placeholders() as used:
        assert used == ["ai2thor.controller", "moviepy.editor"]
        from ai2thor.controller import Controller
        from moviepy.editor import ImageSequenceClip
    assert sys.modules["ai2thor"] is None and sys.modules["moviepy"] is None  # as before
    with pytest.raises(MissingExtraError, match=r"pip install -e '\.\[thor\]'$"):
        Controller(quality="Low")
    with pytest.raises(RuntimeError, match="moviepy"):
        ImageSequenceClip([], fps=2)


WITHOUT_EXTRAS = textwrap.dedent("""
    import hashlib, sys, warnings
    warnings.filterwarnings("ignore")
    sys.modules.update(ai2thor=None, moviepy=None, ray=None)
    from sim.house import write_house_json
    from datagen.houses.procthor_gen import generate_house
    h = generate_house("train", 0, 0, {"kitchen-living-room": 1, "bedroom-bathroom": 1})
    print(hashlib.sha256(write_house_json(h).encode()).hexdigest())
    print(" ".join(sorted(m for m in ("ai2thor", "moviepy", "cv2", "flask", "imageio_ffmpeg")
                          if sys.modules.get(m) is not None)))
""")


def test_houses_generate_the_same_bytes_without_ai2thor_or_moviepy():
    """procthor imports both at module level; generation never calls them."""
    from datagen.houses.procthor_gen import generate_house

    out = subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    digest, *imported = out.stdout.splitlines()
    expected = generate_house("train", 0, 0, SMALL_MIX)
    assert digest == hashlib.sha256(write_house_json(expected).encode()).hexdigest()
    assert imported == [""]  # none of them, nor what ai2thor and moviepy pull in


def test_optional_packages_are_imported_only_behind_a_guard():
    found = {(module, name.partition(".")[0]) for module, tree in MODULES.items()
             for name, _ in imports(tree) if name.partition(".")[0] in OPTIONAL}
    assert found <= GUARDED, f"import these through common.optional.require: {found - GUARDED}"


def extras() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^(\w+) = \[", section, flags=re.M))


def default_extras(script: str) -> set[str]:
    text = (ROOT / "scripts" / script).read_text()
    return set(re.search(r"INSTALL_EXTRAS=\$\{INSTALL_EXTRAS:-([\w,]+)\}", text)[1].split(","))


def test_the_test_command_installs_every_extra_and_the_quickstart_only_cpu():
    assert {"cpu", "cluster", "thor", "dev"} <= extras()
    assert default_extras("_venv.sh") == extras()  # so tests/test_thor.py runs, not skips
    assert default_extras("quickstart.sh") == {"cpu"}
