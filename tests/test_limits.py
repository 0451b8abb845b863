"""linux.resources enforced by cgroups and visible in every view, as gVisor shows them."""
from __future__ import annotations

import json
import os
import select
import subprocess
import time

from conftest import probe_lines

MiB = 1024 * 1024


def _resources(bundle, **res):
    bundle.spec["linux"]["resources"] = res
    return bundle.write()


def _cgroup_dirs(path: str) -> list[str]:
    from sentry.cgroup import Cgroup
    return list(Cgroup(path).dirs().values())


def test_free_shows_the_memory_limit(runsc, make_bundle):
    bundle = _resources(make_bundle("sh", "-c", "free -m; grep MemTotal /proc/meminfo"),
                        memory={"limit": 128 * MiB})
    r = runsc.run(bundle)
    lines = r.stdout.splitlines()
    assert lines[1].split()[:2] == ["Mem:", "128"], r.stdout + r.stderr
    assert lines[-1].split()[1] == str(128 * 1024)


def test_sysinfo_agrees_with_meminfo(runsc, make_bundle):
    # busybox free uses sysinfo(); /proc/meminfo is the file: both must say the limit.
    bundle = _resources(make_bundle("sh", "-c", "free -k | sed -n 2p; head -1 /proc/meminfo"),
                        memory={"limit": 256 * MiB})
    out = runsc.run(bundle).stdout.splitlines()
    assert out[0].split()[1] == out[1].split()[1] == str(256 * 1024)


def test_no_memory_limit_shows_host_memory(runsc, make_bundle):
    with open("/proc/meminfo") as f:
        host_total = f.readline().split()[1]
    r = runsc.run(make_bundle("head", "-1", "/proc/meminfo"))
    assert r.stdout.split()[1] == host_total


def test_one_cpu_cpuset(runsc, make_bundle):
    bundle = _resources(make_bundle("sh", "-c", "nproc; grep -c processor /proc/cpuinfo; "
                                    "cat /sys/devices/system/cpu/online; "
                                    "grep -c '^cpu[0-9]' /proc/stat; ls /sys/devices/system/cpu"),
                        cpu={"cpus": "0"})
    out = runsc.run(bundle).stdout.split()
    assert out[:4] == ["1", "1", "0", "1"], out
    assert "cpu0" in out and "cpu1" not in out


def test_cpu_quota_limits_the_cpu_count(runsc, make_bundle):
    bundle = _resources(make_bundle("sh", "-c", "nproc; grep -c processor /proc/cpuinfo"),
                        cpu={"quota": 50000, "period": 100000})
    assert runsc.run(bundle).stdout.split() == ["1", "1"]


def test_all_host_cpus_without_limits(runsc, make_bundle):
    n = len(os.sched_getaffinity(0))
    r = runsc.run(make_bundle("sh", "-c", "nproc; grep -c processor /proc/cpuinfo"))
    assert r.stdout.split() == [str(n), str(n)]


def test_memory_hog_is_killed_and_the_sentry_survives(runsc, make_bundle):
    bundle = _resources(make_bundle("probe", "alloc", "512"), memory={"limit": 128 * MiB})
    r = runsc.run(bundle, timeout=120)
    assert r.returncode == 137, (r.returncode, r.stdout, r.stderr)
    assert "alloc: 512" not in r.stdout


def test_memory_hog_in_a_child_leaves_the_container_running(runsc, make_bundle):
    bundle = _resources(make_bundle("sh", "-c", "probe alloc 512; echo child $?; echo alive"),
                        memory={"limit": 128 * MiB})
    r = runsc.run(bundle, timeout=120)
    assert r.returncode == 0
    assert r.stdout.splitlines()[-2:] == ["child 137", "alive"]


def test_fork_bomb_stops_at_the_pids_limit(runsc, make_bundle):
    bundle = _resources(make_bundle("sh", "-c", "probe forkmany 500; sleep 1000"),
                        pids={"limit": 40})
    proc = subprocess.Popen(runsc.cmd("run", "--bundle", str(bundle.path), "bomb"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    got = probe_lines(line)["forkmany"][0].split()
    # The workload gets its whole limit (sh, the probe, 38 children): the sentry, gofer
    # and watchdog, in the same cgroup, come on top of it, and outlive the bomb.
    assert int(got[0]) == 38 and got[1] == "EAGAIN", line
    state = json.loads((runsc.root / "bomb" / "state.json").read_text())
    assert all(os.path.exists(f"/proc/{state[k]}") for k in ("pid", "gofer_pid"))
    assert runsc("kill", "bomb", "KILL").returncode == 0
    assert proc.wait(timeout=30) == 137


def test_cgroup_is_created_named_and_removed(runsc, make_bundle):
    bundle = _resources(make_bundle("sleep", "1000"), memory={"limit": 64 * MiB})
    bundle.spec["linux"]["cgroupsPath"] = "/runsc-py-test/named"
    bundle.write()
    assert runsc("create", "--bundle", str(bundle.path), "cg").returncode == 0
    dirs = _cgroup_dirs("/runsc-py-test/named")
    assert dirs and all(os.path.isdir(d) for d in dirs)
    state = json.loads((runsc.root / "cg" / "state.json").read_text())
    sandbox = {state["pid"], state["gofer_pid"]}
    for d in dirs:
        with open(os.path.join(d, "cgroup.procs")) as f:
            procs = {int(p) for p in f.read().split()}
        assert state["init_pid"] in procs, d
        # The whole sandbox is in the container's cgroup, but for v1's freezer: a paused
        # container's sentry still answers.
        if "/freezer/" in d:
            assert not procs & sandbox, (d, procs, sandbox)
        else:
            assert sandbox <= procs, (d, procs, sandbox)
    assert runsc("delete", "--force", "cg").returncode == 0
    assert not any(os.path.exists(d) for d in dirs)
    for d in dirs:
        try:
            os.rmdir(os.path.dirname(d))  # /runsc-py-test: made by runsc-py, ours to remove
        except OSError:
            pass


def test_default_cgroup_is_removed_when_run_ends(runsc, make_bundle):
    bundle = _resources(make_bundle("true"), pids={"limit": 10})
    cid = "cgdefault"
    r = runsc("run", "--bundle", str(bundle.path), cid)
    assert r.returncode == 0
    time.sleep(0.05)
    assert not any(os.path.exists(d) for d in _cgroup_dirs(f"/runsc-py/{cid}"))


def test_rlimits_are_applied(runsc, runc, make_bundle):
    bundle = make_bundle("sh", "-c", "ulimit -n; ulimit -Hn")
    bundle.spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}]
    bundle.write()
    assert runsc.run(bundle).stdout.split() == runc(bundle).stdout.split() == ["321", "654"]


def test_zero_open_files_limit_matches_runc(runsc, runc, make_bundle):
    """RLIMIT_NOFILE 0 still lets the workload start (on its inherited stdio), as under
    runc: the sandbox makes its own descriptors before the limit applies."""
    bundle = make_bundle("/probe", "fds")
    bundle.spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 0, "hard": 0}]
    bundle.write()
    ours, theirs = runsc.run(bundle), runc(bundle)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), (ours, theirs)


def _cpus_allowed(pid: int) -> str:
    with open(f"/proc/{pid}/status") as f:
        return next(line.split()[1] for line in f if line.startswith("Cpus_allowed_list"))


def _placement(runsc, bundle, *flags: str) -> dict[str, str]:
    cid = "place-" + os.urandom(4).hex()
    assert runsc(*flags, "create", "--bundle", str(bundle.path), cid).returncode == 0
    state = json.loads((runsc.root / cid / "state.json").read_text())
    try:
        return {k: _cpus_allowed(state[k]) for k in ("pid", "gofer_pid", "init_pid")}
    finally:
        runsc("delete", "--force", cid)


def test_cpu_placement(runsc, make_bundle):
    """The sentry and gofer share one CPU; the workload keeps the caller's CPUs, or
    joins the sentry's with --share-cpu or the annotation."""
    host = _cpus_allowed(os.getpid())
    bundle = make_bundle("sleep", "1000")
    spread = _placement(runsc, bundle)
    assert spread["pid"] == spread["gofer_pid"] and spread["pid"].isdigit(), spread
    assert spread["init_pid"] == host, spread
    shared = _placement(runsc, bundle, "--share-cpu")
    assert shared["pid"] == shared["gofer_pid"] == shared["init_pid"], shared
    bundle.spec["annotations"] = {"dev.runsc-py.share-cpu": "true"}
    bundle.write()
    annotated = _placement(runsc, bundle)
    assert annotated["pid"] == annotated["init_pid"], annotated


def test_memory_limit_below_the_sandboxs_own_is_one_line(runsc, make_bundle):
    bundle = _resources(make_bundle("true"), memory={"limit": 16 * MiB})
    r = runsc("run", "--bundle", str(bundle.path), "tiny")
    assert r.returncode == 1, r
    assert r.stderr.strip().splitlines() == [
        "runsc-py: memory limit 16777216 is below the 32 MiB the sandbox itself needs"], r
    assert not (runsc.root / "tiny").exists()
    assert not any(os.path.exists(d) for d in _cgroup_dirs("/runsc-py/tiny"))


def _lowest_oom_score_adj_allowed() -> int:
    """-1000 where we may set it (CAP_SYS_RESOURCE), else 0: what the sentry gets."""
    pid = os.fork()
    if pid == 0:
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("-1000")
            os._exit(0)
        except OSError:
            os._exit(1)
    return -1000 if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0 else 0


def _oom_score_adj(pid: int) -> int:
    with open(f"/proc/{pid}/oom_score_adj") as f:
        return int(f.read())


def test_oom_score_adj_spares_the_sandbox(runsc, runc, make_bundle):
    """The OOM killer takes the workload: the sentry, gofer and watchdog are at -1000 (when
    the runtime may set that), the workload at process.oomScoreAdj (runc's value) or 0."""
    lowest = _lowest_oom_score_adj_allowed()
    for adj in (None, 500, -300 if lowest < 0 else 300):
        bundle = make_bundle("sleep", "1000")
        if adj is not None:
            bundle.spec["process"]["oomScoreAdj"] = adj
        bundle.write()
        cid = f"oom{adj}".replace("-", "m")
        assert runsc("create", "--bundle", str(bundle.path), cid).returncode == 0
        try:
            state = json.loads((runsc.root / cid / "state.json").read_text())
            assert runsc("start", cid).returncode == 0
            for k in ("pid", "gofer_pid"):
                assert _oom_score_adj(state[k]) == lowest, (k, adj)
            ours = _oom_score_adj(state["init_pid"])
        finally:
            runsc("delete", "--force", cid)
        ref = bundle.set_args("cat", "/proc/self/oom_score_adj")
        assert ours == int(runc(ref).stdout) == (adj or 0), (adj, ours)


def _read_lines(fd: int, n: int, timeout: float = 30) -> str:
    """The first n lines a pipe gets (unbuffered: a wait here means a hang, not a test
    that reads at its own pace), or what came within the timeout."""
    out = b""
    deadline = time.monotonic() + timeout
    while out.count(b"\n") < n and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            out += chunk
    return out.decode()


def test_gofer_thread_the_pids_limit_refuses_is_an_errno(runsc, make_bundle):
    """A FIFO open waits in a gofer thread, the workload's cost: with the workload's pids
    all taken, that thread cannot start and the open fails (ENOMEM; Linux would wait);
    the sentry and gofer live on and the container still answers."""
    bundle = _resources(make_bundle("sh", "-c", "mkfifo /tmp/f; probe forkmany 500 open "
                                    "/tmp/f rdonly 0; sleep 1000", readonly=False),
                        pids={"limit": 20})
    proc = subprocess.Popen(runsc.cmd("run", "--bundle", str(bundle.path), "fifo"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out = _read_lines(proc.stdout.fileno(), 2)
        got = probe_lines(out)
        state = json.loads((runsc.root / "fifo" / "state.json").read_text())
        pids = _cgroup_dirs(state["cgroup_path"])
        pids = [d for d in pids if "/pids/" in d] or pids
        counts = [open(os.path.join(pids[0], n)).read().strip()
                  for n in ("pids.current", "pids.max")]
        assert got.get("forkmany") == ["18 EAGAIN"] and got.get("open") == ["ENOMEM"], (
            out, counts)
        assert all(os.path.exists(f"/proc/{state[k]}") for k in ("pid", "gofer_pid"))
    finally:
        runsc("kill", "fifo", "KILL")
        proc.wait(timeout=30)


def test_exec_proxy_does_not_take_the_workloads_pids(runsc, make_bundle):
    """An exec's proxy waits in the container's cgroup as part of the sandbox: the sentry
    adds it to pids.max, so the exec'd process still has the workload's whole limit."""
    bundle = _resources(make_bundle("sh", "-c", "while true; do sleep 1000; done"),
                        pids={"limit": 6})
    assert runsc("create", "--bundle", str(bundle.path), "px").returncode == 0
    try:
        assert runsc("start", "px").returncode == 0
        time.sleep(0.3)
        # The probe's children keep its stdout open: read its line, not to EOF.
        proc = subprocess.Popen(runsc.cmd("exec", "px", "probe", "forkmany", "10"),
                                stdout=subprocess.PIPE)
        line = _read_lines(proc.stdout.fileno(), 1)
        # 6 = sh, its sleep, the probe and 3 children; the proxy comes on top.
        assert probe_lines(line)["forkmany"] == ["3 EAGAIN"], line
        assert proc.wait(timeout=30) == 0
    finally:
        runsc("delete", "--force", "px")
