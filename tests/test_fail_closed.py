"""Fail closed: if the sentry or the gofer dies, however it dies, every workload process
dies within a second, also one that changed its credentials (which clears the kernel's
parent-death signal, the usual guard). The sandbox's watchdog (sentry/watchdog.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid

import pytest
from conftest import process_alive


@pytest.mark.parametrize("victim", ["sentry", "gofer", "spawner"])
def test_workload_dies_with_its_sentry_or_gofer(runsc, make_bundle, victim):
    bundle = make_bundle("probe", "setuid", "1000", "sleep", "60")
    caps = bundle.spec["process"]["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        caps[kind] = sorted(set(caps.get(kind, [])) | {"CAP_SETUID", "CAP_SETGID"})
    bundle.write()
    cid = f"fc-{victim}-{uuid.uuid4().hex[:8]}"
    created = runsc("create", "--bundle", str(bundle.path), cid)
    assert created.returncode == 0, created.stderr
    assert runsc("start", cid).returncode == 0
    state = json.loads((runsc.root / cid / "state.json").read_text())
    sentry, gofer, init = state["pid"], state["gofer_pid"], state["init_pid"]
    deadline = time.monotonic() + 10
    while "1000" not in open(f"/proc/{init}/status").read().split("Uid:")[1].split("\n")[0]:
        assert time.monotonic() < deadline, "the workload never changed its uid"
        time.sleep(0.05)
    with open(f"/proc/{init}/stat") as f:
        spawner = int(f.read().rpartition(")")[2].split()[1])  # the init's parent
    target = {"sentry": sentry, "gofer": gofer, "spawner": spawner}[victim]
    os.kill(target, signal.SIGKILL)
    deadline = time.monotonic() + 1.0
    while process_alive(init) and time.monotonic() < deadline:
        time.sleep(0.02)
    still = process_alive(init)
    subprocess.run(runsc.cmd("delete", "--force", cid), capture_output=True)
    assert not still, f"the workload outlived its {victim} by more than a second"
