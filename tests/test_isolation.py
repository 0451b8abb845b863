"""Attacks that must fail: each isolation claim of DESIGN.md, tried from inside."""
from __future__ import annotations

import os
import uuid

import pytest
from conftest import probe_lines


@pytest.fixture
def host_secret(tmp_path):
    """A file only the host has, at a path the rootfs lacks."""
    path = tmp_path / ("secret-" + uuid.uuid4().hex)
    path.write_text("host secret\n")
    return str(path)


def _run(runsc, make_bundle, *ops, **kw):
    bundle = make_bundle("probe", *ops, readonly=False)
    r = runsc.run(bundle, **kw)
    assert r.returncode == 0, r.stderr
    assert "host secret" not in r.stdout
    return probe_lines(r.stdout), bundle


def test_dotdot_stays_inside(runsc, make_bundle, host_secret):
    got, _ = _run(runsc, make_bundle, "chdir", "/tmp",
                  "open", "../../../../../../.." + host_secret, "rdonly", "0",
                  "open", "/.." + host_secret, "rdonly", "0",
                  "open", "/../../../proc/1/root" + host_secret, "rdonly", "0")
    assert got["open"] == ["ENOENT"] * 3


def test_absolute_symlink_to_root_stays_inside(runsc, make_bundle, host_secret):
    got, _ = _run(runsc, make_bundle, "symlink", "/", "/tmp/rootlink",
                  "symlink", "../../../../..", "/tmp/uplink",
                  "open", "/tmp/rootlink" + host_secret, "rdonly", "0",
                  "open", "/tmp/uplink" + host_secret, "rdonly", "0",
                  "stat", "/tmp/rootlink/bin/busybox")
    assert got["open"] == ["ENOENT", "ENOENT"]
    assert got["stat"][0].startswith("file")  # the link resolves to the container root


def test_symlink_chains_and_loops(runsc, make_bundle, host_secret):
    got, _ = _run(runsc, make_bundle, "symlink", "b", "/tmp/a", "symlink", "c", "/tmp/b",
                  "symlink", "/tmp/../..", "/tmp/c",
                  "open", "/tmp/a" + host_secret, "rdonly", "0",
                  "symlink", "loop2", "/tmp/loop1", "symlink", "loop1", "/tmp/loop2",
                  "open", "/tmp/loop1", "rdonly", "0",
                  "creat", "/tmp/loop1", "644")
    assert got["open"] == ["ENOENT", "ELOOP"]
    assert got["creat"] == ["ELOOP"]


def test_proc_self_root_is_not_the_host(runsc, make_bundle, host_secret):
    got, _ = _run(runsc, make_bundle, "readlink", "/proc/self/root",
                  "open", "/proc/self/root" + host_secret, "rdonly", "0",
                  "open", "/proc/1/root" + host_secret, "rdonly", "0",
                  "open", "/proc/self/cwd" + host_secret, "rdonly", "0")
    assert got["readlink"][0] in ("/", "ENOENT")
    assert got["open"] == ["ENOENT"] * 3


def test_dirfd_opened_before_a_rename(runsc, make_bundle, host_secret):
    got, _ = _run(runsc, make_bundle, "mkdir", "/tmp/d", "755", "mkdir", "/tmp/d/e", "755",
                  "open", "/tmp/d/e", "rdonly|directory", "0",
                  "rename", "/tmp/d", "/tmp/moved",
                  "openat", "3", "../../../../../.." + host_secret, "rdonly", "0",
                  "openat", "3", "..", "rdonly|directory", "0",
                  "fchdir", "3", "getcwd", "chdir", "../../../../..", "getcwd",
                  "open", "." + host_secret, "rdonly", "0")
    assert got["open"] == ["3", "ENOENT"]
    assert got["openat"] == ["ENOENT", "4"]
    assert got["getcwd"] == ["/tmp/moved/e", "/"]


def test_no_descriptor_reaches_the_workload_but_stdio(runsc, make_bundle):
    got, _ = _run(runsc, make_bundle, "fds")
    assert got["fds"] == ["0 1 2"]


def test_denied_syscalls_get_their_errno_and_the_container_goes_on(runsc, make_bundle):
    got, _ = _run(runsc, make_bundle, "mount", "none", "/tmp", "tmpfs", "kexec_load",
                  "unshare", "clone_newns", "chroot", "/tmp",
                  "syscall", "425",  # io_uring_setup: would run path ops unfiltered
                  "syscall", "304",  # open_by_handle_at: the classic container escape
                  "syscall", "321",  # bpf
                  "x32_getpid", "int80_getpid", "echo", "alive")
    assert got["mount"] == ["EPERM"]
    assert got["kexec_load"] == ["EPERM"]
    assert got["unshare"] == got["clone_newns"] == got["chroot"] == ["EPERM"]
    assert got["syscall"] == ["ENOSYS", "EPERM", "EPERM"]
    assert got["x32_getpid"] == got["int80_getpid"] == ["ENOSYS"]
    assert got["echo"] == ["alive"]


def test_device_nodes_cannot_be_made_or_reached(runsc, make_bundle):
    got, _ = _run(runsc, make_bundle, "mknod", "/tmp/mem", "20666", "open", "/dev/mem",
                  "rdonly", "0", "stat", "/dev/sda")
    assert got["mknod"] == ["EPERM"]
    assert got["open"] == ["ENOENT"]


def test_host_processes_are_out_of_reach(runsc, make_bundle):
    got, _ = _run(runsc, make_bundle, "kill", str(os.getpid()), "0", "kill", "-1", "0")
    assert got["kill"][0] == "ESRCH"
    os.kill(os.getpid(), 0)  # and we are still here
    # ptrace of a host process: tests/test_ptrace.py (the sandbox's own are traceable).


def test_host_filesystem_unchanged_by_writes(runsc, make_bundle, tmp_path):
    marker = "/tmp/runsc-py-escape-" + uuid.uuid4().hex
    got, bundle = _run(runsc, make_bundle, "creat", marker, "644", "symlink", "/", "/r",
                       "creat", "/r" + marker + "2", "644")
    assert not os.path.exists(marker) and not os.path.exists(marker + "2")
    assert (bundle.rootfs / marker.lstrip("/")).exists()
