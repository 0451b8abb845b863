"""The calls Docker's default seccomp profile gates, tried in a sandbox: refused without
the capability, working with it added to the spec, never looser than Docker.

The reference is runc applying Docker's profile (tests/docker_profile.py, resolved for
the spec's capabilities as Docker does): runc has no seccomp profile of its own, so plain
runc lets every one of these calls through. Where runsc-py is stricter than Docker the
difference is named (STRICTER) and checked."""
from __future__ import annotations

import json
import shutil
import uuid

import docker_profile
import pytest
from conftest import REPO, build_static

GATED = ["kcmp", "pidfd_getfd", "process_madvise", "get_mempolicy", "set_mempolicy",
         "move_pages"]
# Allowed whatever the capabilities, as ptrace is (Docker: on Linux >= 4.8).
UNGATED = ["vm_writev", "vm_readv"]
FAMILIES = ["socket:40", "socket:38", "socket:0x100000028", "socket:2", "socket:1"]
PERSONALITIES = ["personality:0", "personality:8", "personality:0x20000",
                 "personality:0x20008", "personality:0xffffffff", "personality:0x400000",
                 "personality:0x40000", "personality:0x100000000"]
OPS = GATED + UNGATED + FAMILIES + PERSONALITIES
# Docker lets this through where runsc-py refuses: the socket family is its low 32 bits
# (Docker compares 64, so 0x1_0000_0028 reaches the kernel as AF_VSOCK).
STRICTER = {"socket:0x100000028"}
BASE_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


@pytest.fixture(scope="session")
def rules_probe(tmp_path_factory):
    return build_static(tmp_path_factory, REPO / "tests" / "rules_probe.c")


def _caps(extra: list[str]) -> dict:
    names = BASE_CAPS + extra
    return {k: names for k in ("bounding", "effective", "permitted", "ambient")}


def _bundle(make_bundle, rules_probe, extra_caps: list[str], docker_seccomp: bool,
            *args: str):
    b = make_bundle(*(args or ("/rules_probe", *OPS)))
    shutil.copy(rules_probe, b.rootfs / "rules_probe")
    b.spec["process"]["capabilities"] = _caps(extra_caps)
    if docker_seccomp:
        b.spec["linux"]["seccomp"] = docker_profile.oci_seccomp(set(BASE_CAPS + extra_caps))
    return b.write()


def _results(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _run_both(runsc, runc, make_bundle, rules_probe, extra_caps):
    r = runsc.run(_bundle(make_bundle, rules_probe, extra_caps, False))
    assert r.returncode == 0, r
    ref = runc(_bundle(make_bundle, rules_probe, extra_caps, True))
    assert ref.returncode == 0, ref
    plain = runc(_bundle(make_bundle, rules_probe, extra_caps, False))
    assert plain.returncode == 0, plain
    return _results(r.stdout), _results(ref.stdout), _results(plain.stdout)


def _never_looser(ours: dict[str, str], docker: dict[str, str], stricter: set[str]) -> None:
    for op in OPS:
        if docker[op] == "-EPERM":
            assert ours[op] == "-EPERM", (op, ours[op])
        elif op in stricter:
            assert ours[op] == "-EPERM", (op, ours[op], docker[op])
        else:
            assert ours[op] == docker[op], (op, ours[op], docker[op])


def test_gated_calls_are_refused_without_the_capability(runsc, runc, make_bundle,
                                                         rules_probe):
    ours, docker, plain = _run_both(runsc, runc, make_bundle, rules_probe, [])
    _never_looser(ours, docker, STRICTER)
    assert {op: ours[op] for op in GATED} == dict.fromkeys(GATED, "-EPERM")
    assert {op: ours[op] for op in UNGATED} == dict.fromkeys(UNGATED, "0")
    # The sibling's memory was written, as under Docker's profile.
    assert ours["sibling"] == docker["sibling"] == "42"
    for op in ("socket:40", "socket:38", "personality:0x400000", "personality:0x40000",
               "personality:0x100000000"):
        assert ours[op] == docker[op] == "-EPERM", op
    for op in PERSONALITIES[:5] + ["socket:2", "socket:1"]:
        assert ours[op] == docker[op] == "0", op
    # Plain runc (no profile) lets the sibling's memory be written: the filter decides.
    assert plain["vm_writev"] == "0" and plain["sibling"] == "42"


def test_gated_calls_work_with_the_capability_added(runsc, runc, make_bundle, rules_probe):
    ours, docker, plain = _run_both(runsc, runc, make_bundle, rules_probe,
                                    ["CAP_SYS_PTRACE", "CAP_SYS_NICE"])
    _never_looser(ours, docker, {"socket:0x100000028"})
    allowed = [op for op in GATED if op != "move_pages"]  # Docker refuses it always
    assert {op: ours[op] for op in allowed} == dict.fromkeys(allowed, "0")
    assert {op: docker[op] for op in allowed} == {op: plain[op] for op in allowed}
    assert ours["move_pages"] == docker["move_pages"] == "-EPERM"
    assert ours["sibling"] == docker["sibling"] == "42"


def _process_json(path, caps: list[str]):
    path.write_text(json.dumps({
        "terminal": False, "args": ["/rules_probe", "vm_writev", "kcmp"], "cwd": "/",
        "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}, "capabilities": _caps(caps)}))
    return path


def test_an_exec_gets_no_capability_outside_the_containers_bounding_set(
        runsc, make_bundle, rules_probe, tmp_path):
    """The spawner refuses it (README, Confinement: a compromised sentry must not get a
    more privileged process than the container's); runc would start it."""
    cid = "t-" + uuid.uuid4().hex[:10]
    b = _bundle(make_bundle, rules_probe, [], False, "sleep", "1000")
    assert runsc("create", "--bundle", str(b.path), cid).returncode == 0
    assert runsc("start", cid).returncode == 0
    r = runsc("exec", "--process", str(_process_json(tmp_path / "p.json", ["CAP_SYS_PTRACE"])),
              cid)
    assert r.returncode == 1
    assert r.stderr == ("runsc-py: exec: capabilities outside the container's bounding set: "
                        "19\n")
    assert runsc("exec", cid, "true").returncode == 0  # the container carries on
    runsc("delete", "--force", cid)


@pytest.mark.parametrize("init_caps,exec_caps", [(["CAP_SYS_PTRACE"], ["CAP_SYS_PTRACE"]),
                                                 (["CAP_SYS_PTRACE"], [])])
def test_an_exec_gets_the_filter_of_its_own_capabilities(runsc, make_bundle, rules_probe,
                                                         tmp_path, init_caps, exec_caps):
    """runsc-py builds each exec'd process's filter from its process.json (under runc the
    profile is the container's, whatever the exec asks: Docker has no per-exec profile)."""
    cid = "t-" + uuid.uuid4().hex[:10]
    b = _bundle(make_bundle, rules_probe, init_caps, False, "sleep", "1000")
    assert runsc("create", "--bundle", str(b.path), cid).returncode == 0
    assert runsc("start", cid).returncode == 0
    r = runsc("exec", "--process", str(_process_json(tmp_path / "p.json", exec_caps)), cid)
    assert r.returncode == 0, r
    want = "0" if exec_caps else "-EPERM"
    assert _results(r.stdout) == {"vm_writev": "0", "kcmp": want, "sibling": "42"}
