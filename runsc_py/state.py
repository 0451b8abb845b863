"""Container state on disk: one directory per container under --root."""
from __future__ import annotations

import datetime
import json
import os
import shutil

from runsc_py.errors import UserError

MAX_ID_BYTES = 1024
STATE_FILE = "state.json"
STARTED_MARK = "started"  # written by the sentry when `start` releases the workload
# Written by `create` as soon as the sentry is forked, before state.json exists: what a
# `delete --force` needs to clean up after a create that was cut short (the command killed).
CREATING_FILE = "creating.json"


def validate_id(container_id: str) -> str:
    """runc's rule of thumb: an ID is a single, plain path component."""
    if not container_id:
        raise UserError("container ID must not be empty")
    if "\0" in container_id:
        raise UserError("invalid container ID: contains a NUL byte")
    if "/" in container_id or container_id in (".", "..") or ".." in container_id:
        raise UserError(f"invalid container ID {container_id!r}: must not contain '/' or '..'")
    if len(container_id.encode("utf-8", "surrogateescape")) > MAX_ID_BYTES:
        raise UserError(f"invalid container ID: longer than {MAX_ID_BYTES} bytes")
    return container_id


def process_start_time(pid: int) -> int | None:
    """The start time of a live process (None when it is gone or a zombie, which runc
    counts as stopped: the sentry is re-parented and may be reaped late)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b") ")[2].split()
    except OSError:
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


class Container:
    def __init__(self, root: str, container_id: str) -> None:
        self.id = validate_id(container_id)
        self.root = root
        self.dir = os.path.join(root, container_id)

    # -- lifecycle of the directory -------------------------------------------
    def create_dir(self) -> None:
        try:
            os.makedirs(self.root, mode=0o711, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create state root {self.root!r}: {e.strerror}") from None
        try:
            os.mkdir(self.dir, 0o711)
        except FileExistsError:
            raise UserError(f"container with id {self.id!r} already exists") from None
        except OSError as e:
            raise UserError(f"cannot create state for {self.id!r}: {e.strerror}") from None

    def remove_dir(self) -> None:
        # state.json first: a removal cut short leaves a directory that `list` ignores and
        # `delete --force` still removes.
        for name in (STATE_FILE, CREATING_FILE):
            try:
                os.unlink(os.path.join(self.dir, name))
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def dir_exists(self) -> bool:
        return os.path.isdir(self.dir)

    def save_creating(self, pid: int, cgroup_path: str) -> None:
        tmp = os.path.join(self.dir, CREATING_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump({"pid": pid, "pid_start": process_start_time(pid),
                       "cgroup_path": cgroup_path}, f)
        os.rename(tmp, os.path.join(self.dir, CREATING_FILE))

    def load_partial(self) -> dict:
        """state.json, else what a create cut short recorded (else nothing): for cleaning up."""
        for name in (STATE_FILE, CREATING_FILE):
            try:
                with open(os.path.join(self.dir, name)) as f:
                    state = json.load(f)
                if isinstance(state, dict):
                    return state
            except (OSError, ValueError):
                continue
        return {}

    def exists(self) -> bool:
        return os.path.isfile(os.path.join(self.dir, STATE_FILE))

    # -- state.json --------------------------------------------------------------
    def save(self, state: dict) -> None:
        tmp = os.path.join(self.dir, STATE_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.rename(tmp, os.path.join(self.dir, STATE_FILE))

    def load(self) -> dict:
        try:
            with open(os.path.join(self.dir, STATE_FILE)) as f:
                return json.load(f)
        except (OSError, ValueError):
            raise UserError(f"container {self.id!r} does not exist") from None

    def status(self, state: dict) -> str:
        pid = state.get("pid", 0)
        start = process_start_time(pid) if pid else None
        if start is None or start != state.get("pid_start"):
            return "stopped"
        if not os.path.exists(os.path.join(self.dir, STARTED_MARK)):
            return "created"
        from sentry.cgroup import Cgroup
        if state.get("cgroup_path") and Cgroup(state["cgroup_path"]).frozen():
            return "paused"
        return "running"

    def oci_state(self, status: str | None = None) -> dict:
        """The runtime spec's state object, as `runc state` prints it; status overrides
        what the processes say (the create hooks see "creating")."""
        state = self.load()
        status = status or self.status(state)
        return {
            "ociVersion": state.get("ociVersion", "1.0.2"),
            "id": self.id,
            "pid": state["pid"] if status != "stopped" else 0,
            "status": status,
            "bundle": state["bundle"],
            "rootfs": state["rootfs"],
            "created": state["created"],
            "owner": "",
            "annotations": state.get("annotations") or {},
        }

    def record(self, bundle: str, rootfs: str, pid: int, gofer_pid: int, init_pid: int,
               oci_version: str, annotations: dict, cgroup_path: str,
               sandbox: list[int] | None = None) -> None:
        """sandbox: the sentry's other processes (gofer, watchdog, init, ...), kept with
        their start times so that a delete finds them after the sentry is gone."""
        self.save({
            "cgroup_path": cgroup_path,
            "sandbox": [[p, t] for p in sandbox or () if (t := process_start_time(p))],
            "ociVersion": oci_version, "id": self.id, "bundle": bundle, "rootfs": rootfs,
            "pid": pid, "pid_start": process_start_time(pid), "gofer_pid": gofer_pid,
            "init_pid": init_pid,
            "created": datetime.datetime.now(datetime.UTC).isoformat()
            .replace("+00:00", "Z"),
            "annotations": annotations,
        })


def list_ids(root: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(root)
                      if os.path.isfile(os.path.join(root, n, STATE_FILE)))
    except FileNotFoundError:
        return []
