"""The workload's /proc and /sys, synthesised by the sentry.

/proc and /sys in the container are tmpfs mounts that the gofer made and serves read-only:
neither the workload nor the gofer acting for it can create, change or remove anything
there. The sentry alone writes into them, through a writable clone of each mount that only
it holds (never through a path the workload can reach), and it writes only a skeleton:
directories, empty placeholder files with Linux's modes and owners, and symlinks (self,
exe, cwd, fd/N as container paths, so nothing under /proc leads to the host). A file's
content is rendered when it is opened, from the live process, into a sealed memfd that is
installed in place of the placeholder: an open costs only the entry asked for. The
sandbox's processes come from the container's cgroup, never from a walk over every host
PID; PIDs are translated into the sandbox's PID namespace.
"""
from __future__ import annotations

import errno
import fcntl
import os
import stat as stat_mod
import time
import uuid
from collections.abc import Callable

from gofer.mounts import parse_options  # the option table the gofer mounts with
from syscalls.context import SyscallContext, TargetGone
from syscalls.sys_sysinfo import FILESYSTEMS

_STATUS_PID_FIELDS = {"Tgid", "Pid", "PPid", "TracerPid"}
_FILESYSTEMS = "".join(f"{'nodev' if nodev else ''}\t{fs}\n" for fs, nodev in FILESYSTEMS)
# Per process (and per task): file name -> mode. Content is rendered from the host's file
# of the same name unless a renderer below says otherwise.
_PID_FILES = {"stat": 0o444, "status": 0o444, "statm": 0o444, "cmdline": 0o444,
              "environ": 0o400, "comm": 0o644, "maps": 0o444, "limits": 0o444,
              "mounts": 0o444, "mountinfo": 0o444, "cgroup": 0o444, "smaps": 0o444,
              "smaps_rollup": 0o444, "oom_score": 0o444, "oom_score_adj": 0o644}
# A new IPC namespace's limits (Linux 6.x).
_IPC_DEFAULTS = {
    "kernel.shmmax": "18446744073692774399", "kernel.shmall": "18446744073692774399",
    "kernel.shmmni": "4096", "kernel.shm_rmid_forced": "0", "kernel.msgmax": "8192",
    "kernel.msgmnb": "16384", "kernel.msgmni": "32000",
    "kernel.sem": "32000\t1024000000\t500\t32000", "fs.mqueue.msg_max": "10",
    "fs.mqueue.msgsize_max": "8192", "fs.mqueue.queues_max": "256",
    "fs.mqueue.msg_default": "10", "fs.mqueue.msgsize_default": "8192",
}
_NET_SYSCTLS = (
    "net/core/somaxconn", "net/ipv4/ip_forward", "net/ipv4/ip_local_port_range",
    "net/ipv4/ip_unprivileged_port_start", "net/ipv4/ping_group_range",
    "net/ipv4/tcp_keepalive_time", "net/ipv4/tcp_fin_timeout", "net/ipv4/tcp_syncookies",
    "net/ipv4/tcp_max_syn_backlog", "net/ipv6/conf/all/disable_ipv6",
)
_NS_LINKS = ("cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time",
             "time_for_children", "user", "uts")
_TASK_FILES = {k: v for k, v in _PID_FILES.items() if k not in ("mounts", "mountinfo")}
_PID_LINKS = ("exe", "cwd", "root")
_MEMFD_PREFIX = b"/memfd:"
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

Renderer = Callable[[], bytes]


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


# The mount flags mountinfo shows, in the kernel's order (fs/proc_namespace.c).
_MNT_SHOWN = (("nosuid", 0x2), ("nodev", 0x4), ("noexec", 0x8), ("noatime", 0x400),
              ("nodiratime", 0x800), ("relatime", 0x200000))


def _spec_options(options: list[str]) -> tuple[str, str]:
    """The per-mount and superblock options Linux shows for a proc or sysfs mount made
    with these OCI options (relatime unless noatime or strictatime, as mount(2) does)."""
    flags, data = parse_options(options)
    ms_rdonly, ms_noatime, ms_strictatime, ms_relatime = 0x1, 0x400, 0x1000000, 0x200000
    if not flags & (ms_noatime | ms_strictatime):
        flags |= ms_relatime
    if flags & ms_strictatime:
        flags &= ~ms_relatime
    ro = "ro" if flags & ms_rdonly else "rw"
    opts = ",".join([ro, *(name for name, bit in _MNT_SHOWN if flags & bit)])
    return opts, ",".join(filter(None, [ro, data]))


def _mounts_options(opts: str, sb: str) -> str:
    """/proc/PID/mounts' one options field: ro if the mount or its superblock is, then
    the mount's flags and the filesystem's own options."""
    mnt = opts.split(",")
    super_ = sb.split(",") if sb else []
    ro = "ro" if "ro" in (mnt[0], super_[0] if super_ else "") else "rw"
    return ",".join([ro, *mnt[1:], *super_[1:]])


def _unescape(field: str) -> str:
    """A mountinfo path field: space, tab, newline and backslash are octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"),
                       ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _escape(path: str) -> str:
    for char, code in (("\\", "\\134"), (" ", "\\040"), ("\t", "\\011"),
                       ("\n", "\\012")):
        path = path.replace(char, code)
    return path


def _cpu_list(n: int) -> str:
    return "0" if n == 1 else f"0-{n - 1}"


class Skeleton:
    """One synthetic mount's tree, written through the sentry's private writable clone.
    Only the sentry writes here, so nothing in it is the workload's; still, every call is
    relative to a directory descriptor and never follows a link."""

    def __init__(self, root_fd: int, masked: tuple[str, ...] = ()) -> None:
        self.masked = masked  # linux.maskedPaths in this tree: their files read empty
        self.root = os.open(".", _DIR_FLAGS, dir_fd=root_fd)
        os.close(root_fd)
        self.dev = os.fstat(self.root).st_dev
        self.renderers: dict[int, tuple[str, Renderer]] = {}  # inode -> (path, render)

    def dir(self, parent: int, name: str, mode: int = 0o555) -> int:
        try:
            os.mkdir(name, mode, dir_fd=parent)
        except FileExistsError:
            pass
        return os.open(name, _DIR_FLAGS, dir_fd=parent)

    def file(self, parent: int, name: str, vpath: str, render: Renderer,
             mode: int = 0o444) -> None:
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, mode, dir_fd=parent)
        except FileExistsError:
            ino = os.stat(name, dir_fd=parent, follow_symlinks=False).st_ino
        else:
            ino = os.fstat(fd).st_ino
            os.close(fd)
        if any(vpath == m or vpath.startswith(m + "/") for m in self.masked):
            render = _empty
        self.renderers[ino] = (vpath, render)

    @staticmethod
    def link(parent: int, name: str, target: str | bytes) -> None:
        target = os.fsencode(target)
        try:
            if os.readlink(name, dir_fd=parent) == target:
                return
        except OSError:
            pass
        tmp = "." + name + ".new"
        try:
            os.unlink(tmp, dir_fd=parent)
        except FileNotFoundError:
            pass
        os.symlink(target, tmp, dir_fd=parent)
        os.rename(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)

    def remove(self, parent: int, name: str) -> None:
        """Remove an entry the sentry made (depth at most /PID/task/TID/file)."""
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat_mod.S_ISDIR(st.st_mode):
            self.renderers.pop(st.st_ino, None)
            os.unlink(name, dir_fd=parent)
            return
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        try:
            for entry in os.listdir(fd):
                self.remove(fd, entry)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=parent)

    def chown_tree(self, fd: int, uid: int, gid: int) -> None:
        """A /proc/PID directory and what it holds belong to the process's user."""
        os.chown(fd, uid, gid)
        for entry in os.listdir(fd):
            os.chown(entry, uid, gid, dir_fd=fd, follow_symlinks=False)

    def content(self, fd: int) -> int:
        """fd (opened by the gofer on this tree) or, for a placeholder file, a read-only
        descriptor of its content, rendered now into a sealed memfd."""
        st = os.fstat(fd)
        entry = self.renderers.get(st.st_ino) if stat_mod.S_ISREG(st.st_mode) else None
        if st.st_dev != self.dev or entry is None:
            return fd
        vpath, render = entry
        try:
            data = render()
        except OSError:
            os.close(fd)
            raise
        # Named after the file it stands for: /proc/PID/fd/N shows that path again.
        mfd = os.memfd_create(vpath, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(mfd, view):]
            fcntl.fcntl(mfd, fcntl.F_ADD_SEALS, _SEALS)
            ro = os.open(f"/proc/self/fd/{mfd}", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(mfd)
        os.close(fd)
        return ro


def _empty() -> bytes:
    return b""


class ProcFS:
    def __init__(self, proc_root: int, sys_root: int | None, init_host_pid: int,
                 kernel: object, masked: list[str] = (),
                 sysctl: dict[str, str] | None = None, mounts: list[dict] = (),
                 readonly: list[str] = ()) -> None:
        self.kernel = kernel
        # The spec's options of each synthetic mount (what mountinfo shows for it) and
        # linux.readonlyPaths (runc's read-only bind mounts, shown below them).
        self.mount_options = {os.path.normpath(m["destination"]): m.get("options") or []
                              for m in mounts if m.get("type") in ("proc", "sysfs")}
        self.readonly = [os.path.normpath(p) for p in readonly]
        self.masked = [os.path.normpath(p) for p in masked]
        self.sysctl = sysctl or {}  # linux.sysctl, applied in the init's namespaces
        masked = tuple(os.path.normpath(m) for m in masked)
        self.proc = Skeleton(proc_root, masked)
        self.sys = Skeleton(sys_root, masked) if sys_root is not None else None
        self.dirfd = self.proc.root
        self.ns_ino = os.stat(f"/proc/{init_host_pid}/ns/pid").st_ino
        self.to_sandbox: dict[int, int] = {}  # host pid -> sandbox pid
        self.to_host: dict[int, int] = {}
        self.dir_host: dict[int, int] = {}  # sandbox pid -> host pid its directory shows
        self.owner: dict[int, tuple[int, int]] = {}
        self._newest_first = True  # tmpfs directory order; checked when first sorting
        probe = os.memfd_create("probe", os.MFD_CLOEXEC)
        self.memfd_dev = os.fstat(probe).st_dev  # every memfd lives on one internal mount
        os.close(probe)
        self._make_top()
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
        """The sandbox's processes: the container cgroup's members in its PID namespace."""
        cgroup = getattr(self.kernel, "cgroup", None)
        to_sandbox = {}
        for host_pid in (cgroup.pids() if cgroup is not None else []):
            ns_pid = self._sandbox_pid(host_pid)
            if ns_pid is not None:
                to_sandbox[host_pid] = ns_pid
        self.to_sandbox = to_sandbox
        self.to_host = {v: k for k, v in to_sandbox.items()}

    def count(self) -> int:
        self.scan()
        return len(self.to_host)

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
        if host is None:  # a thread: look among the processes' tasks
            for pid in list(self.to_host.values()):
                tid = self._tid_host(pid, ns_pid)
                if tid is not None:
                    return tid
        return host

    def _tid_host(self, host_pid: int, ns_tid: int) -> int | None:
        try:
            tids = os.listdir(f"/proc/{host_pid}/task")
        except OSError:
            return None
        return next((int(t) for t in tids if self.translate(int(t)) == ns_tid), None)

    # -- rendering -------------------------------------------------------------
    def _pid_field(self, value: bytes) -> bytes:
        n = int(value)
        return str(self.translate(n) if n > 0 else n).encode()

    def _stat(self, raw: bytes) -> bytes:
        head, _, tail = raw.rstrip(b"\n").rpartition(b") ")
        pid, _, comm = head.partition(b" (")
        fields = tail.split(b" ")
        state = self._traced_state(int(pid))
        if state is not None:
            fields[0] = state[:1]
        for i in (1, 2, 3, 5):  # ppid pgrp session tpgid
            fields[i] = self._pid_field(fields[i])
        # starttime (field 22), in ticks of CLOCK_BOOTTIME: the reader's time namespace's.
        ticks = int(fields[19]) - self.kernel.boot_offset * os.sysconf("SC_CLK_TCK")
        fields[19] = str(max(0, ticks)).encode()
        return self._pid_field(pid) + b" (" + comm + b") " + b" ".join(fields) + b"\n"

    def _traced_state(self, host_tid: int) -> bytes | None:
        """What a thread the platform holds in a ptrace stop is as Linux would show it
        (a group stop is T, waiting for the sentry S), so the tracer stays unseen."""
        state = getattr(self.kernel, "task_state", None)
        return state(host_tid) if state is not None else None

    def _status(self, raw: bytes) -> bytes:
        out = []
        for line in raw.decode().splitlines():
            key, sep, value = line.partition(":\t")
            if key == "State" and value.startswith("t"):
                pid_line = next((x for x in raw.split(b"\n") if x.startswith(b"Pid:")), b"")
                state = self._traced_state(int(pid_line.split()[1])) if pid_line else None
                value = state.decode() if state is not None else value
            elif key in _STATUS_PID_FIELDS:
                value = self._pid_field(value.encode()).decode()
            elif key in ("NStgid", "NSpid", "NSpgid", "NSsid"):
                value = value.split()[-1]
            elif key in ("Cpus_allowed_list",):
                value = _cpu_list(self.kernel.cpu_count())
            out.append(key + sep + value)
        return ("\n".join(out) + "\n").encode()

    def _maps(self, raw: bytes) -> bytes:
        """A process's mappings with the sandbox's device numbers (file mappings only:
        00:00 is no file)."""
        out = []
        for line in raw.split(b"\n"):
            fields = line.split(b" ", 4)
            # A mapping's line (smaps adds "Key: value" lines, kept as they are).
            if len(fields) > 3 and b"-" in fields[0] and b":" in fields[3] and \
                    fields[3] != b"00:00":
                major, _, minor = fields[3].partition(b":")
                dev = self.kernel.sandbox_dev(os.makedev(int(major, 16), int(minor, 16)))
                fields[3] = b"%02x:%02x" % (os.major(dev), os.minor(dev))
            out.append(b" ".join(fields))
        return b"\n".join(out)

    def _fdinfo(self, raw: bytes) -> bytes:
        """A descriptor's fdinfo with the host PIDs a pidfd shows translated."""
        out = []
        for line in raw.decode().splitlines():
            key, sep, value = line.partition(":\t")
            if key == "Pid":
                value = self._pid_field(value.encode()).decode()
            elif key == "NSpid":
                value = " ".join(self._pid_field(v.encode()).decode()
                                 for v in value.split()[:1])
            out.append(key + sep + value)
        return ("\n".join(out) + "\n").encode()

    def _mounts(self, info: bool) -> bytes:
        """The container's mount table, as the gofer (the tree's owner) has it, shown as
        runc's container shows the same spec: sources and options as mounted, /proc and
        /sys (tmpfs skeletons here) as the spec's proc and sysfs with the spec's options,
        and runc's read-only bind mounts of linux.readonlyPaths inside them. Roots of
        mounts from the host are shown as "/": the host paths of the bundle and of bind
        sources stay out of the sandbox."""
        raw = _read(f"/proc/{self.kernel.gofer_pid}/mountinfo")
        entries = []
        for line in (raw or b"").decode().splitlines():
            fields = line.split(" ")
            sep = fields.index("-")
            entry = {"id": fields[0], "parent": fields[1], "dev": fields[2], "root": "/",
                     "point": fields[4], "opts": fields[5], "optional": fields[6:sep],
                     "fstype": fields[sep + 1], "source": fields[sep + 2],
                     "super": fields[sep + 3] if len(fields) > sep + 3 else ""}
            major, _, minor = entry["dev"].partition(":")
            dev = self.kernel.sandbox_dev(os.makedev(int(major), int(minor)))
            entry["dev"] = f"{os.major(dev)}:{os.minor(dev)}"
            if entry["source"] in ("runsc-py-proc", "runsc-py-sysfs"):
                real = entry["source"].removeprefix("runsc-py-")
                entry["source"] = entry["fstype"] = real
                point = os.path.normpath(_unescape(entry["point"]))
                entry["opts"], entry["super"] = _spec_options(
                    self.mount_options.get(point, []))
            entries.append(entry)
        entries = self._with_restricted(entries)
        out = []
        for e in entries:
            if info:
                out.append(" ".join([e["id"], e["parent"], e["dev"], e["root"], e["point"],
                                     e["opts"], *e["optional"], "-", e["fstype"],
                                     e["source"], e["super"]]))
            else:
                out.append(f"{e['source']} {e['point']} {e['fstype']} "
                           f"{_mounts_options(e['opts'], e['super'])} 0 0")
        return ("\n".join(out) + "\n").encode()

    def _with_restricted(self, entries: list[dict]) -> list[dict]:
        """runc's order: the spec's mounts, then linux.readonlyPaths, then
        linux.maskedPaths. Those inside /proc and /sys are not mounts here (the gofer
        refuses writes under them; the sentry renders masked files empty): a read-only
        path that exists there is shown as runc's read-only bind of it."""
        restricted = set(self.readonly) | set(self.masked)
        last = {}  # mount point -> index of its last entry (a restriction is the last)
        for i, e in enumerate(entries):
            last[os.path.normpath(_unescape(e["point"]))] = i
        tail = {i for p, i in last.items() if p in restricted and i > 0}
        body = [e for i, e in enumerate(entries) if i not in tail]
        by_point = {os.path.normpath(_unescape(e["point"])): e for e in body}
        next_id = max((int(e["id"]) for e in entries), default=0) + 1
        out = list(body)
        for path in self.readonly:
            if path in last and last[path] in tail:
                out.append(entries[last[path]])
                by_point[path] = entries[last[path]]
                continue
            parent = self._synthetic_parent(path, by_point)
            if parent is None:
                continue
            rel = os.path.relpath(path, os.path.normpath(_unescape(parent["point"])))
            base = "/" if parent["root"] == "/" else parent["root"] + "/"
            entry = {**parent, "id": str(next_id), "parent": parent["id"],
                     "root": _escape(base + rel if rel != "." else parent["root"]),
                     "point": _escape(path),
                     "opts": "ro" + parent["opts"].removeprefix("rw").removeprefix("ro")}
            next_id += 1
            out.append(entry)
            by_point[path] = entry
        out += [entries[last[p]] for p in self.masked if p in last and last[p] in tail]
        return out

    def _synthetic_parent(self, path: str, by_point: dict[str, dict]) -> dict | None:
        """The mount a read-only path inside /proc or /sys lies on (the deepest shown),
        if the path exists in the skeleton; None otherwise."""
        for top, tree in (("/proc", self.proc), ("/sys", self.sys)):
            if tree is None or not path.startswith(top + "/"):
                continue
            try:
                os.stat(path[len(top) + 1:], dir_fd=tree.root, follow_symlinks=False)
            except OSError:
                return None
            parent = path
            while parent not in by_point and parent != "/":
                parent = os.path.dirname(parent)
            return by_point.get(parent) if parent.startswith(top) else None
        return None

    def _host_file(self, host_dir: str, name: str) -> Renderer:
        def render() -> bytes:
            raw = _read(f"{host_dir}/{name}")
            if raw is None:  # the process has gone since the open began
                raise OSError(errno.ESRCH, "no such process")
            if name == "stat":
                return self._stat(raw)
            if name == "status":
                return self._status(raw)
            if name in ("maps", "smaps"):
                return self._maps(raw)
            return raw
        return render

    def _pid_renderer(self, host_dir: str, name: str) -> Renderer:
        if name in ("mounts", "mountinfo"):
            return lambda: self._mounts(name == "mountinfo")
        if name == "cgroup":
            return lambda: b"0::/\n"
        return self._host_file(host_dir, name)

    def _link_target(self, host_path: str) -> bytes | None:
        try:
            target = os.readlink(host_path.encode())
        except OSError:
            return None
        if target.startswith(_MEMFD_PREFIX + b"/proc/") or target.startswith(
                _MEMFD_PREFIX + b"/sys/"):
            target = target[len(_MEMFD_PREFIX):]  # a synthetic file this sentry installed
        return target.removesuffix(b" (deleted)") if target.startswith(b"/") else target

    # -- /proc/PID ---------------------------------------------------------------
    def _pid_dir(self, ns_pid: int, host_pid: int) -> int | None:
        """The directory of a live sandbox process, made (or remade for a new process
        with a reused PID) with its static entries; None if the process is gone."""
        name = str(ns_pid)
        try:
            st = os.stat(f"/proc/{host_pid}")
        except OSError:
            return None
        if self.dir_host.get(ns_pid) != host_pid:
            self.proc.remove(self.dirfd, name)
            self.owner.pop(ns_pid, None)
            fd = self.proc.dir(self.dirfd, name)
            host_dir = f"/proc/{host_pid}"
            for entry, mode in _PID_FILES.items():
                self.proc.file(fd, entry, f"/proc/{name}/{entry}",
                               self._pid_renderer(host_dir, entry), mode)
            self.proc.link(fd, "root", "/")
            for sub, mode in (("fd", 0o500), ("fdinfo", 0o555), ("task", 0o555)):
                os.close(self.proc.dir(fd, sub, mode))
            ns_fd = self.proc.dir(fd, "ns", 0o511)
            try:  # "pid:[4026532...]": the sandbox's own namespaces, as the host names them
                for ns in _NS_LINKS:
                    target = self._link_target(f"{host_dir}/ns/{ns}")
                    if target is not None:
                        self.proc.link(ns_fd, ns, target)
            finally:
                os.close(ns_fd)
            self.dir_host[ns_pid] = host_pid
        else:
            fd = os.open(name, _DIR_FLAGS, dir_fd=self.dirfd)
        if self.owner.get(ns_pid) != (st.st_uid, st.st_gid):
            self.proc.chown_tree(fd, st.st_uid, st.st_gid)
            self.owner[ns_pid] = (st.st_uid, st.st_gid)
        return fd

    def _live_links(self) -> tuple[str, ...]:
        """The links a refresh reads: root only once a process called chroot (until then
        every root is the container root, "/"); as a container path, as Linux shows it to
        a reader whose root is the container root."""
        return ("exe", "cwd", "root") if getattr(self.kernel, "chrooted", False) else (
            "exe", "cwd")

    def _refresh_links(self, fd: int, host_dir: str, which: tuple[str, ...]) -> None:
        uid, gid = os.fstat(fd).st_uid, os.fstat(fd).st_gid
        for name in which:
            target = self._link_target(f"{host_dir}/{name}")
            if target is not None:
                self.proc.link(fd, name, target)
                os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)

    def _refresh_fds(self, fd: int, host_pid: int, ns_pid: int, extra_fd: int | None) -> None:
        fd_dir = os.open("fd", _DIR_FLAGS, dir_fd=fd)
        info_dir = os.open("fdinfo", _DIR_FLAGS, dir_fd=fd)
        uid, gid = os.fstat(fd).st_uid, os.fstat(fd).st_gid
        try:
            try:
                fds = {int(n) for n in os.listdir(f"/proc/{host_pid}/fd")}
            except OSError:
                fds = set()
            if extra_fd is not None:
                fds.add(extra_fd)
            for old in os.listdir(fd_dir):
                if old.isdigit() and int(old) not in fds:
                    self.proc.remove(fd_dir, old)
                    self.proc.remove(info_dir, old)
            for num in sorted(fds):
                host = f"/proc/{host_pid}/fd/{num}"
                target = self._link_target(host)
                if target is None and num == extra_fd:
                    # The descriptor the caller's own open of this directory will get.
                    target = f"/proc/{ns_pid}/fd".encode()
                if target is None:
                    continue
                self.proc.link(fd_dir, str(num), target)
                os.chown(str(num), uid, gid, dir_fd=fd_dir, follow_symlinks=False)
                info = f"/proc/{host_pid}/fdinfo/{num}"
                self.proc.file(info_dir, str(num), f"/proc/{ns_pid}/fdinfo/{num}",
                               lambda info=info: self._fdinfo(_read(info) or b""))
                os.chown(str(num), uid, gid, dir_fd=info_dir, follow_symlinks=False)
        finally:
            os.close(fd_dir)
            os.close(info_dir)

    def _refresh_tasks(self, fd: int, host_pid: int, ns_pid: int) -> None:
        tasks_fd = os.open("task", _DIR_FLAGS, dir_fd=fd)
        uid, gid = os.fstat(fd).st_uid, os.fstat(fd).st_gid
        try:
            try:
                tids = {self.translate(int(t)): int(t)
                        for t in os.listdir(f"/proc/{host_pid}/task")}
            except OSError:
                tids = {}
            tids.pop(0, None)
            for old in os.listdir(tasks_fd):
                if not old.isdigit() or int(old) not in tids:
                    self.proc.remove(tasks_fd, old)
            present = set(os.listdir(tasks_fd))
            for ns_tid, host_tid in tids.items():
                host_dir = f"/proc/{host_pid}/task/{host_tid}"
                tfd = self.proc.dir(tasks_fd, str(ns_tid))
                try:
                    if str(ns_tid) not in present:
                        for entry, mode in _TASK_FILES.items():
                            self.proc.file(tfd, entry, f"/proc/{ns_pid}/task/{ns_tid}/{entry}",
                                           self._pid_renderer(host_dir, entry), mode)
                        self.proc.link(tfd, "root", "/")
                    self._refresh_links(tfd, host_dir, self._live_links())
                    self.proc.chown_tree(tfd, uid, gid)
                finally:
                    os.close(tfd)
        finally:
            os.close(tasks_fd)

    def refresh_pid(self, ns_pid: int, what: str | None, extra_fd: int | None = None) -> None:
        """Bring /proc/ns_pid up to date where `what` (the entry asked for) needs it."""
        host_pid = self.host_pid(ns_pid)
        fd = self._pid_dir(ns_pid, host_pid) if host_pid is not None else None
        if fd is None:
            self.proc.remove(self.dirfd, str(ns_pid))
            self.dir_host.pop(ns_pid, None)
            return
        try:
            host_dir = f"/proc/{host_pid}"
            if what in ("fd", "fdinfo"):
                self._refresh_fds(fd, host_pid, ns_pid, extra_fd)
            elif what == "task":
                self._refresh_tasks(fd, host_pid, ns_pid)
            elif what in _PID_LINKS:
                self._refresh_links(fd, host_dir, (what,))
            elif what is None:
                self._refresh_links(fd, host_dir, self._live_links())
        finally:
            os.close(fd)

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
        self.scan()
        raw = (_read("/proc/stat") or b"").decode().splitlines()
        cpu_lines = {line.split()[0]: line.split()[1:] for line in raw if line.startswith("cpu")}
        host_cpus = self.kernel.host_cpus()
        per_cpu = [cpu_lines.get(f"cpu{c}", ["0"] * 10) for c in host_cpus]
        total = [str(sum(int(v[i]) for v in per_cpu)) for i in range(len(per_cpu[0]))]
        out = ["cpu  " + " ".join(total)]
        out += [f"cpu{i} " + " ".join(v) for i, v in enumerate(per_cpu)]
        rest = {line.split()[0]: line for line in raw if not line.startswith("cpu")}
        out += ["intr 0", "ctxt " + rest.get("ctxt", "ctxt 0").split()[1],
                # Boot as the sandbox's time namespace has it, as Linux shifts btime.
                f"btime {int(time.time() - self.kernel.uptime())}",
                f"processes {max(self.to_host, default=0)}",
                f"procs_running {len(self.to_host)}", "procs_blocked 0"]
        return "\n".join(out) + "\n"

    def _loadavg(self) -> str:
        self.scan()
        loads = (_read("/proc/loadavg") or b"0 0 0").decode().split()[:3]
        n = len(self.to_host)
        return f"{' '.join(loads)} 1/{n} {max(self.to_host, default=0)}\n"

    def _make_top(self) -> None:
        k = self.kernel
        top: dict[str, Callable[[], str]] = {
            "version": lambda: f"Linux version {k.release} {k.version}\n",
            "meminfo": self._meminfo,
            "cpuinfo": self._cpuinfo,
            "stat": self._stat_top,
            "uptime": lambda: f"{k.uptime():.2f} 0.00\n",
            "loadavg": self._loadavg,
            "filesystems": lambda: _FILESYSTEMS,
            "cmdline": lambda: "BOOT_IMAGE=/vmlinuz-4.4.0-gvisor quiet\n",
        }
        for name, render in top.items():
            self.proc.file(self.dirfd, name, f"/proc/{name}",
                           lambda render=render: render().encode())
        self.proc.link(self.dirfd, "mounts", "self/mounts")
        # Listed as on Linux; pointed at a caller whenever one is the object or walks them.
        self.proc.link(self.dirfd, "self", "1")
        self.proc.link(self.dirfd, "thread-self", "1/task/1")
        sysctl = {
            "kernel": {"hostname": lambda: k.hostname, "domainname": lambda: k.domainname,
                       "osrelease": lambda: k.release, "ostype": lambda: k.sysname,
                       "version": lambda: k.version, "pid_max": lambda: "4194304",
                       "cap_last_cap": lambda: "40"},
            "kernel/random": {"boot_id": lambda: k.boot_id, "uuid": lambda: str(uuid.uuid4())},
            "vm": {"overcommit_memory": lambda: "0", "max_map_count": lambda: "65530"},
            "fs": {"nr_open": lambda: "1048576", "file-max": lambda: "9223372036854775807",
                   "pipe-max-size": lambda: "1048576"},
        }
        # What Linux 4.4+ shows where nothing tuned it (the workload cannot: /proc/sys is
        # read-only here), and the IPC namespace's own, as new and as the spec set them.
        sysctl["kernel"].update({"tainted": lambda: "0", "core_pattern": lambda: "core",
                                 "threads-max": lambda: "4194304"})
        sysctl["kernel/random"]["entropy_avail"] = lambda: "256"
        sysctl["kernel/random"]["poolsize"] = lambda: "256"
        ipc = {**_IPC_DEFAULTS, **{k: v for k, v in self.sysctl.items() if k in _IPC_DEFAULTS}}
        for key, value in ipc.items():
            dirname, _, name = key.replace(".", "/").rpartition("/")
            sysctl.setdefault(dirname, {})[name] = lambda value=value: value
        # The network namespace's, read live: the sentry is in it.
        for key in _NET_SYSCTLS:
            dirname, _, name = key.rpartition("/")
            sysctl.setdefault(dirname, {})[name] = (
                lambda key=key: (_read(f"/proc/sys/{key}") or b"").decode().rstrip("\n"))
        for dirname, entries in sysctl.items():
            fd = os.dup(self.dirfd)
            for part in ("sys", *dirname.split("/")):
                sub = self.proc.dir(fd, part)
                os.close(fd)
                fd = sub
            try:
                for name, render in entries.items():
                    self.proc.file(fd, name, f"/proc/sys/{dirname}/{name}",
                                   lambda render=render: (render() + "\n").encode())
            finally:
                os.close(fd)

    def refresh_listing(self) -> None:
        """/proc itself: a directory per sandbox process, in ascending order."""
        self.scan()
        for name in os.listdir(self.dirfd):
            if name.isdigit() and int(name) not in self.to_host:
                self.proc.remove(self.dirfd, name)
                self.dir_host.pop(int(name), None)
        for ns_pid, host_pid in sorted(self.to_host.items()):
            fd = self._pid_dir(ns_pid, host_pid)
            if fd is not None:
                os.close(fd)
        self._sort_pid_dirs()

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
        if self.sys is None:
            return
        n = self.kernel.cpu_count()
        fd = os.dup(self.sys.root)
        for part in ("devices", "system", "cpu"):
            sub = self.sys.dir(fd, part)
            os.close(fd)
            fd = sub
        try:
            for name in ("online", "possible", "present"):
                self.sys.file(fd, name, f"/sys/devices/system/cpu/{name}",
                              lambda: (_cpu_list(self.kernel.cpu_count()) + "\n").encode())
            for old in os.listdir(fd):
                if old.startswith("cpu") and old[3:].isdigit() and int(old[3:]) >= n:
                    self.sys.remove(fd, old)
            for i in range(n):
                c = self.sys.dir(fd, f"cpu{i}")
                self.sys.file(c, "online", f"/sys/devices/system/cpu/cpu{i}/online",
                              lambda: b"1\n")
                os.close(c)
        finally:
            os.close(fd)

    # -- entry points for syscall handlers ---------------------------------------
    def content(self, fd: int) -> int:
        """What the workload gets for a descriptor the gofer opened: a synthetic file's
        rendered content in place of its placeholder, anything else unchanged."""
        fd = self.proc.content(fd)
        return self.sys.content(fd) if self.sys is not None else fd

    def placeholder(self, fd: int) -> tuple[int, bytes] | None:
        """For a synthetic file's content (a memfd this sentry installed): its skeleton's
        root and placeholder path, whose stat is what the workload sees, as Linux's
        /proc files show mode 0444 and size 0."""
        if os.fstat(fd).st_dev != self.memfd_dev:
            return None
        target = os.readlink(f"/proc/self/fd/{fd}".encode()).removesuffix(b" (deleted)")
        for prefix, tree in ((b"/proc/", self.proc), (b"/sys/", self.sys)):
            if tree is not None and target.startswith(_MEMFD_PREFIX + prefix):
                return tree.root, target[len(_MEMFD_PREFIX) + len(prefix):]
        return None

    def _caller(self, ctx: SyscallContext) -> tuple[int, int]:
        me = self.translate(int(ctx.status()["Tgid"]))
        tid = self.translate(ctx.pid)
        if me == 0 or tid == 0:
            raise TargetGone()
        return me, tid

    def point_self(self, ctx: SyscallContext) -> None:
        """Point the self and thread-self links at the caller, for paths that reach them
        through another link or the kernel's own walk (/etc/mtab, exec of /proc/self/exe)."""
        me, tid = self._caller(ctx)
        self.proc.link(self.dirfd, "self", str(me))
        self.proc.link(self.dirfd, "thread-self", f"{me}/task/{tid}")
        self.refresh_pid(me, None)

    @staticmethod
    def hold_self(tid: int, nr: int, limit: float = 0.005) -> None:
        """Wait (up to limit seconds) until thread tid has left syscall nr, which the
        kernel runs natively through the self link just pointed at it."""
        # /proc/TID/syscall names the call while the thread sleeps in it, and says
        # "running" while it runs (in the walk, or already past it): wait out both.
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            now = _read(f"/proc/{tid}/syscall")
            if now is None or now.split(b" ", 1)[0] not in (str(nr).encode(), b"running"):
                return
            time.sleep(0.0001)

    def prepare(self, ctx: SyscallContext, path: bytes) -> bytes:
        """Bring the skeleton up to date for path (normalised, under /proc); the path to
        resolve, with self, thread-self and the mounts link made concrete for the caller.
        The shared self links are re-pointed only when the link itself is the object
        (readlink, lstat): a process the kernel is walking them for natively
        (point_self) keeps them meanwhile."""
        parts = [p.decode("utf-8", "surrogateescape") for p in path.split(b"/")[2:]]
        me, tid = self._caller(ctx)
        if parts == ["mounts"]:
            parts = [str(me), "mounts"]
        elif len(parts) > 1 and parts[0] == "self":
            parts[0] = str(me)
        elif len(parts) > 1 and parts[0] == "thread-self":
            parts[0:1] = [str(me), "task", str(tid)]
        if not parts:
            self.refresh_listing()
        elif parts[0] in ("self", "thread-self"):
            self.point_self(ctx)
        elif parts[0].isdigit():
            what = parts[1] if len(parts) > 1 else None
            extra_fd = None
            if what == "fd" and len(parts) == 2 and me == int(parts[0]):
                extra_fd = self._lowest_free_fd(ctx.pid)
            if what == "task" and len(parts) > 2:
                self.refresh_pid(int(parts[0]), "task")
            else:
                self.refresh_pid(int(parts[0]), what, extra_fd)
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
