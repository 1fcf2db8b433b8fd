"""Third-party SCIM servers the benchmark can compare against, installed outside the repository.

scimgateway (jelhub/scimgateway, Node.js, MIT) is run with its in-memory ``loki`` plugin. It is not on
the npm registry: its source comes from a git clone (``git clone https://github.com/jelhub/scimgateway
bench/.peers/scimgateway-src``, or any clone or bare git directory named by ``SCIMGATEWAY_SRC``) and its
npm dependencies from the npm registry; everything lands in ``bench/.peers/scimgateway`` (git-ignored)
and none of it is committed here. Without a clone the benchmark says so and leaves the column out.

Changes made to the copy, all at install time and all through its documented configuration:

* ``config/plugin-loki.json``: port and bearer token read from the environment (``process.env.X``,
  scimgateway's own indirection, so it never rewrites the file to encrypt a clear-text secret),
  ``localhostonly`` on, file and console logging ``off``, basic/JWT/OAuth auth removed, loki
  ``persistence`` off (in-memory adapter, no autosave).
* ``bench-index.ts``: our launcher, the same one-line ``import './lib/plugin-loki.ts'`` as their
  ``index.ts``, so only loki starts whatever their ``index.ts`` says.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from bench import procs
from bench.servers.launch import TOKEN, Server

SCIMGATEWAY_VERSION = "6.1.18"
PEERS_DIR = procs.ROOT / "bench" / ".peers"
PEER_DIR = PEERS_DIR / "scimgateway"
SCIMGATEWAY_BASE = ""  # SCIM endpoints sit at the root: /Users, /Groups (a /v2 prefix is also accepted)
DEFAULT_SCIMGATEWAY_SRC = PEERS_DIR / "scimgateway-src"
_STAMP = ".bench-installed"
_LAUNCHER = "bench-index.ts"
_LAUNCHER_TEXT = (
    "// Written by scim-mail-gateway's bench/peers.py: start only the loki plugin (as their index.ts does).\n"
    "import './lib/plugin-loki.ts'\n"
    "export {}\n"
)
_PORT_ENV = "SCIMGW_BENCH_PORT"
_TOKEN_ENV = "SCIMGW_BENCH_TOKEN"


def _source() -> Path:
    return Path(os.environ.get("SCIMGATEWAY_SRC") or DEFAULT_SCIMGATEWAY_SRC)


def _node() -> str | None:
    return os.environ.get("SCIMGATEWAY_NODE") or shutil.which("node")


def scimgateway_installed() -> bool:
    stamp = PEER_DIR / _STAMP
    return (stamp.is_file() and stamp.read_text().strip() == SCIMGATEWAY_VERSION
            and (PEER_DIR / "node_modules" / "tsx").is_dir() and (PEER_DIR / _LAUNCHER).is_file())


def _extract(src: Path, dest: Path) -> str | None:
    """Copy scimgateway's tree for SCIMGATEWAY_VERSION from a bare git dir (or a plain checkout) into dest."""
    if (src / "package.json").is_file() and (src / "lib").is_dir():  # a work tree
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".git", "node_modules"))
        return None
    error = ""
    for ref in (f"v{SCIMGATEWAY_VERSION}", "HEAD"):  # the tag, else the snapshot's HEAD (version checked later)
        done = subprocess.run(["git", f"--git-dir={src}", "archive", "--format=tar", ref],
                              capture_output=True, timeout=120, check=False)
        if done.returncode == 0:
            with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
                tar.extractall(dest, filter="data")
            return None
        error = done.stderr.decode(errors="replace").strip()
    return f"git archive failed in {src}: {error[-200:]}"


def _configure(peer: Path) -> None:
    cfg_path = peer / "config" / "plugin-loki.json"
    cfg: dict[str, Any] = json.loads(cfg_path.read_text())
    gw = cfg["scimgateway"]
    gw["port"] = f"process.env.{_PORT_ENV}"
    gw["localhostonly"] = True  # listens on "localhost"; started with --dns-result-order=ipv4first -> 127.0.0.1
    gw.setdefault("log", {})["loglevel"] = {"file": "off", "console": "off"}
    auth = gw.setdefault("auth", {})
    auth["basic"] = []  # the sample gwadmin/password would be encrypted and written back at startup
    auth["bearerToken"] = [{"token": f"process.env.{_TOKEN_ENV}", "readOnly": False, "baseEntities": []}]
    auth["bearerJwt"] = []
    auth["bearerOAuth"] = []
    auth["passThrough"] = {"enabled": False, "readOnly": False, "baseEntities": []}
    entity = cfg.setdefault("endpoint", {}).setdefault("entity", {}).setdefault("undefined", {})
    entity["persistence"] = False  # LokiMemoryAdapter, autosave off; loads its two sample users and groups
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    (peer / _LAUNCHER).write_text(_LAUNCHER_TEXT)


def install_scimgateway(timeout: float = 600) -> str | None:
    """Install scimgateway SCIMGATEWAY_VERSION under PEER_DIR once; None when ready, else why not (one line)."""
    if scimgateway_installed():
        return None
    deadline = time.monotonic() + timeout
    src = _source()
    if not src.exists():
        return (f"scimgateway source not found at {src}: git clone https://github.com/jelhub/scimgateway there "
                "(or set SCIMGATEWAY_SRC to a clone)")
    if _node() is None:
        return "node not found on PATH (or set SCIMGATEWAY_NODE)"
    npm = shutil.which("npm")
    if npm is None:
        return "npm not found on PATH"
    staging = PEERS_DIR / "scimgateway.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    try:
        reason = _extract(src, staging)
        if reason:
            return reason
        version = json.loads((staging / "package.json").read_text()).get("version")
        if version != SCIMGATEWAY_VERSION:
            return f"scimgateway source at {src} is version {version}, expected {SCIMGATEWAY_VERSION}"
        # --ignore-scripts: its postinstall needs bun and only copies sample files into a parent package.
        argv = [npm, "install", "--ignore-scripts", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"]
        with open(staging / "npm-install.log", "wb") as log:
            try:
                done = subprocess.run(argv, cwd=staging, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      timeout=max(1.0, deadline - time.monotonic()), check=False)
            except subprocess.TimeoutExpired:
                return f"npm install of scimgateway {SCIMGATEWAY_VERSION} did not finish within {timeout:.0f}s"
        if done.returncode != 0:
            tail = (staging / "npm-install.log").read_text(errors="replace").strip().splitlines()[-1:]
            return f"npm install of scimgateway failed ({done.returncode}): {' '.join(tail)[:200]}"
        _configure(staging)
        (staging / _STAMP).write_text(SCIMGATEWAY_VERSION + "\n")
        shutil.rmtree(PEER_DIR, ignore_errors=True)
        staging.rename(PEER_DIR)
    except (OSError, ValueError, KeyError, subprocess.SubprocessError, tarfile.TarError) as exc:
        return f"installing scimgateway failed: {type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging, ignore_errors=True)
    return None


def start_scimgateway(name: str, logs: Path, cpus: set[int]) -> Server:
    """scimgateway + loki on 127.0.0.1, pinned to ``cpus``; call install_scimgateway() first."""
    node = _node()
    if node is None or not scimgateway_installed():
        raise RuntimeError(f"scimgateway {SCIMGATEWAY_VERSION} is not installed in {PEER_DIR}")
    port = procs.free_port()
    # `node --import tsx` resolves tsx and scimgateway's tsconfig from the working directory, so run
    # from PEER_DIR; exec keeps the pid (and the pinning) of the process the harness started.
    argv = ["/bin/sh", "-c", 'cd "$1" && exec "$2" --dns-result-order=ipv4first --import tsx "$3"', "sh",
            str(PEER_DIR), node, _LAUNCHER]
    proc = procs.Proc(name, argv, cpus=cpus, log=logs / f"{name}.log",
                      env={_PORT_ENV: str(port), _TOKEN_ENV: TOKEN})
    procs.wait_port(port, 60, proc)
    return Server(name, proc, f"http://{procs.HOST}:{port}", SCIMGATEWAY_BASE)


def describe() -> dict[str, Any]:
    """What was measured, for the results file: version, runtime and the dependency versions npm chose."""
    versions: dict[str, Any] = {"scimgateway": SCIMGATEWAY_VERSION, "plugin": "loki (in-memory, no persistence)"}
    node = _node()
    if node is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            versions["node"] = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10,
                                              check=False).stdout.strip()
    for package in ("lokijs", "tsx"):
        with contextlib.suppress(OSError, ValueError):
            data = json.loads((PEER_DIR / "node_modules" / package / "package.json").read_text())
            versions[package] = data.get("version")
    return versions
