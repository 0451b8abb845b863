"""The sentry process: starts the gofer and the workload, then answers the workload's
trapped syscalls, `start` and signals in one single-threaded event loop until the
workload's init exits, and exits with its status (128+N for death by signal N)."""
from __future__ import annotations

import errno
import json
import logging
import os
import selectors
import signal
import socket
import sys

from gofer import linux
from gofer import server as gofer_server
from gofer.client import GoferClient, GoferGone
from sentry import workload
from sentry.cgroup import Cgroup, CgroupError
from sentry.config import SandboxConfig
from sentry.kernel import Kernel
from sentry.platform.seccomp import SeccompPlatform
from sentry.procfs import ProcFS

log = logging.getLogger("runsc-py.sentry")
CONTROL_SOCKET = "control.sock"
STARTED_MARK = "started"
_NOT_FORWARDED = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGPIPE,
                  signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL,
                  signal.SIGTRAP, signal.SIGSYS}


class SetupError(Exception):
    """The sandbox could not be created; the message is for the user."""


def control_path(state_dir: str) -> tuple[int, str]:
    """A short path to the control socket (AF_UNIX paths are limited to 108 bytes)."""
    fd = os.open(state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return fd, f"/proc/self/fd/{fd}/{CONTROL_SOCKET}"


def exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _find_executable(gofer: GoferClient, cfg: SandboxConfig) -> str:
    """args[0] resolved against the container's PATH, as runc does before start."""
    name = cfg.args[0]
    if "/" in name:
        path = name if name.startswith("/") else os.path.join(cfg.cwd, name)
        candidates = [path]
    else:
        env_path = next((e[5:] for e in cfg.env if e.startswith("PATH=")),
                        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        candidates = [os.path.join(d or ".", name) for d in env_path.split(":")]
    last = errno.ENOENT
    for c in candidates:
        try:
            gofer.call("check_exec", None, path=os.fsencode(c))
            return c
        except OSError as e:
            last = e.errno
    if "/" in name:
        raise SetupError(f'exec: "{name}": {os.strerror(last).lower()}')
    raise SetupError(f'exec: "{name}": executable file not found in $PATH')


def _ensure_cwd(gofer: GoferClient, cwd: str) -> None:
    """Create the process's cwd if the rootfs lacks it, as runc does."""
    parts = [p for p in cwd.split("/") if p]
    for i in range(1, len(parts) + 1):
        try:
            gofer.call("mkdir", None, path=os.fsencode("/" + "/".join(parts[:i])), mode=0o755)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise SetupError(f"cwd {cwd}: {e.strerror}") from None
    try:
        gofer.call("check_dir", None, path=os.fsencode(cwd))
    except OSError as e:
        raise SetupError(f"cwd {cwd}: {e.strerror}") from None


class Sentry:
    def __init__(self, cfg: SandboxConfig) -> None:
        self.cfg = cfg
        self.gofer_pid = 0
        self.init_pid = 0
        self.started = False
        self.cgroup: Cgroup | None = None

    # -- creation --------------------------------------------------------------
    def _spawn_gofer(self) -> tuple[GoferClient, list[str]]:
        cfg = self.cfg
        sock, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                os.close(ready_r)
                gofer_server.run(peer, cfg.rootfs, cfg.readonly_root, cfg.mounts, cfg.bundle,
                                 ready_w)
            finally:
                os._exit(1)
        self.gofer_pid = pid
        peer.close()
        os.close(ready_w)
        with os.fdopen(ready_r, "rb") as f:
            msg = f.read().decode()
        if not msg.startswith("ok:"):
            raise SetupError(msg[len("error:"):] if msg.startswith("error:")
                             else "the gofer failed to start")
        return GoferClient(sock), [p for p in msg[3:].split(",") if p]

    def _spawn_workload(self, exe: str) -> int:
        sock, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        start_r, self.start_w = os.pipe()
        mnt_ns_fd = os.open(f"/proc/{self.gofer_pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        sentry_pid = os.getpid()
        workload.enter_network(self.cfg)
        # Always a new PID namespace, even when the spec names the host's (DESIGN.md).
        linux.unshare(linux.CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                os.close(self.start_w)
                workload.run(self.cfg, exe, mnt_ns_fd, peer, start_r, sentry_pid)
            finally:
                os._exit(1)
        self.init_pid = pid
        peer.close()
        os.close(start_r)
        try:
            self.cgroup.add(pid)  # before it can run anything of the workload's
        except CgroupError as e:
            raise SetupError(str(e)) from None
        os.close(mnt_ns_fd)
        msg, fds, _, _ = socket.recv_fds(sock, 4096, 1, socket.MSG_CMSG_CLOEXEC)
        if msg != b"ok" or not fds:
            raise SetupError(msg.decode(errors="replace")[len("error:"):] or
                             "the workload's init failed to start")
        notify_fd = fds[0]
        msg = sock.recv(4096)
        sock.close()
        if msg != b"ready":
            raise SetupError(msg.decode(errors="replace")[len("error:"):] or
                             "the workload's init failed to start")
        return notify_fd

    def create(self) -> None:
        cfg = self.cfg
        gofer, synthetic = self._spawn_gofer()
        self.gofer = gofer
        exe = _find_executable(gofer, cfg)
        _ensure_cwd(gofer, cfg.cwd)
        self.cgroup = Cgroup(cfg.cgroup_path)
        try:
            self.cgroup.create(cfg.resources)
        except CgroupError as e:
            self.cgroup = None
            raise SetupError(str(e)) from None
        self.kernel = Kernel(gofer=gofer, hostname=cfg.hostname,
                             domainname=cfg.domainname or "(none)", cgroup=self.cgroup,
                             gofer_pid=self.gofer_pid)
        synthetic_fds = {p: gofer.open(p.encode(), os.O_RDONLY | os.O_DIRECTORY)
                         for p in synthetic if p in ("/proc", "/sys")}
        notify_fd = self._spawn_workload(exe)
        self.platform = SeccompPlatform(notify_fd, self.kernel)
        if "/proc" in synthetic_fds:
            self.kernel.procfs = ProcFS(synthetic_fds["/proc"], synthetic_fds.get("/sys"),
                                        self.init_pid, self.kernel)
        self.state_fd, path = control_path(cfg.state_dir)
        self.control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.control.bind(path)
        self.control.listen(8)

    def abort(self) -> None:
        for pid in (self.init_pid, self.gofer_pid):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
        if self.cgroup is not None:
            try:
                self.cgroup.remove()
            except CgroupError as e:
                log.error("%s", e)

    # -- running ---------------------------------------------------------------
    def _forward_signal(self, sig: int, _frame) -> None:
        try:
            os.kill(self.init_pid, sig)
        except ProcessLookupError:
            pass

    def _control(self) -> None:
        conn, _ = self.control.accept()
        with conn:
            try:
                req = json.loads(conn.recv(65536) or b"{}")
            except ValueError:
                req = {}
            op = req.get("op")
            if op == "start":
                if self.started:
                    reply = {"error": "container is already started"}
                else:
                    os.write(self.start_w, b"s")
                    self.started = True
                    open(os.path.join(self.cfg.state_dir, STARTED_MARK), "w").close()
                    reply = {"ok": True}
            else:
                reply = {"error": f"unknown control request {op!r}"}
            try:
                conn.sendall(json.dumps(reply).encode())
            except OSError:
                pass

    def serve(self) -> int:
        for sig in range(1, signal.NSIG):
            if sig not in _NOT_FORWARDED:
                try:
                    signal.signal(sig, self._forward_signal)
                except (OSError, ValueError):
                    pass
        pidfd = os.pidfd_open(self.init_pid)
        sel = selectors.DefaultSelector()
        sel.register(self.platform.fileno(), selectors.EVENT_READ, "syscall")
        sel.register(self.gofer.sock, selectors.EVENT_READ, "gofer")
        sel.register(pidfd, selectors.EVENT_READ, "exit")
        sel.register(self.control, selectors.EVENT_READ, "control")
        handle_one = self.platform.handle_one
        while True:
            for key, _ in sel.select():
                what = key.data
                if what == "syscall":
                    try:
                        handle_one()
                    except GoferGone:
                        return self._gofer_died()
                elif what == "exit":
                    _, status = os.waitpid(self.init_pid, 0)
                    return exit_code(status)
                elif what == "gofer":
                    return self._gofer_died()
                else:
                    self._control()

    def _gofer_died(self) -> int:
        log.error("the gofer exited: stopping the sandbox")
        os.kill(self.init_pid, signal.SIGKILL)
        os.waitpid(self.init_pid, 0)
        return 128 + signal.SIGKILL

    def finish(self) -> None:
        try:
            os.unlink(CONTROL_SOCKET, dir_fd=self.state_fd)
        except OSError:
            pass
        self.gofer.sock.close()  # the gofer exits on EOF
        try:
            os.waitpid(self.gofer_pid, 0)
        except ChildProcessError:
            pass


def _close_inherited_fds(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def run(cfg: SandboxConfig, status_w: int, detach: bool) -> None:
    """Body of the sentry process (never returns). Writes "ok:GOFER_PID:INIT_PID" or
    "error:MESSAGE" to status_w once the container is created."""
    if detach:
        os.setsid()
    keep = {status_w} | {h.stream.fileno() for h in logging.getLogger().handlers
                         if isinstance(h, logging.StreamHandler) and hasattr(h.stream, "fileno")}
    _close_inherited_fds(keep)
    sentry = Sentry(cfg)
    try:
        sentry.create()
    except (SetupError, OSError, GoferGone) as e:
        msg = str(e) if isinstance(e, SetupError) else f"creating the sandbox: {e}"
        sentry.abort()
        os.write(status_w, ("error:" + msg).encode())
        os._exit(1)
    os.write(status_w, f"ok:{sentry.gofer_pid}:{sentry.init_pid}".encode())
    os.close(status_w)
    profile_path = os.environ.get("RUNSC_PY_PROFILE")  # bench/: where the sentry's time goes
    if profile_path:
        import cProfile
        profiler = cProfile.Profile()
        code = profiler.runcall(sentry.serve)
        profiler.dump_stats(profile_path)
    else:
        code = sentry.serve()
    sentry.finish()
    log.info("container %s exited with status %d", cfg.container_id, code)
    logging.shutdown()
    sys.stdout.flush()
    os._exit(code)
