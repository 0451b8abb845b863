"""The workload's /proc, synthesised by the sentry.

/proc in the container is an empty tmpfs that the gofer mounted; before the gofer
resolves a path under it, the sentry writes a snapshot of what that path shows: the
sandbox's processes only, with PIDs translated into the sandbox's PID namespace. A file
is replaced by rename, so a descriptor opened earlier keeps its own consistent snapshot.
"""
from __future__ import annotations

import os

from syscalls.context import SyscallContext, TargetGone

_PID_FILES = ("stat", "status", "cmdline", "comm", "environ")
_STATUS_PID_FIELDS = {"Tgid", "Pid", "PPid", "TracerPid"}


class ProcFS:
    def __init__(self, dirfd: int, init_host_pid: int, kernel: object) -> None:
        self.dirfd = dirfd
        self.kernel = kernel
        self.ns_ino = os.stat(f"/proc/{init_host_pid}/ns/pid").st_ino
        self.to_sandbox: dict[int, int] = {}  # host pid -> sandbox pid
        self.to_host: dict[int, int] = {}

    # -- the pid map ---------------------------------------------------------
    def _sandbox_pid(self, host_pid: int) -> int | None:
        try:
            if os.stat(f"/proc/{host_pid}/ns/pid").st_ino != self.ns_ino:
                return None
            with open(f"/proc/{host_pid}/status") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        return int(line.split()[-1])
        except (OSError, ValueError):
            return None
        return None

    def scan(self) -> None:
        to_sandbox = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                ns_pid = self._sandbox_pid(int(name))
                if ns_pid is not None:
                    to_sandbox[int(name)] = ns_pid
        self.to_sandbox = to_sandbox
        self.to_host = {v: k for k, v in to_sandbox.items()}

    def translate(self, host_pid: int) -> int:
        """A host pid as the sandbox sees it (0: outside the sandbox)."""
        if host_pid not in self.to_sandbox:
            ns_pid = self._sandbox_pid(host_pid)
            if ns_pid is None:
                return 0
            self.to_sandbox[host_pid] = ns_pid
            self.to_host[ns_pid] = host_pid
        return self.to_sandbox[host_pid]

    # -- writing the snapshot -------------------------------------------------
    def _write(self, dirfd: int, name: str, data: bytes, mode: int = 0o444) -> None:
        tmp = "." + name + ".new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode,
                     dir_fd=dirfd)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)

    def _remove_pid_dir(self, name: str) -> None:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.dirfd)
        except FileNotFoundError:
            return
        try:
            for entry in os.listdir(fd):
                os.unlink(entry, dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=self.dirfd)

    def _stat_line(self, raw: bytes) -> bytes:
        head, _, tail = raw.rpartition(b") ")
        pid, _, comm = head.partition(b" (")
        fields = tail.split(b" ")
        # state ppid pgrp session tty_nr tpgid: translate ppid, pgrp, session, tpgid.
        for i in (1, 2, 3, 5):
            value = int(fields[i])
            fields[i] = str(self.translate(value) if value > 0 else value).encode()
        pid_ns = str(self.translate(int(pid))).encode()
        return pid_ns + b" (" + comm + b") " + b" ".join(fields)

    def _status(self, raw: bytes) -> bytes:
        out = []
        for line in raw.decode().splitlines():
            key, _, value = line.partition(":\t")
            if key in _STATUS_PID_FIELDS:
                value = str(self.translate(int(value)) if int(value) > 0 else 0)
            elif key in ("NStgid", "NSpid", "NSpgid", "NSsid"):
                value = value.split()[-1]
            out.append(f"{key}:\t{value}" if _ else line)
        return ("\n".join(out) + "\n").encode()

    def refresh_pid(self, ns_pid: int) -> None:
        host_pid = self.to_host.get(ns_pid)
        if host_pid is None or self._sandbox_pid(host_pid) != ns_pid:
            self.scan()
            host_pid = self.to_host.get(ns_pid)
        name = str(ns_pid)
        if host_pid is None:
            self._remove_pid_dir(name)
            return
        try:
            raw = {}
            for f in _PID_FILES:
                with open(f"/proc/{host_pid}/{f}", "rb") as src:
                    raw[f] = src.read()
            st = os.stat(f"/proc/{host_pid}")
        except OSError:
            self._remove_pid_dir(name)
            return
        try:
            os.mkdir(name, 0o555, dir_fd=self.dirfd)
        except FileExistsError:
            pass
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.dirfd)
        try:
            self._write(fd, "stat", self._stat_line(raw["stat"].rstrip(b"\n")) + b"\n")
            self._write(fd, "status", self._status(raw["status"]))
            self._write(fd, "cmdline", raw["cmdline"])
            self._write(fd, "comm", raw["comm"])
            self._write(fd, "environ", raw["environ"], 0o400)
            for f in _PID_FILES:
                os.chown(f, st.st_uid, st.st_gid, dir_fd=fd)
            os.chown(fd, st.st_uid, st.st_gid)
        finally:
            os.close(fd)

    def refresh_listing(self) -> None:
        self.scan()
        for name in os.listdir(self.dirfd):
            if name.isdigit() and int(name) not in self.to_host:
                self._remove_pid_dir(name)
        for ns_pid in self.to_host:
            self.refresh_pid(ns_pid)
        k = self.kernel
        self._write(self.dirfd, "version",
                    f"{k.sysname} version {k.release} {k.version}\n".encode())

    def prepare(self, ctx: SyscallContext, path: bytes) -> bytes:
        """Bring the snapshot of path (normalised, under /proc) up to date; the path to
        resolve, with self and thread-self made concrete for the caller."""
        parts = path.split(b"/")[2:]
        if parts and parts[0] in (b"self", b"thread-self"):
            status = ctx.status()
            tgid = self.translate(int(status["Tgid"]))
            if tgid == 0:
                raise TargetGone()
            if parts[0] == b"self":
                parts[0] = str(tgid).encode()
            else:
                parts[0:1] = [str(tgid).encode(), b"task",
                              str(self.translate(ctx.pid)).encode()]
        if not parts:
            self.refresh_listing()
        elif parts[0].isdigit():
            self.refresh_pid(int(parts[0]))
        else:
            self.refresh_listing()
        return b"/proc/" + b"/".join(parts) if parts else b"/proc"
