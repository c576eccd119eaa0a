"""One storage layer for every location a user gives: local paths and object-store URLs.

A location is a local path (``out/``, ``/data/run``) or a URL that fsspec
opens (``s3://bucket/prefix``; ``gs://``, ``az://`` and ``memory://`` come
with it). :func:`path` turns it into a pathlib-style object: a plain
:class:`pathlib.Path` for local disk, a :class:`upath.UPath` for object
storage, so the rest of the code joins, lists and reads both the same way.

What differs on object storage is handled here, once:

* **Writes are whole.** :func:`atomic_path` yields a local scratch file; on
  success it is renamed into place (local) or uploaded with one put or a
  multipart upload (object storage), so nothing half-written is ever
  visible under its final name.
* **GDAL reads objects directly** (``s3://`` -> ``/vsis3/``): :func:`gdal_path`
  gives the name to hand to rasterio, and the S3 endpoint of the standard
  ``AWS_ENDPOINT_URL`` is translated into GDAL's own settings on import.
* **Locks**: ``flock`` on local disk, a conditionally created lock object
  (``If-None-Match: *``) with an owner and an expiry on object storage.

Configuration comes only from the standard environment (``AWS_ENDPOINT_URL``,
``AWS_REGION``, keys or workload identity), never from YAML or the command line.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import posixpath
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Union
from urllib.parse import urlsplit

from worldcover.errors import InputError

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # typing.TypeIs from Python 3.13
    from upath import UPath

#: A location as the code holds it: a local Path or an fsspec-backed UPath (imported lazily).
Location = Union[Path, "UPath"]

_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://")
#: URL schemes accepted for data locations (fsspec implementations installed with the package).
SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "memory")
#: GDAL's virtual file systems for the schemes it reads directly.
_GDAL_PREFIX = {"s3": "/vsis3/", "gs": "/vsigs/", "gcs": "/vsigs/", "az": "/vsiaz/", "abfs": "/vsiaz/"}


# -- locations --------------------------------------------------------------------------------


def scheme(location: str | os.PathLike) -> str:
    """``"s3"`` for ``s3://b/k``, ``""`` for a local path (``file://`` counts as local)."""
    m = _URL.match(str(location))  # a Path's text has no scheme; a UPath's has its own
    return "" if m is None or m.group(1) == "file" else m.group(1)


def is_remote(location) -> bool:
    """True for object-store URLs (and UPaths of them)."""
    if isinstance(location, Path):
        return False
    return bool(scheme(str(location)))


def _remote(p: Location) -> TypeIs[UPath]:
    """:func:`is_remote` for a location object, so that the type checker tells the UPath branch from the Path one."""
    return is_remote(p)


def check_location(value: str, what: str) -> str:
    """A location string, or an InputError naming ``what`` when its scheme is not one we store on."""
    s = scheme(value)
    if s and s not in SCHEMES:
        raise InputError(f"invalid {what} {value!r}: expected a local path or an s3://, gs://, az:// "
                         "or memory:// URL")
    if s and not urlsplit(value).netloc:
        raise InputError(f"invalid {what} {value!r}: the URL names no bucket")
    return value


def path(location) -> Location:
    """A pathlib-style object for ``location``: Path for local disk, UPath for object storage."""
    if isinstance(location, Path):
        return location
    text = str(location)
    s = scheme(text)
    if not s:
        return Path(text.removeprefix("file://"))
    if not isinstance(location, str):  # already a UPath
        return location
    from upath import UPath

    if s != "s3":
        return UPath(text)
    # Listings are never cached: another pod may have written since we last looked. The endpoint
    # is read from the standard variables each time, so fsspec's per-options cache of clients
    # never hands out a client of an endpoint the environment no longer names.
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return UPath(text, use_listings_cache=False, **({"endpoint_url": endpoint} if endpoint else {}))


def absolute(location: str | os.PathLike) -> str:
    """The location as a string every worker and pod can read: local paths made absolute."""
    return str(location) if is_remote(location) else str(Path(location).expanduser().resolve())


def uri(location) -> str:
    """The location as text for records and messages (``s3://b/k`` or a local path)."""
    return str(location)


def gdal_path(location) -> str:
    """The name GDAL (rasterio) opens: ``/vsis3/bucket/key`` for ``s3://bucket/key``, the path for local files.

    GDAL's own virtual-file-system names work everywhere (rasterio.open, copy,
    VRT sources), where ``s3://`` URLs are understood by rasterio.open only.
    Schemes GDAL cannot read (``memory://``) are returned as they are.
    """
    text = str(location)
    return vsi_path(text) if scheme(text) in _GDAL_PREFIX else text


def relpath(target, start) -> str:
    """``target`` relative to the folder ``start``, with forward slashes (as VRTs and STAC hrefs hold it).

    Both must be on the same store (local disk, or one bucket): a VRT on object
    storage opens its relative sources through GDAL's ``/vsis3/`` like local files.
    """
    t, s = path(target), path(start)
    if is_remote(t) != is_remote(s) or (is_remote(t) and str(t).split("/", 3)[:3] != str(s).split("/", 3)[:3]):
        raise InputError(f"{str(target)!r} and {str(start)!r} are on different stores: no relative path joins them")
    if _remote(t) and _remote(s):
        return posixpath.relpath("/" + t.path, "/" + s.path)
    assert isinstance(t, Path) and isinstance(s, Path)  # both local: the same store was checked above
    return Path(os.path.relpath(t.resolve(), s.resolve())).as_posix()


def vsi_path(location) -> str:
    """GDAL's virtual-file-system name (``/vsis3/bucket/key``) of an object, or the local path."""
    text = str(location)
    s = scheme(text)
    if not s:
        return text
    if s not in _GDAL_PREFIX:
        raise InputError(f"GDAL cannot read {text!r} directly: use a local path or an s3://, gs:// or az:// URL")
    return _GDAL_PREFIX[s] + text.split("://", 1)[1]


def configure_gdal(environ: dict | None = None) -> dict:
    """GDAL's S3 settings derived from the standard ``AWS_ENDPOINT_URL`` (set only where not set).

    GDAL does not read ``AWS_ENDPOINT_URL`` itself; boto3 and s3fs do. An
    endpoint of ``http://host:port`` becomes ``AWS_S3_ENDPOINT=host:port``,
    ``AWS_HTTPS=NO`` and path-style addressing. Objects change between steps
    (a level COG is rewritten by the next build), so GDAL's cross-open cache
    of object headers is off for object storage.
    """
    env = os.environ if environ is None else environ
    added = {}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        added["AWS_S3_ENDPOINT"] = parts.netloc + parts.path.rstrip("/")
        added["AWS_HTTPS"] = "NO" if parts.scheme == "http" else "YES"
        added["AWS_VIRTUAL_HOSTING"] = "FALSE"
    added["CPL_VSIL_CURL_NON_CACHED"] = "/vsis3/:/vsigs/:/vsiaz/"
    added["GDAL_DISABLE_READDIR_ON_OPEN"] = env.get("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
    for key, value in added.items():
        env.setdefault(key, value)
    return added


configure_gdal()


# -- reading ----------------------------------------------------------------------------------


def makedirs(p: Location) -> None:
    """Create a local folder (and parents); object stores have no folders, so nothing to do there."""
    if not _remote(p):
        Path(p).mkdir(parents=True, exist_ok=True)


def read_text(location) -> str:
    return path(location).read_text(encoding="utf-8")


def read_json(location):
    return json.loads(read_text(location))


def sha256(location, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file or object, streamed."""
    h = hashlib.sha256()
    with path(location).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def stamp(location) -> list | None:
    """What identifies one version of a file cheaply: (size, mtime_ns, inode) locally, (size, ETag) remotely.

    None when the location does not exist.
    """
    p = path(location)
    if not _remote(p):
        try:
            st = Path(p).stat()
        except FileNotFoundError:
            return None
        return [st.st_size, st.st_mtime_ns, st.st_ino]
    try:
        info = p.fs.info(p.path)
    except FileNotFoundError:
        return None
    return [int(info.get("size", -1)), str(info.get("ETag") or info.get("etag") or info.get("md5Hash") or "")]


def size(location) -> int | None:
    s = stamp(location)
    return None if s is None else int(s[0])


def age_ns(location) -> int:
    """Nanoseconds since a local file was last modified (object stores: since the object was written)."""
    p = path(location)
    if not _remote(p):
        return time.time_ns() - Path(p).stat().st_mtime_ns
    modified = p.fs.info(p.path).get("LastModified")
    return time.time_ns() - int(modified.timestamp() * 1e9) if modified is not None else 1 << 62


# -- writing ----------------------------------------------------------------------------------

TEMP_MARK = ".part"  # temporary names: .<dest name>.<random>.part<suffix>
_TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{6,}\.part(\.[A-Za-z0-9]+)?$")


def is_temp_name(name: str) -> bool:
    """True for the temporary names :func:`atomic_path` writes (never a finished file's name)."""
    return bool(_TEMP_RE.fullmatch(name))


def put_copy(local: str | os.PathLike, location) -> None:
    """Store a copy of a complete local file at ``location`` (the local file stays), whole."""
    p = path(location)
    if _remote(p):
        p.fs.put_file(str(local), p.path)
        return
    with atomic_path(p) as tmp:
        shutil.copyfile(local, tmp)


@contextmanager
def atomic_path(dest, suffix: str | None = None) -> Iterator[Path]:
    """Yield a local temporary path for ``dest``; move it onto ``dest`` only on success.

    Local disk: the temporary name is hidden and marked beside ``dest``
    (:func:`is_temp_name`), so nothing that looks for finished files can take
    it for one and a sweep after a crash (:func:`remove_temps`) finds it.
    Object storage: the file is written in local scratch and uploaded whole
    when complete; an object is never visible half-written.
    """
    p = path(dest)
    if _remote(p):
        work = Path(tempfile.mkdtemp(prefix="worldcover-put-"))
        try:
            tmp = work / (p.name + (suffix or ""))
            yield tmp
            p.fs.put_file(str(tmp), p.path)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    dest = Path(p)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=TEMP_MARK + (suffix or ".tmp"), dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp_name)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp makes 0600; products are meant to be shared
        os.replace(tmp_path, dest)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def atomic_workdir(dest) -> Iterator[Path]:
    """Yield a path inside a hidden, marked scratch folder; move it onto ``dest`` on success.

    For writers that make their own temporary files next to their output
    (rio-cogeo's on-disk translate does): those land in the scratch folder
    too, so a crash leaves nothing visible, and :func:`remove_temps` sweeps it.
    """
    p = path(dest)
    if _remote(p):
        with atomic_path(p) as tmp:
            yield tmp
        return
    dest = Path(p)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=TEMP_MARK + ".d", dir=dest.parent))
    try:
        out = work / dest.name
        yield out
        os.chmod(out, 0o644)
        os.replace(out, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fsync_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a local file and flush it to the disk (for files that must survive a power cut)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Flush a local folder's entries (the renames into it) to the disk; nothing where the OS cannot."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def durable_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh sibling folder of the local folder ``dest``; on success it replaces ``dest`` whole.

    For sets of files that must change together (a model and its card): the caller writes them
    with :func:`fsync_write`; the folder is flushed, then renamed onto ``dest``, so a crash leaves
    the old set, nothing, or the new set. A non-empty ``dest`` is moved aside first (to
    ``.NAME.old-*``, kept if the process dies mid-swap) and put back if the swap fails.
    """
    target = Path(dest)
    parent = target.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".{target.name}.tmp-{secrets.token_hex(6)}"
    staging.mkdir()
    try:
        yield staging
        fsync_dir(staging)
        if target.exists() and os.listdir(target):
            retired = parent / f".{target.name}.old-{secrets.token_hex(6)}"
            os.rename(target, retired)
            try:
                os.rename(staging, target)
            except BaseException:
                os.rename(retired, target)  # put the old set back
                raise
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)  # onto nothing or an empty directory: atomic
        fsync_dir(parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def atomic_write_text(dest, text: str):
    """Write UTF-8 text whole (temporary name then rename, or one put); returns ``dest`` as a location."""
    p = path(dest)
    with atomic_path(p) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return p


def remove(location, missing_ok: bool = True) -> None:
    p = path(location)
    try:
        p.unlink()
    except FileNotFoundError:
        if not missing_ok:
            raise


def remove_tree(location) -> None:
    """Delete a folder or every object under a prefix."""
    p = path(location)
    if not _remote(p):
        shutil.rmtree(p, ignore_errors=True)
        return
    with contextlib.suppress(FileNotFoundError):
        p.fs.rm(p.path, recursive=True)


def remove_temps(folder, recursive: bool = False) -> int:
    """Delete leftovers of interrupted atomic writes under a local ``folder``; returns how many.

    Only call this where no other process is writing (e.g. under the campaign
    lock): a live write's temporary file looks the same as a dead one's.
    On object storage an object appears whole or not at all; what a killed
    upload leaves is an unfinished multipart upload (invisible, but billed),
    which is aborted here.
    """
    if is_remote(folder):
        return _abort_multipart_uploads(path(folder))
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    n = 0
    for dirpath in ([d for d, _, _ in os.walk(folder)] if recursive else [str(folder)]):
        try:
            names = os.listdir(dirpath)
        except FileNotFoundError:  # inside a scratch folder removed a moment ago
            continue
        for name in filter(is_temp_name, names):
            target = os.path.join(dirpath, name)
            if os.path.isdir(target):  # an atomic_workdir scratch folder
                shutil.rmtree(target, ignore_errors=True)
            else:
                try:
                    os.unlink(target)
                except FileNotFoundError:
                    continue
            n += 1
    return n


def _abort_multipart_uploads(prefix) -> int:
    """Abort the unfinished multipart uploads under an S3 prefix; returns how many."""
    if scheme(str(prefix)) != "s3":
        return 0
    bucket, _, key = prefix.path.partition("/")
    n = 0
    for upload in prefix.fs.list_multipart_uploads(bucket):
        if upload.get("Key", "").startswith(key.rstrip("/") + "/" if key else ""):
            prefix.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            n += 1
    return n


# -- locks ------------------------------------------------------------------------------------

LOCK_NAME = ".worldcover.lock"
LOCK_TTL_S = 600.0


class LockBusy(InputError):
    """The root is held by another live writer."""


@contextmanager
def lock(root, ttl_s: float = LOCK_TTL_S) -> Iterator[Location]:
    """An exclusive single-writer lock on a campaign root, released on exit.

    Local disk: ``flock`` on ``ROOT/.worldcover.lock`` (the kernel releases it
    when the process dies, so a stale file never blocks a rerun). Object
    storage: the lock object is created only if absent (``If-None-Match: *``)
    and holds an owner and an expiry that a heartbeat thread pushes forward;
    a lock past its expiry, or left by a dead process of this host, is taken over.
    """
    p = path(root)
    if _remote(p):
        with _object_lock(p / LOCK_NAME, ttl_s) as held:
            yield held
        return
    root_dir = Path(p)
    root_dir.mkdir(parents=True, exist_ok=True)
    lock_path = root_dir / LOCK_NAME
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise LockBusy(
                f"output root {str(root)!r} is in use by a running campaign (pid {holder}); "
                "wait for it to finish or use another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield lock_path
    finally:
        os.close(fd)  # closing releases the flock


def _lock_record(owner: str, ttl_s: float) -> bytes:
    return json.dumps({"owner": owner, "host": socket.gethostname(), "pid": os.getpid(),
                       "expires": time.time() + ttl_s}).encode()


def _is_stale(record: dict) -> bool:
    if float(record.get("expires", 0)) < time.time():
        return True
    if record.get("host") == socket.gethostname():
        try:
            os.kill(int(record.get("pid", 0)), 0)
        except (ProcessLookupError, ValueError):
            return True  # its process on this host is gone
        except PermissionError:
            return False
    return False


def _create(lock_obj, data: bytes) -> bool:
    try:
        with lock_obj.fs.open(lock_obj.path, "xb") as f:
            f.write(data)
        return True
    except FileExistsError:
        return False


@contextmanager
def _object_lock(lock_obj, ttl_s: float) -> Iterator[Location]:
    owner = uuid.uuid4().hex
    if not _create(lock_obj, _lock_record(owner, ttl_s)):
        try:
            record = json.loads(lock_obj.fs.cat_file(lock_obj.path))
        except (FileNotFoundError, ValueError):
            record = {"expires": 0}
        if not _is_stale(record):
            raise LockBusy(
                f"output root {str(lock_obj.parent)!r} is in use by a running campaign "
                f"(host {record.get('host', '?')}, pid {record.get('pid', '?')}); "
                "wait for it to finish or use another --out")
        remove(lock_obj)
        if not _create(lock_obj, _lock_record(owner, ttl_s)):
            raise LockBusy(f"output root {str(lock_obj.parent)!r} was locked by another run a moment ago; "
                           "wait for it to finish or use another --out")
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(ttl_s / 3):
            # any error: a missed beat is retried; expiry covers a lost store
            with contextlib.suppress(Exception):
                lock_obj.fs.pipe_file(lock_obj.path, _lock_record(owner, ttl_s))

    beat = threading.Thread(target=heartbeat, name="worldcover-lock-heartbeat", daemon=True)
    beat.start()
    try:
        yield lock_obj
    finally:
        stop.set()
        beat.join(timeout=5)
        try:
            if json.loads(lock_obj.fs.cat_file(lock_obj.path)).get("owner") == owner:
                remove(lock_obj)
        except (FileNotFoundError, ValueError):
            pass


__all__ = [
    "LOCK_NAME", "Location", "LockBusy", "SCHEMES", "absolute", "atomic_path", "atomic_workdir",
    "atomic_write_text", "check_location", "configure_gdal", "gdal_path", "is_remote", "is_temp_name",
    "lock", "makedirs", "path", "put_copy", "read_json", "read_text", "relpath", "remove", "remove_temps",
    "remove_tree", "scheme", "sha256", "size", "stamp", "uri", "vsi_path",
]
