"""chroot and unshare inside the sandbox, compared with runc (issue 12).

chroot is the kernel's (CAP_SYS_CHROOT, per-process root, inherited across fork, execve
walks from it); the sentry resolves the paths it emulates from the caller's root
(/proc/TID/root). unshare needs no privilege for CLONE_FS, CLONE_FILES and CLONE_SYSVSEM;
new namespaces are refused."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import probe_lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Docker's default capability set: CAP_SYS_CHROOT among them.
DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
               "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
               "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]

# A jail in the container: its own /etc/x ("jail"), an absolute symlink to it, a relative
# one that climbs far above the jail, a directory; and the container's /etc/x ("outer").
SETUP = ("creat", "/etc/x", "644", "write", "3", "outer", "close", "3",
         "mkdir", "/tmp/j", "755", "mkdir", "/tmp/j/etc", "755", "mkdir", "/tmp/j/d", "755",
         "creat", "/tmp/j/etc/x", "644", "write", "3", "jail", "close", "3",
         "symlink", "/etc/x", "/tmp/j/abs", "symlink", "../../../../../etc", "/tmp/j/up",
         "symlink", "/", "/tmp/j/d/toroot")


def _caps(bundle, names: list[str]) -> None:
    bundle.spec["process"]["capabilities"] = {
        k: names for k in ("bounding", "effective", "permitted")}
    bundle.write()


def _both(runsc, runc, make_bundle, *args: str, caps: list[str] = DOCKER_CAPS,
          **kw) -> tuple[str, str]:
    """The same program under runsc-py and runc: (runsc-py's stdout, runc's)."""
    outs = []
    for run in (runsc.run, runc):
        bundle = make_bundle(*args, readonly=False, **kw)
        _caps(bundle, caps)
        r = run(bundle)
        assert r.returncode == 0, r
        outs.append(r.stdout)
    return outs[0], outs[1]


def test_paths_resolve_from_the_new_root(runsc, runc, make_bundle):
    ops = (*SETUP, "open", "/", "rdonly|directory", "0", "chroot", "/tmp/j",
           # cwd is still the container root, outside the jail: relative paths from it
           "stat", "etc/x", "stat", "/etc/x", "readlink", "/abs", "open", "/abs", "rdonly",
           "0", "read", "4", "10", "stat", "/up/x", "stat", "/../../../etc/x",
           "stat", "/d/toroot/etc/x", "stat", "/d/toroot/../../abs",
           "readlink", "/proc/self/root", "stat", "/proc", "access", "/etc/x", "4",
           "mkdir", "/new", "755", "stat", "/new", "rename", "/new", "/d/toroot/renamed",
           "stat", "/renamed", "symlink", "/etc/x", "/l2", "stat", "/l2", "unlink", "/l2",
           "chmod", "/etc/x", "600", "stat", "/etc/x", "truncate", "/abs", "2",
           "stat", "/etc/x", "link", "/etc/x", "/hard", "stat", "/hard",
           "creat", "/d/toroot/made", "600", "rmdir", "/renamed",
           # the root itself, and its parent as `..` names it
           "rmdir", "/", "rename", "/", "/zz", "rename", "/d", "/", "unlink", "/",
           "mkdir", "/", "755", "rmdir", "/..", "rename", "/..", "/zz", "stat", "/zz",
           "chdir", "/", "getcwd", "stat", "..", "stat", "../../../etc/x",
           "chdir", "d", "getcwd", "stat", "../etc/x", "openat", "-100", "../../abs",
           "rdonly", "0", "chroot", "/nonexistent", "chroot", "/etc/x", "chroot", "",
           # back through the descriptor of the old root: the container root again
           "fchdir", "3", "stat", "etc/x", "stat", "tmp/j/made", "chroot", ".",
           "stat", "/etc/x", "stat", "/tmp/j/etc/x", "readlink", "/proc/self/root")
    ours, ref = _both(runsc, runc, make_bundle, "probe", *ops)
    assert ours == ref
    got = probe_lines(ours)
    # Sanity of the reference itself: the jail's file, the outer one from outside it.
    assert got["stat"][:2] == ["file 644 5 1", "file 644 4 1"]
    assert got["read"] == ["4 jail"]
    assert got["getcwd"] == ["/", "/d"]
    assert got["chroot"][1:4] == ["ENOENT", "ENOTDIR", "ENOENT"]
    assert got["readlink"][-1] == "/"


def test_without_the_capability_chroot_is_refused(runsc, runc, make_bundle):
    caps = [c for c in DOCKER_CAPS if c != "CAP_SYS_CHROOT"]
    ops = ("mkdir", "/tmp/j", "755", "chroot", "/tmp/j", "stat", "/tmp/j")
    ours, ref = _both(runsc, runc, make_bundle, "probe", *ops, caps=caps)
    assert ours == ref
    assert probe_lines(ours)["chroot"] == ["EPERM"]


def test_a_child_keeps_the_root(runsc, runc, make_bundle):
    ops = (*SETUP, "chroot", "/tmp/j", "chdir", "/", "fork", "stat", "/etc/x",
           "readlink", "/abs", "stat", "/../etc/x", "getcwd", "exec", "/probe")
    ours, ref = _both(runsc, runc, make_bundle, "probe", *ops)
    assert ours == ref
    got = probe_lines(ours)
    assert got["fork"] == ["child"]
    assert got["stat"] == ["file 644 4 1", "file 644 4 1"]
    assert got["exec"] == ["ENOENT"]  # the kernel walks from the jail too


def test_a_jail_below_a_directory_its_user_cannot_search(runsc, runc, make_bundle):
    """As sshd's privilege separation does: chroot, chdir, then drop to another user.
    The kernel holds the root without asking for search permission above it, so the
    new user reaches everything below it that its permissions allow."""
    ops = ("mkdir", "/tmp/p", "700", "mkdir", "/tmp/p/j", "755", "mkdir", "/tmp/p/j/etc",
           "755", "creat", "/tmp/p/j/etc/x", "644", "close", "3",
           "mkdir", "/tmp/p/j/w", "755", "chmod", "/tmp/p/j/w", "777",
           "chroot", "/tmp/p/j", "chdir", "/",
           "setuid", "1000", "stat", "/etc/x", "open", "/etc/x", "rdonly", "0",
           "creat", "/w/mine", "600", "stat", "/w/mine", "mkdir", "/etc/no", "755",
           "ls", "/w", "getcwd", "stat", "/tmp/p")
    ours, ref = _both(runsc, runc, make_bundle, "probe", *ops)
    assert ours == ref
    got = probe_lines(ours)
    assert got["stat"] == ["file 644 0 1", "file 600 0 1", "ENOENT"]
    assert got["mkdir"][-1] == "EACCES"


def test_descriptor_links_name_the_jail(runsc, runc, make_bundle):
    """chdir and chroot through /proc/self/fd/N and /dev/fd/N (the kernel's own walk
    through the sentry's /proc), and a descriptor link that names no descriptor."""
    ops = (*SETUP, "open", "/tmp/j", "rdonly|directory", "0", "stat", "/proc/self/fd/9",
           "stat", "/dev/fd/9", "chdir", "/proc/self/fd/3", "getcwd", "chdir", "/",
           "chroot", "/dev/fd/3", "chdir", "/", "stat", "/etc/x", "getcwd")
    ours, ref = _both(runsc, runc, make_bundle, "probe", *ops)
    assert ours == ref
    got = probe_lines(ours)
    assert got["stat"] == ["ENOENT", "ENOENT", "file 644 4 1"]
    assert got["getcwd"] == ["/tmp/j", "/"]


SHELL = """
set -e
mkdir -p /tmp/j/bin /tmp/j/etc /tmp/j/run
cp /bin/busybox /tmp/j/bin/busybox
echo jail > /tmp/j/etc/x
echo outer > /etc/x
ln -s /etc/x /tmp/j/abs
chroot /tmp/j /bin/busybox sh -c '
  pwd; /bin/busybox ls /; /bin/busybox cat /etc/x /abs ../../etc/x
  cd ..; pwd; /bin/busybox cat etc/x
  /bin/busybox mkdir /made; /bin/busybox ls -d /made
  echo here > /run/out; /bin/busybox cat /run/out
  /bin/busybox readlink /abs; /bin/busybox stat -c %s /etc/x
'
cd /tmp/j/bin
chroot /tmp/j /bin/busybox sleep 3 &
sleep 1
pid=$!
readlink /proc/$pid/root; readlink /proc/$pid/cwd; readlink /proc/$pid/task/$pid/root
ls /proc/$pid/root/
cat /proc/$pid/root/etc/x
wait
cat /tmp/j/run/out; ls -d /tmp/j/made; cat /etc/x
"""


def test_a_shell_in_a_chroot(runsc, runc, make_bundle):
    """A real program (busybox's chroot and sh) in a jail, and /proc/PID/root and cwd
    of a process there as another process of the container sees them."""
    ours, ref = _both(runsc, runc, make_bundle, "sh", "-c", SHELL)
    assert ours == ref
    lines = ours.splitlines()
    assert lines[:2] == ["/", "abs"]  # pwd; ls (bin etc run are the next lines)
    assert "/tmp/j" in lines and "jail" in lines


UNSHARE = [("0", "0"), ("200", "0"), ("400", "0"), ("40000", "0"), ("600", "0"),
           ("100", "0"),  # CLONE_VM in a single-threaded process
           ("20000", "EPERM"), ("8000000", "EPERM"), ("4000000", "EPERM"),
           ("40000000", "EPERM"), ("20000000", "EPERM"), ("2000000", "EPERM"),
           ("80", "EPERM"),  # CLONE_NEWTIME
           ("1", "EINVAL"), ("100000000", "EINVAL")]


def test_unshare_flags(runsc, runc, make_bundle):
    """Each flag as Linux answers an unprivileged root: CLONE_NEWUSER is the exception
    (Linux lets anyone make a user namespace; the sandbox refuses it, as Docker does)."""
    ops = [a for flags, _ in UNSHARE for a in ("unshare_flags", flags)]
    ops += ["unshare_flags", "10000000", "unshare_flags", "200", "chdir", "/tmp",
            "mkdir", "d", "755", "stat", "d", "getcwd"]
    ours, ref = _both(runsc, runc, make_bundle, "probe", *ops)
    got, want = probe_lines(ours), probe_lines(ref)
    assert got["unshare_flags"][:len(UNSHARE)] == [e for _, e in UNSHARE]
    assert want["unshare_flags"][:len(UNSHARE)] == [e for _, e in UNSHARE]
    assert (got["unshare_flags"][len(UNSHARE)], want["unshare_flags"][len(UNSHARE)]) == (
        "EPERM", "0")
    for op in ("mkdir", "stat", "getcwd"):
        assert got[op] == want[op]
    assert got["getcwd"] == ["/tmp"]


@pytest.fixture
def debian_bundle(make_bundle, tmp_path):
    """A Debian rootfs copy (coreutils' chroot, python3) with busybox-static to put in a
    jail."""
    src = Path("/work/debroot")

    def make(*args: str):
        b = make_bundle(*args, readonly=False)
        shutil.rmtree(b.rootfs)
        subprocess.run(["cp", "-a", str(src), str(b.rootfs)], check=True)
        shutil.copy("/bin/busybox", b.rootfs / "busybox")
        _caps(b, DOCKER_CAPS)
        return b
    return make


PY = r"""
import os
os.makedirs('/tmp/j/etc'); os.makedirs('/tmp/j/bin')
open('/tmp/j/etc/x', 'w').write('jail\n')
os.symlink('/etc/x', '/tmp/j/abs')
import shutil; shutil.copy('/busybox', '/tmp/j/bin/busybox')
import socket
old = os.open('/', os.O_RDONLY)
os.chroot('/tmp/j')
srv, cli = socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)
srv.bind('/s.sock'); srv.listen(); cli.connect('/s.sock')
print(os.path.exists('/s.sock'), sorted(os.listdir('/')))
print(sorted(os.listdir('/')), open('/abs').read().strip(), os.path.realpath('/abs'))
print(os.path.exists('/usr/bin/python3'), os.stat('/etc/x').st_size)
os.chdir('/')
print(os.getcwd(), sorted(os.listdir('..')))
os.fchdir(old); os.chroot('.')
print(os.path.exists('/usr/bin/python3'), os.path.exists('/tmp/j/s.sock'))
"""


def test_real_programs_in_a_debian_container(runsc, runc, debian_bundle):
    """coreutils' chroot running busybox in a jail, and python3's os.chroot."""
    script = ("set -e; mkdir -p /tmp/k/bin; cp /busybox /tmp/k/bin/; echo k > /tmp/k/f; "
              "/usr/sbin/chroot /tmp/k /bin/busybox sh -c 'pwd; ls /; /bin/busybox cat /f ../f'; "
              "python3 -c \"$0\"")
    outs = []
    for run in (runsc.run, runc):
        r = run(debian_bundle("/bin/sh", "-c", script, PY))
        assert r.returncode == 0, r
        outs.append(r.stdout)
    assert outs[0] == outs[1]
    assert outs[0].splitlines()[:4] == ["/", "bin", "f", "k"]


# -- generated: sequences in a jail, each in a child of its own, compared with runc ----
JAILS = st.sampled_from(["/tmp/j", "/tmp/j/d", "tmp/j", "/tmp/j/abs", "/tmp/j/up", "/",
                         ".", "..", "/tmp/j/d/toroot", "/nonexistent"])
PATHS = st.sampled_from([
    "/", ".", "..", "../..", "/etc/x", "etc/x", "x", "d", "/d", "/abs", "abs", "/up",
    "/up/x", "/d/toroot", "/d/toroot/etc/x", "/d/../../etc/x", "/tmp/j/etc/x",
    "../../../etc/x", "/proc/self/root", "/proc/self/cwd", "/proc/self/fd/3",
    "/dev/fd/3", "/dev/null", "/nonexistent", "/d/new", "new", "/etc", "tmp/j/abs"])
LINK_TARGETS = st.sampled_from(["/", "/etc/x", "..", "../../..", "x", "/d"])
# Paths for calls that change or enter things: none through /proc's or /dev/fd's links
# (their errnos and sizes there are /proc's own matter, not the root's).
FS_PATHS = PATHS.filter(lambda p: not p.startswith(("/proc/", "/dev/fd/")))
JAIL_OPS = st.one_of(
    *(st.tuples(st.just(op), PATHS) for op in ("stat", "readlink", "chdir")),
    *(st.tuples(st.just(op), FS_PATHS) for op in ("lstat", "unlink", "rmdir")),
    st.tuples(st.just("chroot"), PATHS, st.just("chdir"), st.just("/")),
    st.tuples(st.just("open"), PATHS, st.sampled_from(["rdonly", "rdonly|directory", "path"]),
              st.just("644")),
    st.tuples(st.just("open"), FS_PATHS, st.just("wronly|creat"), st.just("644")),
    st.tuples(st.just("access"), PATHS, st.sampled_from(["0", "4"])),
    st.tuples(st.just("mkdir"), FS_PATHS, st.just("755")),
    st.tuples(st.just("symlink"), LINK_TARGETS, FS_PATHS),
    st.tuples(st.just("rename"), FS_PATHS, FS_PATHS),
    st.tuples(st.just("chmod"), FS_PATHS, st.sampled_from(["700", "755"])),
    st.just(("fchdir", "3", "chroot", ".")),  # the classic way back out
    st.just(("getcwd",)),
)
# A child: maybe a descriptor of the old root (3), a chroot and a chdir into it, maybe
# another chdir, then ops. The cwd stays inside the root: a relative path from a cwd
# outside it differs where its walk meets the chroot (README, the trust boundary), and
# test_paths_resolve_from_the_new_root covers that case where it agrees.
CHILD = st.tuples(st.booleans(), JAILS, st.one_of(st.none(), PATHS),
                  st.lists(JAIL_OPS, max_size=8))


def _child_words(keep_old: bool, jail: str, cwd: str | None, ops: list[tuple]) -> list[str]:
    words = ["open", "/", "rdonly|directory", "0"] if keep_old else []
    words += ["chroot", jail, "chdir", "/", *(["chdir", cwd] if cwd else []), "getcwd"]
    for op in ops:
        words += list(op)
    return ["sub", str(len(words)), *words]


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(children=st.lists(CHILD, min_size=1, max_size=12))
def test_generated_sequences_in_a_jail_agree_with_runc(runsc, runc, make_bundle, children):
    """Each child chroots (or fails to), moves, and runs path operations; what every call
    returns, under runsc-py and under runc, must be the same."""
    ops = [w for child in children for w in _child_words(*child)]
    ours, ref = _both(runsc, runc, make_bundle, "probe", *SETUP, *ops)
    assert ours == ref
