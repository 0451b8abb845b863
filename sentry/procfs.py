"""The workload's /proc and /sys, synthesised by the sentry.

/proc and /sys in the container are empty tmpfs mounts that the gofer made; before the
gofer resolves a path under /proc, the sentry writes a snapshot of what that path shows:
the sandbox's processes only, PIDs translated into the sandbox's PID namespace, memory and
CPUs sized to the container's limits. Files are replaced by rename, so a descriptor opened
earlier keeps its own consistent snapshot. Links (exe, cwd, root, fd/N) are symlinks to
container paths, so nothing under /proc leads to the host. /sys holds the CPU topology
only (written once); /sys/fs/cgroup is absent.
"""
from __future__ import annotations

import os
import time
import uuid

from syscalls.context import SyscallContext, TargetGone

_STATUS_PID_FIELDS = {"Tgid", "Pid", "PPid", "TracerPid"}
_FILESYSTEMS = "".join(f"nodev\t{fs}\n" for fs in (
    "sysfs", "tmpfs", "proc", "devpts", "mqueue", "overlay", "9p")) + "\text4\n"
_PER_PID = ("stat", "status", "statm", "cmdline", "environ", "comm", "maps", "limits",
            "mounts", "mountinfo", "cgroup", "exe", "cwd", "root", "fd", "fdinfo", "task")
_PER_TASK = ("stat", "status", "statm", "cmdline", "environ", "comm", "maps", "limits",
             "cgroup", "exe", "cwd", "root")


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _cpu_list(n: int) -> str:
    return "0" if n == 1 else f"0-{n - 1}"


class ProcFS:
    def __init__(self, proc_fd: int, sys_fd: int | None, init_host_pid: int,
                 kernel: object) -> None:
        self.dirfd = proc_fd
        self.kernel = kernel
        self.ns_ino = os.stat(f"/proc/{init_host_pid}/ns/pid").st_ino
        self.to_sandbox: dict[int, int] = {}  # host pid -> sandbox pid
        self.to_host: dict[int, int] = {}
        self._newest_first = True  # tmpfs directory order; checked when first sorting
        self.sys_fd = sys_fd
        self.refresh_sys()

    # -- the pid map -----------------------------------------------------------
    def _sandbox_pid(self, host_pid: int) -> int | None:
        try:
            if os.stat(f"/proc/{host_pid}/ns/pid").st_ino != self.ns_ino:
                return None
            with open(f"/proc/{host_pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"NSpid:"):
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
        """A host pid (or tid) as the sandbox sees it (0: outside the sandbox)."""
        if host_pid not in self.to_sandbox:
            ns_pid = self._sandbox_pid(host_pid)
            if ns_pid is None:
                return 0
            self.to_sandbox[host_pid] = ns_pid
            self.to_host[ns_pid] = host_pid
        return self.to_sandbox[host_pid]

    def host_pid(self, ns_pid: int) -> int | None:
        host = self.to_host.get(ns_pid)
        if host is None or self._sandbox_pid(host) != ns_pid:
            self.scan()
            host = self.to_host.get(ns_pid)
        return host

    # -- writing -----------------------------------------------------------------
    @staticmethod
    def _write(dirfd: int, name: str, data: bytes | str, mode: int = 0o444) -> None:
        if isinstance(data, str):
            data = data.encode()
        tmp = "." + name + ".new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode,
                     dir_fd=dirfd)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)

    @staticmethod
    def _symlink(dirfd: int, name: str, target: bytes | str) -> None:
        tmp = "." + name + ".new"
        try:
            os.unlink(tmp, dir_fd=dirfd)
        except FileNotFoundError:
            pass
        os.symlink(target, tmp, dir_fd=dirfd)
        os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)

    @staticmethod
    def _subdir(dirfd: int, name: str, mode: int = 0o555) -> int:
        try:
            os.mkdir(name, mode, dir_fd=dirfd)
        except FileExistsError:
            pass
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dirfd)

    def _rmtree(self, dirfd: int, name: str) -> None:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=dirfd)
        except FileNotFoundError:
            return
        except OSError:
            os.unlink(name, dir_fd=dirfd)
            return
        try:
            for entry in os.listdir(fd):
                try:
                    os.unlink(entry, dir_fd=fd)
                except IsADirectoryError:
                    self._rmtree(fd, entry)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=dirfd)

    # -- per-process content ---------------------------------------------------
    def _pid_field(self, value: bytes) -> bytes:
        n = int(value)
        return str(self.translate(n) if n > 0 else n).encode()

    def _stat(self, raw: bytes) -> bytes:
        head, _, tail = raw.rstrip(b"\n").rpartition(b") ")
        pid, _, comm = head.partition(b" (")
        fields = tail.split(b" ")
        for i in (1, 2, 3, 5):  # ppid pgrp session tpgid
            fields[i] = self._pid_field(fields[i])
        # starttime (field 22), in ticks of CLOCK_BOOTTIME: the reader's time namespace's.
        ticks = int(fields[19]) - self.kernel.boot_offset * os.sysconf("SC_CLK_TCK")
        fields[19] = str(max(0, ticks)).encode()
        return self._pid_field(pid) + b" (" + comm + b") " + b" ".join(fields) + b"\n"

    def _status(self, raw: bytes) -> bytes:
        out = []
        for line in raw.decode().splitlines():
            key, sep, value = line.partition(":\t")
            if key in _STATUS_PID_FIELDS:
                value = self._pid_field(value.encode()).decode()
            elif key in ("NStgid", "NSpid", "NSpgid", "NSsid"):
                value = value.split()[-1]
            elif key in ("Cpus_allowed_list",):
                value = _cpu_list(self.kernel.cpu_count())
            out.append(key + sep + value)
        return ("\n".join(out) + "\n").encode()

    def _mounts(self, info: bool) -> bytes:
        """The container's mount table, as the gofer (the tree's owner) has it."""
        raw = _read(f"/proc/{self.kernel.gofer_pid}/{'mountinfo' if info else 'mounts'}")
        out = []
        for line in (raw or b"").decode().splitlines():
            fields = line.split(" ")
            if info:
                sep = fields.index("-")
                fstype, source = fields[sep + 1], fields[sep + 2]
            else:
                source, fstype = fields[0], fields[2]
            if source in ("runsc-py-proc", "runsc-py-sysfs"):
                real = source.removeprefix("runsc-py-")
                source, fstype = real, real
            elif (fields[4] if info else fields[1]) == "/":
                source = "none"
            if info:
                fields[sep + 1], fields[sep + 2] = fstype, source
            else:
                fields[0], fields[2] = source, fstype
            out.append(" ".join(fields))
        return ("\n".join(out) + "\n").encode()

    def _link_target(self, host_path: str) -> bytes | None:
        try:
            target = os.readlink(host_path.encode())
        except OSError:
            return None
        return target.removesuffix(b" (deleted)") if target.startswith(b"/") else target

    def _write_fds(self, dirfd: int, host_pid: int, ns_pid: int, extra_fd: int | None) -> None:
        fd_dir = self._subdir(dirfd, "fd", 0o500)
        info_dir = self._subdir(dirfd, "fdinfo", 0o555)
        try:
            try:
                fds = {int(n) for n in os.listdir(f"/proc/{host_pid}/fd")}
            except OSError:
                fds = set()
            for old in os.listdir(fd_dir):
                if not old.startswith(".") and int(old) not in fds and int(old) != extra_fd:
                    os.unlink(old, dir_fd=fd_dir)
                    os.unlink(old, dir_fd=info_dir)
            for fd in sorted(fds):
                target = self._link_target(f"/proc/{host_pid}/fd/{fd}")
                if target is None:
                    continue
                self._symlink(fd_dir, str(fd), target)
                self._write(info_dir, str(fd), _read(f"/proc/{host_pid}/fdinfo/{fd}") or b"")
            if extra_fd is not None and extra_fd not in fds:
                # The descriptor the caller's own open of this directory is about to get.
                self._symlink(fd_dir, str(extra_fd), f"/proc/{ns_pid}/fd")
                self._write(info_dir, str(extra_fd), b"pos:\t0\nflags:\t02200000\n")
        finally:
            os.close(fd_dir)
            os.close(info_dir)

    def _write_entry(self, dirfd: int, name: str, host: str, host_pid: int) -> None:
        if name in ("exe", "cwd", "root"):
            target = b"/" if name == "root" else self._link_target(f"{host}/{name}")
            if target is not None:
                self._symlink(dirfd, name, target)
            return
        if name in ("mounts", "mountinfo"):
            self._write(dirfd, name, self._mounts(name == "mountinfo"))
            return
        if name == "cgroup":
            self._write(dirfd, name, "0::/\n")
            return
        raw = _read(f"{host}/{name}")
        if raw is None:
            return
        if name == "stat":
            raw = self._stat(raw)
        elif name == "status":
            raw = self._status(raw)
        self._write(dirfd, name, raw, 0o400 if name == "environ" else 0o444)

    def refresh_pid(self, ns_pid: int, what: str | None = None,
                    extra_fd: int | None = None) -> None:
        """Bring /proc/ns_pid (all of it, or just `what`) up to date."""
        name = str(ns_pid)
        host_pid = self.host_pid(ns_pid)
        host = f"/proc/{host_pid}"
        try:
            st = os.stat(host) if host_pid is not None else None
        except OSError:
            st = None
        if st is None:
            self._rmtree(self.dirfd, name)
            return
        fd = self._subdir(self.dirfd, name)
        try:
            names = _PER_PID if what is None or what not in _PER_PID else (what,)
            for entry in names:
                if entry in ("fd", "fdinfo"):
                    self._write_fds(fd, host_pid, ns_pid, extra_fd if what == "fd" else None)
                elif entry == "task":
                    self._write_tasks(fd, host_pid)
                else:
                    self._write_entry(fd, entry, host, host_pid)
            for entry in os.listdir(fd):
                if not entry.startswith("."):
                    os.chown(entry, st.st_uid, st.st_gid, dir_fd=fd, follow_symlinks=False)
            os.chown(fd, st.st_uid, st.st_gid)
        finally:
            os.close(fd)

    def _write_tasks(self, dirfd: int, host_pid: int) -> None:
        tasks_fd = self._subdir(dirfd, "task")
        try:
            try:
                tids = {self.translate(int(t)): int(t)
                        for t in os.listdir(f"/proc/{host_pid}/task")}
            except OSError:
                tids = {}
            for old in os.listdir(tasks_fd):
                if old.isdigit() and int(old) not in tids:
                    self._rmtree(tasks_fd, old)
            for ns_tid, host_tid in tids.items():
                if ns_tid == 0:
                    continue
                tfd = self._subdir(tasks_fd, str(ns_tid))
                try:
                    for entry in _PER_TASK:
                        self._write_entry(tfd, entry, f"/proc/{host_pid}/task/{host_tid}",
                                          host_pid)
                finally:
                    os.close(tfd)
        finally:
            os.close(tasks_fd)

    # -- top level ---------------------------------------------------------------
    def _meminfo(self) -> str:
        m = self.kernel.memory()
        rows = [("MemTotal", m["total"]), ("MemFree", m["free"]),
                ("MemAvailable", m["available"]), ("Buffers", m["buffers"]),
                ("Cached", m["cached"]), ("SwapCached", 0),
                ("Active", m["total"] - m["free"]), ("Inactive", 0),
                ("SwapTotal", m["swap_total"]), ("SwapFree", m["swap_free"]),
                ("Dirty", 0), ("Writeback", 0), ("AnonPages", m["total"] - m["free"]),
                ("Mapped", 0), ("Shmem", m["shared"])]
        return "".join(f"{k + ':':<16}{v // 1024:>8} kB\n" for k, v in rows)

    def _cpuinfo(self) -> str:
        blocks = (_read("/proc/cpuinfo") or b"").decode().strip().split("\n\n")
        host_cpus = self.kernel.host_cpus()
        by_number = {}
        for b in blocks:
            fields = dict(line.split("\t: ", 1) if "\t: " in line else (line.rstrip(":\t"), "")
                          for line in b.splitlines())
            by_number[int(fields.get("processor", len(by_number)))] = b
        out = []
        n = len(host_cpus)
        for i, cpu in enumerate(host_cpus):
            lines = []
            for line in by_number.get(cpu, blocks[0]).splitlines():
                key = line.split(":")[0].strip()
                if key == "processor":
                    line = f"processor\t: {i}"
                elif key in ("siblings", "cpu cores"):
                    line = f"{line.split(':')[0]}: {n}"
                elif key in ("core id", "apicid", "initial apicid"):
                    line = f"{line.split(':')[0]}: {i}"
                lines.append(line)
            out.append("\n".join(lines))
        return "\n\n".join(out) + "\n\n"

    def _stat_top(self) -> str:
        raw = (_read("/proc/stat") or b"").decode().splitlines()
        cpu_lines = {line.split()[0]: line.split()[1:] for line in raw if line.startswith("cpu")}
        host_cpus = self.kernel.host_cpus()
        per_cpu = [cpu_lines.get(f"cpu{c}", ["0"] * 10) for c in host_cpus]
        total = [str(sum(int(v[i]) for v in per_cpu)) for i in range(len(per_cpu[0]))]
        out = ["cpu  " + " ".join(total)]
        out += [f"cpu{i} " + " ".join(v) for i, v in enumerate(per_cpu)]
        rest = {line.split()[0]: line for line in raw if not line.startswith("cpu")}
        running = len(self.to_host)
        out += ["intr 0", "ctxt " + rest.get("ctxt", "ctxt 0").split()[1],
                # Boot as the sandbox's time namespace has it, as Linux shifts btime.
                f"btime {int(time.time() - self.kernel.uptime())}",
                f"processes {max(self.to_host, default=0)}", f"procs_running {running}",
                "procs_blocked 0"]
        return "\n".join(out) + "\n"

    def _loadavg(self) -> str:
        loads = (_read("/proc/loadavg") or b"0 0 0").decode().split()[:3]
        n = len(self.to_host)
        return f"{' '.join(loads)} 1/{n} {max(self.to_host, default=0)}\n"

    def _write_top(self, name: str) -> None:
        k = self.kernel
        content = {
            "version": lambda: f"Linux version {k.release} {k.version}\n",
            "meminfo": self._meminfo,
            "cpuinfo": self._cpuinfo,
            "stat": self._stat_top,
            "uptime": lambda: f"{k.uptime():.2f} 0.00\n",
            "loadavg": self._loadavg,
            "filesystems": lambda: _FILESYSTEMS,
            "cmdline": lambda: "BOOT_IMAGE=/vmlinuz-4.4.0-gvisor quiet\n",
        }
        if name in content:
            self._write(self.dirfd, name, content[name]())
        elif name == "mounts":
            self._symlink(self.dirfd, "mounts", "self/mounts")
        elif name == "sys":
            self._write_proc_sys()

    def _write_proc_sys(self) -> None:
        k = self.kernel
        sys_fd = self._subdir(self.dirfd, "sys")
        try:
            files = {
                "kernel": {"hostname": k.hostname, "domainname": k.domainname,
                           "osrelease": k.release, "ostype": k.sysname, "version": k.version,
                           "pid_max": "4194304", "cap_last_cap": "40"},
                "vm": {"overcommit_memory": "0", "max_map_count": "65530"},
                "fs": {"nr_open": "1048576", "file-max": "9223372036854775807"},
            }
            for dirname, entries in files.items():
                d = self._subdir(sys_fd, dirname)
                try:
                    for name, value in entries.items():
                        self._write(d, name, value + "\n")
                    if dirname == "kernel":
                        r = self._subdir(d, "random")
                        try:
                            self._write(r, "boot_id", k.boot_id + "\n")
                            self._write(r, "uuid", f"{uuid.uuid4()}\n")
                        finally:
                            os.close(r)
                finally:
                    os.close(d)
        finally:
            os.close(sys_fd)

    def refresh_listing(self) -> None:
        self.scan()
        for name in os.listdir(self.dirfd):
            if name.isdigit() and int(name) not in self.to_host:
                self._rmtree(self.dirfd, name)
        for ns_pid in sorted(self.to_host):
            self.refresh_pid(ns_pid, "stat")
        self._sort_pid_dirs()
        for name in ("version", "meminfo", "cpuinfo", "stat", "uptime", "loadavg",
                     "filesystems", "cmdline", "mounts", "sys"):
            self._write_top(name)

    def _sort_pid_dirs(self) -> None:
        """List pid directories in ascending order, as Linux does. A tmpfs directory lists
        entries by when they were added (newest first or last, by kernel version), and a
        rename re-adds an entry: re-add them in the order that comes out ascending."""
        listed = [int(n) for n in os.listdir(self.dirfd) if n.isdigit()]
        if listed == sorted(listed):
            return
        for _attempt in range(2):
            order = sorted(listed, reverse=self._newest_first)
            for pid in order:
                name = str(pid)
                os.rename(name, ".sort", src_dir_fd=self.dirfd, dst_dir_fd=self.dirfd)
                os.rename(".sort", name, src_dir_fd=self.dirfd, dst_dir_fd=self.dirfd)
            listed = [int(n) for n in os.listdir(self.dirfd) if n.isdigit()]
            if listed == sorted(listed):
                return
            self._newest_first = not self._newest_first

    def refresh_sys(self) -> None:
        """/sys: the CPU topology the container's limits allow."""
        if self.sys_fd is None:
            return
        n = self.kernel.cpu_count()
        devices = self._subdir(self.sys_fd, "devices")
        system = self._subdir(devices, "system")
        cpu = self._subdir(system, "cpu")
        try:
            for name in ("online", "possible", "present"):
                self._write(cpu, name, _cpu_list(n) + "\n")
            for old in os.listdir(cpu):
                if old.startswith("cpu") and old[3:].isdigit() and int(old[3:]) >= n:
                    self._rmtree(cpu, old)
            for i in range(n):
                c = self._subdir(cpu, f"cpu{i}")
                self._write(c, "online", "1\n")
                os.close(c)
        finally:
            for fd in (cpu, system, devices):
                os.close(fd)

    # -- entry point for path-based syscalls -------------------------------------
    def prepare(self, ctx: SyscallContext, path: bytes) -> bytes:
        """Bring the snapshot of path (normalised, under /proc) up to date; the path to
        resolve, with self and thread-self made concrete for the caller. The self and
        thread-self links are re-pointed at the caller too, for paths that reach them
        through a symlink (/proc/mounts -> self/mounts)."""
        parts = [p.decode("utf-8", "surrogateescape") for p in path.split(b"/")[2:]]
        me = self.translate(int(ctx.status()["Tgid"]))
        tid = self.translate(ctx.pid)
        if me == 0 or tid == 0:
            raise TargetGone()
        if parts and parts[0] == "self":
            parts[0] = str(me)
        elif parts and parts[0] == "thread-self":
            parts[0:1] = [str(me), "task", str(tid)]
        self._symlink(self.dirfd, "self", str(me))
        self._symlink(self.dirfd, "thread-self", f"{me}/task/{tid}")
        if not parts:
            self.refresh_listing()
        elif parts[0].isdigit():
            what = parts[1] if len(parts) > 1 else None
            extra_fd = None
            if what == "fd" and len(parts) == 2 and me == int(parts[0]):
                extra_fd = self._lowest_free_fd(ctx.pid)
            self.refresh_pid(int(parts[0]), what, extra_fd)
        elif parts[0] == "mounts":
            self._write_top("mounts")
            self.refresh_pid(me, "mounts")
        else:
            self._write_top(parts[0])
        return ("/proc/" + "/".join(parts) if parts else "/proc").encode(
            "utf-8", "surrogateescape")

    @staticmethod
    def _lowest_free_fd(host_pid: int) -> int:
        try:
            used = {int(n) for n in os.listdir(f"/proc/{host_pid}/fd")}
        except OSError:
            return 0
        fd = 0
        while fd in used:
            fd += 1
        return fd
