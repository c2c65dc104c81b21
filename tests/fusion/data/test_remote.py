"""Inputs by URL and Zarr stores, against a real S3 API (a moto server on 127.0.0.1) and a real
HTTP server: the same bits as local files, a cache that the second run trusts and a killed
download that no run trusts, and one line naming the URL for each bad input."""

from __future__ import annotations

import http.server
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from fusion.cli import main
from fusion.data.synthetic import write_example

pytestmark = pytest.mark.long_module(seconds=39)  # its tests in all under ./dev test

_REQUEST = re.compile(r'"(?:\x1b\[[0-9;]*m)*(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP')  # werkzeug may colour the line


class _RequestLog(logging.Handler):
    """Every request the moto server answers, as (method, path), read from werkzeug's request log."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        m = _REQUEST.search(record.getMessage())
        if m:
            self.seen.append((m.group(1), m.group(2)))

    def object_gets(self, since: int = 0) -> list[str]:
        """GETs of an object (a download); a GET on the bucket itself (`/bkt?list-type=2...`) is a listing."""
        return [p for verb, p in self.seen[since:] if verb == "GET" and p.split("?")[0].rstrip("/").count("/") > 1]


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, Any]]:
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            mp.setenv(k, v)
        log = _RequestLog()
        werkzeug = logging.getLogger("werkzeug")
        werkzeug.addHandler(log)
        werkzeug.setLevel(logging.INFO)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            import s3fs

            fs = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True)
            fs.mkdir("bkt")
            yield {"endpoint": endpoint, "fs": fs, "log": log}
        finally:
            server.stop()
            werkzeug.removeHandler(log)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory, s3: dict[str, Any]) -> Path:
    """The bundled example, made fast (Laplace), with Zarr twins of its files, all uploaded to `s3://bkt/case`."""
    import xarray as xr

    root = tmp_path_factory.mktemp("remote") / "case"
    config = write_example(root)
    text = config.read_text().replace("sampler: nutpie", "sampler: nutpie\n  method: laplace")
    config.write_text(text)
    for folder in ("obs/elev", "obs/vel", "ensemble"):
        for nc in sorted((root / folder).glob("*.nc")):
            with xr.open_dataset(nc, decode_times=False) as ds:
                ds.to_zarr(root / f"{folder}-zarr" / nc.with_suffix(".zarr").name, mode="w", consolidated=False)
    for folder in ("obs", "ensemble", "ensemble-zarr", "projection"):
        s3["fs"].put(str(root / folder), f"bkt/case/{folder}", recursive=True)
    return root


def _config(example: Path, tmp: Path, s3: dict[str, Any] | None, *, zarr: bool = False, **changes: dict) -> Path:
    """The example's config with its folders at `s3://bkt/case` (or local when `s3` is None) and a cache in `tmp`."""
    cfg = yaml.safe_load((example / "config.yaml").read_text())
    base = "s3://bkt/case" if s3 is not None else str(example)
    opts = {"storage_options": {"endpoint_url": s3["endpoint"]}} if s3 is not None else {}
    suffix = "-zarr" if zarr else ""
    cfg["observations"]["thickness"].update(dir=f"{base}/obs/elev{suffix}", **opts)
    cfg["observations"]["velocity"].update(dir=f"{base}/obs/vel{suffix}", **opts)
    cfg["ensemble"].update(dir=f"{base}/ensemble{suffix}", **opts)
    if zarr:
        for section in (cfg["observations"]["thickness"], cfg["observations"]["velocity"], cfg["ensemble"]):
            section["pattern"] = section["pattern"].replace(".nc", ".zarr")
    cfg["projection"].update(historical_dir=f"{base}/projection/historical", forward_dir=f"{base}/projection/forward", **opts)
    cfg["cache"] = {"dir": str(tmp / "cache")}
    for key, value in changes.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    out = tmp / f"config-{len(list(tmp.glob('config-*.yaml')))}.yaml"
    out.write_text(yaml.safe_dump(cfg))
    return out


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _same_arrays(a: Path, b: Path) -> None:
    x, y = _arrays(a), _arrays(b)
    assert x.keys() == y.keys()
    for k in x:
        assert x[k].dtype == y[k].dtype and x[k].shape == y[k].shape, k
        assert x[k].tobytes() == y[k].tobytes(), k


def test_prepare_on_s3_equals_local_and_the_second_run_downloads_nothing(example: Path, s3, tmp_path: Path) -> None:
    local = tmp_path / "local.npz"
    assert main(["prepare", str(example / "config.yaml"), "--out", str(local)]) == 0
    config = _config(example, tmp_path, s3)
    log: _RequestLog = s3["log"]

    start = len(log.seen)
    assert main(["prepare", str(config), "--out", str(tmp_path / "first.npz")]) == 0
    first = log.object_gets(start)
    n_inputs = len(list((example / "obs").rglob("*.nc"))) + len(list((example / "ensemble").glob("*.nc")))
    assert len({p.split("?")[0] for p in first}) == n_inputs  # every input downloaded, once
    _same_arrays(local, tmp_path / "first.npz")

    start = len(log.seen)
    assert main(["prepare", str(config), "--out", str(tmp_path / "second.npz")]) == 0
    assert log.object_gets(start) == []  # from the cache: nothing downloaded again
    assert any(verb == "GET" and "list-type" in p for verb, p in log.seen[start:])  # it did look at the bucket
    _same_arrays(local, tmp_path / "second.npz")


def test_a_tampered_cache_entry_is_downloaded_again(example: Path, s3, tmp_path: Path) -> None:
    config = _config(example, tmp_path, s3)
    assert main(["prepare", str(config), "--out", str(tmp_path / "a.npz")]) == 0
    cached = sorted((tmp_path / "cache" / "objects").rglob("run03_regridded.nc"))
    assert len(cached) == 1
    data = bytearray(cached[0].read_bytes())
    data[-1] ^= 0xFF  # same size, other content: only the SHA-256 tells
    cached[0].write_bytes(bytes(data))
    start = len(s3["log"].seen)
    assert main(["prepare", str(config), "--out", str(tmp_path / "b.npz")]) == 0
    assert [p for p in s3["log"].object_gets(start)] == ["/bkt/case/ensemble/run03_regridded.nc"]
    _same_arrays(tmp_path / "a.npz", tmp_path / "b.npz")


def test_fusion_run_on_s3_equals_the_local_run_and_records_urls(example: Path, s3, tmp_path: Path) -> None:
    local_cfg = _config(example, tmp_path, None)
    remote_cfg = _config(example, tmp_path, s3)
    assert main(["run", str(local_cfg), "--out", str(tmp_path / "local"), "--no-progress"]) == 0
    assert main(["run", str(remote_cfg), "--out", str(tmp_path / "remote"), "--no-progress"]) == 0
    start = len(s3["log"].seen)
    assert main(["run", str(remote_cfg), "--out", str(tmp_path / "again"), "--no-progress"]) == 0
    assert s3["log"].object_gets(start) == []  # the second run downloads no object (projection files included)
    for name in ("weights.csv", "projection.csv", "summary.json"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "remote" / name).read_bytes(), name
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "remote" / name).read_bytes(), name
    local_meta = json.loads((tmp_path / "local" / "run_metadata.json").read_text())["input_files"]
    remote_meta = json.loads((tmp_path / "remote" / "run_metadata.json").read_text())["input_files"]
    urls = {k: v for k, v in remote_meta.items() if k.startswith("s3://")}
    assert len(urls) == len(remote_meta) - 1  # every input but the config file is named by its URL
    assert {u.removeprefix("s3://bkt/case/"): sha for u, sha in urls.items()} == {
        Path(k).relative_to(example).as_posix(): v for k, v in local_meta.items() if Path(k).is_relative_to(example)
    }  # every input by URL, with the SHA-256 of its local twin


@pytest.mark.parametrize("where", ["local", "s3", "mixed"])
def test_zarr_stores_give_the_bits_of_their_netcdf_twins(example: Path, s3, tmp_path: Path, where: str) -> None:
    if where in ("local", "s3"):
        config = _config(example, tmp_path, s3 if where == "s3" else None, zarr=True)
    else:  # ensemble members as Zarr on S3, observations as Zarr stores on disk
        config = _config(example, tmp_path, s3, zarr=True)
        cfg = yaml.safe_load(config.read_text())
        for key in ("thickness", "velocity"):
            folder = cfg["observations"][key]["dir"].rsplit("/", 1)[-1]
            cfg["observations"][key] = {**cfg["observations"][key], "dir": str(example / "obs" / folder), "storage_options": None}
        config.write_text(yaml.safe_dump(cfg))
    assert main(["prepare", str(example / "config.yaml"), "--out", str(tmp_path / "nc.npz")]) == 0
    assert main(["prepare", str(config), "--out", str(tmp_path / "zarr.npz")]) == 0
    _same_arrays(tmp_path / "nc.npz", tmp_path / "zarr.npz")


def _bad_missing_bucket(s3, example: Path) -> tuple[dict, str]:
    return {"ensemble": {"dir": "s3://no-such-bucket/ensemble"}}, "s3://no-such-bucket/ensemble: no such bucket 'no-such-bucket'"


def _bad_missing_folder(s3, example: Path) -> tuple[dict, str]:
    return {"ensemble": {"dir": "s3://bkt/case/nothing-here"}}, "s3://bkt/case/nothing-here: folder not found (config key ensemble"


def _bad_no_match(s3, example: Path) -> tuple[dict, str]:
    return {"ensemble": {"pattern": "*_absent.nc"}}, "s3://bkt/case/ensemble: no files match the pattern '*_absent.nc'"


def _bad_unreachable(s3, example: Path) -> tuple[dict, str]:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    opts = {"endpoint_url": f"http://127.0.0.1:{port}"}
    return {"ensemble": {"storage_options": opts}}, "s3://bkt/case/ensemble: unreachable"


def _bad_corrupt_object(s3, example: Path) -> tuple[dict, str]:
    s3["fs"].pipe("bkt/bad/corrupt/run01_regridded.nc", b"CDF\x01 not netcdf at all")
    s3["fs"].put(str(example / "ensemble" / "run02_regridded.nc"), "bkt/bad/corrupt/run02_regridded.nc")
    return {"ensemble": {"dir": "s3://bkt/bad/corrupt"}}, "s3://bkt/bad/corrupt/run01_regridded.nc: not a readable NetCDF file"


def _bad_zarr_missing_variable(s3, example: Path) -> tuple[dict, str]:
    import xarray as xr

    store = example.parent / "bad-zarr" / "run01_regridded.zarr"
    with xr.open_dataset(example / "ensemble" / "run01_regridded.nc", decode_times=False) as ds:
        ds.drop_vars("va").to_zarr(store, mode="w", consolidated=False)
    s3["fs"].put(str(store), "bkt/bad/zarr/run01_regridded.zarr", recursive=True)
    s3["fs"].put(str(example / "ensemble-zarr" / "run02_regridded.zarr"), "bkt/bad/zarr/run02_regridded.zarr", recursive=True)
    return ({"ensemble": {"dir": "s3://bkt/bad/zarr", "pattern": "*_regridded.zarr"}},
            "s3://bkt/bad/zarr/run01_regridded.zarr: missing variable 'va'")


BAD = {f.__name__.removeprefix("_bad_"): f for f in (_bad_missing_bucket, _bad_missing_folder, _bad_no_match, _bad_unreachable,
                                                     _bad_corrupt_object, _bad_zarr_missing_variable)}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_remote_input_is_one_line_naming_the_url(example: Path, s3, tmp_path: Path, capsys, name: str) -> None:
    changes, expected = BAD[name](s3, example)
    cfg = yaml.safe_load(_config(example, tmp_path, s3).read_text())
    for section, values in changes.items():
        cfg[section] = {**cfg[section], **values}
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out" / "prepared.npz"
    capsys.readouterr()
    status = main(["prepare", str(config), "--out", str(out)])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("warning: ")]  # the example's ERRY
    assert status == 2
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert expected in err[0]
    assert "/cache/" not in err[0]  # the URL, not the cached copy
    assert not out.parent.exists() or not any(out.parent.iterdir())


def _moto_auth(endpoint: str, after: float) -> None:
    """Turn moto's IAM enforcement on after `after` more requests (inf: off), through its own control endpoint."""
    import urllib.request

    request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=str(after).encode(), method="POST",
                                     headers={"Content-Type": "text/plain"})  # a form body would be parsed away
    with urllib.request.urlopen(request) as answer:
        assert answer.status == 200


def test_access_denied_is_one_line_naming_the_url(example: Path, s3, tmp_path: Path, capsys) -> None:
    """The ensemble's keys are real but hold no policy: the server answers AccessDenied, as AWS does, while
    the other inputs are read with a user allowed everything."""
    import boto3

    iam = boto3.client("iam", endpoint_url=s3["endpoint"], region_name="us-east-1")
    everything = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}'
    keys = {}
    for user in ("reader", "no-rights"):
        iam.create_user(UserName=user)
        keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
    iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=everything)
    cfg = yaml.safe_load(_config(example, tmp_path, s3).read_text())
    for section, user in ((cfg["observations"]["thickness"], "reader"), (cfg["observations"]["velocity"], "reader"),
                          (cfg["projection"], "reader"), (cfg["ensemble"], "no-rights")):
        section["storage_options"] = {
            "endpoint_url": s3["endpoint"], "key": keys[user]["AccessKeyId"], "secret": keys[user]["SecretAccessKey"],
        }
    config = tmp_path / "denied.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out" / "prepared.npz"
    capsys.readouterr()
    _moto_auth(s3["endpoint"], 0)
    try:
        status = main(["prepare", str(config), "--out", str(out)])
    finally:
        _moto_auth(s3["endpoint"], float("inf"))
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("warning: ")]
    assert status == 2
    assert len(err) == 1 and err[0] == "error: s3://bkt/case/ensemble: access denied (PermissionError: Access Denied)", err
    assert not out.parent.exists() or not any(out.parent.iterdir())


# --- downloads cut short, over HTTP --------------------------------------------------------


class _Blob(http.server.BaseHTTPRequestHandler):
    """`/data/` lists one file; `/data/big.nc` is served with ranges. `mode` decides what happens past
    half of it: `full` serves it, `stall` hangs (a process killed mid-download), `cut` closes the connection."""

    body = b""
    mode = "full"
    release = threading.Event()

    def log_message(self, *_: object) -> None:
        pass

    def _headers(self, status: int, length: int, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def do_HEAD(self) -> None:  # noqa: N802
        if self.path.rstrip("/") == "/data":
            self._headers(200, len(self._index()), {"Content-Type": "text/html"})
        else:
            self._headers(200, len(self.body), {"ETag": '"v1"'})

    def _index(self) -> bytes:
        return b'<html><body><a href="/data/big.nc">big.nc</a></body></html>'

    def do_GET(self) -> None:  # noqa: N802
        try:
            self._get()
        except (BrokenPipeError, ConnectionResetError):  # the client was killed mid-download
            self.close_connection = True

    def _get(self) -> None:
        if self.path.rstrip("/") == "/data":
            page = self._index()
            self._headers(200, len(page), {"Content-Type": "text/html"})
            self.wfile.write(page)
            return
        start, end = 0, len(self.body) - 1
        m = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if m:
            start, end = int(m.group(1)), min(int(m.group(2) or end), end)
        chunk = self.body[start:end + 1]
        half = len(self.body) // 2
        self._headers(206 if m else 200, len(chunk), {"Content-Range": f"bytes {start}-{end}/{len(self.body)}"} if m else None)
        if self.mode == "full" or end < half:
            self.wfile.write(chunk)
            return
        self.wfile.write(chunk[: max(0, half - start)])
        self.wfile.flush()
        if self.mode == "stall":
            self.release.wait(60)
        self.close_connection = True


@pytest.fixture
def blob(tmp_path: Path) -> Iterator[type[_Blob]]:
    handler = type("Blob", (_Blob,), {"body": np.random.default_rng(1).bytes(12 << 20), "release": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/data"
    try:
        yield handler
    finally:
        handler.release.set()
        server.shutdown()
        server.server_close()


def _entries(cache: Path) -> list[Path]:
    return sorted((cache / "index").glob("*.json")) if (cache / "index").is_dir() else []


_FETCH = """
import sys
from pathlib import Path
from fusion.data.remote import list_inputs
from fusion.errors import InputError
try:
    [path] = list_inputs(sys.argv[1], "big.nc", "ensemble", cache_dir=Path(sys.argv[2]))
except InputError as exc:
    print(exc, file=sys.stderr)
    sys.exit(2)
print(path, path.url)
"""


def test_a_download_killed_halfway_is_never_trusted(blob, tmp_path: Path) -> None:
    import hashlib

    cache = tmp_path / "cache"
    blob.mode = "stall"
    proc = subprocess.Popen([sys.executable, "-c", _FETCH, blob.url, str(cache)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):  # until part of the object has reached the disk
            partial = [p for p in (cache / "partial").glob("*") if p.stat().st_size > 0] if (cache / "partial").is_dir() else []
            if partial or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the download ended before it could be killed"
        assert partial and partial[0].stat().st_size < len(blob.body)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert _entries(cache) == []  # nothing indexed, so nothing a later run could take for the object
    assert not (cache / "objects").exists() or not any((cache / "objects").rglob("big.nc"))

    blob.mode = "full"
    done = subprocess.run([sys.executable, "-c", _FETCH, blob.url, str(cache)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    local, url = done.stdout.split()
    assert url == f"{blob.url}/big.nc"
    assert hashlib.sha256(Path(local).read_bytes()).hexdigest() == hashlib.sha256(blob.body).hexdigest()
    assert len(_entries(cache)) == 1


def test_a_connection_cut_midway_is_one_line_and_leaves_no_entry(blob, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    blob.mode = "cut"
    done = subprocess.run([sys.executable, "-c", _FETCH, blob.url, str(cache)], capture_output=True, text=True)
    assert done.returncode == 2
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{blob.url}/big.nc: download incomplete"), err
    assert _entries(cache) == []
    assert not (cache / "partial").exists() or not any((cache / "partial").iterdir())  # its temporary file is gone too


def test_harness_capture_and_run_read_s3_inputs_as_they_read_local_ones(example: Path, s3, tmp_path: Path) -> None:
    """The prototype reads folders, so a URL reaches it as a local folder of links into the cache."""
    from harness.cli import main as harness_main
    from tests.harness.test_capture import STAND_IN

    post = tmp_path / "posterior.nc"
    rng = np.random.default_rng(3)
    import xarray as xr

    names = ("sigma_base_thick", "sigma_base_vel", "beta_thick", "beta_vel")
    xr.Dataset({k: (("chain", "draw"), np.abs(rng.normal(0.4, 0.05, (2, 10)))) for k in names}).to_netcdf(post, group="posterior")
    cases = {}
    for where, cfg in (("local", _config(example, tmp_path, None)), ("s3", _config(example, tmp_path, s3))):
        cases[where] = tmp_path / f"case-{where}"
        args = ["capture", str(cfg), "--prototype", str(STAND_IN), "--out", str(cases[where]), "--posterior", str(post)]
        assert harness_main(args) == 0
    _same_arrays(cases["local"] / "reference" / "prepared.npz", cases["s3"] / "reference" / "prepared.npz")
    local = json.loads((cases["local"] / "capture.json").read_text())["inputs"]
    remote = json.loads((cases["s3"] / "capture.json").read_text())["inputs"]
    assert {u.removeprefix("s3://bkt/case/"): d for u, d in remote.items()} == {
        Path(k).relative_to(example).as_posix(): d for k, d in local.items()
    }
    from harness.cases import load_case

    digests = load_case(cases["s3"]).inputs_sha256()  # what `harness run --case` fingerprints its results by
    assert all(k.startswith("s3://bkt/case/") for k in digests) and remote.items() <= digests.items()
    assert any("/projection/" in k for k in digests)
    # `harness run --case` on the remote case reads its inputs as it reads the local twin's: the same figures.
    # (The stand-in's arithmetic is its own, so parity itself fails on both; what matters is that they agree.)
    figures = {}
    for where in ("local", "s3"):
        out = tmp_path / f"report-{where}"
        harness_main(["run", "--case", str(cases[where]), "--check", "parity", "--out", str(out)])
        (record,) = json.loads((out / "report.json").read_text())["checks"]
        assert record["name"] == "parity" and record["complete"]
        figures[where] = (record["status"], record["figures"], record["availability"])
    assert figures["s3"] == figures["local"]
    assert figures["s3"][1]["prepared"]["n_dhdt"] > 0


def test_config_keeps_urls_whole_and_the_cache_out_of_the_hash(tmp_path: Path) -> None:
    from fusion.config import config_hash, load_config

    text = ("observations:\n  thickness: {dir: 's3://bkt/obs/elev/', storage_options: {anon: true}}\n"
            "  velocity: {dir: 'file:///data/vel'}\nensemble: {dir: ensemble}\n")
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text + "cache: {dir: elsewhere}\n")
    a, b = load_config(tmp_path / "a.yaml"), load_config(tmp_path / "b.yaml")
    assert a.observations.thickness.dir == "s3://bkt/obs/elev" and a.observations.thickness.storage_options == {"anon": True}
    assert a.observations.velocity.dir == Path("/data/vel")
    assert a.ensemble.dir == tmp_path / "ensemble"
    assert b.cache.dir == tmp_path / "elsewhere" and config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(a.with_updates(observations={"thickness": {"storage_options": None}}))


def test_products_on_s3_prepare_as_the_local_files(s3, tmp_path: Path) -> None:
    """ATL15 quadrants and ITS_LIVE mosaics (files with the producers' schemas) read from S3 as from disk."""
    from fusion.data.synthetic import SyntheticSpec, generate
    from tests.fusion.data import products

    generate(tmp_path / "case", SyntheticSpec(ny=12, nx=16, members=3, years=(2015, 2019), seed=5))
    products.write_atl15(tmp_path / "case", tmp_path / "atl15", quadrants=True)
    products.write_itslive(tmp_path / "case", tmp_path / "itslive")
    for folder in ("atl15", "itslive", "case/ensemble"):
        s3["fs"].put(str(tmp_path / folder), f"bkt/products/{folder}", recursive=True)
    opts = {"storage_options": {"endpoint_url": s3["endpoint"]}}
    configs = {}
    for where, base in (("local", str(tmp_path)), ("remote", "s3://bkt/products")):
        cfg = {"observations": {
                   "thickness": {"product": "atl15", "dir": f"{base}/atl15", "pattern": "ATL15_*.nc"},
                   "velocity": {"product": "itslive", "dir": f"{base}/itslive", "pattern": "ITS_LIVE_velocity_*.nc"}},
               "ensemble": {"dir": f"{base}/case/ensemble"}, "cache": {"dir": str(tmp_path / "cache")}}
        if where == "remote":
            for section in (cfg["observations"]["thickness"], cfg["observations"]["velocity"], cfg["ensemble"]):
                section.update(opts)
        configs[where] = tmp_path / f"{where}.yaml"
        configs[where].write_text(yaml.safe_dump(cfg))
    for where in configs:
        assert main(["prepare", str(configs[where]), "--out", str(tmp_path / f"{where}.npz")]) == 0
    _same_arrays(tmp_path / "local.npz", tmp_path / "remote.npz")
    assert len(_arrays(tmp_path / "remote.npz")["y_obs"]) > 100
