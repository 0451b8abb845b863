"""OCI hooks, run as the runtime spec says: the container's state on stdin, the hook's
args, env and timeout. A failing createRuntime, createContainer, prestart or
startContainer hook fails the operation; poststart and poststop failures are logged.
As under runc, a hook runs in the bundle directory, and one without "env" gets the
runtime's environment."""
from __future__ import annotations

import json
import logging
import subprocess

from runsc_py.errors import UserError

log = logging.getLogger("runsc-py")
FATAL = {"prestart", "createRuntime", "createContainer", "startContainer"}


def hooks_of(doc: dict, kind: str) -> list[dict]:
    hooks = doc.get("hooks") if isinstance(doc.get("hooks"), dict) else {}
    found = hooks.get(kind) or []
    if not isinstance(found, list) or not all(
            isinstance(h, dict) and isinstance(h.get("path"), str) for h in found):
        raise UserError(f"config.json: hooks.{kind} must be a list of objects with a path")
    for h in found:
        for key in ("args", "env"):
            if h.get(key) is not None and not (isinstance(h[key], list) and all(
                    isinstance(a, str) for a in h[key])):
                raise UserError(f"config.json: hooks.{kind}: {key} must be a list of strings")
        timeout = h.get("timeout")
        if timeout is not None and (type(timeout) is not int or timeout <= 0):
            raise UserError(f"config.json: hooks.{kind}: timeout must be a positive integer")
    return found


def run_hooks(doc: dict, kind: str, state: dict) -> None:
    for hook in hooks_of(doc, kind):
        args = hook.get("args") or [hook["path"]]
        env = (None if hook.get("env") is None
               else dict(e.split("=", 1) for e in hook["env"] if "=" in e))
        timeout = hook.get("timeout")
        try:
            r = subprocess.run(args, executable=hook["path"], input=json.dumps(state).encode(),
                               env=env, cwd=state.get("bundle") or None, capture_output=True,
                               timeout=timeout or None)
            stderr = " ".join(r.stderr.decode(errors="replace").split())  # one line
            problem = f"exit status {r.returncode}: {stderr}" if r.returncode else ""
        except subprocess.TimeoutExpired:
            problem = f"timed out after {timeout} s"
        except OSError as e:
            problem = e.strerror or str(e)
        if problem:
            msg = f"{kind} hook {hook['path']} failed: {problem}"
            if kind in FATAL:
                raise UserError(msg)
            log.warning("%s", msg)
