"""The syscall table is the single source of truth: the listing and the filter come from it."""
from __future__ import annotations

import errno
import io
import itertools
import re
import struct
import tempfile

import docker_profile
import pytest
from hypothesis import given
from hypothesis import strategies as st

from syscalls.table import TABLE, Kind


def test_listing_names_every_syscall_once(runsc):
    r = runsc("syscalls")
    assert r.returncode == 0
    lines = r.stdout.splitlines()[1:-1]
    rows = [line.split() for line in lines if not line.startswith(" " * 6)]
    assert [int(row[0]) for row in rows] == sorted(TABLE)
    by_name = {row[1]: row for row in rows}
    assert by_name["mount"][2:4] == ["deny", "EPERM"]
    assert by_name["kexec_load"][2:4] == ["deny", "EPERM"]
    assert by_name["openat"][2] == "emulate"
    assert by_name["read"][2] == "passthrough"
    assert by_name["io_uring_setup"][2:4] == ["deny", "ENOSYS"]
    assert "every other number: deny ENOSYS" in r.stdout
    # Each rule is listed under its call with its reason.
    for sc in TABLE.values():
        if not (sc.arg_rules or sc.cap_gate or sc.reason):
            continue
        at = next(i for i, line in enumerate(lines) if line.split()[:2] == [str(sc.nr), sc.name])
        below = lines[at + 1:at + 1 + len(sc.arg_rules) + bool(sc.cap_gate) + bool(sc.reason)]
        for reason in [r.reason for r in sc.arg_rules] + [
                sc.cap_gate.reason if sc.cap_gate else "", sc.reason]:
            assert not reason or any(line.endswith(reason) for line in below), sc.name


def test_every_path_based_call_is_emulated():
    path_calls = """open openat openat2 creat stat lstat newfstatat statx access faccessat
        faccessat2 readlink readlinkat execve execveat chdir mkdir mkdirat unlink
        unlinkat rmdir rename renameat renameat2 link linkat symlink symlinkat chmod
        fchmodat chown lchown fchownat utimensat truncate mknod mknodat statfs""".split()
    kinds = {sc.name: sc.kind for sc in TABLE.values()}
    assert {n: kinds[n] for n in path_calls} == dict.fromkeys(path_calls, Kind.EMULATE)
    # fchdir names no path: the kernel acts on a descriptor the sandbox holds.
    assert kinds["fchdir"] is Kind.PASSTHROUGH


def _pfc(bounding: set[int]) -> str:
    from sentry.platform.seccomp import build_filter

    with tempfile.TemporaryFile("w+") as f:
        build_filter(no_new_privs=True, bounding=bounding).export_pfc(f)
        f.seek(0)
        return f.read()


def _actions(pfc: str) -> dict[int, set[str]]:
    actions: dict[int, set[str]] = {}
    current = None
    for line in io.StringIO(pfc):
        m = re.search(r'filter for syscall "[^"]*" \((\d+)\)', line)
        if m:
            current = int(m.group(1))
        elif current is not None and "action" in line:
            actions.setdefault(current, set()).add(line.split("action")[1].strip(" ;\n"))
    return actions


ALL_CAPS = set(range(41))


def test_filter_is_generated_from_the_table():
    pfc = _pfc(ALL_CAPS)
    actions = _actions(pfc)
    for sc in TABLE.values():
        got = actions.get(sc.nr, set())
        if sc.kind is Kind.EMULATE:
            assert got == {"0x7fc00000"}, sc.name  # SECCOMP_RET_USER_NOTIF
        elif sc.kind is Kind.PASSTHROUGH:
            assert "ALLOW" in got, sc.name
        elif sc.errno != errno.ENOSYS:
            assert got == {f"ERRNO({sc.errno})"}, sc.name
    assert re.search(r"# default action\n\s*action ERRNO\(38\)", pfc)


# -- Docker's default profile is the floor -------------------------------------------------
CAPS = {"CAP_SYS_ADMIN": 21, "CAP_SYS_PTRACE": 19, "CAP_SYS_NICE": 23, "CAP_SYS_CHROOT": 18}
# python-ptrace's name where libseccomp's (Docker's) differs.
DOCKER_NAME = {"timerfd": "timerfd_create"}


def _run_bpf(prog: list[tuple[int, int, int, int]], nr: int, args: tuple[int, ...],
             arch: int = 0xC000003E) -> int:
    """Classic BPF as the kernel runs it on struct seccomp_data (the subset the argument
    rules use)."""
    data = struct.pack("<iI8x6Q", nr, arch, *args)
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = prog[pc]
        pc += 1
        if code == 0x20:                        # ld [k]
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:                      # and #k
            acc &= k
        elif code == 0x15:                      # jeq #k
            pc += jt if acc == k else jf
        elif code == 0x45:                      # jset #k
            pc += jt if acc & k else jf
        elif code == 0x05:                      # ja
            pc += k
        elif code == 0x06:                      # ret #k
            return k
        else:
            raise AssertionError(f"unexpected BPF instruction {code:#x}")


def _nr(name: str) -> int:
    return next(sc.nr for sc in TABLE.values() if sc.name == name)


# Answered by the sentry alone, never passed to the kernel (so no surface Docker's
# profile would keep from it): settimeofday checks its arguments as Linux does, then says
# EPERM (syscalls/sys_time.py), where Docker's filter says EPERM without CAP_SYS_TIME;
# sysfs lists the sandbox's own filesystem types (the list /proc/filesystems shows), where
# Docker refuses the call.
SENTRY_ONLY = {"settimeofday", "sysfs"}


@pytest.mark.parametrize("granted", [set(c) for n in range(len(CAPS) + 1)
                                     for c in itertools.combinations(CAPS, n)])
def test_no_call_passes_that_docker_refuses(granted):
    """Under every combination of the capabilities that gate calls, each call the filter
    lets through (to the kernel or the sentry) is one Docker's profile allows with the
    same capabilities; argument rules are checked below."""
    actions = _actions(_pfc({CAPS[c] for c in granted}))
    for sc in TABLE.values():
        got = actions.get(sc.nr, set())
        if sc.name in SENTRY_ONLY:
            assert got == {"0x7fc00000"}, sc.name
            continue
        if got & {"ALLOW", "0x7fc00000"} and not sc.arg_rules:
            assert docker_profile.allowed(DOCKER_NAME.get(sc.name, sc.name), granted), sc.name
        if sc.cap_gate is not None:
            cap = next(c for c, n in CAPS.items() if n == sc.cap_gate.cap)
            assert (got == {"ERRNO(1)"}) == (cap not in granted), sc.name


# Every namespace flag unshare(2) knows: NS CGROUP UTS IPC USER PID NET TIME.
UNSHARE_NEW = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 \
    | 0x40000000 | 0x80


@given(flags=st.one_of(st.integers(0, 2**64 - 1), st.sampled_from(
    [0, 0x200, 0x400, 0x40000, 0x100, 0x800, 0x10000, 0x80, 0x20000, 0x10000000,
     0x1_0000_0000, 0x1_0002_0000])))
def test_unshare_refuses_exactly_new_namespaces(flags):
    from sentry.platform.seccomp import RET_ALLOW, RET_ERRNO, arg_rules_program

    ret = _run_bpf(arg_rules_program(), _nr("unshare"), (flags, 0, 0, 0, 0, 0))
    want = RET_ERRNO | errno.EPERM if flags & UNSHARE_NEW else RET_ALLOW
    assert ret == want, hex(flags)


u64 = st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 64), st.sampled_from(
    [38, 40, 0x5412, 0x1_0000_5412, 0x1_0000_0028, 0x1_0000_0026, 0xFFFF_FFFF_FFFF_FFFF,
     *docker_profile.PERSONALITIES, *(p | 1 << 32 for p in docker_profile.PERSONALITIES),
     0x0040000, 0x0400000, 0x7E020000, 0x20000, 0x40000000]))


@given(name=st.sampled_from(sorted(TABLE[n].name for n in TABLE if TABLE[n].arg_rules)),
       args=st.tuples(u64, u64, u64, u64, u64, u64))
def test_argument_rules_are_never_looser_than_docker(name, args):
    """What the argument rules let through, Docker lets through for a container with no
    capabilities (the strictest case); what they refuse gets EPERM, as under Docker."""
    from sentry.platform.seccomp import RET_ALLOW, RET_ERRNO, arg_rules_program

    ret = _run_bpf(arg_rules_program(), _nr(name), args)
    # EPERM as Docker's refusals; ptrace's seccomp requests get Linux's own EACCES.
    assert ret in (RET_ALLOW, RET_ERRNO | errno.EPERM, RET_ERRNO | errno.EACCES)
    if ret == RET_ALLOW and name == "unshare":
        # Looser than Docker (which refuses unshare without CAP_SYS_ADMIN), as Linux is:
        # only flags that need no privilege, never a new namespace.
        assert args[0] & (UNSHARE_NEW & 0xFFFFFFFF) == 0, hex(args[0])
    elif ret == RET_ALLOW:
        assert docker_profile.allowed(name, set(), args), (name, [hex(a) for a in args])


@given(high=st.integers(0, 2**32 - 1),
       low=st.one_of(st.sampled_from([37, 38, 39, 40, 41]), st.integers(0, 2**32 - 1)))
def test_socket_refuses_exactly_kcm_and_vsock(high, low):
    """The family the kernel sees is the low 32 bits: those decide, whatever the rest."""
    from sentry.platform.seccomp import RET_ALLOW, arg_rules_program

    family = high << 32 | low
    ret = _run_bpf(arg_rules_program(), _nr("socket"), (family, 1, 0, 0, 0, 0))
    assert (ret == RET_ALLOW) == (family & 0xFFFFFFFF not in (38, 40))


def test_rules_allow_what_programs_need():
    """Not stricter than Docker where programs rely on it: the five personalities, the
    usual socket families, clone without new namespaces, ioctl but TIOCSTI; and the
    rules leave other calls and other architectures to the main filter."""
    from sentry.platform.seccomp import RET_ALLOW, arg_rules_program

    prog = arg_rules_program()
    for p in docker_profile.PERSONALITIES:
        assert _run_bpf(prog, _nr("personality"), (p, 0, 0, 0, 0, 0)) == RET_ALLOW
    assert _run_bpf(prog, _nr("personality"), (0x0400000, 0, 0, 0, 0, 0)) != RET_ALLOW
    for family in (1, 2, 10, 16, 17, 39, 44):
        assert _run_bpf(prog, _nr("socket"), (family, 1, 0, 0, 0, 0)) == RET_ALLOW
    assert _run_bpf(prog, _nr("clone"), (0x01200011, 0, 0, 0, 0, 0)) == RET_ALLOW
    assert _run_bpf(prog, _nr("ioctl"), (0, 0x5401, 0, 0, 0, 0)) == RET_ALLOW
    assert _run_bpf(prog, _nr("read"), (40,) * 6) == RET_ALLOW
    assert _run_bpf(prog, _nr("socket"), (40,) * 6, arch=0x40000003) == RET_ALLOW


PTRACE_REQUESTS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 16, 17, 24, 0x4200, 0x4201,
                   0x4202, 0x4203, 0x4204, 0x4205, 0x4206, 0x4207, 0x4208, 0x4209, 0x420A,
                   0x420B, 0x420C, 0x420D, 0x420E, 0x420F]
SUSPEND = 1 << 21


def _ptrace_answer(request: int, data: int) -> int:
    """What the rules must answer: PTRACE_O_SUSPEND_SECCOMP refused where data is the
    options word (SETOPTIONS, SEIZE), the filter-reading requests refused; the request
    compared on all 64 bits, as the kernel reads a long."""
    from sentry.platform.seccomp import RET_ALLOW, RET_ERRNO

    if request in (0x4200, 0x4206) and data & SUSPEND:
        return RET_ERRNO | errno.EPERM
    if request in (0x420C, 0x420D):
        return RET_ERRNO | errno.EACCES
    return RET_ALLOW


@given(request=st.one_of(st.sampled_from(PTRACE_REQUESTS),
                         st.sampled_from(PTRACE_REQUESTS).map(lambda r: r | 1 << 32),
                         st.sampled_from(PTRACE_REQUESTS).map(lambda r: r | 1 << 63),
                         st.integers(0, 2**64 - 1)),
       data=st.one_of(st.integers(0, 2**64 - 1), st.sampled_from(
           [0, SUSPEND, SUSPEND | 0x7F, 0x7F, 0x001FFFFF, 0x7FFC_0020_0000, 0xFFFF_FFFF_FFFF_FFFF,
            SUSPEND << 32])),
       pid=u64, addr=u64)
def test_ptrace_rules_refuse_exactly_the_seccomp_escapes(request, data, pid, addr):
    """Compiled program against the rule in words: a data word with bit 21 set is refused
    only for SETOPTIONS and SEIZE (for PEEKDATA & co. it is a pointer and passes)."""
    from sentry.platform.seccomp import arg_rules_program

    got = _run_bpf(arg_rules_program(), _nr("ptrace"), (request, pid, addr, data, 0, 0))
    assert got == _ptrace_answer(request, data), (hex(request), hex(data))


def test_ptrace_rules_named_cases():
    from sentry.platform.seccomp import RET_ALLOW, RET_ERRNO, arg_rules_program

    prog = arg_rules_program()

    def run(request: int, data: int) -> int:
        return _run_bpf(prog, _nr("ptrace"), (request, 5, 0, data, 0, 0))

    eperm, eacces = RET_ERRNO | errno.EPERM, RET_ERRNO | errno.EACCES
    assert run(0x4200, SUSPEND) == eperm                      # SETOPTIONS
    assert run(0x4200, SUSPEND | 0x7F) == eperm
    assert run(0x4206, SUSPEND) == eperm                      # SEIZE
    assert run(0x4200, 0x7F) == RET_ALLOW                     # strace's own options
    assert run(0x4206, 0x7F) == RET_ALLOW
    assert run(2, 0x7FFC_0020_0000) == RET_ALLOW              # PEEKDATA, a stack pointer
    assert run(5, SUSPEND) == RET_ALLOW                       # POKEDATA writes this word
    assert run(0x1_0000_4200, SUSPEND) == RET_ALLOW           # the kernel's EIO, not ours
    assert run(0x420C, 0) == eacces and run(0x420D, 0) == eacces
    assert run(0x1_0000_420C, 0) == RET_ALLOW
    # ptrace's rules stay on ptrace.
    assert _run_bpf(prog, _nr("getpid"), (0x4200, 0, 0, SUSPEND, 0, 0)) == RET_ALLOW


def test_no_ptrace_program_refuses_exactly_the_ptrace_access_calls():
    """The fallback where Landlock is missing (sentry/workload.py): EPERM for ptrace and
    the calls that ask ptrace access, nothing else; other architectures are the main
    filter's."""
    from sentry.platform.seccomp import PTRACE_ACCESS_CALLS, RET_ALLOW, RET_ERRNO, no_ptrace_program

    prog = no_ptrace_program()
    for sc in TABLE.values():
        want = RET_ERRNO | errno.EPERM if sc.name in PTRACE_ACCESS_CALLS else RET_ALLOW
        assert _run_bpf(prog, sc.nr, (0,) * 6) == want, sc.name
    assert _run_bpf(prog, _nr("ptrace"), (0,) * 6, arch=0x40000003) == RET_ALLOW
