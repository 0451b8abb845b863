"""`runsc-py install` / `uninstall`: register the runtime with Docker (daemon.json), as
gVisor's `runsc install` does, keeping every other entry."""
from __future__ import annotations

import json
import os
import shutil
import sys

from runsc_py.errors import UserError

DAEMON_JSON = "/etc/docker/daemon.json"


def runtime_path() -> str:
    """The installed entry point: the one beside this Python (a shim earlier on PATH,
    such as pyenv's, would cost a shell start on every call dockerd makes)."""
    beside = os.path.join(os.path.dirname(sys.executable), "runsc-py")
    found = beside if os.access(beside, os.X_OK) else shutil.which("runsc-py")
    return os.path.realpath(found or sys.argv[0])


def _load(path: str) -> dict:
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise UserError(f"reading {path}: {e.strerror}") from None
    if not text.strip():
        return {}
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise UserError(f"{path} is not valid JSON ({e}); not changing it") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path} is not a JSON object; not changing it")
    if not isinstance(doc.get("runtimes", {}), dict):
        raise UserError(f"{path}: \"runtimes\" is not an object; not changing it")
    return doc


def _save(path: str, doc: dict) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".runsc-py.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=4)
        f.write("\n")
    os.replace(tmp, path)


def install(path: str, name: str, args: list[str]) -> str:
    doc = _load(path)
    entry: dict = {"path": runtime_path()}
    if args:
        entry["runtimeArgs"] = args
    doc.setdefault("runtimes", {})[name] = entry
    _save(path, doc)
    return f"Runtime {name} added to {path}: {json.dumps(entry)}"


def uninstall(path: str, name: str) -> str:
    doc = _load(path)
    if name not in doc.get("runtimes", {}):
        return f"Runtime {name} is not in {path}: nothing to do"
    del doc["runtimes"][name]
    if not doc["runtimes"]:
        del doc["runtimes"]
    _save(path, doc)
    return f"Runtime {name} removed from {path}"
