"""Inputs where they live: a config `dir` may be an fsspec URL, read through a verified local cache.

A remote file is downloaded once into the cache and read from there by the same NetCDF/Zarr
code as a local one, so a run on `s3://` inputs gives the bits a run on the local files gives.
The cache is keyed by SHA-256: an index entry per (URL, size, ETag/modification time) names
the SHA-256 of the content it holds. A download goes to a temporary name, its size is checked
against the listing, and only then is it renamed into place and indexed — a download killed
halfway leaves a temporary file that no later run trusts. A hit is re-verified (size and
SHA-256) before use, so the second run lists the folder and reads object metadata, nothing more.

Credentials are the filesystem's own (for S3 the standard `AWS_*` variables or profile, for
GCS `GOOGLE_APPLICATION_CREDENTIALS`); `storage_options` beside a `dir` are passed through.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from fusion.errors import InputError

__all__ = ["CachedPath", "cache_root", "is_remote", "is_zarr_store", "list_inputs", "local_view"]

_BLOCK = 1 << 20
_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")


class CachedPath(type(Path())):  # type: ignore[misc]
    """The local copy of a remote input; `url` names it in messages and in `run_metadata.json`."""

    url: str | None = None

    def __reduce__(self):  # noqa: ANN204
        """Pickled with its URL (a dask worker's error names the input, not the cached copy)."""
        return _cached, (str(self), self.url)


def _cached(local: Path, url: str) -> CachedPath:
    path = CachedPath(local)
    path.url = url
    return path


def is_remote(location: Path | str) -> bool:
    """A URL the config kept as text (`file://` ones became local paths when the config was read)."""
    return isinstance(location, str) and "://" in location


def is_zarr_store(path: Path) -> bool:
    """A local folder holding Zarr metadata (v3 `zarr.json`, or v2 `.zgroup`/`.zarray`)."""
    return path.is_dir() and any((path / m).is_file() for m in _ZARR_MARKERS)


def cache_root(configured: Path | None = None) -> Path:
    """`cache.dir` from the config, else `$FUSION_CACHE_DIR`, else `$XDG_CACHE_HOME/fusion` (`~/.cache/fusion`)."""
    if configured is not None:
        return Path(configured)
    if os.environ.get("FUSION_CACHE_DIR"):
        return Path(os.environ["FUSION_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fusion"


def list_inputs(
    location: Path | str,
    pattern: str,
    key: str,
    source: Path | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
    cache_dir: Path | None = None,
    hidden: bool = True,
) -> list[Path]:
    """The files and Zarr stores in `location` matching `pattern`, in name order, as local paths.

    Remote matches are fetched into the cache (or found there); `hidden=False` skips dot-files, as
    `glob.glob` does (the prototype's member list). No match is bad input naming the folder.
    """
    where = f"config key {key}" + (f" in {source}" if source else "")
    if not is_remote(location):
        folder = Path(location)
        if not folder.is_dir():
            raise InputError(folder, f"folder not found ({where})")
        found = sorted(
            p for p in folder.glob(pattern)
            if (p.is_file() or is_zarr_store(p)) and (hidden or not p.name.startswith("."))
        )
    else:
        found = _remote_inputs(str(location), pattern, where, dict(storage_options or {}), cache_root(cache_dir), hidden)
    if not found:
        raise InputError(location, f"no files match the pattern '{pattern}' (config key {key})")
    return found


def local_view(
    location: Path | str,
    pattern: str,
    key: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """A local folder with the matches of `pattern` under their own names, for code that reads folders
    (the prototype under `harness capture`): `location` itself when local; for a URL, a folder of
    links into the cache, made under a temporary name and renamed into place."""
    if not is_remote(location):
        return Path(location)
    paths = list_inputs(location, pattern, key, storage_options=storage_options, cache_dir=cache_dir)
    links = {p.name: str(p) for p in paths}
    cache = cache_root(cache_dir)
    view = cache / "views" / _sha256(json.dumps(links, sort_keys=True))
    if not view.is_dir():
        tmp = _partial(cache)
        tmp.mkdir(parents=True)
        for name, target in links.items():
            (tmp / name).symlink_to(target)
        view.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp, view)
        except OSError:  # made meanwhile by another run: the same links
            shutil.rmtree(tmp, ignore_errors=True)
    return view


# --- remote folders ----------------------------------------------------------------------


def _filesystem(url: str, options: dict[str, Any]) -> tuple[Any, str]:
    import fsspec

    protocol = url.split("://", 1)[0]
    if protocol in ("s3", "s3a"):
        # fail in seconds on an unreachable endpoint instead of botocore's and s3fs's stacked retries
        options.setdefault("config_kwargs", {"retries": {"max_attempts": 2}, "connect_timeout": 10})
    try:
        return fsspec.core.url_to_fs(url, **options)
    except ImportError as exc:
        raise InputError(url, f"reading '{protocol}://' needs a package that is not installed ({exc})") from None
    except (ValueError, TypeError) as exc:
        raise InputError(url, f"cannot open this URL ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@contextlib.contextmanager
def _remote(url: str) -> Iterator[None]:
    """Every failure of the remote filesystem as one line naming the URL."""
    try:
        yield
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(url, "no such bucket or key") from None
    except PermissionError as exc:
        raise InputError(url, f"access denied ({_first_line(exc)})") from None
    except Exception as exc:  # botocore, aiohttp, gcsfs each have their own exception trees
        name = type(exc).__name__
        unreachable = any(w in name for w in ("Connect", "Timeout", "Endpoint")) or isinstance(exc, (ConnectionError, TimeoutError))
        cut = any(w in name for w in ("Payload", "Incomplete", "ContentLength"))  # the body ended early
        problem = "unreachable" if unreachable else "download incomplete" if cut else "cannot be read"
        raise InputError(url, f"{problem} ({_first_line(exc)})") from None


def _remote_inputs(location: str, pattern: str, where: str, options: dict[str, Any], cache: Path, hidden: bool) -> list[Path]:
    fs, root = _filesystem(location, options)
    root = root.rstrip("/")
    with _remote(location):
        fs.invalidate_cache()  # list afresh: a run sees the folder as it is now, not as an earlier run saw it
        if not fs.isdir(root):
            bucket = root.split("/", 1)[0]
            protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
            if protocols & {"s3", "s3a", "gs", "gcs"} and not fs.exists(bucket):
                raise InputError(location, f"no such bucket '{bucket}' ({where})")
            raise InputError(location, f"folder not found ({where})")
        listing = fs.glob(f"{root}/{pattern}", detail=True)
    entries = [{**info, "name": name} for name, info in sorted(listing.items())]
    out: list[Path] = []
    for info in entries:
        name = _basename(info["name"])
        if not hidden and name.startswith("."):
            continue
        url = fs.unstrip_protocol(info["name"])
        with _remote(url):
            if info.get("type") == "directory":
                if any(fs.exists(f"{info['name'].rstrip('/')}/{m}") for m in _ZARR_MARKERS):
                    out.append(_fetch_store(fs, info["name"].rstrip("/"), url, cache))
            else:
                out.append(_fetch_file(fs, info, url, cache))
    return out


def _basename(name: str) -> str:
    return name.rstrip("/").rsplit("/", 1)[-1]


def _version(info: Mapping[str, Any]) -> dict[str, Any]:
    """What identifies one version of an object without reading it: size and ETag or modification time."""
    out: dict[str, Any] = {"size": info.get("size")}
    for k in ("ETag", "etag", "md5Hash", "generation", "LastModified", "mtime", "updated"):
        if info.get(k) is not None:
            out[k] = str(info[k])
    return out


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- the cache ---------------------------------------------------------------------------


def _index_entry(cache: Path, url: str, version: Any) -> Path:
    return cache / "index" / f"{_sha256(json.dumps({'url': url, 'version': version}, sort_keys=True))}.json"


def _read_entry(entry: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(entry.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _verified(path: Path, size: int | None, sha256: str) -> bool:
    from fusion.io import sha256_file

    try:
        return path.is_file() and (size is None or path.stat().st_size == size) and sha256_file(path) == sha256
    except OSError:
        return False


def _download(fs: Any, path: str, url: str, target: Path, size: int | None) -> str:
    """Stream `path` to `target` (a temporary name), checking its length; return its SHA-256."""
    digest = hashlib.sha256()
    got = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with fs.open(path, "rb") as src, open(target, "wb") as dst:
        for block in iter(lambda: src.read(_BLOCK), b""):
            digest.update(block)
            dst.write(block)
            got += len(block)
    if size is not None and got != size:
        raise InputError(url, f"download incomplete or corrupt: got {got} bytes, the listing says {size}")
    return digest.hexdigest()


def _partial(cache: Path) -> Path:
    """A fresh temporary name in the cache; temporary names are never indexed, hence never trusted."""
    return cache / "partial" / f"{uuid.uuid4().hex}"


def _fetch_file(fs: Any, info: Mapping[str, Any], url: str, cache: Path) -> Path:
    version = _version(info)
    size = info.get("size")
    entry = _index_entry(cache, url, version)
    known = _read_entry(entry)
    if known is not None:
        path = cache / known.get("path", "")
        if _verified(path, size, str(known.get("sha256"))):
            return _cached(path, url)
    tmp = _partial(cache)
    try:
        sha = _download(fs, info["name"], url, tmp, size)
        dest = cache / "objects" / sha / _basename(info["name"])
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    _write_entry(entry, {"url": url, "version": version, "sha256": sha, "size": size, "path": dest.relative_to(cache).as_posix()})
    return _cached(dest, url)


def _fetch_store(fs: Any, root: str, url: str, cache: Path) -> Path:
    """A Zarr store: every object under it, into a folder renamed into place once all are complete."""
    files = {name[len(root) + 1:]: info for name, info in sorted(fs.find(root, detail=True).items())}
    versions = {rel: _version(info) for rel, info in files.items()}
    entry = _index_entry(cache, url, versions)
    name = _basename(root)
    known = _read_entry(entry)
    if known is not None:
        store = cache / known.get("path", "")
        recorded = known.get("files", {})
        if recorded.keys() == files.keys() and all(
            _verified(store / rel, files[rel].get("size"), str(recorded[rel])) for rel in files
        ):
            return _cached(store, url)
    tmp = _partial(cache)
    try:
        digests = {
            rel: _download(fs, info["name"], f"{url}/{rel}", tmp / name / rel, info.get("size")) for rel, info in files.items()
        }
        folder = cache / "stores" / _sha256(json.dumps(digests, sort_keys=True))
        if folder.exists():
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    store = folder / name
    _write_entry(entry, {"url": url, "version": versions, "files": digests, "path": store.relative_to(cache).as_posix()})
    return _cached(store, url)


def _write_entry(entry: Path, record: dict[str, Any]) -> None:
    from fusion.io import write_json

    write_json(entry, record)
