"""Docker with `--runtime=runsc-py`, end to end: a real dockerd (Debian's docker.io), started
here with no bridge and no iptables, a busybox image made with `docker import`, and every
everyday docker command. Where runc is the reference, the same command runs under both."""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from conftest import runsc_py_binary, stop_daemon

IMAGE = "runsc-py-test/busybox:latest"


class Docker:
    def __init__(self, sock: str, runtime_root: str) -> None:
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
        self.runtime_root = runtime_root  # dockerd's --root for runsc-py

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60,
                 check: bool = False) -> subprocess.CompletedProcess:
        r = subprocess.run(["docker", *args], input=input, capture_output=True, text=True,
                           timeout=timeout, env=self.env)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: {r}")
        return r

    def run(self, *args: str, runtime: str = "runsc-py", **kw) -> subprocess.CompletedProcess:
        return self("run", "--rm", f"--runtime={runtime}", "--network", "none", *args, **kw)

    def in_pty(self, command: str, timeout: float = 60) -> str:
        """Run a docker command line on a 30x100 terminal (util-linux's script)."""
        r = subprocess.run(["script", "-qec", f"stty rows 30 cols 100; {command}", "/dev/null"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout, env=self.env)
        assert r.returncode == 0, r
        # The client's stdin is at EOF; the pty echoes what that makes it send as "^@".
        return r.stdout.replace("^@", "").replace("\r", "")


@pytest.fixture(scope="module")
def docker(rootfs_template):
    """A private dockerd: its own data/exec roots and socket, no docker0, no iptables."""
    if not shutil.which("dockerd"):
        pytest.fail("dockerd is not installed (the set-up installs Debian's docker.io)")
    base = tempfile.mkdtemp(prefix="rpd-", dir="/tmp")  # short: socket paths are limited
    sock = f"{base}/docker.sock"
    log = open(f"{base}/dockerd.log", "wb")
    daemon = subprocess.Popen(
        ["dockerd", "--data-root", f"{base}/data", "--exec-root", f"{base}/exec",
         "-H", f"unix://{sock}", "--pidfile", f"{base}/docker.pid", "--bridge=none",
         "--iptables=false", "--ip6tables=false", "--ip-masq=false",
         "--add-runtime", f"runsc-py={runsc_py_binary()}"],
        stdout=log, stderr=subprocess.STDOUT)
    d = Docker(sock, f"{base}/exec/runtime-runc/moby")
    try:
        deadline = time.monotonic() + 60
        while d("version").returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dockerd did not start: {Path(base, 'dockerd.log').read_text()}")
            time.sleep(0.5)
        tarball = Path(base) / "rootfs.tar"
        with tarfile.open(tarball, "w") as tar:
            tar.add(rootfs_template, arcname=".")
        r = subprocess.run(["docker", "import", str(tarball), IMAGE], capture_output=True,
                           text=True, env=d.env)
        assert r.returncode == 0, r
        tarball.unlink()
        yield d
    finally:
        left = d("ps", "-aq").stdout.split()
        if left:
            d("rm", "-f", *left)
        stop_daemon(daemon, base)
        log.close()


@pytest.fixture
def container(docker):
    """A long-running container under runsc-py: its name; removed afterwards."""
    names = []

    def start(*args: str, command: str = "while true; do sleep 0.2; done") -> str:
        name = "c-" + uuid.uuid4().hex[:10]
        docker("run", "-d", "--name", name, "--runtime=runsc-py", "--network", "none", *args,
               IMAGE, "sh", "-c", command, check=True)
        names.append(name)
        return name

    yield start
    if names:
        docker("rm", "-f", *names)


# -- the sandbox's kernel, limits and PIDs -----------------------------------------------

def test_uname_is_the_sentrys(docker):
    assert docker.run(IMAGE, "uname", "-r").stdout.strip() == "4.4.0"


def test_memory_limit_shows_in_free(docker):
    r = docker.run("-m", "128m", IMAGE, "free", "-m")
    assert r.stdout.splitlines()[1].split()[1] == "128", r


def test_cpuset_shows_in_nproc(docker):
    assert docker.run("--cpuset-cpus", "0", IMAGE, "nproc").stdout.strip() == "1"


def test_host_pid_namespace_still_shows_only_the_container(docker):
    r = docker.run("--pid", "host", IMAGE, "ps", "-o", "pid,comm")
    assert r.returncode == 0, r
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    assert rows == [["1", "ps"]], r.stdout


def test_network_none_has_only_loopback(docker):
    ours = docker.run(IMAGE, "ls", "/sys/class/net")
    # /sys is the sentry's (no class/net); the interfaces themselves are the kernel's.
    links = docker.run(IMAGE, "ip", "-o", "link")
    reference = docker.run(IMAGE, "ip", "-o", "link", runtime="runc")
    names = [line.split(":")[1].strip() for line in links.stdout.splitlines()]
    assert names == ["lo"], (links, ours)
    assert names == [line.split(":")[1].strip() for line in reference.stdout.splitlines()]


# -- stdio, exit codes and terminals ---------------------------------------------------

def test_exit_code(docker):
    assert docker.run(IMAGE, "sh", "-c", "exit 7").returncode == 7


def test_stdin_is_piped_in(docker):
    r = docker.run("-i", IMAGE, "cat", input="hi\nthere\n")
    assert (r.returncode, r.stdout) == (0, "hi\nthere\n"), r


def test_tty_is_a_terminal_of_the_clients_size(docker):
    command = "sh -c 'sleep 1; test -t 0 && test -t 1 && echo isatty; stty size; tty'"
    for runtime in ("runsc-py", "runc"):
        out = docker.in_pty(f"docker run --rm -it --runtime={runtime} --network none "
                            f"{IMAGE} {command}")
        assert out.split() == ["isatty", "30", "100", "/dev/pts/0"], (runtime, out)


def test_logs(docker, container):
    name = container(command="echo to-out; echo to-err >&2; sleep 60")
    time.sleep(1)
    r = docker("logs", name)
    assert (r.stdout, r.stderr) == ("to-out\n", "to-err\n"), r


def test_failing_create_shows_runsc_pys_error(docker):
    r = docker.run(IMAGE, "/no/such/program")
    assert r.returncode == 127, r
    assert 'exec: "/no/such/program": no such file or directory' in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


# -- exec, signals, stop ---------------------------------------------------------------

def test_exec_sees_the_same_pids_and_files(docker, container):
    name = container(command="echo secret > /tmp/f; exec sleep 60")
    time.sleep(1)
    r = docker("exec", name, "sh", "-c", "cat /tmp/f; ps -o pid,args")
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[0] == "secret"
    assert ["1", "sleep", "60"] in [line.split() for line in lines[2:]], r.stdout
    assert docker("exec", name, "sh", "-c", "exit 5").returncode == 5


def test_exec_with_a_terminal(docker, container):
    name = container()
    out = docker.in_pty(f"docker exec -it {name} sh -c 'test -t 0 && echo isatty; tty; "
                        "ps -o pid,args | grep -c \"sleep 0.2\\|while\"'")
    assert out.split()[:2] == ["isatty", "/dev/pts/0"], out


def test_kill_with_a_signal_reaches_the_workload(docker, container):
    name = container(command='trap "echo got-HUP" HUP; while true; do sleep 0.2; done')
    time.sleep(1)
    docker("kill", "-s", "HUP", name, check=True)
    time.sleep(1)
    assert "got-HUP" in docker("logs", name).stdout
    assert docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"


def test_stop_of_a_workload_that_ignores_term_ends_with_kill(docker, container):
    name = container(command='trap "" TERM; while true; do sleep 0.2; done')
    time.sleep(1)
    began = time.monotonic()
    docker("stop", "-t", "2", name, check=True)
    assert time.monotonic() - began >= 2
    assert docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "137"


def test_top_lists_the_containers_processes(docker, container):
    name = container(command="exec sleep 60")
    time.sleep(1)
    r = docker("top", name)
    assert r.returncode == 0, r
    assert [line.split()[-2:] for line in r.stdout.splitlines()[1:]] == [["sleep", "60"]]


def test_update_memory_changes_the_limit_and_the_view(docker, container):
    name = container("-m", "128m", "--memory-swap", "256m")
    docker("update", "--memory", "200m", "--memory-swap", "400m", name, check=True)
    r = docker("exec", name, "free", "-m")
    assert r.stdout.splitlines()[1].split()[1] == "200", r


def test_pause_freezes_and_unpause_thaws(docker, container):
    name = container(command="i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done")
    time.sleep(1)
    docker("pause", name, check=True)
    assert docker("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "paused"
    top = docker("top", name)
    assert top.returncode == 0, top
    time.sleep(0.5)
    docker("unpause", name, check=True)
    before = int(docker("exec", name, "cat", "/tmp/n", check=True).stdout)
    time.sleep(1)
    assert int(docker("exec", name, "cat", "/tmp/n", check=True).stdout) > before


# -- files, mounts, users and environment ----------------------------------------------

def test_bind_mount_writes_reach_the_host(docker, tmp_path):
    r = docker.run("-v", f"{tmp_path}:/data", IMAGE, "sh", "-c", "echo hello > /data/out")
    assert r.returncode == 0, r
    assert (tmp_path / "out").read_text() == "hello\n"


def test_read_only_bind_mount_gives_erofs(docker, tmp_path):
    (tmp_path / "keep").write_text("x")
    for runtime in ("runsc-py", "runc"):
        r = docker.run("-v", f"{tmp_path}:/data:ro", IMAGE, "sh", "-c",
                       "cat /data/keep; echo y > /data/keep", runtime=runtime)
        assert r.returncode == 1 and r.stdout == "x", (runtime, r)
        assert "Read-only file system" in r.stderr, (runtime, r)
    assert (tmp_path / "keep").read_text() == "x"


def test_read_only_root_with_a_tmpfs(docker):
    script = "touch /t/ok && echo tmpfs-ok; touch /root/no"
    for runtime in ("runsc-py", "runc"):
        r = docker.run("--read-only", "--tmpfs", "/t", IMAGE, "sh", "-c", script,
                       runtime=runtime)
        assert r.stdout == "tmpfs-ok\n", (runtime, r)
        assert "Read-only file system" in r.stderr, (runtime, r)


def test_device_is_there_and_others_are_not_as_under_runc(docker):
    """--device adds the node and its devices-cgroup rule; a node made inside (mknod of
    another device, allowed by CAP_MKNOD's "m") still cannot be opened."""
    script = ("stat -c '%F %t:%T' /dev/myzero; head -c 3 /dev/myzero | od -An -tx1; "
              "ls /dev/kmsg 2>&1; cat /dev/kmsg 2>&1 | head -c 0; echo done")
    args = ("--device", "/dev/zero:/dev/myzero", IMAGE, "sh", "-c", script)
    ours, theirs = docker.run(*args), docker.run(*args, runtime="runc")
    assert theirs.returncode == 0 and "character special file 1:5" in theirs.stdout, theirs
    assert ours.stdout == theirs.stdout, (ours, theirs)


def test_user_env_workdir_and_hostname_match_runc(docker):
    args = ("-u", "1000:1000", "-e", "GREETING=hi there", "-w", "/tmp",
            "--hostname", "sandboxed", IMAGE, "sh", "-c",
            'id -u; id -g; echo "$GREETING"; pwd; hostname; touch f; stat -c %u:%g f')
    ours, theirs = docker.run(*args), docker.run(*args, runtime="runc")
    assert ours.stdout.splitlines() == ["1000", "1000", "hi there", "/tmp", "sandboxed",
                                        "1000:1000"], ours
    assert ours.stdout == theirs.stdout


def test_shm_size_and_mqueue_mounts_match_runc(docker):
    """--shm-size and Docker's /dev/mqueue: the mounts as runc's container shows them
    (from the mount point on: IDs and device numbers differ by design)."""
    args = ("--ipc", "private", "--shm-size", "32m", IMAGE, "sh", "-c",
            "grep -E ' /dev/(shm|mqueue) ' /proc/self/mounts; "
            "grep -E ' /dev/(shm|mqueue) ' /proc/self/mountinfo | cut -d' ' -f5-")
    ours, theirs = docker.run(*args), docker.run(*args, runtime="runc")
    assert "shm /dev/shm tmpfs rw,nosuid,nodev,noexec,relatime,size=32768k 0 0" in \
        theirs.stdout.splitlines(), theirs
    assert "mqueue /dev/mqueue mqueue" in theirs.stdout
    assert ours.stdout == theirs.stdout, ours


def test_nothing_is_left_in_the_runtime_root(docker):
    """After `docker run --rm` returns, runsc-py's state for it is gone (delete ran)."""
    assert docker.run(IMAGE, "true").returncode == 0
    deadline = time.monotonic() + 10
    while os.path.isdir(docker.runtime_root) and os.listdir(docker.runtime_root):
        assert time.monotonic() < deadline, os.listdir(docker.runtime_root)
        time.sleep(0.2)


# -- the whole sandbox in the container's cgroup (issue 11) ------------------------------

def _cgroup_dir(docker, name: str, controller: str) -> str:
    """The container's cgroup in a v1 hierarchy (or v2's), from its sentry's membership."""
    pid = docker("inspect", "-f", "{{.State.Pid}}", name, check=True).stdout.strip()
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                return f"/sys/fs/cgroup/{controller}{path}"
    with open(f"/proc/{pid}/cgroup") as f:
        return "/sys/fs/cgroup" + f.read().split("::", 1)[1].strip()


def _sandbox_pids(docker, name: str) -> set[int]:
    """The sentry (the pid Docker knows), its gofer and watchdog: its children outside the
    container's PID namespace."""
    sentry = int(docker("inspect", "-f", "{{.State.Pid}}", name, check=True).stdout)
    ns = os.stat(f"/proc/{sentry}/ns/pid").st_ino
    children = Path(f"/proc/{sentry}/task/{sentry}/children").read_text().split()
    return {sentry} | {int(c) for c in children if os.stat(f"/proc/{c}/ns/pid").st_ino == ns}


def test_stats_shows_the_limit_and_the_whole_sandbox(docker, container):
    name = container("-m", "128m", command="sleep 1000 & sleep 1000 & wait")
    time.sleep(1)
    r = docker("stats", "--no-stream", "--format", "{{.MemUsage}}|{{.PIDs}}", name, check=True)
    usage, pids = r.stdout.strip().split("|")
    assert usage.split("/")[1].strip() == "128MiB", r.stdout
    # sh and two sleeps, and the sentry, gofer and watchdog.
    assert int(pids) >= 3 + 3, r.stdout
    assert _sandbox_pids(docker, name) <= {
        int(p) for p in Path(_cgroup_dir(docker, name, "pids"), "cgroup.procs").read_text().split()}


def test_memory_limit_kill_is_reported_as_oom_killed(docker):
    for runtime in ("runsc-py", "runc"):
        name = "oom-" + uuid.uuid4().hex[:10]
        r = docker("run", "--name", name, f"--runtime={runtime}", "--network", "none",
                   "-m", "128m", "--memory-swap", "128m", IMAGE, "probe", "alloc", "512",
                   timeout=120)
        try:
            assert r.returncode == 137, (runtime, r)
            state = docker("inspect", "-f", "{{.State.OOMKilled}}", name, check=True)
            assert state.stdout.strip() == "true", runtime
        finally:
            docker("rm", "-f", name)


def _cpu_seconds(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def test_cpu_quota_bounds_the_sandbox_too(docker, container):
    """Syscalls the sentry and gofer serve are the container's CPU time, under its quota."""
    loop = "while true; do [ -e /etc/passwd ]; done"
    used = {}
    for runtime in ("runsc-py", "runc"):
        name = "cpu-" + uuid.uuid4().hex[:10]
        docker("run", "-d", "--name", name, f"--runtime={runtime}", "--network", "none",
               "--cpus", "0.1", IMAGE, "sh", "-c", loop, check=True)
        try:
            usage = Path(_cgroup_dir(docker, name, "cpuacct"), "cpuacct.usage")
            if not usage.exists():  # v2
                usage = Path(_cgroup_dir(docker, name, "cpu"), "cpu.stat")
            own = _sandbox_pids(docker, name) if runtime == "runsc-py" else set()
            time.sleep(1)
            before, own_before, began = _usage(usage), _cpu_seconds(own), time.monotonic()
            time.sleep(5)
            used[runtime] = (_usage(usage) - before) / (time.monotonic() - began)
            own_used = (_cpu_seconds(own) - own_before) / (time.monotonic() - began)
        finally:
            docker("rm", "-f", name)
        # 0.1 CPU, with a period's worth of slack.
        assert used[runtime] < 0.15, used
        assert own_used < 0.15, (runtime, own_used)
    assert used["runsc-py"] > 0.05, used


def _usage(path: Path) -> float:
    text = path.read_text()
    if path.name == "cpu.stat":
        return int(text.split("usage_usec")[1].split()[0]) / 1e6
    return int(text) / 1e9


def test_fork_bomb_leaves_the_sandbox_answering(docker, container):
    name = container("--pids-limit", "30",
                     command="probe forkmany 500 > /tmp/bomb; sleep 2; kill -9 -1; "
                             "while true; do sleep 0.2; done")
    own = _sandbox_pids(docker, name)
    deadline = time.monotonic() + 30
    while True:
        r = docker("exec", name, "cat", "/tmp/bomb")
        if r.returncode == 0 and r.stdout:
            break
        assert time.monotonic() < deadline, r
        time.sleep(0.5)
    got = r.stdout.split()
    # The workload had its whole limit (sh and 28 children of the probe, the probe).
    assert got[0] == "forkmany:" and int(got[1]) == 28 and got[2] == "EAGAIN", r.stdout
    assert all(os.path.exists(f"/proc/{p}") for p in own)
    assert docker("exec", name, "echo", "alive").stdout == "alive\n"


def test_sandbox_processes_are_not_listed(docker, container):
    name = container(command="exec sleep 1000")
    time.sleep(1)
    own = _sandbox_pids(docker, name)
    top = docker("top", name, "-o", "pid,args", check=True).stdout.splitlines()
    assert [line.split()[1:] for line in top[1:]] == [["sleep", "1000"]], top
    assert not own & {int(line.split()[0]) for line in top[1:]}
    r = docker("exec", name, "sh", "-c", "ls -d /proc/[0-9]*; cat /proc/*/cmdline | tr '\\0' ' '")
    assert r.returncode == 0, r
    assert "runsc_py" not in r.stdout and "python" not in r.stdout, r.stdout
