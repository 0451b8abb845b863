"""The runc-compatible command line (click)."""
from __future__ import annotations

import ctypes
import dataclasses
import importlib.metadata
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile

import click

from runsc_py import exec_proxy, hooks, launcher, logs, spec, terminal
from runsc_py import install as install_mod
from runsc_py.errors import UserError
from runsc_py.state import Container, list_ids, process_start_time

log = logging.getLogger("runsc-py")
DEFAULT_ROOT = "/run/runsc-py"


def _root(ctx: click.Context) -> str:
    return ctx.obj["root"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", default=DEFAULT_ROOT, show_default=True,
              help="Directory for container state.")
@click.option("--log", "log_path", default=None, help="Log file.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text")
@click.option("--debug", is_flag=True, help="Log debug messages.")
@click.option("--systemd-cgroup", is_flag=True, help="Accepted for runc compatibility.")
@click.option("--platform", type=click.Choice(["seccomp", "ptrace"]), default="seccomp",
              help="How syscalls reach the sentry: seccomp user notification (emulated "
                   "calls only) or ptrace (every call stops in the sentry).")
@click.option("--strace", is_flag=True,
              help="Log every syscall the sentry sees, as strace prints it.")
@click.option("--strace-syscalls", default="",
              help="With --strace: only these syscalls (comma-separated names).")
@click.option("--strace-format", type=click.Choice(["text", "json"]), default="text",
              help="With --strace: strace's lines, or one JSON object a line.")
@click.option("--strace-log", default="",
              help="With --strace: the file it goes to (default: the --log file, else "
                   "stderr).")
@click.option("--share-cpu", is_flag=True,
              help="Run workloads on their sentry's CPU: trapped syscalls get faster, "
                   "each sandbox uses one CPU (also annotation dev.runsc-py.share-cpu).")
@click.option("--kernel-version", default=None,
              help="The kernel release the sandbox reports (default 4.4.0, as gVisor; also "
                   "annotation dev.runsc-py.kernel-version).")
@click.option("--version", "-v", is_flag=True, is_eager=True, expose_value=False,
              callback=lambda ctx, _param, value: _print_version(ctx) if value else None,
              help="Print the version, as runc does.")
@click.pass_context
def cli(ctx: click.Context, root: str, log_path: str | None, log_format: str, debug: bool,
        systemd_cgroup: bool, platform: str, strace: bool, strace_syscalls: str,
        strace_format: str, strace_log: str, share_cpu: bool,
        kernel_version: str | None) -> None:
    """runsc-py: run OCI containers under a Python sentry (a gVisor-style sandbox)."""
    logs.setup(log_path, log_format, debug)
    if kernel_version is not None:
        spec.check_kernel_release(kernel_version, "--kernel-version")
    names = [n.strip() for n in strace_syscalls.split(",") if n.strip()]
    if names and not strace:
        raise UserError("--strace-syscalls needs --strace")
    unknown = set(names) - _syscall_names() if names else set()
    if unknown:
        raise UserError(f"--strace-syscalls: unknown syscall {', '.join(sorted(unknown))}")
    ctx.obj = {"root": os.path.abspath(root), "platform": platform, "share_cpu": share_cpu,
               "kernel_version": kernel_version, "strace": names if strace else None,
               "strace_format": strace_format,
               "strace_log": os.path.abspath(strace_log) if strace_log else ""}


def _syscall_names() -> set[str]:
    from ptrace.syscall.linux.x86_64 import SYSCALL_NAMES

    return set(SYSCALL_NAMES.values())


def _print_version(ctx: click.Context) -> None:
    click.echo(version_text())
    ctx.exit(0)


def version_text() -> str:
    """runc's `--version` lines: the runtime, the runtime spec, the libraries."""
    return (f"runsc-py version {importlib.metadata.version('runsc-py')}\n"
            f"spec: {spec.default_spec()['ociVersion']}\n"
            f"python: {platform.python_version()}\n"
            f"libseccomp: {_libseccomp_version()}")


def _libseccomp_version() -> str:
    try:
        lib = ctypes.CDLL("libseccomp.so.2")
        lib.seccomp_version.restype = ctypes.POINTER(ctypes.c_uint * 3)
        return ".".join(map(str, lib.seccomp_version().contents))
    except (OSError, AttributeError):
        return "unknown"


@cli.command("spec")
@click.option("--bundle", "-b", default=".", help="Where to write config.json.")
@click.option("--rootless", is_flag=True, help="Accepted for runc compatibility.")
def spec_cmd(bundle: str, rootless: bool) -> None:
    """Write a default config.json."""
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise UserError("File config.json exists. Remove it first")
    try:
        with open(path, "w") as f:
            json.dump(spec.default_spec(), f, indent="\t")
            f.write("\n")
    except OSError as e:
        raise UserError(f"writing {path}: {e.strerror}") from None


def _create(ctx: click.Context, container_id: str, bundle: str, pid_file: str | None,
            detach: bool, console_socket: str = "") -> tuple[Container, int]:
    container = Container(_root(ctx), container_id)
    bundle = os.path.abspath(bundle)
    doc = spec.load(bundle)
    if container.exists():
        raise UserError(f"container with id {container_id!r} already exists")
    cfg = spec.to_sandbox_config(doc, bundle, container_id, container.dir)
    cfg.console_socket = console_socket
    cfg.share_cpu = cfg.share_cpu or ctx.obj["share_cpu"]
    cfg.platform = ctx.obj["platform"]
    cfg.strace = ctx.obj["strace"]
    cfg.strace_format, cfg.strace_log = ctx.obj["strace_format"], ctx.obj["strace_log"]
    if ctx.obj["kernel_version"] and not cfg.kernel_release_set:
        cfg.kernel_release = ctx.obj["kernel_version"]
    container.create_dir()
    pid = 0
    try:
        pid, gofer_pid, init_pid = launcher.launch(
            cfg, detach, forked=lambda p: container.save_creating(p, cfg.cgroup_path))
        container.record(bundle, cfg.rootfs, pid, gofer_pid, init_pid,
                         doc.get("ociVersion", "1.0.2"), doc.get("annotations") or {},
                         cfg.cgroup_path, sandbox=launcher.descendants(pid))
        # runc's order, and the runtime spec's: prestart before createRuntime.
        for kind in ("prestart", "createRuntime", "createContainer"):
            hooks.run_hooks(doc, kind, container.oci_state("creating"))
        if pid_file:
            tmp = pid_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(str(pid))
            os.rename(tmp, pid_file)
    except BaseException as e:
        if pid:  # created, then failed here: the sentry is our child
            launcher.destroy(container, {**container.load_partial(), "pid": pid,
                                         "pid_start": process_start_time(pid),
                                         "cgroup_path": cfg.cgroup_path})
            os.waitpid(pid, 0)
        else:  # launch reaped all it made; the cgroup is ours only if it is empty
            launcher.remove_cgroup_if_empty(cfg.cgroup_path)
            container.remove_dir()
        if isinstance(e, OSError):
            raise UserError(f"creating container {container_id!r}: {e}") from None
        raise
    log.info("created container %s (sentry pid %d)", container_id, pid)
    return container, pid


@cli.command()
@click.option("--bundle", "-b", default=".", help="Path to the OCI bundle.")
@click.option("--pid-file", default=None, help="Write the container's pid here.")
@click.option("--console-socket", default=None,
              help="Unix socket that receives the pty master when process.terminal is set.")
@click.option("--no-pivot", is_flag=True, hidden=True)
@click.option("--no-new-keyring", is_flag=True, hidden=True)
@click.option("--preserve-fds", default=0, type=int, hidden=True)
@click.argument("container_id", metavar="ID")
@click.pass_context
def create(ctx: click.Context, container_id: str, bundle: str, pid_file: str | None,
           console_socket: str | None, **_runc_flags) -> None:
    """Create a container; it waits for `start`."""
    _create(ctx, container_id, bundle, pid_file, detach=True,
            console_socket=os.path.abspath(console_socket) if console_socket else "")


def _start(container: Container) -> None:
    st = container.load()
    status = container.status(st)
    if status == "stopped":
        raise UserError("cannot start a container that has stopped")
    if status != "created":
        raise UserError("cannot start an already running container")
    doc = spec.load(st["bundle"])
    try:
        hooks.run_hooks(doc, "startContainer", container.oci_state())
    except UserError:
        launcher.kill_and_wait(st)  # the runtime spec: error, and stop the container
        raise
    reply = launcher.control(container, {"op": "start"})
    if "error" in reply:
        raise UserError(reply["error"])
    hooks.run_hooks(doc, "poststart", container.oci_state())


@cli.command()
@click.argument("container_id", metavar="ID")
@click.pass_context
def start(ctx: click.Context, container_id: str) -> None:
    """Start a created container."""
    _start(Container(_root(ctx), container_id))


@cli.command()
@click.option("--bundle", "-b", default=".", help="Path to the OCI bundle.")
@click.option("--pid-file", default=None)
@click.option("--detach", "-d", is_flag=True, help="Do not wait for the container.")
@click.option("--console-socket", default=None, hidden=True)
@click.argument("container_id", metavar="ID")
@click.pass_context
def run(ctx: click.Context, container_id: str, bundle: str, pid_file: str | None,
        detach: bool, console_socket: str | None) -> int:
    """Create and start a container, attached to this terminal's stdio; exit with its status."""
    doc = spec.load(os.path.abspath(bundle))
    wants_tty = isinstance(doc.get("process"), dict) and doc["process"].get("terminal") is True
    if wants_tty and not console_socket and not detach:
        return _run_with_terminal(ctx, container_id, bundle, pid_file)
    container, pid = _create(ctx, container_id, bundle, pid_file, detach=detach,
                             console_socket=os.path.abspath(console_socket or "")
                             if console_socket else "")
    return _start_and_wait(container, pid, detach)


def _start_and_wait(container: Container, pid: int, detach: bool,
                    master: int | None = None) -> int:
    forward = {s: signal.signal(s, lambda sig, _f: os.kill(pid, sig))
               for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                         signal.SIGUSR1, signal.SIGUSR2)} if not detach else {}
    try:
        _start(container)
    except UserError:
        launcher.destroy(container, container.load())
        raise
    if detach:
        return 0
    if master is not None:
        terminal.relay(master, pid)
    _, status = os.waitpid(pid, 0)
    for s, h in forward.items():
        signal.signal(s, h)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS:
        msg = ("the sentry made a syscall outside its seccomp allowlist and was killed "
               "(SIGSYS); the log (--log) has the Python stack that made it")
        log.error("%s", msg)
        click.echo(f"runsc-py: {msg}", err=True)
    launcher.destroy(container, container.load())
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _run_with_terminal(ctx: click.Context, container_id: str, bundle: str,
                       pid_file: str | None) -> int:
    """process.terminal without a console socket: relay the pty here, as runc run does."""
    root = _root(ctx)
    Container(root, container_id)  # validate the ID before it names a path
    os.makedirs(root, mode=0o711, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".console-") as tmp, \
            terminal.console_socket(tmp) as (path, listener):
        container, pid = _create(ctx, container_id, bundle, pid_file, detach=False,
                                 console_socket=path)
        try:
            master = terminal.receive_master(listener)
        except OSError as e:
            launcher.destroy(container, container.load())
            raise UserError(f"receiving the container's terminal: {e}") from None
    return _start_and_wait(container, pid, False, master)


@cli.command()
@click.argument("container_id", metavar="ID")
@click.pass_context
def state(ctx: click.Context, container_id: str) -> None:
    """Print the container's state (OCI JSON)."""
    click.echo(json.dumps(Container(_root(ctx), container_id).oci_state(), indent="  "))


def parse_signal(value: str) -> int:
    if value.isdigit():
        num = int(value)
        if 0 < num < signal.NSIG:
            return num
        raise UserError(f"invalid signal {value!r}")
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise UserError(f"invalid signal {value!r}") from None


@cli.command()
@click.option("--all", "-a", "all_", is_flag=True,
              help="Signal every process of the container, as runc does.")
@click.argument("container_id", metavar="ID")
@click.argument("signal_name", metavar="[SIGNAL]", default="SIGTERM")
@click.pass_context
def kill(ctx: click.Context, container_id: str, signal_name: str, all_: bool) -> None:
    """Send a signal (number or name, default TERM) to the container's init."""
    container = Container(_root(ctx), container_id)
    sig = parse_signal(signal_name)
    st = container.load()
    status = container.status(st)
    if status == "stopped":
        if all_:
            # As runc: what is left in the container's cgroup gets it, and nothing left is
            # no error (the shim sends this after every container's exit).
            if st.get("cgroup_path"):
                from sentry.cgroup import Cgroup
                _signal(Cgroup(st["cgroup_path"]).pids(), sig)
            return
        raise UserError("container not running")
    if all_:
        # Every process of the workload (those in its PID namespace), as runc signals every
        # process in the container's cgroup; the sandbox's own only by SIGKILL, below.
        _signal(launcher.sandbox_pids(st), sig)
        if sig != signal.SIGKILL:
            return
    # The sentry forwards every catchable signal to the workload's init; SIGKILL ends the
    # sentry, and the workload and gofer die with it.
    try:
        os.kill(st["pid"], sig)
    except ProcessLookupError:
        raise UserError("container not running") from None
    if sig == signal.SIGKILL and status == "paused":
        launcher.freeze(st, False)  # frozen processes cannot die (runc thaws too)


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass  # gone meanwhile


@cli.command()
@click.option("--force", "-f", is_flag=True, help="Kill the container if it is running.")
@click.argument("container_id", metavar="ID")
@click.pass_context
def delete(ctx: click.Context, container_id: str, force: bool) -> None:
    """Delete a container's state (and its processes, with --force or when created)."""
    container = Container(_root(ctx), container_id)
    if not container.exists():
        if force:
            if container.dir_exists():  # a create or delete cut short: clean up after it
                launcher.destroy_partial(container)
            return
        raise UserError(f"container {container_id!r} does not exist")
    st = container.load()
    status = container.status(st)
    if status in ("running", "paused") and not force:
        raise UserError(f"cannot delete container {container_id} that is not stopped: {status}")
    final = {**container.oci_state(), "status": "stopped"}
    launcher.destroy(container, st)
    try:
        hooks.run_hooks(spec.load(st["bundle"]), "poststop", final)
    except UserError as e:  # the bundle may be gone by now: nothing left to run
        log.warning("%s", e)


@cli.command("list")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--quiet", "-q", is_flag=True, help="Print IDs only.")
@click.pass_context
def list_cmd(ctx: click.Context, fmt: str, quiet: bool) -> None:
    """List containers."""
    states = []
    for cid in list_ids(_root(ctx)):
        try:
            states.append(Container(_root(ctx), cid).oci_state())
        except UserError:
            continue
    if quiet:
        for s in states:
            click.echo(s["id"])
    elif fmt == "json":
        click.echo(json.dumps(states))
    else:
        click.echo(f"{'ID':<20} {'PID':<8} {'STATUS':<10} {'BUNDLE':<30} CREATED")
        for s in states:
            click.echo(f"{s['id']:<20} {s['pid']:<8} {s['status']:<10} {s['bundle']:<30} "
                       f"{s['created']}")


def _running(ctx: click.Context, container_id: str) -> tuple[Container, dict]:
    container = Container(_root(ctx), container_id)
    st = container.load()
    status = container.status(st)
    if status == "stopped":
        raise UserError(f"container {container_id} is not running")
    return container, st


def _exec_process(container: Container, process_file: str | None, command: tuple[str, ...],
                  tty: bool, cwd: str | None, env: tuple[str, ...], user: str | None):
    if process_file:
        try:
            with open(process_file) as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            raise UserError(f"reading --process {process_file}: {e}") from None
        if not isinstance(doc, dict):
            raise UserError(f"--process {process_file}: not a JSON object")
        return spec.parse_process(doc, "process", "process.json")
    if not command:
        raise UserError("exec needs a command, or --process")
    base = spec.load(container.load()["bundle"]).get("process") or {}
    doc = {**base, "args": list(command), "terminal": tty}
    if cwd:
        doc["cwd"] = cwd
    if env:
        doc["env"] = list(base.get("env", [])) + list(env)
    if user:
        uid, _, gid = user.partition(":")
        try:
            doc["user"] = {"uid": int(uid), "gid": int(gid or 0)}
        except ValueError:
            raise UserError(f"invalid --user {user!r}: expected UID[:GID]") from None
    return spec.parse_process(doc)


@cli.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("--process", "-p", "process_file", default=None, help="OCI process JSON.")
@click.option("--console-socket", default=None, help="Where the pty master goes.")
@click.option("--detach", "-d", is_flag=True, help="Do not wait for the process.")
@click.option("--pid-file", default=None, help="Write the process's pid here.")
@click.option("--tty", "-t", is_flag=True, help="Give the process a terminal.")
@click.option("--cwd", default=None)
@click.option("--env", "-e", multiple=True)
@click.option("--user", "-u", default=None, help="UID[:GID]")
@click.option("--no-new-privs", is_flag=True, hidden=True)
@click.option("--preserve-fds", default=0, type=int, hidden=True)
@click.option("--process-label", default=None, hidden=True)
@click.option("--apparmor", default=None, hidden=True)
@click.option("--cap", "-c", multiple=True, hidden=True)
@click.argument("container_id", metavar="ID")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def exec_cmd(ctx: click.Context, container_id: str, command: tuple[str, ...],
             process_file: str | None, console_socket: str | None, detach: bool,
             pid_file: str | None, tty: bool, cwd: str | None, env: tuple[str, ...],
             user: str | None, **_runc_flags) -> int:
    """Run a process in a running container (same PIDs, /proc, gofer and limits)."""
    container, st = _running(ctx, container_id)
    proc = _exec_process(container, process_file, command, tty, cwd, env, user)
    if proc.terminal and not console_socket:
        raise UserError("a terminal needs --console-socket")
    pid = exec_proxy.start(container, proc,
                           os.path.abspath(console_socket) if console_socket else "",
                           st.get("cgroup_path") or "")
    if pid_file:
        tmp = pid_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(pid))
        os.rename(tmp, pid_file)
    if detach:
        return 0
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@cli.command("ps", context_settings={"allow_interspersed_args": False})
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.argument("container_id", metavar="ID")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def ps_cmd(ctx: click.Context, container_id: str, fmt: str, ps_args: tuple[str, ...]) -> None:
    """List the container's processes (host pids, as runc lists them)."""
    container, st = _running(ctx, container_id)
    pids = launcher.sandbox_pids(st)
    if fmt == "json":
        click.echo(json.dumps(pids))
        return
    out = subprocess.run(["ps", *(ps_args or ("-ef",))], capture_output=True, text=True)
    lines = out.stdout.splitlines()
    if not lines:
        raise UserError(f"ps: {out.stderr.strip()}")
    pid_col = lines[0].split().index("PID")
    click.echo(lines[0])
    for line in lines[1:]:
        cols = line.split()
        if len(cols) > pid_col and cols[pid_col].isdigit() and int(cols[pid_col]) in pids:
            click.echo(line)


@cli.command()
@click.option("--resources", "-r", "resources_file", default=None,
              help="OCI LinuxResources JSON file, or - for stdin.")
@click.option("--memory", "-m", default=None, type=int)
@click.option("--memory-swap", default=None, type=int)
@click.option("--cpu-quota", default=None, type=int)
@click.option("--cpu-period", default=None, type=int)
@click.option("--cpu-share", default=None, type=int)
@click.option("--cpuset-cpus", default=None)
@click.option("--cpuset-mems", default=None)
@click.option("--pids-limit", default=None, type=int)
@click.argument("container_id", metavar="ID")
@click.pass_context
def update(ctx: click.Context, container_id: str, resources_file: str | None,
           **flags) -> None:
    """Change a container's limits (and what its /proc and /sys show)."""
    container, _ = _running(ctx, container_id)
    doc: dict = {}
    if resources_file:
        try:
            raw = sys.stdin.read() if resources_file == "-" else open(resources_file).read()
            doc = json.loads(raw or "{}")
        except (OSError, ValueError) as e:
            raise UserError(f"reading --resources: {e}") from None
        if not isinstance(doc, dict):
            raise UserError("--resources: not a JSON object")
    mem, cpu, pids = (dict(doc.get(k) or {}) for k in ("memory", "cpu", "pids"))
    for flag, (section, key) in {"memory": (mem, "limit"), "memory_swap": (mem, "swap"),
                                 "cpu_quota": (cpu, "quota"), "cpu_period": (cpu, "period"),
                                 "cpu_share": (cpu, "shares"), "cpuset_cpus": (cpu, "cpus"),
                                 "cpuset_mems": (cpu, "mems"),
                                 "pids_limit": (pids, "limit")}.items():
        if flags[flag] is not None:
            section[key] = flags[flag]
    res = spec.parse_resources({"memory": mem, "cpu": cpu, "pids": pids})
    changed = {k: v for k, v in dataclasses.asdict(res).items() if v is not None}
    reply = launcher.control(container, {"op": "update", "resources": changed})
    if "error" in reply:
        raise UserError(reply["error"])


@cli.command()
@click.argument("container_id", metavar="ID")
@click.pass_context
def pause(ctx: click.Context, container_id: str) -> None:
    """Freeze every process of the container."""
    container, st = _running(ctx, container_id)
    launcher.freeze(st, True)


@cli.command()
@click.argument("container_id", metavar="ID")
@click.pass_context
def resume(ctx: click.Context, container_id: str) -> None:
    """Thaw a paused container."""
    container, st = _running(ctx, container_id)
    if container.status(st) != "paused":
        raise UserError(f"container {container_id} is not paused")
    launcher.freeze(st, False)


@cli.command()
@click.option("--interval", default="5s", show_default=True,
              help="How often stats are shown (a Go duration: 5s, 100ms).")
@click.option("--stats", "once", is_flag=True, help="Show the container's stats, then exit.")
@click.argument("container_id", metavar="ID")
@click.pass_context
def events(ctx: click.Context, container_id: str, interval: str, once: bool) -> None:
    """The container's stats and OOM notifications, as runc's JSON lines (from its
    cgroup, which holds the whole sandbox)."""
    from runsc_py import events as events_mod
    try:
        seconds = events_mod.parse_duration(interval)
    except ValueError:  # runc says no more
        raise UserError(f'invalid value "{interval}" for flag -interval: parse error') from None
    if seconds <= 0:
        raise UserError("duration interval must be greater than 0")
    container = Container(_root(ctx), container_id)
    st = container.load()
    if container.status(st) == "stopped":
        raise UserError(f"container with id {container_id} is not running")
    cgroup_path = st.get("cgroup_path") or ""
    if not cgroup_path:
        raise UserError(f"container {container_id} has no cgroup")
    if once:
        click.echo(events_mod.event("stats", container_id, events_mod.stats(cgroup_path)))
        return
    events_mod.stream(container_id, cgroup_path, seconds)


@cli.command()
def features() -> None:
    """What this runtime supports (runc's features JSON)."""
    from runsc_py.spec import CAPABILITIES
    click.echo(json.dumps({
        "ociVersionMin": "1.0.0", "ociVersionMax": "1.1.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": ["ro", "rw", "nosuid", "nodev", "noexec", "bind", "rbind"],
        "linux": {"namespaces": ["pid", "network", "ipc", "uts", "mount"],
                  "capabilities": ["CAP_" + c for c in CAPABILITIES],
                  "cgroup": {"v1": True, "v2": True, "systemd": False},
                  "seccomp": {"enabled": True}},
        "annotations": {"io.github.runsc-py.platform": "seccomp,ptrace"},
    }, indent=2))


@cli.command("install")
@click.option("--runtime", "name", default="runsc-py", show_default=True)
@click.option("--config-file", default=install_mod.DAEMON_JSON, show_default=True)
@click.argument("runtime_args", nargs=-1, type=click.UNPROCESSED)
def install_cmd(name: str, config_file: str, runtime_args: tuple[str, ...]) -> None:
    """Register runsc-py with Docker (then restart dockerd). Args after -- are passed to it."""
    click.echo(install_mod.install(config_file, name, list(runtime_args)))


@cli.command("uninstall")
@click.option("--runtime", "name", default="runsc-py", show_default=True)
@click.option("--config-file", default=install_mod.DAEMON_JSON, show_default=True)
def uninstall_cmd(name: str, config_file: str) -> None:
    """Remove runsc-py from Docker's daemon.json."""
    click.echo(install_mod.uninstall(config_file, name))


@cli.command()
def syscalls() -> None:
    """Print the syscall table: what is passed through, emulated or denied."""
    import errno as errno_mod

    from syscalls.table import DEFAULT_ERRNO, TABLE, Kind
    click.echo(f"{'NR':>4}  {'NAME':<26} {'CLASS':<12} ERRNO")
    caps = {19: "CAP_SYS_PTRACE", 21: "CAP_SYS_ADMIN", 23: "CAP_SYS_NICE"}
    for sc in TABLE.values():
        err = errno_mod.errorcode[sc.errno] if sc.kind is Kind.DENY else ""
        click.echo(f"{sc.nr:>4}  {sc.name:<26} {sc.kind.value:<12} {err}".rstrip())
        # The rules, one line each with the reason: what they refuse and why.
        for r in sc.arg_rules:
            values = ", ".join(hex(v) for v in r.values)
            cond = {"in": f"in ({values})", "not_in": f"not in ({values})",
                    "any_bit": "has any bit set"}[r.op]
            click.echo(f"{'':<6}{errno_mod.errorcode[r.errno]} when arg{r.arg} & "
                       f"{hex(r.mask)} {cond}: {r.reason}")
        if sc.cap_gate is not None:
            cap = caps.get(sc.cap_gate.cap, f"capability {sc.cap_gate.cap}")
            click.echo(f"{'':<6}EPERM without {cap} in the bounding set: "
                       f"{sc.cap_gate.reason}")
        if sc.reason:
            click.echo(f"{'':<6}why: {sc.reason}")
    click.echo(f"every other number: deny {errno_mod.errorcode[DEFAULT_ERRNO]}")


def main() -> None:
    try:
        rv = cli.main(prog_name="runsc-py", standalone_mode=False)
    except UserError as e:
        log.error("%s", e)
        click.echo(f"runsc-py: {e}", err=True)
        sys.exit(1)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.Abort:
        sys.exit(130)
    except click.ClickException as e:
        click.echo(f"runsc-py: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
