"""The spawner: the one process of the sandbox that forks, signals and reaps workload
processes.

The sentry confines itself after set-up (sentry/confine.py: no fork, few capabilities,
no_new_privs, a seccomp allowlist), and all of that would be inherited by anything it
forked. So it forks this process first, before it confines itself, and asks it over a
socket pair for each new workload process (the init, then each exec). The spawner keeps
the sandbox's PID and time namespaces for its children, puts them in the container's
cgroup, sends them the signals the sentry forwards and reports how they ended.

It trusts the sentry no more than it must: the init's process comes from the spawner's own
copy of the configuration, an exec'd process gets no capability outside the init's
bounding set, and a signal goes only to a process it spawned and has not reaped, or to a
thread it finds in the sandbox's own PID namespace.

Messages are JSON, one per SOCK_SEQPACKET packet, descriptors alongside:
  sentry -> spawner  {"op": "spawn", "init": bool, "process": ..., "exe": ...}
                       fds: the child's end of its socket pair, then the start pipe's
                       read end (init only), then stdin, stdout, stderr (if given)
                     {"op": "signal", "pid": pid, "signal": n}
                     {"op": "signal_thread", "tid": tid, "signal": n}  (a thread of the
                       sandbox's PID namespace, by host TID: what Linux sends the caller
                       itself, such as SIGXFSZ from an emulated truncate; answered, so
                       that the signal is pending before the sentry answers the call)
  spawner -> sentry  {"boot_offset": seconds} once, {"pid": pid} or {"error": text}
                     per spawn, {"signalled": bool} per signal_thread,
                     {"exited": pid, "code": code} when a child ends
"""
from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import socket

from sentry import workload
from sentry.cgroup import Cgroup, CgroupError
from sentry.config import ProcessConfig, SandboxConfig
from syscalls import abi, host

_MAX_MESSAGE = 1 << 20
_HELD_RETRY_MS = 100


def exit_code(status: int) -> int:
    """A wait status as a shell shows it: the code, or 128+N for death by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def process_to_wire(proc: ProcessConfig) -> dict:
    return dataclasses.asdict(proc)


def process_from_wire(data: dict) -> ProcessConfig:
    data = dict(data)
    data["rlimits"] = [tuple(r) for r in data.get("rlimits", [])]
    if data.get("console_size"):
        data["console_size"] = tuple(data["console_size"])
    return ProcessConfig(**data)


class SpawnError(Exception):
    """The spawner refused or failed a request; the text is for the user."""


class SpawnerGone(Exception):
    """The spawner's end of the socket closed: it died (and the sandbox with it)."""


class Spawner:
    """The sentry's side: start the spawner, ask it for processes and signals, and collect
    the exits it reports."""

    def __init__(self, sock: socket.socket, pid: int, boot_offset: int) -> None:
        self.sock = sock
        self.pid = pid
        self.boot_offset = boot_offset
        self.exits: list[tuple[int, int]] = []  # (pid, code) reported, not yet handled

    @classmethod
    def start(cls, cfg: SandboxConfig, cgroup: Cgroup, gofer_pid: int,
              workload_cpus: set[int]) -> Spawner:
        sock, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sentry_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                _serve(peer, cfg, cgroup, gofer_pid, workload_cpus, sentry_pid)
            finally:
                os._exit(0)
        peer.close()
        spawner = cls(sock, pid, 0)
        first = spawner._receive()
        if first is None or "boot_offset" not in first:
            raise SpawnError((first or {}).get("error") or "the spawner failed to start")
        spawner.boot_offset = first["boot_offset"]
        return spawner

    def _receive(self) -> dict | None:
        data = self.sock.recv(_MAX_MESSAGE)
        return json.loads(data) if data else None

    def _reply(self) -> dict:
        """The answer to the request just sent; exits reported meanwhile are kept."""
        while True:
            msg = self._receive()
            if msg is None:
                raise SpawnerGone()
            if "exited" in msg:
                self.exits.append((msg["exited"], msg["code"]))
            else:
                return msg

    def spawn(self, proc: ProcessConfig | None, exe: str, child_sock: socket.socket,
              start_r: int | None, stdio: list[int] | None) -> int:
        """A new workload process (the init when proc is None); its host pid."""
        fds = [child_sock.fileno(), *([start_r] if start_r is not None else []),
               *(stdio or [])]
        req = {"op": "spawn", "init": proc is None, "exe": exe, "stdio": stdio is not None,
               "process": process_to_wire(proc) if proc is not None else None}
        socket.send_fds(self.sock, [json.dumps(req).encode()], fds)
        reply = self._reply()
        if "error" in reply:
            raise SpawnError(reply["error"])
        return reply["pid"]

    def signal(self, pid: int, sig: int) -> None:
        """Send sig to a workload process the spawner started (nothing if it ended)."""
        self.sock.send(json.dumps({"op": "signal", "pid": pid, "signal": sig}).encode())

    def signal_thread(self, tid: int, sig: int) -> None:
        """Send sig to one thread of the sandbox, named by its host TID (nothing if it is
        gone or not the sandbox's)."""
        self.sock.send(json.dumps({"op": "signal_thread", "tid": tid, "signal": sig}).encode())
        self._reply()

    def readable(self) -> None:
        """Read what the spawner sent (exits) into self.exits."""
        msg = self._receive()
        if msg is None:
            raise SpawnerGone()
        if "exited" in msg:
            self.exits.append((msg["exited"], msg["code"]))


# -- the spawner process --------------------------------------------------------------
def _serve(sock: socket.socket, cfg: SandboxConfig, cgroup: Cgroup, gofer_pid: int,
           workload_cpus: set[int], sentry_pid: int) -> None:
    for sig in range(1, signal.NSIG):  # the sentry's handlers forward signals: not here
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    # It never changes credentials, so this holds: it dies with the sentry (the watchdog
    # then ends the workload).
    host.prctl(abi.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != sentry_pid:
        return
    os.closerange(3, sock.fileno())  # nothing of the sentry's but this socket
    os.closerange(sock.fileno() + 1, 1 << 16)
    # Every process forked from here on is in the sandbox's PID namespace (the first is
    # its init, pid 1) and its time namespace.
    try:
        host.unshare(abi.CLONE_NEWPID)
        boot_offset = workload.new_time_namespace()
    except OSError as e:
        sock.send(json.dumps({"error": f"creating the sandbox's namespaces: {e}"}).encode())
        return
    sock.send(json.dumps({"boot_offset": boot_offset}).encode())
    _Server(sock, cfg, cgroup, gofer_pid, workload_cpus).loop()


class _Server:
    def __init__(self, sock: socket.socket, cfg: SandboxConfig, cgroup: Cgroup,
                 gofer_pid: int, workload_cpus: set[int]) -> None:
        self.sock = sock
        self.cfg = cfg
        self.cgroup = cgroup
        self.gofer_pid = gofer_pid
        self.workload_cpus = workload_cpus
        self.init_pid = 0
        self.children: dict[int, int] = {}  # pidfd -> pid, until reaped
        self.pidfds: dict[int, int] = {}  # pid -> pidfd
        self.poller = select.poll()
        self.poller.register(sock.fileno(), select.POLLIN)
        # Exited children a workload tracer still holds: Linux shows a traced zombie only
        # to its tracer until that one waits for it or lets go, so the real parent's
        # waitpid would block (and this process with it). Retried on a timer.
        self.held: set[int] = set()
        self.sandbox_pidns = ""  # its /proc/PID/ns/pid link, once the init exists

    def loop(self) -> None:
        while True:
            for fd, _ in self.poller.poll(_HELD_RETRY_MS if self.held else None):
                if fd == self.sock.fileno():
                    if not self._request():
                        self._end()
                        return
                else:
                    self._reap(fd)
            for pidfd in list(self.held):
                self._reap(pidfd)

    def _request(self) -> bool:
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, _MAX_MESSAGE, 8,
                                              socket.MSG_CMSG_CLOEXEC)
        except OSError:
            return False
        if not data:
            return False
        try:
            req = json.loads(data)
            op = req.get("op") if isinstance(req, dict) else None
            if op == "signal":  # never answered: the sentry does not wait for one
                try:
                    self._signal(int(req["pid"]), int(req["signal"]))
                except (KeyError, TypeError, ValueError):
                    pass
                return True
            if op == "signal_thread":
                reply = {"signalled": self._signal_thread(int(req["tid"]), int(req["signal"]))}
            else:
                reply = self._spawn(req, fds) if op == "spawn" else {"error": "unknown request"}
        except (ValueError, KeyError, TypeError) as e:
            reply = {"error": f"malformed request: {e}"}
        finally:
            for fd in fds:
                os.close(fd)
        self.sock.send(json.dumps(reply).encode())
        return True

    def _spawn(self, req: dict, fds: list[int]) -> dict:
        init = bool(req["init"])
        if init == bool(self.init_pid):
            return {"error": "the sandbox has an init already" if init else
                    "the container is not running"}
        expected = 1 + init + 3 * bool(req["stdio"])
        if len(fds) != expected:
            return {"error": "spawn request with the wrong descriptors"}
        # fds stay the request's (closed by _request once the child has its copies).
        child_sock = socket.socket(fileno=os.dup(fds[0]))
        start_r = fds[1] if init else None
        stdio = fds[1 + init:] or None
        ns_fds: dict[int, int] = {}
        try:
            if init:
                proc = self.cfg.process
                ns_fds[abi.CLONE_NEWNS] = os.open(f"/proc/{self.gofer_pid}/ns/mnt",
                                                    os.O_RDONLY | os.O_CLOEXEC)
                mnt_fd = ns_fds[abi.CLONE_NEWNS]

                def enter() -> None:
                    workload.enter_container(self.cfg, mnt_fd)
            else:
                proc = process_from_wire(req["process"])
                refused = _caps_beyond(proc, self.cfg.process)
                if refused:
                    return {"error": "exec: capabilities outside the container's bounding "
                            f"set: {', '.join(map(str, sorted(refused)))}"}
                for name, flag in workload.JOINED_NAMESPACES.items():
                    try:
                        ns_fds[flag] = os.open(f"/proc/{self.init_pid}/ns/{name}",
                                               os.O_RDONLY | os.O_CLOEXEC)
                    except FileNotFoundError:
                        continue  # no time namespace (kernel < 5.6)
                    except OSError as e:
                        return {"error": f"exec: the container is not running ({e.strerror})"}

                def enter() -> None:
                    workload.join_container(ns_fds)
            parent = os.getpid()
            pid = os.fork()
            if pid == 0:
                try:
                    if not self.cfg.share_cpu:
                        os.sched_setaffinity(0, self.workload_cpus)
                    workload.run(proc, req["exe"], enter, child_sock, start_r, parent, stdio,
                                 self.cfg.platform)
                finally:
                    os._exit(1)
        except OSError as e:
            return {"error": f"starting the process: {e.strerror}"}
        finally:
            child_sock.close()
            for fd in ns_fds.values():
                os.close(fd)
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = pid
        self.pidfds[pid] = pidfd
        self.poller.register(pidfd, select.POLLIN)
        if init:
            self.init_pid = pid
            self.sandbox_pidns = os.readlink(f"/proc/{pid}/ns/pid")
            release_stdio()  # the init had the caller's stdio from here, if it had no other
        try:
            self.cgroup.add(pid)  # before it can run anything of the workload's
        except CgroupError as e:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            return {"error": str(e)}
        return {"pid": pid}

    def _signal(self, pid: int, sig: int) -> None:
        pidfd = self.pidfds.get(pid)
        if pidfd is not None and 0 < sig < signal.NSIG:
            try:
                signal.pidfd_send_signal(pidfd, sig)
            except OSError:
                pass  # exited, not yet reaped

    def _signal_thread(self, tid: int, sig: int) -> bool:
        if not (0 < tid and 0 < sig < signal.NSIG and self.sandbox_pidns):
            return False
        try:
            pidfd = os.pidfd_open(tid, abi.PIDFD_THREAD)
        except OSError:
            return False  # gone
        try:
            # The pidfd names one task for good; if that task was gone and its TID reused
            # by the time /proc is read, the signal below finds nobody (ESRCH).
            if os.readlink(f"/proc/{tid}/ns/pid") != self.sandbox_pidns:
                return False
            signal.pidfd_send_signal(pidfd, sig)  # a thread's pidfd: to that thread
            return True
        except OSError:
            return False
        finally:
            os.close(pidfd)

    def _reap(self, pidfd: int) -> None:
        pid = self.children[pidfd]
        # Never blocks: the child has exited (its pidfd is readable), but a tracer in the
        # sandbox may not have collected it yet; its status comes once it has.
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped == 0:
            if pidfd not in self.held:
                self.held.add(pidfd)
                self.poller.unregister(pidfd)
            return
        if pidfd in self.held:
            self.held.discard(pidfd)
        else:
            self.poller.unregister(pidfd)
        del self.children[pidfd]
        del self.pidfds[pid]
        os.close(pidfd)
        try:
            self.sock.send(json.dumps({"exited": pid, "code": exit_code(status)}).encode())
        except OSError:
            pass

    def _end(self) -> None:
        """The sentry is gone or done: nothing of the workload outlives it."""
        for pidfd, pid in list(self.children.items()):
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except OSError:
                pass
            os.waitpid(pid, 0)


def release_stdio() -> None:
    """Point 0, 1 and 2 at /dev/null. A detached runtime process must not hold the
    caller's stdio: containerd's shim reads `create`'s output to EOF, and with a
    terminal the workload's stdio is the pty, not these."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def _caps_beyond(proc: ProcessConfig, init: ProcessConfig) -> set[int]:
    """Capabilities an exec'd process asks for that the container's init may not have."""
    allowed = set(init.capabilities.get("bounding", []))
    wanted: set[int] = set()
    for caps in proc.capabilities.values():
        wanted.update(caps)
    return wanted - allowed
