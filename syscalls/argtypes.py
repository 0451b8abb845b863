"""The C types of the emulated syscalls' arguments, as the kernel declares them.

The kernel sees an `int` or `umode_t` argument only after its SYSCALL_DEFINE wrapper cut
the 64-bit register down to that type: open(path, 0x100000000 | O_RDONLY, 0) is a plain
read-only open, and mknod's mode 0x80001000|0644 is the FIFO mode 0o10644. The sentry
casts the registers the same way before any handler looks at them, so handlers see the
values the kernel's own code would see (signed types as negative Python ints).
"""
from __future__ import annotations

# "p": a pointer, "l": long or size_t (the register as it is, unsigned), "i": int (s32),
# "u": unsigned int, uid_t, gid_t, dev (u32), "m": umode_t (u16).
ARG_TYPES: dict[str, str] = {
    "open": "pim", "openat": "ipim", "openat2": "ippl", "creat": "pm",
    "stat": "pp", "lstat": "pp", "fstat": "ip", "newfstatat": "ippi", "statx": "ipuup",
    "access": "pi", "faccessat": "ipi", "faccessat2": "ipii",
    "readlink": "ppi", "readlinkat": "ippi",
    "chdir": "p", "fchdir": "u", "chroot": "p",
    "bind": "ipi",
    "getxattr": "pppl", "lgetxattr": "pppl", "setxattr": "pppli", "lsetxattr": "pppli",
    "listxattr": "ppl", "llistxattr": "ppl", "removexattr": "pp", "lremovexattr": "pp",
    "mkdir": "pm", "mkdirat": "ipm",
    "unlink": "p", "unlinkat": "ipi", "rmdir": "p",
    "rename": "pp", "renameat": "ipip", "renameat2": "ipipu",
    "link": "pp", "linkat": "ipipi", "symlink": "pp", "symlinkat": "pip",
    "chmod": "pm", "fchmodat": "ipm", "fchmodat2": "ipmu",
    "chown": "puu", "lchown": "puu", "fchownat": "ipuui",
    "utime": "pp", "utimes": "pp", "futimesat": "ipp", "utimensat": "ippi",
    "truncate": "pl",
    "mknod": "pmu", "mknodat": "ipmu",
    "statfs": "pp",
    "execve": "ppp", "execveat": "ipppi",
    "uname": "p", "sethostname": "pi", "setdomainname": "pi",
    "sysinfo": "p", "sched_getaffinity": "iup", "sysfs": "ill",
    "adjtimex": "p", "clock_adjtime": "ip", "settimeofday": "pp",
}


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


_CAST = {"p": lambda v: v, "l": lambda v: v, "i": _s32,
         "u": lambda v: v & 0xFFFFFFFF, "m": lambda v: v & 0xFFFF}


def cast(types: str, args: tuple[int, ...]) -> tuple[int, ...]:
    """args as the kernel's C types see them; the unused registers unchanged."""
    return tuple(_CAST[t](v) for t, v in zip(types, args, strict=False)) + args[len(types):]
