"""The peers' own virtual environment (pycanon, anjana), created from PyPI on first use under .bench-out/.

The peers never enter the project's environment: they run in a separate interpreter, fed a snippet that
prints one JSON object. anjana pins its pycanon, so both come at the versions anjana was released with.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

OUT = Path(".bench-out")
PEERS_VENV = OUT / "peers-venv"
PEERS = ("anjana==1.2.3", "pycanon==1.3.5")  # anjana 1.2.3 depends on pycanon==1.3.5
_READY = PEERS_VENV / ".installed"


def peers_python() -> Path | None:
    """The peers' interpreter, creating the environment if needed; None when it cannot be installed."""
    py = PEERS_VENV / "bin" / "python"
    if _READY.is_file() and _READY.read_text() == "\n".join(PEERS) and py.exists():
        return py
    if PEERS_VENV.exists():
        shutil.rmtree(PEERS_VENV)  # a half-built or outdated environment
    OUT.mkdir(exist_ok=True)
    print(f"installing the peers ({', '.join(PEERS)}) into {PEERS_VENV} ...", file=sys.stderr, flush=True)
    venv.create(PEERS_VENV, with_pip=True)
    r = subprocess.run([str(py), "-m", "pip", "install", "--quiet", *PEERS], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"could not install the peers: {r.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    _READY.write_text("\n".join(PEERS))
    return py


def peer_versions() -> dict[str, str]:
    """Installed versions of the peers (empty when the environment is missing)."""
    py = peers_python()
    if py is None:
        return {}
    code = "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in ('pycanon', 'anjana')}))"
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else {}


def run_peer(code: str, timeout: float = 600) -> dict:
    """Run a snippet in the peers' environment; it prints one JSON object (its last line)."""
    py = peers_python()
    if py is None:
        return {"error": "peers not installed"}
    try:
        r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"}
    return json.loads(r.stdout.strip().splitlines()[-1])
