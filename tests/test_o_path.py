"""O_PATH descriptors as Linux makes them (issue 12), compared with runc.

open and openat with O_PATH in their flags register are opened by the kernel in the
workload's own mount namespace (README Security, "O_PATH opens"), so the descriptor is a
real O_PATH one: most operations refuse it (EBADF), F_GETFL shows O_PATH, O_NOFOLLOW on a
symlink gives the link, and no read permission is needed.
"""
from __future__ import annotations

import os

from conftest import probe_lines

# As root: a file nobody may read, a symlink to it, a directory only searchable.
SETUP = ("mkdir", "/tmp/t", "0755", "creat", "/tmp/t/f", "0", "close", "3",
         "symlink", "f", "/tmp/t/l", "mkdir", "/tmp/t/x", "0711", "creat", "/tmp/t/x/g", "0644",
         "close", "3", "creat", "/tmp/t/x/secret", "0644", "write", "3", "hidden",
         "close", "3")
# What an O_PATH descriptor of a regular file refuses and allows, on fd 3.
ON_FD3 = ("getfl", "3", "fstat", "3", "read", "3", "1", "write", "3", "x", "fchmod", "3",
          "0644", "fchown", "3", "ftruncate", "3", "fsync", "3", "getdents", "3", "ioctl",
          "3", "mmap", "3", "epoll", "3", "splice", "3", "futimens", "3", "fstatfs", "3",
          "faccess_e", "3", "0", "readlink_e", "3")


def _both(runsc, runc, make_bundle, *ops: str, masked: tuple[str, ...] = ()
          ) -> dict[str, list[str]]:
    """The probe's results under runsc-py and under runc (each its own writable copy of
    the rootfs), which must agree."""
    results = []
    for runtime in (runsc.run, runc):
        bundle = make_bundle("probe", *ops, readonly=False)
        for path in masked:
            (bundle.rootfs / path.lstrip("/")).write_text("secret\n")
            bundle.spec["linux"].setdefault("maskedPaths", []).append(path)
        if any(op == "setuid" for op in ops):  # root for the set-up, then for good
            caps = bundle.spec["process"]["capabilities"]
            for kind in caps:
                caps[kind] = sorted({*caps[kind], "CAP_SETUID", "CAP_SETGID"})
        results.append(probe_lines(runtime(bundle.write()).stdout))
    assert results[0] == results[1]
    return results[0]


def test_an_o_path_descriptor_refuses_what_linux_refuses(runsc, runc, make_bundle):
    got = _both(runsc, runc, make_bundle, *SETUP, "setuid", "1000",
                "open", "/tmp/t/f", "path", "0", *ON_FD3, "open", "/tmp/t/f", "rdonly", "0")
    assert got["setuid"] == ["0"]
    assert got["open"] == ["3", "EACCES"]  # O_PATH needs no read permission
    assert got["getfl"] == ["10000000"]
    assert got["fstat"] == ["file 0 0"]
    for op in ("read", "write", "fchmod", "fchown", "ftruncate", "mmap", "epoll", "splice",
               "futimens"):
        assert got[op][-1] == "EBADF", op  # (SETUP wrote once)


def test_o_nofollow_opens_the_symlink_itself(runsc, runc, make_bundle):
    got = _both(runsc, runc, make_bundle, *SETUP, "setuid", "1000",
                "open", "/tmp/t/l", "path|nofollow", "0", "fstat", "3", "readlink_e", "3",
                "getfl", "3", "open", "/tmp/t/l", "path", "0", "fstat", "4",
                "openat", "-100", "/tmp/t/l", "path|nofollow|cloexec", "0", "getfl", "5")
    assert got["fstat"] == ["symlink 777 1", "file 0 0"]
    assert got["readlink_e"] == ["f"]
    assert got["getfl"] == ["10400000", "10400000"]  # O_PATH|O_NOFOLLOW


def test_only_search_permission_on_the_way(runsc, runc, make_bundle):
    """A directory with only x for others: O_PATH opens in it work, listing does not;
    reopening an O_PATH descriptor through /proc/self/fd asks the file's own permission."""
    got = _both(runsc, runc, make_bundle, *SETUP, "setuid", "1000",
                "open", "/tmp/t/x/secret", "path", "0", "open", "/tmp/t/x", "path|directory",
                "0", "getdents", "4", "openat", "4", "g", "path", "0",
                "open", "/proc/self/fd/3", "rdonly", "0", "read", "6", "16",
                "open", "/proc/self/fd/5", "wronly", "0", "ls", "/tmp/t/x",
                "open", "/tmp/t/f", "path", "0", "open", "/proc/self/fd/7", "rdonly", "0")
    assert got["setuid"] == ["0"]
    assert got["open"] == ["3", "4", "6", "EACCES", "7", "EACCES"]
    assert got["read"] == ["6 hidden"]


def test_o_path_through_proc_and_dev(runsc, runc, make_bundle):
    """The kernel's walk through the synthetic /proc (self pointed at the caller first)
    and to a device node, which O_PATH never opens."""
    got = _both(runsc, runc, make_bundle, *SETUP, "open", "/tmp/t/x/secret", "rdonly", "0",
                "open", "/proc/self/fd/3", "path", "0", "fstat", "4",
                "open", "/proc/self", "path|directory", "0", "getfl", "5",
                "open", "/proc/self/status", "path", "0", "fstat", "6", "read", "6", "4",
                "open", "/dev/null", "path", "0", "fstat", "7", "read", "7", "1",
                "open", "/dev/fd/3", "path", "0", "fstat", "8",
                "open", "/proc/self/fd/7", "rdonly", "0", "read", "9", "4")
    assert got["fstat"] == ["file 644 6", "file 444 0", "chr 666 0", "file 644 6"]
    assert got["read"] == ["EBADF", "EBADF", "0 "]


def test_a_masked_path_stays_masked(runsc, runc, make_bundle):
    """And the masking /dev/null is the container's own: a chmod of the masked path
    changed the host's /dev/null (the gofer bound the host's before it pivoted)."""
    host = os.stat("/dev/null")
    bundle_ops = ("open", "/etc/hidden", "path", "0", "fstat", "3",
                  "open", "/proc/self/fd/3", "rdonly", "0", "read", "4", "16",
                  "chmod", "/etc/hidden", "0700", "stat", "/etc/hidden")
    got = _both(runsc, runc, make_bundle, *bundle_ops, masked=("/etc/hidden",))
    assert got["fstat"] == ["chr 666 0"]
    assert got["read"] == ["0 "]
    assert got["stat"] == ["chr 700 0 1"]
    now = os.stat("/dev/null")
    assert (now.st_mode, now.st_uid, now.st_gid) == (host.st_mode, host.st_uid, host.st_gid)


def test_dotdot_from_the_root_stays_there(runsc, runc, make_bundle):
    """A descriptor of / the gofer opened lives in the gofer's namespace, where the
    kernel's walk is not stopped by the workload's root: `..` there must still stay at
    the container root (the gofer's root mount sits on its parent's root)."""
    got = _both(runsc, runc, make_bundle, "open", "/", "rdonly|directory", "0",
                "openat", "3", "..", "path", "0", "isroot", "4",
                "openat", "3", "../../..", "path|directory", "0", "isroot", "5",
                "open", "/..", "path", "0", "isroot", "6")
    assert got["isroot"] == ["yes", "yes", "yes"]


def test_what_an_o_path_descriptor_names_can_be_changed(runsc, runc, make_bundle):
    """The *at(fd, "", AT_EMPTY_PATH) calls act on an O_PATH descriptor's file, on its
    own mount (writable here; the kernel opened the descriptor in the workload's
    read-only copy), and execveat runs what it names."""
    got = _both(runsc, runc, make_bundle, *SETUP, "open", "/tmp/t/x/g", "path", "0",
                "utimens_e", "3", "fchownat_e", "3", "faccess_e", "3", "2",
                "linkat_e", "3", "/tmp/t/hard", "stat", "/tmp/t/hard",
                "open", "/tmp/t/l", "path|nofollow", "0", "fchownat_e", "4",
                "open", "/bin/probe", "path", "0", "fexecve", "5",
                "open", "/proc/self/fd/3", "wronly", "0")
    assert got["utimens_e"] == ["0"] and got["fchownat_e"] == ["0", "0"]
    assert got["linkat_e"] == ["0"] and got["stat"] == ["file 644 0 2"]
    assert got["faccess_e"] == ["0"]
    assert got["echo"] == ["ran"]
    assert got["open"][-1] == "6"
