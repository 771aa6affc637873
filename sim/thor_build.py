"""Finding AI2-THOR's Unity build without waiting on the network.

ai2thor picks a Unity build by commit and downloads it at first use; offline that fails with
a misleading ``Invalid commit_id ... no build exists`` (or waits on the network). We resolve
the build ourselves first (:func:`resolve_build`), without waiting on the network for longer
than ``download_timeout`` seconds, and raise :class:`ThorUnavailableError` with one clear line
when there is none. Order: ``local_executable_path=`` (or ``$AI2THOR_LOCAL_EXECUTABLE``), an
unpacked build ``~/.ai2thor/releases/thor-{platform}-{commit}/``, else a download (only if the
build's URL answers within ``download_timeout``). ``ai2thor`` itself (the ``thor`` extra) is
imported only when a build is used; without it the backend fails with one line naming the extra.
"""

from __future__ import annotations

import ctypes.util
import os
import threading
from dataclasses import dataclass

from common.optional import require

DEFAULT_PLATFORM = "CloudRendering"
PLATFORMS = ("CloudRendering", "Linux64", "OSXIntel64")
LOCAL_EXECUTABLE_ENV = "AI2THOR_LOCAL_EXECUTABLE"
BUILDS_URL = "http://s3-us-west-2.amazonaws.com/ai2-thor-public/builds/"


class ThorUnavailableError(RuntimeError):
    """AI2-THOR cannot run here: no Unity build, no way to get one, or no Vulkan."""


@dataclass(frozen=True)
class BuildSpec:
    """Where the Unity build comes from."""

    kind: str
    """``local`` (an executable path), ``release`` (unpacked under releases_dir) or
    ``download`` (ai2thor fetches it into releases_dir)."""
    platform: str
    commit_id: str | None
    executable_path: str
    releases_dir: str | None = None


def ai2thor(module: str):
    """``module`` of the ``ai2thor`` package, or one line naming the ``thor`` extra."""
    return require(module, "thor", "the ai2thor backend")


def default_commit_id() -> str:
    return ai2thor("ai2thor._builds").COMMIT_ID


def build_name(platform: str, commit_id: str) -> str:
    return f"thor-{platform}-{commit_id}"


def default_releases_dir() -> str:
    return os.path.join(os.path.expanduser("~"), ".ai2thor", "releases")


def vulkan_available() -> bool:
    return ctypes.util.find_library("vulkan") is not None


def probe_url(url: str, timeout: float) -> str | None:
    """None if ``url`` answers HTTP 200 within ``timeout`` seconds, else why not. The request
    runs in a daemon thread, so a stalled DNS lookup or connection cannot hold the caller."""
    result: dict = {}

    def run():
        try:
            import requests

            result["status"] = requests.head(url, timeout=timeout).status_code
        except Exception as e:  # any failure means "not downloadable"
            result["error"] = type(e).__name__

    t = threading.Thread(target=run, name="ai2thor-build-probe", daemon=True)
    t.start()
    t.join(timeout + 0.5)
    if t.is_alive():
        return f"no answer within {timeout:g} s"
    if "error" in result:
        return f"network unreachable ({result['error']})"
    if result["status"] != 200:
        return f"HTTP {result['status']}"
    return None


def unavailable(what: str, platform: str, commit_id: str) -> ThorUnavailableError:
    name = build_name(platform, commit_id)
    return ThorUnavailableError(
        f"AI2-THOR cannot start: {what}. Point at a local build with "
        f"local_executable_path=/path/to/{build_name(platform, '<commit>')}/"
        f"{build_name(platform, '<commit>')} (or ${LOCAL_EXECUTABLE_ENV}), or on a machine with "
        f"internet download {BUILDS_URL}{name}.zip and unzip it into "
        f"~/.ai2thor/releases/{name}/ (chmod +x its {name}); {platform} also needs Vulkan "
        "(libvulkan1) and a GPU. "
        "Without them use the embedded backend (backend='embedded').")


def resolve_build(platform: str = DEFAULT_PLATFORM, local_executable_path: str | None = None,
                  commit_id: str | None = None, releases_dir: str | None = None,
                  download: bool = True, download_timeout: float = 3.0) -> BuildSpec:
    """Find the Unity build to run, or raise :class:`ThorUnavailableError` (in at most about
    ``download_timeout`` seconds)."""
    if platform not in PLATFORMS:
        raise ValueError(f"ai2thor platform {platform!r} is not one of {PLATFORMS}")
    local = local_executable_path or os.environ.get(LOCAL_EXECUTABLE_ENV) or None
    commit = commit_id or default_commit_id()
    if local:
        local = os.path.abspath(os.path.expanduser(local))
        if not os.path.isfile(local):
            raise unavailable(f"local_executable_path {local} does not exist or is not a file",
                              platform, commit)
        if not os.access(local, os.X_OK):
            raise unavailable(f"local_executable_path {local} is not executable (chmod +x it)",
                              platform, commit)
        return BuildSpec("local", platform, None, local)
    releases = releases_dir or default_releases_dir()
    name = build_name(platform, commit)
    exe = os.path.join(releases, name, name)
    if os.path.isfile(exe):
        if not os.access(exe, os.X_OK):
            raise unavailable(f"the Unity build {exe} is not executable (chmod +x it)",
                              platform, commit)
        return BuildSpec("release", platform, commit, exe, releases)
    where = f"the Unity build {name} is not in {releases}"
    if not download:
        raise unavailable(f"{where} and downloading is off", platform, commit)
    why = probe_url(f"{BUILDS_URL}{name}.zip", download_timeout)
    if why is not None:
        raise unavailable(f"{where} and could not be downloaded ({why})", platform, commit)
    return BuildSpec("download", platform, commit, exe, releases)


class _PrebuiltBuild:
    """An ai2thor build object for an executable we already have (like ai2thor's
    ``ExternalBuild``, but keeping the platform, so a CloudRendering build launches as one)."""

    server_types = ["FIFO", "WSGI"]
    url = None

    def __init__(self, platform_cls, executable_path: str):
        self.platform, self.executable_path = platform_cls, executable_path

    def download(self):
        pass

    def lock_sh(self):
        pass

    def unlock(self):
        pass


def ai2thor_build(spec: BuildSpec):
    """The ai2thor build object for a :class:`BuildSpec`."""
    plat = ai2thor("ai2thor.platform").STR_PLATFORM_MAP[spec.platform]
    if spec.kind == "download" or (spec.kind == "release" and os.path.isfile(
            os.path.join(os.path.dirname(spec.executable_path), "metadata.json"))):
        return ai2thor("ai2thor.build").Build(plat, spec.commit_id, False, spec.releases_dir)
    return _PrebuiltBuild(plat, spec.executable_path)


def controller_class():
    """``ai2thor.controller.Controller`` that uses the build we resolved instead of its own
    look-up (which needs the network)."""
    Controller = ai2thor("ai2thor.controller").Controller

    class ResolvedBuildController(Controller):
        def __init__(self, build, **kwargs):
            self._resolved_build = build
            super().__init__(**kwargs)

        def find_build(self, local_build, commit_id, branch, platform):
            return self._resolved_build

    return ResolvedBuildController
