"""The sentry process: starts the gofer and the workload, then answers the workload's
trapped syscalls, control requests (start, exec, update) and signals in one
single-threaded event loop until the workload's init exits, and exits with its status
(128+N for death by signal N)."""
from __future__ import annotations

import errno
import json
import logging
import marshal
import os
import select
import signal
import socket
import struct
import sys
import time

from gofer import server as gofer_server
from gofer.client import GoferClient, GoferGone
from gofer.mounts import TreeSpec
from sentry import cgroup as cgroup_mod
from sentry import confine, console, watchdog, workload
from sentry import platform as platforms
from sentry.cgroup import Cgroup, CgroupError, Resources, parse_cpu_list
from sentry.config import ProcessConfig, SandboxConfig
from sentry.kernel import Kernel
from sentry.platform import Platform
from sentry.procfs import ProcFS
from sentry.spawner import Spawner, SpawnerGone, SpawnError, process_from_wire, release_stdio
from sentry.strace import Strace
from syscalls import abi, host

log = logging.getLogger("runsc-py.sentry")
CONTROL_SOCKET = "control.sock"
STARTED_MARK = "started"
SENTRY_ROOT = "sentry-root"  # the empty directory the sentry's root becomes (confine.py)
_NOT_FORWARDED = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGPIPE,
                  signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL,
                  signal.SIGTRAP, signal.SIGSYS}
_START_PIDS_RESERVE = 16  # tasks the sandbox may start before it counts its own
_WAIT_CHECK = 0.05  # seconds between checks of waiting FIFO opens (wanted, signalled)


class SetupError(Exception):
    """The sandbox (or an exec'd process) could not be created; the message is for the
    user."""


def control_path(state_dir: str) -> tuple[int, str]:
    """A short path to the control socket (AF_UNIX paths are limited to 108 bytes)."""
    fd = os.open(state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return fd, f"/proc/self/fd/{fd}/{CONTROL_SOCKET}"


def _find_executable(gofer: GoferClient, proc: ProcessConfig) -> str:
    """args[0] resolved against the container's PATH, as runc does before start."""
    name = proc.args[0]
    if "/" in name:
        candidates = [name if name.startswith("/") else os.path.join(proc.cwd, name)]
    else:
        env_path = next((e[5:] for e in proc.env if e.startswith("PATH=")),
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
            if e.errno not in (errno.EEXIST, errno.EROFS):
                raise SetupError(f"cwd {cwd}: {e.strerror}") from None
    try:
        gofer.call("check_dir", None, path=os.fsencode(cwd))
    except OSError as e:
        raise SetupError(f"cwd {cwd}: {e.strerror}") from None


MAX_CONTROL_MESSAGE = 1 << 20  # bytes; a request (a process spec) is a few KiB


class ProtocolError(Exception):
    """A control connection sent something that is not a message: the text is for a log
    or a one-line error."""


class LineReader:
    """Newline-terminated JSON messages from a stream socket. A recv may hold part of a
    message or several (an exec's "pid" and "exit" replies often arrive together), so the
    bytes after a message's newline are kept for the next one."""

    def __init__(self, sock: socket.socket, with_fds: bool = False) -> None:
        self.sock = sock
        self.with_fds = with_fds
        self.buf = b""
        self.fds: list[int] = []  # descriptors received so far; the caller owns them

    def read(self) -> dict | None:
        """The next message; None at a clean end of the connection."""
        while b"\n" not in self.buf:
            if self.with_fds:
                chunk, got, _, _ = socket.recv_fds(self.sock, 65536, 3,
                                                   socket.MSG_CMSG_CLOEXEC)
                self.fds += got
            else:
                chunk = self.sock.recv(65536)
            if not chunk:
                if self.buf.strip():
                    raise ProtocolError("the connection ended inside a message")
                return None
            self.buf += chunk
            if len(self.buf) > MAX_CONTROL_MESSAGE:
                raise ProtocolError("control message too long")
        line, _, self.buf = self.buf.partition(b"\n")
        try:
            msg = json.loads(line)
        except ValueError:
            raise ProtocolError("malformed control message") from None
        if not isinstance(msg, dict):
            raise ProtocolError("malformed control message")
        return msg


def _peer_uid(conn: socket.socket) -> int:
    """The uid of the process that connected (the kernel's record, taken at connect)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


class Sentry:
    def __init__(self, cfg: SandboxConfig) -> None:
        self.cfg = cfg
        self.gofer_pid = 0
        self.watchdog_pid = 0
        self.init_pid = 0
        self.spawner: Spawner | None = None
        self.started = False
        self.cgroup: Cgroup | None = None
        self.cgroup_origin: dict[str, str] = {}
        self.epoll = select.epoll()
        self.handlers: dict[int, object] = {}  # fd -> callable(events)
        self.exec_waiters: dict[int, socket.socket] = {}  # pid -> its proxy's connection
        self.tracer: Strace | None = None  # --strace
        self.platform: Platform | None = None  # how the workload's syscalls arrive

    # -- creation --------------------------------------------------------------
    def _spawn_gofer(self) -> tuple[GoferClient, list[str]]:
        cfg = self.cfg
        sock, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ready_r, ready_w = os.pipe()
        # The gofer is the only process of a PID namespace of its own: no host process has
        # a pid it can name. Forked straight into it (it is pid 1 there), so that the pid
        # this process waits for and the watchdog watches is the gofer's own; then this
        # process's children are created in its own namespace again (setns with a pidfd
        # of itself), so that the workload's namespace can be made later.
        own_pidns = os.pidfd_open(os.getpid())
        try:
            host.unshare(abi.CLONE_NEWPID)
            pid = os.fork()
        except BaseException:
            host.setns(own_pidns, abi.CLONE_NEWPID)
            os.close(own_pidns)
            raise
        if pid == 0:
            try:
                os.close(own_pidns)
                sock.close()
                os.close(ready_r)
                release_stdio()  # errors go back over ready_w
                gofer_server.run(peer, TreeSpec(
                    cfg.rootfs, cfg.readonly_root, cfg.mounts, cfg.bundle, cfg.masked_paths,
                    cfg.readonly_paths, cfg.devices, cfg.device_rules), ready_w)
            finally:
                os._exit(1)
        host.setns(own_pidns, abi.CLONE_NEWPID)
        os.close(own_pidns)
        self.gofer_pid = pid
        peer.close()
        os.close(ready_w)
        with os.fdopen(ready_r, "rb") as f:
            msg = f.read().decode()
        if not msg.startswith("ok:"):
            raise SetupError(msg[len("error:"):] if msg.startswith("error:")
                             else "the gofer failed to start")
        return GoferClient(sock), [p for p in msg[3:].split(",") if p]

    def _spawn(self, proc: ProcessConfig, start_r: int | None, stdio: list[int] | None,
               init: bool = False) -> tuple[int, int]:
        """A new process in the sandbox, forked by the spawner; (host pid, its
        notification descriptor)."""
        exe = _find_executable(self.gofer, proc)
        sock, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            try:
                pid = self.spawner.spawn(None if init else proc, exe, peer, start_r, stdio)
            finally:
                peer.close()  # the child holds its own copy: EOF here if it dies
        except SpawnError as e:
            sock.close()
            raise SetupError(str(e)) from None
        platform = self.platform
        try:
            try:
                platform.attach(pid, sock)
            except OSError as e:
                raise SetupError(e.strerror or str(e)) from None
            msg, fds = platform.receive(sock, fds=1)
            if msg != b"ok" or not fds:
                raise SetupError(msg.decode(errors="replace").removeprefix("error:") or
                                 "the process failed to start in the sandbox")
            msg, _ = platform.receive(sock)
            if msg != b"ready":
                os.close(fds[0])
                raise SetupError(msg.decode(errors="replace").removeprefix("error:") or
                                 "the process failed to start in the sandbox")
        except SetupError:
            self.spawner.signal(pid, signal.SIGKILL)  # its exit report is ignored
            raise
        finally:
            sock.close()
        return pid, fds[0]

    def _terminal(self, proc: ProcessConfig, console_socket: str | int) -> list[int] | None:
        """With a terminal: a pty whose master goes to the console socket; its slave as
        the process's stdio."""
        if not proc.terminal:
            return None
        if not console_socket:
            raise SetupError("process.terminal is true but no --console-socket was given")
        try:
            master, slave = console.open_pty(self.gofer, proc.console_size)
        except OSError as e:
            raise SetupError(f"creating a terminal: {e.strerror}") from None
        try:
            console.send_master(console_socket, master)
        except OSError as e:
            os.close(slave)
            raise SetupError(f"console socket {console_socket}: {e.strerror}") from None
        finally:
            os.close(master)
        return [slave, slave, slave]

    def _join_cgroup(self) -> None:
        """The container's cgroup, made and joined before anything is forked: every process
        of the sandbox is born in it (sentry/cgroup.py). Pages the sentry shares with the
        runtime that forked it would stay charged there (v1's move_charge_at_immigrate
        is gone from current kernels): charge_shared_pages copies them."""
        cgroup = Cgroup(self.cfg.cgroup_path)
        # Room for the sentry, gofer and watchdog until they are counted (below).
        cgroup.pids_reserve = _START_PIDS_RESERVE
        try:
            cgroup.create(self.cfg.resources)
        except CgroupError as e:
            raise SetupError(str(e)) from None
        self.cgroup = cgroup
        self.cgroup_origin = cgroup.where(os.getpid())
        try:
            cgroup.join(os.getpid())
        except CgroupError as e:
            raise SetupError(str(e)) from None
        cgroup_mod.charge_shared_pages()  # the sentry's memory is the container's
        try:
            # An OOM kill in the container takes a workload process, never the sandbox
            # (inherited by the gofer and the watchdog; the workload resets its own).
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("-1000")
        except OSError as e:
            log.warning("oom_score_adj: %s", e.strerror)

    def create(self) -> None:
        cfg = self.cfg
        self._join_cgroup()
        workload_cpus = os.sched_getaffinity(0)
        # The sentry and the gofer take turns (one waits while the other works): on one
        # CPU a request is a context switch, not a cross-CPU wake-up (slow on VMs).
        os.sched_setaffinity(0, {_sentry_cpu(workload_cpus, cfg.resources.cpus)})
        try:
            workload.enter_ipc(cfg)
        except OSError as e:
            raise SetupError(f"joining the IPC namespace: {e.strerror}") from None
        self.gofer, synthetic = self._spawn_gofer()
        workload.enter_network(cfg)
        try:
            self.spawner = Spawner.start(cfg, self.cgroup, self.gofer_pid, workload_cpus)
        except SpawnError as e:
            raise SetupError(str(e)) from None
        self.watchdog_pid, watchdog_w = watchdog.start([self.gofer_pid, self.spawner.pid])
        try:
            # The workload's pids limit is the spec's: the sandbox's own tasks (the sentry,
            # gofer, spawner and watchdog) come on top.
            self.cgroup.set_pids_reserve(self.cgroup.task_count())
        except CgroupError as e:
            raise SetupError(str(e)) from None
        _ensure_cwd(self.gofer, cfg.process.cwd)
        self.kernel = Kernel(gofer=self.gofer, hostname=cfg.hostname,
                             domainname=cfg.domainname or "(none)", cgroup=self.cgroup,
                             gofer_pid=self.gofer_pid, boot_offset=self.spawner.boot_offset,
                             release=cfg.kernel_release,
                             signal_thread=self.spawner.signal_thread)
        synthetic_fds = {p: self.gofer.call("synthetic_root", None, path=p.encode())[1]
                         for p in synthetic if p in ("/proc", "/sys")}
        if cfg.strace is not None:
            self.tracer = self._strace()
        self.platform = platforms.create(cfg.platform, self.kernel, self._watch,
                                         self._unwatch, self.tracer)
        stdio = self._terminal(cfg.process, cfg.console_socket)
        start_r, self.start_w = os.pipe()
        try:
            self.init_pid, notify_fd = self._spawn(cfg.process, start_r, stdio, init=True)
            watchdog.arm(watchdog_w, self.init_pid)
        finally:
            os.close(start_r)
            for fd in set(stdio or ()):
                os.close(fd)
        self.platform.add_process(notify_fd)
        self._enter_container_namespaces()
        if "/proc" in synthetic_fds:
            self.kernel.procfs = ProcFS(synthetic_fds["/proc"], synthetic_fds.get("/sys"),
                                        self.init_pid, self.kernel, cfg.masked_paths,
                                        cfg.sysctl, cfg.mounts, cfg.readonly_paths)
        self.state_fd, path = control_path(cfg.state_dir)
        self.control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # 0600 from the moment it exists, whatever umask the runtime was given (the
        # sentry is single-threaded here: nothing else creates files meanwhile).
        old_umask = os.umask(0o177)
        try:
            self.control.bind(path)
        finally:
            os.umask(old_umask)
        self.control.listen(64)

    def _strace(self) -> Strace:
        cfg, kernel = self.cfg, self.kernel
        if cfg.strace_log:
            try:
                out = open(cfg.strace_log, "a", buffering=1)  # noqa: SIM115 (the sentry's life)
            except OSError as e:
                raise SetupError(f"--strace-log {cfg.strace_log}: {e.strerror}") from None
        else:
            out = next((h.stream for h in logging.getLogger().handlers
                        if isinstance(h, logging.StreamHandler)), None)

        def sandbox_tid(host_tid: int) -> int | None:
            return kernel.procfs.translate(host_tid) if kernel.procfs else None

        def sandbox_pid(ctx) -> int | None:
            try:
                return sandbox_tid(int(ctx.status()["Tgid"]))
            except Exception:  # gone: the line still says what happened
                return None

        return Strace(out, cfg.strace_format, set(cfg.strace) or None, sandbox_tid,
                      sandbox_pid)

    def _enter_container_namespaces(self) -> None:
        """The container's UTS namespace (the init's) and a cgroup namespace rooted at the
        container's cgroup: /proc/<state pid>/ns/* is the container's for the tools that
        read it (the network and IPC ones already are; PID and mount cannot be: the
        sentry must see host PIDs and have its own root)."""
        for name, flag in (("uts", abi.CLONE_NEWUTS),):
            fd = os.open(f"/proc/{self.init_pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                host.setns(fd, flag)
            finally:
                os.close(fd)
        host.unshare(abi.CLONE_NEWCGROUP)

    def abort(self) -> None:
        if self.init_pid:  # the spawner's child: it dies, and is reaped, with the spawner
            try:
                os.kill(self.init_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in (self.spawner.pid if self.spawner else 0, self.gofer_pid,
                    self.watchdog_pid):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
        if self.cgroup is not None:
            try:
                self.cgroup.leave(os.getpid(), self.cgroup_origin)
                self.cgroup.remove()
            except CgroupError as e:
                log.error("%s", e)

    # -- the event loop ----------------------------------------------------------
    def _watch(self, fd: int, handler) -> None:
        self.handlers[fd] = handler
        self.epoll.register(fd, select.EPOLLIN)

    def _unwatch(self, fd: int) -> None:
        self.handlers.pop(fd, None)
        try:
            self.epoll.unregister(fd)
        except (OSError, ValueError):
            pass

    def _forward_signal(self, sig: int, _frame) -> None:
        try:
            self.spawner.signal(self.init_pid, sig)
        except OSError:
            pass  # the spawner is gone: the loop finds out

    def serve(self) -> int:
        for sig in range(1, signal.NSIG):
            if sig not in _NOT_FORWARDED:
                try:
                    signal.signal(sig, self._forward_signal)
                except (OSError, ValueError):
                    pass
        result: list[int] = []
        spawner = self.spawner
        self._watch(spawner.sock.fileno(), lambda _e: spawner.readable())
        gofer = self.gofer
        # Readable: answers the gofer gives later (a FIFO open), or its end (GoferGone).
        self._watch(gofer.sock.fileno(), lambda _e: gofer.readable())
        self._watch(self.control.fileno(), lambda _e: self._control())
        poll = self.epoll.poll
        handlers = self.handlers
        checked = 0.0
        while not result:
            try:
                # While requests wait in the gofer, look every _WAIT_CHECK whether their
                # threads still wait, or have a signal to take (a killable wait: the
                # sentry ends it, FdLater.wanted), or pause is freezing them.
                for fd, events in poll(_WAIT_CHECK if gofer.waiting else -1):
                    handler = handlers.get(fd)
                    if handler is None:
                        continue
                    handler(events)
                    if spawner.exits:
                        self._exits(result)
                    if result:
                        break
                if gofer.arrived:
                    gofer.deliver()
                if gofer.waiting and time.monotonic() - checked >= _WAIT_CHECK:
                    gofer.check_waiting()
                    checked = time.monotonic()
            except GoferGone:
                return self._died("the gofer", self.gofer_pid)
            except SpawnerGone:
                return self._died("the spawner", self.spawner.pid)
        return result[0]

    def _exits(self, result: list[int]) -> None:
        """Workload processes the spawner reaped: the init's code ends the loop, an
        exec'd process's goes to its proxy."""
        exits, self.spawner.exits = self.spawner.exits, []
        for pid, code in exits:
            if pid == self.init_pid:
                result.append(code)
            elif pid in self.exec_waiters:
                self._exec_exited(pid, code)

    def _died(self, what: str, pid: int) -> int:
        try:  # first (the watchdog does it too)
            self.spawner.signal(self.init_pid, signal.SIGKILL)
        except OSError:
            pass  # the spawner itself is gone: its children die with it
        log.error("%s %s: stopping the sandbox", what,
                  _how_it_ended(pid, self.platform.reaped(pid)))
        return 128 + signal.SIGKILL

    # -- control requests --------------------------------------------------------
    def _control(self) -> None:
        try:
            conn, _ = self.control.accept()
        except OSError:
            return  # the caller went away first
        try:
            uid = _peer_uid(conn)
        except OSError:
            uid = -1
        if uid != os.geteuid():
            # Only the runtime (our own uid) may start, exec or update: the socket's mode
            # says so too, this holds even if the mode or a directory above is loosened.
            log.warning("control connection from uid %d refused", uid)
            conn.close()
            return
        reader = LineReader(conn, with_fds=True)
        try:
            # The runtime sends its request at once; the timeout bounds a stuck peer.
            conn.settimeout(10)
            req = reader.read() or {}
        except (OSError, ProtocolError) as e:
            log.warning("control request: %s", e)
            self._reply_and_close(conn, {"error": f"control request: {e}"})
            for fd in reader.fds:
                os.close(fd)
            return
        fds = reader.fds
        op = req.get("op")
        try:
            if op == "start":
                reply = self._start()
            elif op == "exec":
                reply = self._exec(req, fds, conn)
                if reply.get("pid"):
                    try:
                        conn.sendall(json.dumps(reply).encode() + b"\n")
                    except OSError:
                        pass  # the proxy is gone: its watch kills the process
                    return  # the connection stays open until the process exits
            elif op == "update":
                reply = self._update(req)
            else:
                reply = {"error": f"unknown control request {op!r}"}
        except SetupError as e:
            reply = {"error": str(e)}
        finally:
            for fd in fds:
                os.close(fd)
        self._reply_and_close(conn, reply)

    @staticmethod
    def _reply_and_close(conn: socket.socket, reply: dict) -> None:
        try:
            conn.sendall(json.dumps(reply).encode() + b"\n")
        except OSError:
            pass
        conn.close()

    def _start(self) -> dict:
        if self.started:
            return {"error": "container is already started"}
        os.write(self.start_w, b"s")
        self.started = True
        os.close(os.open(STARTED_MARK, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644,
                         dir_fd=self.state_fd))
        return {"ok": True}

    def _exec(self, req: dict, fds: list[int], conn: socket.socket) -> dict:
        """A new process in the running sandbox: same PIDs, /proc, gofer and limits."""
        proc = process_from_wire(req["process"])
        self._reserve_pids(1)  # the proxy: the sandbox's, not the workload's
        try:
            return self._exec_in(proc, req, fds, conn)
        except BaseException:
            self._reserve_pids(-1)
            raise

    def _exec_in(self, proc: ProcessConfig, req: dict, fds: list[int],
                 conn: socket.socket) -> dict:
        _ensure_cwd(self.gofer, proc.cwd)
        # With a terminal the proxy sends its connection to the console socket (the
        # sentry reaches no host path); else the caller's stdin, stdout and stderr.
        if len(fds) != (1 if proc.terminal else 3):
            raise SetupError("exec: the request came without its descriptors")
        stdio = self._terminal(proc, fds[0]) if proc.terminal else fds
        try:
            pid, notify_fd = self._spawn(proc, None, stdio)
        finally:
            if stdio is not fds:
                for fd in set(stdio):
                    os.close(fd)
        self.platform.add_process(notify_fd)
        conn.settimeout(None)
        self.exec_waiters[pid] = conn
        # The proxy holds the connection until the process exits; if the proxy goes
        # first (a shim's kill -9 of the pid in --pid-file), the process goes with it.
        self._watch(conn.fileno(), lambda _e: self._exec_proxy_gone(pid, conn))
        return {"pid": pid}

    def _reserve_pids(self, delta: int) -> None:
        try:
            self.cgroup.reserve_pids(delta)
        except CgroupError as e:
            log.warning("%s", e)

    def _exec_proxy_gone(self, pid: int, conn: socket.socket) -> None:
        self._unwatch(conn.fileno())
        self.spawner.signal(pid, signal.SIGKILL)

    def _exec_exited(self, pid: int, code: int) -> None:
        conn = self.exec_waiters.pop(pid)
        self._unwatch(conn.fileno())
        self._reserve_pids(-1)
        try:
            conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
        except OSError:
            pass
        conn.close()

    def _update(self, req: dict) -> dict:
        try:
            self.cgroup.apply(Resources(**req.get("resources", {})))
        except (CgroupError, TypeError) as e:
            return {"error": str(e)}
        if self.kernel.procfs is not None:
            self.kernel.procfs.refresh_sys()
        return {"ok": True}

    def finish(self) -> None:
        try:
            os.unlink(CONTROL_SOCKET, dir_fd=self.state_fd)
        except OSError:
            pass
        for conn in self.exec_waiters.values():
            conn.close()
        self.gofer.sock.close()  # the gofer exits on EOF
        self.spawner.sock.close()  # the spawner too, once what is left of the workload is
        self.platform.release(self.spawner.pid)  # (a traced one waits for its tracer)
        for pid in (self.gofer_pid, self.spawner.pid, self.watchdog_pid):
            try:
                os.waitpid(pid, 0)
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


def _how_it_ended(pid: int, reaped: int | None = None) -> str:
    """How a child of the sentry ended, read without reaping it (finish and abort wait
    for it), or from its status if the tracer reaped it (`reaped`); its socket closed as
    it exited, so it is gone or nearly so."""
    if reaped is not None:
        if os.WIFEXITED(reaped):
            return f"exited with status {os.WEXITSTATUS(reaped)}"
        sig = os.WTERMSIG(reaped)
    else:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            info = None
        if info is None:
            return "exited"
        if info.si_code == os.CLD_EXITED:
            return f"exited with status {info.si_status}"
        sig = info.si_status
    how = f"was killed by {signal.strsignal(sig) or sig} (signal {sig})"
    if sig == signal.SIGSYS:
        how += (": a seccomp violation, a syscall outside its allowlist (the kernel's "
                "audit record, type=1326, names it)")
    return how


def _sentry_cpu(allowed: set[int], cpuset: str | None) -> int:
    """The CPU for the sentry and gofer (and, with share_cpu, the workload): the one it
    runs on now, if the container's cpuset allows it, else the cpuset's first."""
    if cpuset:
        allowed = allowed & set(parse_cpu_list(cpuset)) or allowed
    current = host.sched_getcpu()
    return current if current in allowed else min(allowed)


def run(cfg: SandboxConfig, status_w: int, detach: bool) -> None:
    """Body of the sentry process (never returns). Writes "ok:GOFER_PID:INIT_PID" or
    "error:MESSAGE" to status_w once the container is created."""
    if detach:
        os.setsid()
    keep = {status_w} | {h.stream.fileno() for h in logging.getLogger().handlers
                         if isinstance(h, logging.StreamHandler) and hasattr(h.stream, "fileno")}
    _close_inherited_fds(keep)
    sentry = Sentry(cfg)
    profile_path = os.environ.get("RUNSC_PY_PROFILE")  # bench/: where the sentry's time goes
    try:
        sentry.create()
        if profile_path:
            import cProfile
            profiler = cProfile.Profile()
            profile_file = open(profile_path, "wb")  # noqa: SIM115 (written at the end)
        log_stream = next((h.stream for h in logging.getLogger().handlers
                           if isinstance(h, logging.StreamHandler)), None)
        if detach:
            release_stdio()  # the workload has its own copies (or the pty)
        root_dir = os.path.join(cfg.state_dir, SENTRY_ROOT)
        os.mkdir(root_dir, 0o700)
        confine.confine(root_dir, sorted(sentry.cgroup.dirs().values()), log_stream,
                        sentry.platform.sentry_syscalls)
    except Exception as e:  # whatever it is, the user gets one line and nothing is left
        if isinstance(e, SetupError):
            msg = str(e)
        else:
            log.exception("creating the sandbox")
            msg = f"creating the sandbox: {e}"
        sentry.abort()
        os.write(status_w, ("error:" + msg).encode())
        os._exit(1)
    os.write(status_w, f"ok:{sentry.gofer_pid}:{sentry.init_pid}".encode())
    os.close(status_w)
    if profile_path:
        code = profiler.runcall(sentry.serve)
        profiler.create_stats()
        marshal.dump(profiler.stats, profile_file)  # what dump_stats writes, to the open file
        profile_file.close()
    else:
        try:
            code = sentry.serve()
        except Exception:  # a sentry bug: said in the log, and the sandbox stops
            log.exception("the sentry failed: stopping the sandbox")
            code = sentry._died("the sentry", os.getpid())
    sentry.finish()
    log.info("container %s exited with status %d", cfg.container_id, code)
    logging.shutdown()
    sys.stdout.flush()
    os._exit(code)
