"""The gofer's confinement as far as it goes today (issue 11): no_new_privs and an empty
network namespace of its own, read from the host's /proc."""
from __future__ import annotations

import json
import os
import uuid


def _status(pid: int, key: str) -> str:
    with open(f"/proc/{pid}/status") as f:
        return next(line.split(":", 1)[1].strip() for line in f if line.startswith(key + ":"))


def test_gofer_has_no_new_privs_and_no_network(runsc, make_bundle):
    cid = "cf-" + uuid.uuid4().hex[:8]
    bundle = make_bundle("sleep", "30")
    assert runsc("create", "--bundle", str(bundle.path), cid).returncode == 0
    try:
        state = json.loads((runsc.root / cid / "state.json").read_text())
        gofer, sentry = state["gofer_pid"], state["pid"]
        assert _status(gofer, "NoNewPrivs") == "1"
        nets = {os.stat(f"/proc/{p}/ns/net").st_ino for p in ("self", gofer, sentry)}
        assert len(nets) == 3  # neither the host's nor the sandbox's network
        with open(f"/proc/{gofer}/net/dev") as f:
            interfaces = [line.split(":")[0].strip() for line in f.readlines()[2:]]
        assert interfaces == ["lo"]
    finally:
        runsc("delete", "--force", cid)
