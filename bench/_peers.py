"""The peers' own virtual environment (pycanon, anjana), created on first use under .bench-out/."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

OUT = Path(".bench-out")
PEERS_VENV = OUT / "peers-venv"
PEERS = ("pycanon==1.3.6", "anjana==1.2.3")


def peers_python() -> Path | None:
    """The peers' interpreter, creating the environment if needed; None when it cannot be installed."""
    py = PEERS_VENV / "bin" / "python"
    if not py.exists():
        OUT.mkdir(exist_ok=True)
        venv.create(PEERS_VENV, with_pip=True)
        r = subprocess.run([str(py), "-m", "pip", "install", "--quiet", *PEERS], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"could not install the peers: {r.stderr.strip()[-500:]}", file=sys.stderr)
            return None
    return py


def run_peer(code: str, timeout: float = 600) -> dict:
    """Run a snippet in the peers' environment; it prints one JSON object."""
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
