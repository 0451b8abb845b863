"""Differential fuzzing: hypothesis writes syscall sequences, and each runs in a sandbox
under runsc-py and in a container under runc (the host kernel's own answers), starting from
identical empty directories. Any difference in the results fails, and hypothesis shrinks
it to a minimal sequence.

The interpreter (tests/fuzz_interp.c) runs as each container's init and reads examples
from a pipe, so one container per runtime serves the whole session: an example costs a
pipe round trip, not a container start.

Profiles (tests/conftest.py): "ci", the default, 1,000 examples; "fuzz", 100,000, for
overnight runs: `pytest tests/test_fuzz_syscalls.py --hypothesis-profile=fuzz`.
"""
from __future__ import annotations

import itertools
import json
import os
import select
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from conftest import REPO, RUNSC_PY, build_static, default_spec
from hypothesis import given
from hypothesis import strategies as st

# What may differ between the two runs, and why. The interpreter itself never prints
# inode numbers, device numbers or timestamps (no two runs agree on those, sandboxed or
# not), and names descriptors by slot. Everything else it prints must be equal.
NORMALISATIONS: dict[str, str] = {
    # (none needed so far: uname's sysname and machine, getpid (1) and getppid (0) in a
    # fresh PID namespace, and RLIMIT_NOFILE from the same spec agree under both.)
}

EXAMPLE_TIMEOUT = 10.0


class Interpreter:
    """One long-lived container whose init is the interpreter, fed over its stdin."""

    def __init__(self, command: list[str], bundle: Path, cleanup: list[str],
                 log: Path | None = None) -> None:
        self.cleanup = cleanup
        self.log = log
        # cwd is the bundle: PYTHONPATH makes `python3 -m runsc_py.cli` this checkout's
        # code, not whichever copy is installed.
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(command, cwd=bundle, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.buffer = b""

    def execute(self, name: str, ops: list[str]) -> list[str]:
        script = "\n".join([f"begin {name}", *ops, "end"]) + "\n"
        self.proc.stdin.write(script.encode())
        self.proc.stdin.flush()
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + EXAMPLE_TIMEOUT
        while b"\nend\n" not in b"\n" + self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                log = self.log.read_text()[-3000:] if self.log and self.log.exists() else ""
                raise AssertionError(f"no answer within {EXAMPLE_TIMEOUT} s to {ops}\n{log}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"the container ended: {self.proc.stderr.read()!r}")
            self.buffer += chunk
        text, _, self.buffer = (b"\n" + self.buffer).partition(b"\nend\n")
        return text.decode(errors="replace").splitlines()[1:]

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        subprocess.run(self.cleanup, capture_output=True)


@pytest.fixture(scope="module")
def interp_bin(tmp_path_factory) -> Path:
    return build_static(tmp_path_factory, Path(__file__).with_name("fuzz_interp.c"))


def _global_proc_modes(tmp: Path) -> dict[str, tuple[int, int, int]]:
    """Mode and owner of each /proc entry that is not a process's, as a new procfs
    instance shows them: a change there (Linux lets root in runc's container chmod them)
    reaches every procfs, the host's included."""
    point = tmp / "proc"
    point.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "proc", "proc", str(point)], check=True)
    try:
        return {e.name: (e.stat(follow_symlinks=False).st_mode,
                         e.stat(follow_symlinks=False).st_uid,
                         e.stat(follow_symlinks=False).st_gid)
                for e in os.scandir(point) if not e.name.isdigit()}
    finally:
        subprocess.run(["umount", str(point)], check=True)


@pytest.fixture(scope="module")
def interpreters(tmp_path_factory, rootfs_template, interp_bin, host_procfs_unchanged):
    """(runsc-py's, runc's): the same bundle, a writable copy each."""
    if not shutil.which("runc"):
        pytest.fail("runc is not installed (the test set-up installs it from Debian)")
    base = tmp_path_factory.mktemp("differential")
    started = []
    for name in ("runsc-py", "runc"):
        bundle = base / name
        shutil.copytree(rootfs_template, bundle / "rootfs", symlinks=True)
        shutil.copy(interp_bin, bundle / "rootfs" / "bin" / "fuzz_interp")
        spec = default_spec()
        spec["process"]["args"] = ["/bin/fuzz_interp"]
        spec["root"]["readonly"] = False
        (bundle / "config.json").write_text(json.dumps(spec))
        cid = f"fz-{uuid.uuid4().hex[:10]}"
        root = str(base / f"{name}-state")
        log = base / f"{name}.log"
        cli = [*RUNSC_PY] if name == "runsc-py" else ["runc"]
        started.append(Interpreter([*cli, "--root", root, "--log", str(log), "run", cid],
                                   bundle, [*cli, "--root", root, "delete", "--force", cid],
                                   log))
    yield started
    for interp in started:
        interp.close()


@pytest.fixture(scope="module")
def host_procfs_unchanged(tmp_path_factory):
    """The fuzzer must never change the host: fail if a run under runc did."""
    tmp = tmp_path_factory.mktemp("procfs")
    before = _global_proc_modes(tmp)
    yield
    changed = {k: v for k, v in _global_proc_modes(tmp).items() if before.get(k, v) != v}
    assert not changed, f"the host's procfs entries changed: {changed}"


# -- the strategies: a tiny namespace, so that operations collide -----------------------

PATHS = st.sampled_from(["a", "b", "d", "d/a", "d/e", "d/e/f", "l", "d/l", "dangling",
                         "d/../a", "a/", "d/", ".", "nonexistent/x"])
# No target leads above the example's directory: a chmod through it could take search
# permission away from an ancestor of the cwd, which runsc-py checks and Linux does not
# (the sentry rebuilds paths from the container root: README, known differences).
LINK_TARGETS = st.sampled_from(["a", "b", "d", "l", "d/a", "missing", "e/f", "d/e",
                                "./a"])
UNIX_PATHS = st.one_of(PATHS, st.sampled_from(["u", "d/u", "/tmp/u"]))
SOCK_TYPES = st.sampled_from(["stream", "dgram"])
XATTR_NAMES = st.sampled_from(["user.a", "user.b", "trusted.x", "security.x", "bogus.x"])
SLOTS = st.sampled_from(["s0", "s1", "s2", "s3"])
MODES = st.sampled_from(["0", "0644", "0755", "0600", "0777", "04755", "01777", "0444"])
TEXT = st.sampled_from(["x", "hello", "0123456789"])
SMALL = st.integers(0, 20).map(str)
ACCESS = st.sampled_from(["rdonly", "wronly", "rdwr"])
# O_PATH is left out: the kernel will not install an O_PATH file into another process,
# so runsc-py gives a read-only descriptor instead (README, "What is there now"); the
# regression tests below check what it does promise.
OPEN_FLAGS = st.tuples(ACCESS, st.sets(st.sampled_from(
    ["creat", "excl", "trunc", "append", "directory", "nofollow", "cloexec", "nonblock"]),
    max_size=3)).map(lambda f: "|".join([f[0], *sorted(f[1])]))


# Paths into /proc, which must refuse every change as Linux's procfs does. Left out:
# /proc/self itself (lstat shows a tmpfs link's size), files whose mode the host's procfs
# changes (/proc/version on some machines) and /proc/sys (read-only in runc's spec).
PROC_PATHS = st.sampled_from(["/proc/x", "/proc/self/status", "/proc/self/x",
                              "/proc/self/fd", "/proc/filesystems", "/proc/1"])
# Linux lets the owner chmod (and touch) the entries that are not a process's
# (/proc/filesystems, ...), and the change reaches every procfs instance, the host's too:
# runc's container must never try it. runsc-py refuses such a chmod (EPERM) as it does
# for a process's entries (README, known differences).
PID_PROC_PATHS = st.sampled_from(["/proc/self/status", "/proc/1", "/proc/self/x"])
RESOLVE = st.sets(st.sampled_from(["beneath", "in_root", "no_symlinks", "no_xdev",
                                   "no_magiclinks"]), min_size=1, max_size=2).map(
    lambda r: "|".join(sorted(r)))


def _op(name: str, *parts) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map(lambda args: " ".join([name, *args]))


OPS = st.one_of(
    _op("open", PATHS, OPEN_FLAGS, MODES),
    _op("openat", st.sampled_from(["cwd", "s0", "s1"]), PATHS, OPEN_FLAGS, MODES),
    _op("creat", PATHS, MODES),
    _op("close", SLOTS),
    _op("read", SLOTS, SMALL),
    _op("pread", SLOTS, SMALL, SMALL),
    _op("write", SLOTS, TEXT),
    _op("pwrite", SLOTS, TEXT, SMALL),
    _op("lseek", SLOTS, SMALL, st.sampled_from(["0", "1", "2"])),
    _op("dup", SLOTS),
    _op("dup2", SLOTS, st.sampled_from(["10", "11"])),
    _op("dup3", SLOTS, st.sampled_from(["10", "11"]), st.sampled_from(["0", "cloexec"])),
    _op("fcntl", SLOTS, st.sampled_from(["getfl", "getfd", "dupfd"]), st.just("0")),
    _op("fcntl", SLOTS, st.just("setfd"), st.sampled_from(["0", "1"])),
    _op("fcntl", SLOTS, st.just("setfl"), st.sampled_from(["0", "append", "nonblock"])),
    _op("ftruncate", SLOTS, SMALL),
    _op("fsync", SLOTS),
    _op("stat", PATHS), _op("lstat", PATHS), _op("fstat", SLOTS),
    _op("statx", PATHS, st.sampled_from(["0", "symlink_nofollow"])),
    _op("access", PATHS, st.sampled_from(["0", "1", "2", "4", "7"])),
    _op("faccessat2", PATHS, st.sampled_from(["0", "2", "4"]),
        st.sampled_from(["0", "eaccess", "symlink_nofollow"])),
    _op("mkdir", PATHS, MODES), _op("rmdir", PATHS), _op("unlink", PATHS),
    _op("unlinkat", PATHS, st.sampled_from(["0", "removedir"])),
    _op("rename", PATHS, PATHS),
    _op("renameat2", PATHS, PATHS, st.sampled_from(["0", "noreplace", "exchange"])),
    _op("link", PATHS, PATHS), _op("symlink", LINK_TARGETS, PATHS), _op("readlink", PATHS),
    _op("chmod", PATHS, MODES), _op("fchmod", SLOTS, MODES),
    _op("utimensat", PATHS, st.sampled_from(["0", "symlink_nofollow"])),
    _op("getdents", SLOTS), _op("chdir", st.sampled_from(["d", "d/e", ".", "l", "a"])),
    st.just("getcwd"), _op("pipe2", st.sampled_from(["0", "cloexec", "nonblock"])),
    _op("umask", st.sampled_from(["0", "022", "077", "0777"])),
    st.sampled_from(["uname", "getpid", "getppid", "kill 0", "getrlimit"]),
    # openat2's resolve restrictions, from the cwd or a directory descriptor.
    _op("openat2", st.sampled_from(["cwd", "s0", "s1"]),
        # (never a /proc entry that is not a process's: a descriptor of it takes fchmod,
        # which under runc changes every procfs instance, the host's too)
        st.one_of(PATHS, st.sampled_from(["/etc/passwd", "../a", "/proc/self/fd/0",
                                          "/proc/self/status", "l/a"])),
        ACCESS, RESOLVE),
    # /proc/self/fd/N: the same file, as the caller's credentials allow.
    _op("reopen", SLOTS, st.sampled_from(["rdonly", "wronly", "rdwr", "rdonly|trunc",
                                          "rdwr|append", "rdonly|directory"])),
    _op("mknod", PATHS, st.sampled_from(["reg|0644", "sock|0600", "0", "reg|04755"])),
    _op("fstatat_empty", SLOTS), _op("faccessat2_empty", SLOTS, st.sampled_from(["2", "4"])),
    _op("fchmodat2_empty", SLOTS, MODES), _op("fchownat_empty", SLOTS, st.just("0")),
    _op("futimens", SLOTS),
    # FIFOs, under names no other operation uses (a blocking open of one would wait for a
    # peer forever, under any kernel): creation, types, non-blocking ends, renames.
    _op("mkfifo", st.sampled_from(["p", "d/p"]), MODES),
    _op("ubind", UNIX_PATHS, SOCK_TYPES), _op("uconnect", UNIX_PATHS, SOCK_TYPES),
    _op("iwatch", PATHS),
    _op("setxattr", PATHS, XATTR_NAMES, TEXT, st.sampled_from(["0", "1", "2"])),
    _op("getxattr", PATHS, XATTR_NAMES), _op("lgetxattr", PATHS, XATTR_NAMES),
    _op("getxattr_size", PATHS, XATTR_NAMES), _op("listxattr", PATHS),
    _op("removexattr", PATHS, XATTR_NAMES),
    _op("open_nb", st.sampled_from(["p", "d/p"]), ACCESS),
    _op("stat", st.sampled_from(["p", "d/p"])), _op("unlink", st.sampled_from(["p", "d/p"])),
    # Changes under /proc.
    _op("creat", PROC_PATHS, MODES), _op("mkdir", PROC_PATHS, MODES),
    _op("unlink", PROC_PATHS), _op("rmdir", PROC_PATHS), _op("chmod", PID_PROC_PATHS, MODES),
    _op("symlink", LINK_TARGETS, PROC_PATHS), _op("rename", PATHS, PROC_PATHS),
    _op("link", PATHS, PROC_PATHS), _op("utimensat", PID_PROC_PATHS, st.just("0")),
    # Opens for writing only, which /proc refuses: a /proc file that opens is a memfd of
    # its content, which differs by nature (PIDs, sizes) and takes fsync (README, known
    # differences); the regression tests below check reads.
    _op("open", st.sampled_from(["/proc/x", "/proc/self/status", "/proc/self/x"]),
        st.sampled_from(["wronly", "rdwr", "wronly|creat", "rdonly|trunc", "rdwr|append"]),
        MODES),
)
# A few set-up operations first, so that later ones find things to collide with.
SETUP = st.lists(st.one_of(_op("creat", PATHS, MODES), _op("mkdir", PATHS, MODES),
                           _op("symlink", LINK_TARGETS, PATHS)), max_size=5)
SEQUENCES = st.tuples(SETUP, st.lists(OPS, min_size=1, max_size=20)).map(
    lambda parts: parts[0] + parts[1])

_names = itertools.count()


def run_both(interpreters, ops: list[str]) -> tuple[list[str], list[str]]:
    name = str(next(_names))
    ours, theirs = (interp.execute(name, ops) for interp in interpreters)
    return ours, theirs


def assert_same(interpreters, ops: list[str]) -> None:
    ours, theirs = run_both(interpreters, ops)
    assert ours == theirs, "\n".join(
        f"{op:40} runsc-py {a!r:45} runc {b!r}"
        for op, a, b in itertools.zip_longest(ops, ours, theirs, fillvalue=""))


@given(ops=SEQUENCES)
def test_syscall_sequences_agree_with_the_host_kernel(interpreters, ops):
    assert_same(interpreters, ops)


# -- regression sequences (shrunk divergences, kept once fixed) -----------------------

def test_interpreter_covers_every_operation(interpreters):
    """A fixed sequence touching each operation once, so a broken op cannot hide."""
    assert_same(interpreters, [
        "creat a 0644", "write s0 hello", "pwrite s0 xy 1", "lseek s0 0 0", "close s0",
        "open a rdwr 0", "read s0 3", "pread s0 4 1", "ftruncate s0 2", "fsync s0",
        "fstat s0", "dup s0", "dup2 s0 10", "dup3 s0 11 cloexec", "fcntl s0 getfl 0",
        "fcntl s0 setfl append", "fcntl s0 getfd 0", "fcntl s0 setfd 1", "fcntl s0 dupfd 0",
        "mkdir d 0755", "symlink a l", "readlink l", "stat l", "lstat l",
        "statx l symlink_nofollow", "access a 4", "faccessat2 a 2 eaccess", "link a b",
        "rename b d/b", "renameat2 a d/b exchange", "renameat2 a d/b noreplace",
        "chmod a 0600", "fchmod s0 0640", "utimensat a 0", "openat cwd d directory 0",
        "getdents s5", "chdir d", "getcwd", "unlink b", "chdir ..", "unlinkat d/b 0",
        "rmdir d/e", "unlinkat d removedir", "pipe2 cloexec", "umask 077", "uname",
        "getpid", "getppid", "kill 0", "getrlimit", "ubind u stream", "uconnect u stream",
        "iwatch ."])


def test_root_without_dac_override_gets_eacces(interpreters):
    """Found by the fuzzer: the gofer opened a mode-0 file for a container root that
    lacks CAP_DAC_OVERRIDE (runc's default capabilities). The gofer now acts with the
    caller's effective capabilities, and access() with the real ids' ones."""
    assert_same(interpreters, ["creat a 0", "open a rdonly 0", "access a 4",
                               "faccessat2 a 4 eaccess", "chmod a 0644", "open a rdonly 0"])


def test_dirfd_of_a_deleted_file_is_not_a_directory(interpreters):
    """Found by the fuzzer: openat on a dirfd naming a deleted file said ENOENT."""
    assert_same(interpreters, ["creat a 0644", "unlink a", "openat s0 a rdonly 0",
                               "mkdir d 0755", "open d rdonly|directory 0", "rmdir d",
                               "openat s1 x rdonly 0"])


def test_open_with_o_path_ignores_other_flags(interpreters):
    """Found by the fuzzer: open(O_PATH|O_CREAT) said EINVAL (openat2's rule); open and
    openat ignore what O_PATH does not use. And an O_PATH open used to hang: the kernel
    refuses to install such a file (ADDFD: EBADF) and the answer was lost."""
    assert_same(interpreters, ["open a rdonly|creat|path 0", "open . rdonly|path 0",
                               "fstat s0", "openat s0 missing rdonly 0"])


def test_search_permission_on_the_old_parent_comes_first(interpreters):
    """Found by the fuzzer: rename from a mode-0 directory to a missing one said ENOENT
    (the new parent's lookup) where the kernel says EACCES (the old parent's search)."""
    assert_same(interpreters, ["mkdir d 0", "rename d/a nonexistent/x", "unlink d/a",
                               "mkdir d/e 0755", "link d/a b", "chmod d 0755"])


def test_proc_refuses_changes_as_linux_does(interpreters):
    """Issue 10: /proc was a tmpfs the workload could write into through the gofer
    (`ln -s HOSTPATH /proc/.version.new` made the sentry write a host file). It is now
    read-only to the workload, with procfs's own errnos (the fuzzer shrank each)."""
    assert_same(interpreters, [
        "creat /proc/x 0644", "mkdir /proc/x 0755", "symlink /tmp /proc/.version.new",
        "mknod /proc/y reg|0644", "unlink /proc/filesystems", "unlink /proc/x",
        "rmdir /proc/sys", "rename a /proc/v2", "link a /proc/v3", "chmod /proc/self/status 0",
        "chmod /proc/1 0777", "utimensat /proc/self/status 0", "utimensat /proc/1 0",
        "unlink /proc/self/status", "creat /proc/self/x 0644", "mkdir /proc/self/x 0755",
        "open /proc/self/status wronly 0", "open /proc/filesystems rdonly|trunc 0",
        "open /proc/x wronly|creat 0644", "creat /sys/x 0644", "mkdir /sys/x 0755"])


def test_reopening_a_descriptor_through_proc(interpreters):
    """/proc/self/fd/N opens the same file with what the caller may do to it (the
    access mode may grow, as on Linux); a directory refuses writing, a file O_DIRECTORY."""
    assert_same(interpreters, [
        "creat a 0644", "write s0 hi", "open a rdonly 0", "reopen s1 rdwr", "write s2 yo",
        "reopen s1 rdonly|trunc", "fstat s1", "reopen s1 rdonly|directory",
        "mkdir d 0755", "open d rdonly|directory 0", "reopen s4 rdonly|directory",
        "reopen s4 wronly", "reopen s4 rdonly|trunc", "pipe2 0", "reopen s6 wronly",
        "write s8 x", "read s6 5", "reopen 99 rdonly"])


def test_openat2_resolve_restrictions(interpreters):
    """openat2's RESOLVE_* flags were ignored (a program confining itself inside the
    container was not confined); the gofer now applies them from the directory."""
    assert_same(interpreters, [
        "creat a 0644", "mkdir d 0755", "symlink /etc d/abs", "symlink a l",
        "open d rdonly|directory 0", "openat2 s1 a rdonly beneath",
        "openat2 s1 ../a rdonly beneath", "openat2 s1 /etc/passwd rdonly beneath",
        "openat2 99 /etc/passwd rdonly beneath", "openat2 s1 /etc/passwd rdonly in_root",
        "openat2 s1 abs/passwd rdonly in_root", "openat2 s1 abs/passwd rdonly no_symlinks",
        "openat2 cwd l rdonly no_symlinks", "openat2 cwd /proc/self/fd/0 rdonly no_magiclinks",
        "openat2 cwd /proc/self/fd/0 rdonly in_root",
        "openat2 cwd /proc/self/fd/0 rdonly beneath|no_symlinks",
        "openat2 cwd /proc/self/status rdonly no_xdev", "openat2 cwd a rdonly no_xdev",
        "openat2 cwd /etc/passwd rdonly no_xdev", "openat2 cwd d/../a rdonly beneath",
        "openat2 cwd /proc/self/fd/0 rdonly no_symlinks|no_xdev"])


def test_calls_on_a_descriptor_alone(interpreters):
    """AT_EMPTY_PATH (and futimens) act on the descriptor itself, taken with
    pidfd_getfd: the kernel was left to read the path again (a second thread could
    swap it). A /proc file's descriptor stats as its /proc entry."""
    assert_same(interpreters, [
        "creat a 0644", "fstatat_empty s0", "faccessat2_empty s0 2", "fchmodat2_empty s0 0600",
        "fchownat_empty s0 0", "futimens s0", "stat a", "mkdir d 0700",
        "open d rdonly|directory 0", "fstatat_empty s1", "fchmodat2_empty s1 0755",
        "faccessat2_empty s1 4", "fstatat_empty 99", "open /proc/self/status rdonly 0",
        "fstatat_empty s2", "mknod r reg|0600", "mknod s sock|0644", "stat s"])


def test_truncating_reopen_clears_set_user_id_as_the_caller(interpreters):
    """Found by the fuzzer: O_TRUNC through /proc/self/fd kept a file's set-user-ID bit
    (the sentry truncated with its own CAP_FSETID); the gofer now truncates as the caller."""
    assert_same(interpreters, ["creat a 04755", "open a rdonly 0", "reopen s1 rdonly|trunc",
                               "stat a"])


def test_fifo_ends_without_waiting(interpreters):
    """A FIFO made in the sandbox (the gofer creates it) and its non-blocking ends: a
    writer without a reader is ENXIO, a reader opens at once, then a writer does; an
    empty read is EAGAIN (blocking opens: tests/test_fifo.py)."""
    assert_same(interpreters, ["mkfifo p 0644", "stat p", "open_nb p wronly", "open_nb p rdonly",
                               "open_nb p wronly", "read s0 4", "write s1 hi", "read s0 4",
                               "mkfifo p 0644", "unlink p", "open_nb p rdonly"])


def test_unix_sockets_bound_to_paths(interpreters):
    """AF_UNIX bind makes the socket file in the container tree, as the caller and with
    its umask (the gofer binds the workload's own socket), and getsockname shows the path
    as given; connect and a datagram's peer find it; a taken or dangling name is
    EADDRINUSE, a missing directory ENOENT, /proc refuses."""
    assert_same(interpreters, [
        "ubind u stream", "stat u", "uconnect u stream", "ubind u stream", "mkdir d 0755",
        "chdir d", "ubind ../d/u dgram", "chdir ..", "stat d/u", "uconnect d/u dgram",
        "uconnect d/u stream", "umask 077", "ubind /tmp/u stream", "stat /tmp/u",
        "unlink /tmp/u", "symlink missing l", "ubind l stream", "ubind x/u stream",
        "ubind /proc/u stream", "ubind /proc/self stream", "unlink u", "uconnect u stream",
        "chmod d 0500", "ubind d/v stream"])


def test_reopening_a_socket_through_proc(interpreters):
    """A socket's /proc/self/fd/N: O_DIRECTORY says ENOTDIR (the walk's check) before the
    socket's ENXIO (may_open's). Shrunk from a fuzzer run."""
    assert_same(interpreters, [
        "ubind /tmp/u stream", "dup3 s0 10 cloexec", "reopen s1 rdonly|directory",
        "reopen s1 rdonly", "reopen s0 wronly|directory"])


def test_inotify_sees_the_sandboxs_changes(interpreters):
    """inotify_add_watch is the kernel's (the copy of the tree shares its inodes): a
    watch sees files the gofer makes, writes, changes and removes, as under runc."""
    assert_same(interpreters, [
        "mkdir d 0755", "iwatch d", "creat d/a 0644", "write s0 hi", "chmod d/a 0600",
        "rename d/a d/b", "unlink d/b", "iwatch .", "iwatch missing", "creat x 0", "iwatch x",
        "mkdir d/e 0", "chmod d 0", "iwatch d/e", "iwatch /proc/self/status", "iwatch ."])


def test_extended_attributes(interpreters):
    """setxattr/getxattr/listxattr/removexattr and their l* forms, through the gofer (the
    *xattrat calls on the looked-up file), as under runc."""
    assert_same(interpreters, [
        "creat a 0644", "setxattr a user.a hello 0", "getxattr a user.a",
        "getxattr_size a user.a",
        "setxattr a user.a x 1", "setxattr a user.b x 2", "setxattr a user.b yy 0",
        "listxattr a", "symlink a l", "getxattr l user.b", "lgetxattr l user.b",
        "removexattr a user.a", "removexattr a user.a", "getxattr a user.a", "listxattr a",
        "setxattr a trusted.x v 0", "setxattr a bogus.x v 0", "getxattr missing user.a",
        "chmod a 0400", "setxattr a user.c v 0", "mkdir d 0755", "setxattr d user.a v 0",
        "getxattr d user.a", "setxattr /proc/self/status user.a v 0",
        "getxattr /proc/self/status user.a", "listxattr /proc/self/status"])
