"""sysinfo(2) and sched_getaffinity(2): memory and CPUs as the container's limits size them;
sysfs(2): the filesystem types /proc/filesystems shows."""
from __future__ import annotations

import ctypes
import errno
import os
import struct

from syscalls import abi
from syscalls.context import SyscallContext

# The filesystem types the sandbox shows (/proc/filesystems and sysfs(2) alike), in the
# order Linux registers them, and whether each needs no device.
FILESYSTEMS: tuple[tuple[str, bool], ...] = (
    ("sysfs", True), ("tmpfs", True), ("proc", True), ("devpts", True), ("mqueue", True),
    ("overlay", True), ("9p", True), ("ext4", False))

# struct sysinfo on x86_64 (112 bytes)
_SYSINFO = struct.Struct("=q3Q6QH6x2QI4x")
_LOAD_SHIFT = 1 << 16


def sysinfo(ctx: SyscallContext) -> None:
    k = ctx.kernel
    mem = k.memory()
    loads = os.getloadavg()
    procs = k.procfs.count() if k.procfs is not None else 1
    data = _SYSINFO.pack(int(k.uptime()), *(int(x * _LOAD_SHIFT) for x in loads),
                         mem["total"], mem["free"], mem["shared"], mem["buffers"],
                         mem["swap_total"], mem["swap_free"], min(procs, 0xFFFF), 0, 0, 1)
    ctx.write(ctx.args[0], data)
    ctx.reply(0)


def _host_mask_sizes() -> tuple[int, int]:
    """(the smallest length the host's sched_getaffinity takes (nr_cpu_ids' longs), the
    length it writes (its cpumask_size(): NR_CPUS bits unless the masks are off-stack))."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(4096)
    smallest = next(n for n in range(8, 4097, 8)
                    if libc.syscall(abi.NR_SCHED_GETAFFINITY, 0, n, buf) >= 0)
    return smallest, libc.syscall(abi.NR_SCHED_GETAFFINITY, 0, 4096, buf)


_MIN_MASK, _MASK_SIZE = _host_mask_sizes()


def sched_getaffinity(ctx: SyscallContext) -> None:
    """The first N CPUs, N being the container's CPU count (its cpuset, cut to its quota)."""
    pid, size, addr = ctx.args[0] & 0xFFFFFFFF, ctx.args[1], ctx.args[2]
    if size < _MIN_MASK or size % 8:
        raise OSError(errno.EINVAL, "bad size")
    nbytes = min(size, _MASK_SIZE)  # what the kernel writes (and returns)
    if pid and ctx.kernel.procfs is not None and ctx.kernel.procfs.host_pid(pid) is None:
        raise OSError(errno.ESRCH, "no such process")
    n = ctx.kernel.cpu_count()
    ctx.write(addr, ((1 << n) - 1).to_bytes(nbytes, "little"))
    ctx.reply(nbytes)


def sysfs(ctx: SyscallContext) -> int:
    """sysfs(2) over FILESYSTEMS, as fs/filesystems.c answers: 1 name -> index, 2 index
    -> name (with its NUL), 3 -> how many; EINVAL for anything else or not found. The
    host's own list is never shown (the host kernel's configuration)."""
    option, arg1, arg2 = ctx.args[0], ctx.args[1], ctx.args[2]
    names = [name for name, _ in FILESYSTEMS]
    if option == 1:
        name = ctx.read_cstring(arg1).decode(errors="replace")
        if name not in names:
            raise OSError(errno.EINVAL, "no such filesystem type")
        return names.index(name)
    if option == 2:
        index = arg1 & 0xFFFFFFFF  # an unsigned int to the kernel
        if index >= len(names):
            raise OSError(errno.EINVAL, "no such index")
        ctx.write(arg2, names[index].encode() + b"\0")
        return 0
    if option == 3:
        return len(names)
    raise OSError(errno.EINVAL, "bad option")
