"""ptrace inside the sandbox (issue 12): a debugger tracing a process of its own sandbox
works as on Linux, compared with runc (tests/tracer.c); what would switch the filter off
or reach past the sandbox is refused (README, Security: "ptrace inside the sandbox").

Under --platform=ptrace the sentry is every workload thread's tracer, and a thread has
one: tracing inside the sandbox is refused there (README, Platforms), and these tests
check that instead of the debugger's results."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid

import pytest
from conftest import PLATFORM, REPO, build_static

TRACED = PLATFORM == "ptrace"  # the sentry traces the workload: ptrace inside says EPERM

OPS = ["syscalls", "peekpoke", "singlestep", "seize", "listen", "exitkill", "suspend",
       "getfilter", "rewrite_mount", "rewrite_open:/etc/hostname"]
BASE_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


@pytest.fixture(scope="session")
def tracer_bin(tmp_path_factory):
    return build_static(tmp_path_factory, REPO / "tests" / "tracer.c")


def _bundle(make_bundle, tracer_bin, *args: str, caps: list[str] | None = None,
            readonly: bool = True):
    b = make_bundle(*args, readonly=readonly)
    shutil.copy(tracer_bin, b.rootfs / "tracer")
    names = BASE_CAPS + (caps or [])
    b.spec["process"]["capabilities"] = {k: names for k in
                                         ("bounding", "effective", "permitted")}
    return b.write()


def _results(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_a_debugger_works_as_under_runc(runsc, runc, make_bundle, tracer_bin):
    """Syscall stops (the same calls, emulated ones included), PEEK/POKEDATA, single-step,
    SEIZE/INTERRUPT/DETACH, group-stop and LISTEN, EXITKILL and the exit statuses a
    tracer sees: the same as under runc."""
    if TRACED:
        _tracing_is_refused(runsc, make_bundle, tracer_bin)
        return
    b = _bundle(make_bundle, tracer_bin, "/tracer", *OPS, "exit:3")
    ours = runsc.run(b)
    ref = runc(b)
    assert (ours.returncode, ref.returncode) == (3, 3), (ours, ref)
    got, want = _results(ours.stdout), _results(ref.stdout)
    assert got == want
    assert set(got) == {op.split(":")[0] for op in OPS}
    assert got["peekpoke"] == "peek ok 1234 poke 0 exit:42"
    assert got["singlestep"] == "100 traps signal:9"
    assert got["exitkill"] == "seized y victim signal:9"
    assert got["syscalls"].startswith(("59,", "")) and got["syscalls"].endswith("exit:0")


def _tracing_is_refused(runsc, make_bundle, tracer_bin) -> None:
    """Under the ptrace platform: attaching to another process of the sandbox (its init,
    from a child: runc lets that attach) and PTRACE_TRACEME fail with EPERM; memory
    reads, which need no tracer, still work."""
    b = _bundle(make_bundle, tracer_bin, "sh", "-c", "/tracer attach:1; /tracer syscalls",
                caps=["CAP_SYS_PTRACE"])
    ours = runsc.run(b)
    assert ours.stdout == "attach=-EPERM seize -EPERM vm_readv 8\n" \
                          "error=first stop exit:90\n", ours


@pytest.mark.parametrize("caps", [[], ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]])
def test_a_tracer_cannot_switch_the_filter_off(runsc, make_bundle, tracer_bin, caps):
    """PTRACE_O_SUSPEND_SECCOMP (by SETOPTIONS and SEIZE) and reading the filter are
    refused, with CAP_SYS_ADMIN too; a syscall a tracer rewrites at its entry stop meets
    the tracee's filter: mount is refused, an openat is the sentry's (the container's
    file, never the host's)."""
    b = _bundle(make_bundle, tracer_bin, "/tracer", "suspend", "getfilter", "rewrite_mount",
                "rewrite_open:" + str(b_host_file := REPO / "README.md"),
                "rewrite_open:/etc/passwd", caps=caps)
    r = runsc.run(b)
    if TRACED:
        # No tracer of the workload's own: its child's PTRACE_TRACEME fails (EPERM, it
        # exits 90), so there is nothing to switch off or rewrite with.
        assert r.stdout == "error=first stop exit:90\n", r
        return
    assert r.returncode == 0, r
    got = _results(r.stdout)
    assert got["suspend"] == "setoptions -EPERM seize -EPERM"
    assert got["getfilter"] == "filter -EACCES metadata -EACCES"
    assert got["rewrite_mount"] == "-EPERM exit:101"
    assert b_host_file.exists()
    opens = [line for line in r.stdout.splitlines() if line.startswith("rewrite_open=")]
    # The host's README is not in the container; the container's passwd is (fd 3).
    assert opens == ["rewrite_open=-ENOENT exit:102", "rewrite_open=ok exit:3"]


def test_strace_in_the_sandbox(runsc, runc, make_bundle, tmp_path):
    """Debian's strace, its libraries copied into the rootfs: `strace -f` of busybox
    shows the same calls as under runc."""
    strace = shutil.which("strace")
    assert strace, "strace is in debian-packages.txt"
    b = make_bundle("/usr/bin/strace", "-f", "-qq", "-e", "trace=execve,openat,uname,exit_group",
                    "/bin/busybox", "sh", "-c", "uname -s; cat /etc/passwd >/dev/null")
    _copy_with_libraries(strace, b.rootfs)
    b.spec["hostname"] = "tracee"
    b.write()
    if TRACED:
        ours = runsc.run(b)
        assert ours.returncode != 0 and "Operation not permitted" in ours.stderr, ours
        return
    ours, ref = runsc.run(b), runc(b)
    assert (ours.returncode, ref.returncode) == (0, 0), (ours, ref)
    assert ours.stdout == ref.stdout == "Linux\n"
    assert _calls(ours.stderr) == _calls(ref.stderr)
    assert 'openat(AT_FDCWD, "/etc/passwd"' in ours.stderr


def _calls(trace: str) -> list[str]:
    """strace's lines: each call's name and errno (or the signal), without pids."""
    out = []
    for line in trace.splitlines():
        line = re.sub(r"^\[pid +\d+\] ", "", line)
        if line.startswith("---"):
            out.append(re.sub(r"si_pid=\d+", "si_pid=N", line))
            continue
        err = re.search(r"= -1 (E\w+)", line)
        out.append(line.split("(", 1)[0] + (" " + err.group(1) if err else ""))
    return out


def _copy_with_libraries(binary: str, rootfs) -> None:
    deps = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = [binary] + [w for line in deps.splitlines() for w in line.split()
                        if w.startswith("/")]
    for p in paths:
        dest = rootfs / p.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest)


def test_a_traced_exec_process_still_reports_its_exit(runsc, make_bundle, tracer_bin):
    """A child of an exec'd process seizes it and never waits: Linux keeps the exited
    process from its real parent (the spawner) until the tracer lets go. Meanwhile the
    sandbox serves other execs, and once the tracer dies the exit status arrives."""
    if TRACED:
        _tracing_is_refused(runsc, make_bundle, tracer_bin)
        return
    cid = "t-" + uuid.uuid4().hex[:10]
    b = _bundle(make_bundle, tracer_bin, "sleep", "1000")
    assert runsc("create", "--bundle", str(b.path), cid).returncode == 0
    assert runsc("start", cid).returncode == 0
    # The exec'd process is the tracer's parent: it exits once its child has seized it.
    held = subprocess.Popen(runsc.cmd("exec", cid, "/tracer", "held_exit:7"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    assert held.poll() is None, held.communicate()  # the tracer holds its exit
    t0 = time.monotonic()
    r = runsc("exec", cid, "true", timeout=20)
    assert r.returncode == 0, r
    assert time.monotonic() - t0 < 10
    # The tracer dies with its pid namespace's processes: kill it from outside.
    ps = runsc("exec", cid, "sh", "-c", "kill -9 $(pidof tracer)")
    assert ps.returncode == 0, ps
    out, err = held.communicate(timeout=20)
    assert held.returncode == 7, (out, err)
    assert out == "held_exit=seize 0\n"
    runsc("delete", "--force", cid)


def test_no_workload_process_traces_an_exec_during_its_set_up(runsc, make_bundle, tracer_bin):
    """An exec'd process is forked by the spawner and sets itself up (namespaces, filter,
    user) as root with every capability, in the sandbox's PID namespace. The init, with
    CAP_SYS_PTRACE (which passes Linux's own ptrace checks), seizes every pid over and
    over while execs start: it seizes none of them, neither during the set-up nor after
    (each process lineage is a Landlock domain of its own)."""
    cid = "t-" + uuid.uuid4().hex[:10]
    b = _bundle(make_bundle, tracer_bin, "/tracer", "hunt:14", readonly=False,
                caps=["CAP_SYS_PTRACE", "CAP_SETUID", "CAP_SETGID", "CAP_DAC_OVERRIDE"])
    assert runsc("create", "--bundle", str(b.path), cid).returncode == 0
    assert runsc("start", cid).returncode == 0
    time.sleep(0.5)
    execs = [runsc("exec", cid, "sleep", "0.2", timeout=30) for _ in range(6)]
    for _ in range(200):
        if (b.rootfs / "hunt.out").read_text().endswith("seized\n"):
            break
        time.sleep(0.1)
    out = (b.rootfs / "hunt.out").read_text()
    assert "seized " not in out, out
    assert [r.returncode for r in execs] == [0] * 6, execs
    tries, seized = (int(w) for w in re.findall(r"hunt=(\d+) tries (\d+) seized", out)[0])
    assert (tries > 10000, seized) == (True, 0)
    runsc("delete", "--force", cid)


def test_host_processes_cannot_be_traced(runsc, runc, make_bundle, tracer_bin):
    """This test's own pid (and the host's init) from inside: no such process, as under
    runc; the sandbox's PID namespace has nothing of the host's."""
    host = os.getpid()
    b = _bundle(make_bundle, tracer_bin, "/tracer", f"attach:{host}", "attach:999999",
                caps=["CAP_SYS_PTRACE"])
    ours, ref = runsc.run(b), runc(b)
    assert ours.returncode == ref.returncode == 0, (ours, ref)
    want = "attach=-ESRCH seize -ESRCH vm_readv -ESRCH\n"
    assert ours.stdout == ref.stdout == want * 2
    os.kill(host, 0)
