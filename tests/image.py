"""The worldcover image for tests: built once with ``make image``, reused while its sources are unchanged.

    from tests.image import ensure_image, run_in_image
    image = ensure_image()          # e.g. 'localhost/worldcover:0.1.0'
    run_in_image(image, "worldcover", "--version")

The image is tagged ${WORLDCOVER_TEST_IMAGE} (default ``localhost/worldcover:<version>``,
what ``make image`` builds) and labelled with a hash of everything the build
reads (Containerfile, constraints, packaging files, ``worldcover/``, ``dags/``).
An image with the same label is reused as it is; otherwise ``make image``
rebuilds it, which podman's layer cache makes cheap unless ``constraints.txt``
changed (only the layer installing the package is rebuilt). Base image: the
Debian stand-in that ``make image-base`` makes, or ${WORLDCOVER_TEST_IMAGE_BASE}.

When podman cannot build or run the image, :func:`ensure_image` fails the
calling test with one line saying why: an image test never passes or skips
silently on a machine without containers.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE_ENV = "WORLDCOVER_TEST_IMAGE"
BASE_ENV = "WORLDCOVER_TEST_IMAGE_BASE"
HASH_LABEL = "io.worldcover.source-hash"
#: what the image build reads (see Containerfile and .containerignore)
SOURCES = ("Containerfile", ".containerignore", "Makefile", "constraints.txt", "pyproject.toml", "setup.py",
           "README.md", "dags", "worldcover")
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = (".pyc", ".egg-info")
BUILD_TIMEOUT_S = 1800

_built: dict[str, str] = {}  # source hash -> image, for this process


class ImageUnavailable(RuntimeError):
    """podman cannot build or run the image here; the message is one line."""


def _one_line(text: str, limit: int = 300) -> str:
    lines = [ln.strip() for ln in (text or "").strip().splitlines()
             if ln.strip() and not ln.startswith(("make:", "make["))]  # the cause, not make's summary
    line = lines[-1] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def package_version() -> str:
    for line in (REPO / "pyproject.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split("=", 1)[1].strip().strip('"')
    raise ImageUnavailable("no version in pyproject.toml")


def default_image() -> str:
    return os.environ.get(IMAGE_ENV) or f"localhost/worldcover:{package_version()}"


def source_hash() -> str:
    """SHA-256 over the paths and bytes of every file the image build reads."""
    h = hashlib.sha256()
    for name in SOURCES:
        top = REPO / name
        files = [top] if top.is_file() else sorted(
            p for p in top.rglob("*")
            if p.is_file() and not _SKIP_DIRS & set(p.relative_to(REPO).parts)
            and not p.name.endswith(_SKIP_SUFFIXES) and not any(q.endswith(".egg-info") for q in p.parts))
        for f in files:
            h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def podman(*args: str, timeout: float = 120, check: bool = False, **kw) -> subprocess.CompletedProcess:
    exe = shutil.which("podman")
    if exe is None:
        raise ImageUnavailable("podman is not installed: run scripts/setup-podman.sh (apt-get install podman runc "
                               "mmdebstrap)")
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise ImageUnavailable(f"podman {args[0]} failed (exit {proc.returncode}): "
                               f"{_one_line(proc.stderr or proc.stdout)}")
    return proc


def image_label(image: str) -> str | None:
    """The image's source-hash label, or None when podman does not have the image."""
    proc = podman("image", "inspect", "--format", f'{{{{ index .Config.Labels "{HASH_LABEL}" }}}}', image)
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or ""


def build_image(image: str | None = None, *, base: str | None = None) -> str:
    """The image for the current sources: reused when its label matches, else ``make image``. Raises
    :class:`ImageUnavailable` (one line) when podman cannot build it."""
    image = image or default_image()
    digest = source_hash()
    if _built.get(digest) == image:
        return image
    podman("info", "--format", "{{.Host.OCIRuntime.Name}}", check=True)
    lock_path = Path(os.environ.get("TMPDIR", "/tmp")) / "worldcover-test-image.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time on this machine
        if image_label(image) != digest:
            args = ["make", "--no-print-directory", "image", f"IMAGE={image}",
                    f"IMAGE_BUILD_ARGS=--label {HASH_LABEL}={digest}"]
            base = base or os.environ.get(BASE_ENV)
            if base:
                args.append(f"IMAGE_BASE={base}")
            print(f"building {image} ({' '.join(args)}) ...", file=sys.stderr, flush=True)
            try:
                proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise ImageUnavailable(f"make image ran over {BUILD_TIMEOUT_S} s") from None
            if proc.returncode != 0:
                raise ImageUnavailable(f"make image failed (exit {proc.returncode}): "
                                       f"{_one_line(proc.stderr or proc.stdout)}")
            if image_label(image) != digest:
                raise ImageUnavailable(f"make image did not produce {image} labelled with the source hash")
    _built[digest] = image
    return image


def run_in_image(image: str, *cmd: str, env: Mapping[str, str] | None = None, extra: Sequence[str] = (),
                 timeout: float = 300) -> subprocess.CompletedProcess:
    """``podman run --rm --read-only --tmpfs /tmp IMAGE CMD...`` (like a restricted pod), output captured."""
    args = ["run", "--rm", "--pull=never", "--read-only", "--tmpfs", "/tmp", *extra]
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    return podman(*args, image, *cmd, timeout=timeout)


def ensure_image(image: str | None = None) -> str:
    """:func:`build_image`, and a running container; the calling test fails with one line when not possible."""
    import pytest

    try:
        ref = build_image(image)
        proc = run_in_image(ref, "true", timeout=120)
        if proc.returncode != 0:
            raise ImageUnavailable(f"podman cannot run containers here (exit {proc.returncode}): "
                                   f"{_one_line(proc.stderr or proc.stdout)}")
    except ImageUnavailable as exc:
        pytest.fail(f"the worldcover image is not available: {exc}", pytrace=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"the worldcover image is not available: {type(exc).__name__}: {_one_line(str(exc))}",
                    pytrace=False)
    return ref
