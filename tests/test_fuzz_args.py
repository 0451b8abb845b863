"""Differential argument fuzzing: every syscall the sentry emulates, with raw arguments
hypothesis builds (pointers that are NULL, unmapped, kernel addresses or cut off by an
unmapped page; integers with every bit pattern; unknown flag bits; modes with type bits;
open_how of any size; bad timespecs; paths empty, too long or not UTF-8), run once in a
runsc-py sandbox and once in a runc container from identical bundles. The results, what
the call wrote into workload memory and the directory it left must agree, and after every
example the sentry and the gofer must still answer (and the sentry must not have needed
its catch-all: a handler that raised is a bug even when the errno came out right).

The interpreter (tests/argfuzz_interp.c) runs as each container's init and is fed over a
pipe by test_fuzz_syscalls's Interpreter, one container per runtime for the module.

execve, execveat, chdir and fchdir are left out: they are becoming plain passthrough.
By default (the "ci" profile) a bounded number of examples, about 30 s; the "fuzz"
profile runs many more: `pytest tests/test_fuzz_args.py --hypothesis-profile=fuzz`.
"""
from __future__ import annotations

import itertools
import struct
from pathlib import Path

import pytest
from conftest import build_static
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fuzz_syscalls import (  # noqa: F401 (the fixtures)
    Interpreter,
    host_procfs_unchanged,
    interpreters,
)

from syscalls.table import TABLE

NR = {s.name: s.nr for s in TABLE.values()}

# The profile's count (ci: 1,000, about 20 s: one syscall and a directory listing in
# each of two long-lived containers per example).
EXAMPLES = settings.default.max_examples

# What is compared of each struct the kernel writes, as byte ranges. Everything else
# differs between any two runs (device and inode numbers, times, free space, the
# kernel's identity, which runsc-py virtualises: release and version) and is left out.
COMPARED: dict[str, list[tuple[int, int]]] = {
    # struct stat: nlink, mode, uid, gid, rdev, size
    "stat": [(16, 40), (40, 48), (48, 56)],
    # struct statx: mask, nlink, uid, gid, mode, size, attributes_mask, rdev
    "statx": [(0, 4), (16, 30), (40, 48), (56, 64), (128, 136)],
    # struct statfs: f_type, f_bsize, f_namelen, f_frsize
    "statfs": [(0, 16), (64, 80)],
    # struct utsname: sysname, nodename, machine, domainname
    "uts": [(0, 130), (260, 390)],
    # struct sysinfo: totalhigh, freehigh, mem_unit (memory, load and uptime are the
    # container's own under runsc-py, the host's under runc)
    "sysinfo": [(88, 112)],
    # struct timex: modes, status, constant, precision, tolerance, tick, tai (the
    # offset, frequency, errors and time move between any two reads of the clock)
    "timex": [(0, 4), (40, 44), (48, 72), (88, 96), (160, 164)],
}
# Divergences the generator steers clear of, and why they are not fixed here.
DIVERGENCES = {
    "relative paths near PATH_MAX": "the sentry sends the gofer cwd + path, which can pass "
    "PATH_MAX (ENAMETOOLONG) where Linux walks a relative path from the cwd; the same for "
    "any path below a cwd deeper than PATH_MAX. Goes away once the gofer resolves from the "
    "caller's cwd/dirfd descriptor (issue 10: descriptors by pidfd_getfd, not by path).",
}
DIVERGENCES["O_PATH"] = ("openat2 with O_PATH: the kernel will not install an O_PATH file "
                          "into another process and openat2's open_how is in memory, so "
                          "runsc-py opens read-only instead (README): O_PATH is generated "
                          "for open and openat only (the kernel opens those itself)")
DIVERGENCES["linkat"] = (
    "linkat(fd, path, ..., AT_EMPTY_PATH) without CAP_DAC_READ_SEARCH: Linux refuses "
    "(ENOENT) a descriptor opened with other credentials than the caller's present ones, "
    "which the sentry cannot see (the gofer opened them all); runsc-py treats every "
    "descriptor as the caller's own: linkat from stdin (the runtime's pipe) is not generated")
NORMALISATIONS = {
    "region": "only the COMPARED fields of a struct the kernel fills",
    "EFAULT": "what a call that failed with EFAULT left in memory (the kernel and "
              "process_vm_writev stop at different bytes of a partial copy)",
}


# -- argument strategies ---------------------------------------------------------------

def _hex(data: bytes) -> str:
    return data.hex()


BAD_POINTERS = st.sampled_from([
    "0", "1", "4096", "@none", "0xffffffffff600000", "0xffff888000000000",
    "0xffffffff81000000", "0x800000000000", "0x7ffffffff000", "-1", "-4096"])


def pointer(content: st.SearchStrategy[bytes], edge: st.SearchStrategy[bytes] | None = None
            ) -> st.SearchStrategy[str]:
    """Bytes in memory (after them more memory, a PROT_NONE page, or read-only pages),
    or a pointer that is no good."""
    edge = edge if edge is not None else content
    return st.one_of(
        content.map(lambda b: "@mid:" + _hex(b)),
        content.map(lambda b: "@mid:" + _hex(b)),
        edge.map(lambda b: "@edge:" + _hex(b)),
        content.map(lambda b: "@ro:" + _hex(b)),
        BAD_POINTERS)


# Nothing above the example's directory: a chmod there could take search permission away
# from an ancestor of the cwd, which runsc-py checks and Linux does not (README, known
# differences: the sentry rebuilds paths from the container root).
NAMES = [b"f", b"d", b"e", b"n", b"n/x", b"n/new", b"l", b"ld", b"dl", b"ro", b"missing",
         b"new", b"d/g", b"d/new", b"e/new", b"f/", b"d/", b"e/", b"l/", b"ld/", b"dl/",
         b"new/", b"f/x", b"missing/x", b"", b".", b"d/..", b"/nonexistent",
         b"\xff\xfe", b"new\nline", b"d//g", b"./f", b"ld/g", b"e/.", b"e/.."]
# PATH_MAX's edge with absolute paths (to /tmp: a chmod of / would take search permission
# from the cwd's ancestors, see NAMES): runsc-py joins a relative path to the cwd's, and
# the gofer refuses the result beyond PATH_MAX where Linux walks from the cwd (a known
# difference: DIVERGENCES).
LONG_NAMES = [b"x" * 255, b"x" * 256, b"d/" + b"x" * 256, b"./" * 2000 + b"f",
              b"/" * 4092 + b"tmp", b"/" * 4093 + b"tmp", b"/tmp/" + b"./" * 2045,
              b"/tmp/" + b"./" * 2046,
              b"a/" * 2100, b"x" * 5000]
PATH_BYTES = st.one_of(st.sampled_from(NAMES), st.sampled_from(NAMES),
                       st.sampled_from(LONG_NAMES),
                       # random bytes too, kept below the example's directory (see NAMES)
                       st.binary(max_size=12).filter(
                           lambda b: not b.startswith(b"/") and b".." not in b))
# A path: NUL-terminated; at a page's end also without its NUL (the string runs into
# the unmapped page).
PATH = pointer(PATH_BYTES.map(lambda p: p + b"\0"),
               st.one_of(PATH_BYTES, PATH_BYTES.map(lambda p: p + b"\0")))

U64 = st.integers(0, 2**64 - 1)
BITS = st.integers(0, 63).map(lambda b: 1 << b)


def number(common: list[int]) -> st.SearchStrategy[str]:
    """An integer register: a common value, one with an unknown bit or the high half
    set, or any 64 bits."""
    base = st.sampled_from(common)
    return st.one_of(base, base, base, st.tuples(base, BITS).map(lambda t: t[0] | t[1]),
                     base.map(lambda v: v | 0xFFFFFFFF00000000), U64).map(
        lambda v: str(v & (2**64 - 1)))


DIRFD = st.one_of(st.sampled_from(["-100", "$dir", "$file", "0", "-1", "9999",
                                   str(2**32 - 100), str(2**32 + 3), "0x7fffffff"]),
                  number([0xFFFFFF9C]))
OF = {"rdonly": 0, "wronly": 1, "rdwr": 2, "accmode": 3, "creat": 0o100, "excl": 0o200,
     "trunc": 0o1000, "append": 0o2000, "nonblock": 0o4000, "directory": 0o200000,
     "nofollow": 0o400000, "cloexec": 0o2000000, "path": 0o10000000,
     "tmpfile": 0o20200000, "noatime": 0o1000000}
_COMMON_OPEN = [0, 1, 2, 3, OF["creat"] | 1, OF["creat"] | OF["excl"] | 2,
                OF["trunc"] | 1, OF["trunc"], OF["directory"], OF["creat"] | OF["directory"],
                OF["nofollow"], OF["tmpfile"] | 2,
                OF["tmpfile"], OF["tmpfile"] | OF["excl"] | 1, OF["append"] | 2,
                OF["noatime"], OF["creat"] | OF["trunc"] | 2]
OPEN_FLAGS = number(_COMMON_OPEN).map(
    lambda v: str(int(v) & ~OF["path"]))  # openat2's: O_PATH is DIVERGENCES
# open and openat: O_PATH too, alone and with what it ignores.
PATH_OPEN_FLAGS = st.one_of(OPEN_FLAGS, number([
    OF["path"], OF["path"] | OF["nofollow"], OF["path"] | OF["directory"],
    OF["path"] | OF["creat"] | OF["excl"] | 2, OF["path"] | OF["trunc"] | 1,
    OF["path"] | OF["tmpfile"] | 2, OF["path"] | OF["nofollow"] | OF["cloexec"]]))
MODE = number([0, 0o644, 0o755, 0o7777, 0o1777, 0o10644, 0o20644, 0o60644, 0o140644,
               0o40755, 0o170644, 0xFFFF, 0x80001000 | 0o644, 2**32 | 0o644])
AT_FLAGS = number([0, 0x100, 0x200, 0x400, 0x800, 0x1000, 0x1100, 0x2000, 0x4000, 0x6000,
                   0x8000])
DEV = number([0, 0x0103, 0x0501, 0x0800, 2**32 + 0x0103, 0xFFFFFFFF])
ID = number([0, 1000, 0xFFFFFFFF, 0xFFFF, 2**32 + 5])
SIZE = number([0, 1, 4, 8, 23, 24, 25, 32, 64, 65, 128, 4095, 4096, 4097, 2**31 - 1,
               2**31, 2**32 + 24])


def out_buffer(size: int) -> st.SearchStrategy[str]:
    """A buffer the kernel writes a struct of `size` bytes into; at a page's end it may be
    too short (the struct runs into the unmapped page)."""
    return pointer(st.just(b"\xaa" * size),
                   st.integers(0, size).map(lambda n: b"\xaa" * n))


def open_how() -> st.SearchStrategy[tuple[str, str]]:
    """(pointer, size) of a struct open_how: right, too small, too big, nonzero tails."""
    def build(flags: str, mode: int, resolve: int, extra: bytes, size: int | None
              ) -> tuple[str, bytes, int]:
        raw = (int(flags).to_bytes(8, "little") + mode.to_bytes(8, "little")
               + resolve.to_bytes(8, "little") + extra)
        return raw, len(raw) if size is None else size

    return st.tuples(
        OPEN_FLAGS,
        st.one_of(st.sampled_from([0, 0o644, 0o7777, 0o10000, 2**32]), U64),
        st.one_of(st.sampled_from([0, 1, 2, 4, 8, 0x10, 0x18, 0x20, 0x40]), U64),
        st.one_of(st.just(b""), st.sampled_from([b"\0" * 8, b"\0" * 4072, b"\0" * 4073,
                                                 b"\0" * 7 + b"\1", b"\1"])),
        st.one_of(st.none(), st.sampled_from([0, 8, 23, 24, 25, 32, 4096, 4097, 2**32 + 24]))
    ).flatmap(lambda t: st.tuples(
        pointer(st.just(build(*t)[0]),
                st.integers(0, len(build(*t)[0])).map(lambda n: build(*t)[0][:n])),
        st.just(str(build(*t)[1]))))


NSEC = st.sampled_from([0, 1, 999_999_999, 1_000_000_000, -1, (1 << 30) - 1, (1 << 30) - 2,
                        2**63 - 1])
SEC = st.sampled_from([0, 1, -1, 2**31, 2**62, -(2**62)])


def _pairs(usec: bool) -> st.SearchStrategy[bytes]:
    frac = NSEC if not usec else st.sampled_from([0, 999_999, 1_000_000, -1])
    return st.lists(st.tuples(SEC, frac), min_size=2, max_size=2).map(
        lambda ts: b"".join(s.to_bytes(8, "little", signed=True)
                            + f.to_bytes(8, "little", signed=True) for s, f in ts))


TIMESPECS = pointer(_pairs(False), _pairs(False).flatmap(
    lambda b: st.integers(0, 32).map(lambda n: b[:n])))
TIMEVALS = pointer(_pairs(True), _pairs(True).flatmap(
    lambda b: st.integers(0, 32).map(lambda n: b[:n])))
UTIMBUF = pointer(st.tuples(SEC, SEC).map(
    lambda t: b"".join(v.to_bytes(8, "little", signed=True) for v in t)))

def _timex(modes: int, freq: int, tick: int, usec: int) -> bytes:
    """A struct timex (208 bytes): modes, freq, the time's microseconds and tick set."""
    raw = bytearray(208)
    struct.pack_into("I", raw, 0, modes)
    struct.pack_into("q", raw, 16, freq)
    struct.pack_into("qq", raw, 72, 0, usec)
    struct.pack_into("q", raw, 88, tick)
    return bytes(raw)


# ADJ_* modes: none (a read), OFFSET_SS_READ (a read too), ADJTIME alone (EINVAL), and
# changes (EPERM in a container without CAP_SYS_TIME: the fuzzer's, checked below).
TIMEX_BYTES = st.builds(
    _timex, st.one_of(st.sampled_from([0, 0xA001, 0x8001, 0x8000, 0x8002, 1, 2, 0x4000,
                                       0x0100, 0x2100, 0x2000, 0x0010]),
                      st.integers(0, 2**32 - 1)),
    st.sampled_from([0, 1, 2**62, -(2**62)]), st.sampled_from([0, 10000, 1, 2**40]),
    st.sampled_from([0, 999_999, 1_000_000, -1]))
TIMEX = pointer(TIMEX_BYTES, TIMEX_BYTES.flatmap(
    lambda b: st.integers(0, 208).map(lambda n: b[:n])))
CLOCKID = number([0, 1, 4, 5, 7, 11, 16, 23, 24, 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFE3])
# settimeofday: a timeval (microseconds Linux refuses before the capability, seconds the
# clock cannot hold) and a struct timezone (minutes west beyond 15 hours).
TIMEVAL = pointer(st.tuples(st.sampled_from([0, 1, -1, 8277292035, 8277292036, 2**62]),
                            st.sampled_from([0, 999_999, 1_000_000, 1_000_001, -1, 2**40]))
                  .map(lambda t: struct.pack("qq", *t)),
                  st.sampled_from([b"", b"\0" * 8, b"\0" * 15]))
TIMEZONE = pointer(st.tuples(st.sampled_from([0, 900, 901, -900, -901, 2**31 - 1]),
                             st.sampled_from([0, 1]))
                   .map(lambda t: struct.pack("ii", *t)),
                   st.sampled_from([b"", b"\0" * 4, b"\0" * 7]))

HOSTNAME = st.tuples(st.binary(max_size=70), SIZE).flatmap(
    lambda t: st.tuples(pointer(st.just(t[0])), st.sampled_from(
        [str(len(t[0])), t[1], str(len(t[0]) | 2**32)])))


def call(name: str, *args: st.SearchStrategy) -> st.SearchStrategy[tuple[str, list[str]]]:
    def flat(parts):
        out = []
        for p in parts:
            out.extend(p if isinstance(p, tuple) else [p])
        return name, out
    return st.tuples(*args).map(flat)


def _own_descriptor_link(example: tuple[str, list[str]]) -> bool:
    """linkat(fd, ..., AT_EMPTY_PATH) from stdin: see DIVERGENCES["linkat"]."""
    args = example[1]
    return not (args[0] == "0" and int(args[4], 0) & 0x1000)


def readlink_args() -> st.SearchStrategy:
    return st.sampled_from([1, 5, 64, 4096, 0, -1 & (2**64 - 1), 2**31, 2**32 + 5]).flatmap(
        lambda n: st.tuples(out_buffer(min(n, 64) if 0 < n < 2**31 else 64), st.just(str(n))))


CALLS = st.one_of(
    call("open", PATH, PATH_OPEN_FLAGS, MODE), call("openat", DIRFD, PATH, PATH_OPEN_FLAGS, MODE),
    call("openat2", DIRFD, PATH, open_how()), call("creat", PATH, MODE),
    call("stat", PATH, out_buffer(144)), call("lstat", PATH, out_buffer(144)),
    call("newfstatat", DIRFD, PATH, out_buffer(144), AT_FLAGS),
    call("statx", DIRFD, PATH, AT_FLAGS, number([0, 0x7FF, 0xFFF, 0x80000000]),
         out_buffer(256)),
    call("access", PATH, number([0, 1, 2, 4, 7, 8])),
    call("faccessat", DIRFD, PATH, number([0, 1, 2, 4, 7, 8])),
    call("faccessat2", DIRFD, PATH, number([0, 2, 4, 7, 8]), AT_FLAGS),
    call("readlink", PATH, readlink_args()), call("readlinkat", DIRFD, PATH, readlink_args()),
    call("mkdir", PATH, MODE), call("mkdirat", DIRFD, PATH, MODE),
    call("unlink", PATH), call("unlinkat", DIRFD, PATH, AT_FLAGS), call("rmdir", PATH),
    call("rename", PATH, PATH), call("renameat", DIRFD, PATH, DIRFD, PATH),
    call("renameat2", DIRFD, PATH, DIRFD, PATH, number([0, 1, 2, 3, 4, 5, 6, 8])),
    call("link", PATH, PATH),
    call("linkat", DIRFD, PATH, DIRFD, PATH, AT_FLAGS).filter(_own_descriptor_link),
    call("symlink", PATH, PATH), call("symlinkat", PATH, DIRFD, PATH),
    call("chmod", PATH, MODE), call("fchmodat", DIRFD, PATH, MODE),
    call("fchmodat2", DIRFD, PATH, MODE, AT_FLAGS),
    call("chown", PATH, ID, ID), call("lchown", PATH, ID, ID),
    call("fchownat", DIRFD, PATH, ID, ID, AT_FLAGS),
    call("utime", PATH, UTIMBUF), call("utimes", PATH, TIMEVALS),
    call("futimesat", DIRFD, PATH, TIMEVALS), call("utimensat", DIRFD, PATH, TIMESPECS, AT_FLAGS),
    call("truncate", PATH, number([0, 1, 5, 4096, 2**63 - 1, 2**63, 2**64 - 1])),
    call("mknod", PATH, MODE, DEV), call("mknodat", DIRFD, PATH, MODE, DEV),
    call("statfs", PATH, out_buffer(120)), call("uname", out_buffer(390)),
    call("sethostname", HOSTNAME), call("setdomainname", HOSTNAME),
    call("sysinfo", out_buffer(112)),
    call("adjtimex", TIMEX), call("clock_adjtime", CLOCKID, TIMEX),
    call("settimeofday", TIMEVAL, TIMEZONE),
    call("sched_getaffinity", number([0, 1, 2, 9999]), st.sampled_from(
        [0, 4, 7, 8, 16, 128, 2**32 + 8]).flatmap(lambda n: st.tuples(
            st.just(str(n)), out_buffer(min(n, 128))))),
)
NEW_FD = {"open", "openat", "openat2", "creat"}
# Which argument is which struct the kernel fills, for COMPARED.
STRUCT_ARG = {"stat": (1, "stat"), "lstat": (1, "stat"), "newfstatat": (2, "stat"),
              "statx": (4, "statx"), "statfs": (1, "statfs"), "uname": (0, "uts"),
              "sysinfo": (0, "sysinfo"), "adjtimex": (0, "timex"),
              "clock_adjtime": (1, "timex")}


def normalise(name: str, lines: list[str]) -> list[str]:
    """The call's line with only the COMPARED parts of what it wrote; listings as is."""
    out = []
    for line in lines:
        if not line.startswith("= "):
            out.append(line)
            continue
        result, *regions = line.split(" ")[1:]
        kept = [result]
        for region in regions:
            if result == "EFAULT":
                continue
            arg, _, data = region.partition("=")
            raw = bytes.fromhex(data)
            which = STRUCT_ARG.get(name)
            if which and arg == f"a{which[0]}":
                raw = b"|".join(raw[a:b] for a, b in COMPARED[which[1]])
            kept.append(f"{arg}={raw.hex()}")
        out.append("= " + " ".join(kept))
    return out


@pytest.fixture(scope="module")
def interp_bin(tmp_path_factory) -> Path:
    """The argument interpreter, under the name test_fuzz_syscalls's fixture uses."""
    return build_static(tmp_path_factory, Path(__file__).with_name("argfuzz_interp.c"))


_names = itertools.count()


def _log_errors(interp: Interpreter) -> list[str]:
    """Lines the sentry or gofer logged at error level (a handler that raised)."""
    if interp.log is None or not interp.log.exists():
        return []
    return [line for line in interp.log.read_text(errors="replace").splitlines()
            if "level=ERROR" in line or '"level": "error"' in line]


def run_call(interps: list[Interpreter], name: str, args: list[str]) -> None:
    ex = str(next(_names))
    op = ("sysfd " if name in NEW_FD else "sys ") + " ".join([str(NR[name]), *args])
    before = len(_log_errors(interps[0]))
    ours, theirs = (normalise(name, i.execute(ex, [op])) for i in interps)
    short = " ".join(a if len(a) < 80 else a[:60] + f"...({len(a)})" for a in args)
    assert ours == theirs, f"{name}({short})\n" + "\n".join(
        f"runsc-py {a!r:60} runc {b!r}"
        for a, b in itertools.zip_longest(ours, theirs, fillvalue="") if a != b)
    errors = _log_errors(interps[0])[before:]
    assert not errors, f"{name}({short}): the sentry's handler raised: {errors}"


def test_the_containers_cannot_set_the_clock():
    """settimeofday and adjtimex are generated: the runc container (whose kernel would
    act on them) must not have CAP_SYS_TIME."""
    from conftest import default_spec

    caps = default_spec()["process"]["capabilities"]
    assert not any("CAP_SYS_TIME" in names for names in caps.values())


@settings(max_examples=EXAMPLES)
@given(example=CALLS)
def test_raw_arguments_agree_with_the_host_kernel(interpreters, example):  # noqa: F811
    run_call(interpreters, *example)


# -- regression examples (shrunk divergences, kept once fixed) ---------------------------

def test_settimeofday_checks_the_microseconds_before_the_timezone(interpreters):  # noqa: F811
    """Found by the fuzzer: 1,000,000 microseconds and a timezone running into an
    unmapped page said EFAULT; Linux refuses the microseconds before it copies the
    timezone (EINVAL)."""
    run_call(interpreters, "settimeofday", ["@mid:000000000000000040420f0000000000", "@edge:"])


def test_openat2_finds_a_nonzero_tail_before_an_unmapped_page(interpreters):  # noqa: F811
    """Found by the fuzzer: an open_how of size 4096 whose unknown tail has a nonzero
    byte and then runs into an unmapped page said EFAULT (the sentry read it all at
    once); Linux scans the tail first and stops at the nonzero byte (E2BIG)."""
    run_call(interpreters, "openat2", [
        "4294967196", "@mid:6600",
        "@edge:0000000000000000000000000000000000000000000000000000000000000001", "4096"])


def test_mknod_of_a_device_with_a_trailing_slash(interpreters):  # noqa: F811
    """Found by the fuzzer: mknod("new/", S_IFCHR, 1:3) said EPERM (no devices in the
    sandbox); Linux refuses the missing name asked for as a directory first (ENOENT),
    and CAP_MKNOD is its last check."""
    run_call(interpreters, "mknod", ["@mid:6e65772f00", "8612", "259"])


def test_openat2_cached_opens_a_directory(interpreters):  # noqa: F811
    """Found by the fuzzer: openat2(O_DIRECTORY, RESOLVE_CACHED) said EAGAIN (the
    sentry took O_DIRECTORY for O_TMPFILE, which includes it); Linux refuses only
    O_CREAT, O_TRUNC and O_TMPFILE's own bit from the cache."""
    for path in ("@mid:6600", "@mid:6400"):  # "f" (ENOTDIR), "d"
        run_call(interpreters, "openat2", [
            "-100", path, "@mid:000001000000000000000000000000002000000000000000", "24"])
