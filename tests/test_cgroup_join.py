"""An existing cgroup at the container's cgroupsPath: an empty one (left behind by a killed
sandbox, or made by a caller) is joined, as runc joins it; one with processes in it is a
one-line error that leaves it and them alone."""
from __future__ import annotations

import json
import os
import subprocess
import uuid

from sentry.cgroup import Cgroup, Resources


def _cgroup_for(cid: str) -> Cgroup:
    return Cgroup(f"/runsc-py/{cid}")


def test_an_empty_cgroup_left_behind_is_joined(runsc, make_bundle):
    cid = "cg-" + uuid.uuid4().hex[:8]
    left = _cgroup_for(cid)
    left.create(Resources())  # what a killed sandbox leaves: the directories, no process
    try:
        bundle = make_bundle("sleep", "30")
        r = runsc("create", "--bundle", str(bundle.path), cid)
        assert r.returncode == 0, r.stderr
        init = json.loads((runsc.root / cid / "state.json").read_text())["init_pid"]
        assert init in left.pids()
        assert runsc("delete", "--force", cid).returncode == 0
        assert not any(os.path.isdir(d) for d in left.dirs().values())
    finally:
        for d in left.dirs().values():
            if os.path.isdir(d):
                os.rmdir(d)


def test_a_cgroup_in_use_is_refused(runsc, make_bundle):
    cid = "cg-" + uuid.uuid4().hex[:8]
    taken = _cgroup_for(cid)
    taken.create(Resources())
    other = subprocess.Popen(["sleep", "30"])
    try:
        taken.add(other.pid)
        bundle = make_bundle("true")
        r = runsc("create", "--bundle", str(bundle.path), cid)
        assert r.returncode != 0
        assert r.stderr.strip().count("\n") == 0 and "in use" in r.stderr, r.stderr
        assert other.poll() is None and other.pid in taken.pids()
        assert not (runsc.root / cid).exists()
    finally:
        other.kill()
        other.wait()
        taken.remove()
