"""Kubernetes' path: pods through containerd's CRI plugin, driven as the kubelet drives it
(gRPC, runtime v1), with the runtime handler README.md configures for runsc-py and runc's
beside it on the same containerd. One pod per handler runs the same sequence, side by
side: the sandbox (pause) container, two long-running busybox containers joining the
pod's network and IPC namespaces, one that exits with a status and one that is
OOM-killed; ExecSync, the CRI log files, ContainerStatus, ContainerStats and
ListContainerStats, `events`, then StopPodSandbox/RemovePodSandbox. The two must agree on
everything but what the sandbox is there to change (the kernel the workload sees)."""
from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import RUNSC_PY, proc_status, process_alive, runsc_py_binary, stop_daemon
from cri_env import (
    K8S_NAMESPACE,
    cni_setup,
    containerd_config,
    ctr,
    load_stubs,
    oci_image_tar,
    readme_block,
    wait_for,
)
from hypothesis import given, settings
from hypothesis import strategies as st

BUSYBOX = "localhost/runsc-py-test/busybox:1"
PAUSE = "localhost/runsc-py-test/pause:1"
SHIM_ROOT = f"/run/containerd/runc/{K8S_NAMESPACE}"  # the runc shim's default --root
OOM_LIMIT = 64 << 20
# busybox's nc listener: -e hands the connection to a program (its stdin, /dev/null
# here, would end a plain `nc -l` at once, sometimes before it read what came).
NC_SERVER = "-l -p 7777 -w 30 -e sh -c cat>/tmp/got"  # as ps shows it
APP_SCRIPT = "echo out; echo err >&2; nc -l -p 7777 -w 30 -e sh -c 'cat>/tmp/got'; sleep 600"
UPDATED = {"memory.limit_in_bytes": 256 << 20, "cpu.cfs_quota_us": 50000, "cpu.shares": 512}
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) "
                      r"(stdout|stderr) ([FP]) (.*)$")


def runtime_class_handler() -> str:
    """The handler the README's RuntimeClass names (what the kubelet sends)."""
    manifest = readme_block("yaml", "<!-- runtime-class")
    assert "kind: RuntimeClass" in manifest, manifest
    return re.search(r"^handler: (\S+)$", manifest, re.M).group(1)


class Cri:
    def __init__(self, base: str, pb, pb_grpc) -> None:
        import grpc
        self.base = base
        self.pb = pb
        self.channel = grpc.insecure_channel(f"unix://{base}/containerd.sock")
        self.rt = pb_grpc.RuntimeServiceStub(self.channel)
        self.images = pb_grpc.ImageServiceStub(self.channel)
        self.pods: list[str] = []

    def pod_config(self, name: str) -> object:
        pb = self.pb
        logs = Path(self.base, "pods", name)
        logs.mkdir(parents=True)
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace="default"),
            hostname=name, log_directory=str(logs),
            labels={"io.kubernetes.pod.name": name},
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=f"/kubepods/pod-{name}",
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=self.pod_namespaces())))

    def pod_namespaces(self) -> object:
        # The kubelet's for a pod without hostNetwork/hostIPC/shareProcessNamespace.
        pb = self.pb
        return pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD)

    def create(self, pod_id: str, pod_cfg, name: str, command: list[str],
               memory: int = 0) -> str:
        pb = self.pb
        # The kubelet gives each container the pod's namespace options.
        namespaces = pod_cfg.linux.security_context.namespace_options
        cfg = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=BUSYBOX),
            command=command, log_path=f"{name}/0.log",
            labels={"io.kubernetes.container.name": name},
            linux=pb.LinuxContainerConfig(
                resources=pb.LinuxContainerResources(memory_limit_in_bytes=memory,
                                                     cpu_shares=2),
                security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=namespaces)))
        return self.rt.CreateContainer(pb.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=cfg, sandbox_config=pod_cfg)).container_id

    def status(self, cid: str, verbose: bool = False):
        return self.rt.ContainerStatus(self.pb.ContainerStatusRequest(container_id=cid,
                                                                      verbose=verbose))

    def pid(self, cid: str) -> int:
        """The task's pid as the shim has it (runsc-py: the sentry's)."""
        return json.loads(self.status(cid, verbose=True).info["info"])["pid"]

    def exec_sync(self, cid: str, *cmd: str):
        return self.rt.ExecSync(self.pb.ExecSyncRequest(container_id=cid, cmd=list(cmd),
                                                        timeout=30))

    def remove_pod(self, pod_id: str) -> None:
        pb = self.pb
        self.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        self.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        self.pods.remove(pod_id)


@pytest.fixture(scope="module")
def cri(rootfs_template):
    for tool in ("containerd", "ctr"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not installed (the set-up installs Debian's containerd)")
    if not os.path.exists("/usr/lib/cni/loopback"):
        pytest.fail("the loopback CNI plugin is missing (debian-packages.txt: "
                    "containernetworking-plugins)")
    base = tempfile.mkdtemp(prefix="rpk-", dir="/tmp")  # short: socket paths are limited
    gen = Path(base, "stubs")
    gen.mkdir()
    pb, pb_grpc = load_stubs(gen)
    cni_setup(base)
    Path(base, "config.toml").write_text(containerd_config(base, runsc_py_binary(), PAUSE))
    # The images: busybox, and a pause image whose process sleeps until it is killed.
    oci_image_tar(rootfs_template, BUSYBOX, Path(base, "busybox.tar"), ["/bin/sh"])
    oci_image_tar(rootfs_template, PAUSE, Path(base, "pause.tar"), ["/bin/sleep", "infinity"])
    log = open(f"{base}/containerd.log", "wb")
    daemon = subprocess.Popen(["containerd", "--config", f"{base}/config.toml"], stdout=log,
                              stderr=subprocess.STDOUT)
    c = Cri(base, pb, pb_grpc)
    try:
        try:
            wait_for(lambda: daemon.poll() is not None or ctr(base, "version").returncode == 0,
                     30, "containerd to answer")
        except AssertionError:
            pass
        if daemon.poll() is not None or ctr(base, "version").returncode != 0:
            pytest.fail(f"containerd did not start: {Path(base, 'containerd.log').read_text()}")
        for tar in ("busybox.tar", "pause.tar"):
            r = ctr(base, "images", "import", f"{base}/{tar}")
            assert r.returncode == 0, r
        yield c
    finally:
        for pod_id in list(c.pods):
            try:
                c.remove_pod(pod_id)
            except Exception as e:  # noqa: BLE001 - the daemon goes anyway
                print(f"removing pod {pod_id}: {e}", file=sys.stderr)
        c.channel.close()
        stop_daemon(daemon, base)
        _remove_pod_cgroups()
        log.close()
        try:
            os.rmdir(SHIM_ROOT)  # made by the shims' runtime calls, empty by now
        except OSError:
            pass


def _remove_pod_cgroups() -> None:
    """The pods' parent cgroups (cgroup_parent), which the kubelet makes and removes:
    neither runtime removes a parent it did not name. Only empty ones go (rmdir)."""
    for top in Path("/sys/fs/cgroup").glob("*/kubepods"):
        for d in top.glob("pod-*"):
            try:
                d.rmdir()
            except OSError:
                pass
        try:
            top.rmdir()
        except OSError:
            pass


@dataclass
class Pod:
    """What one pod's sequence observed, for the assertions and the comparison."""
    handler: str
    pod_id: str = ""
    netns: str = ""
    ids: dict[str, str] = field(default_factory=dict)  # container name -> id
    pids: dict[str, int] = field(default_factory=dict)  # name -> task pid (sandbox: "pod")
    state: dict[str, dict] = field(default_factory=dict)  # name -> runtime's state.json
    uname: bytes = b""
    hostname: bytes = b""
    ps: list[list[str]] = field(default_factory=list)
    ns: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> ns type -> inode
    netns_inode: int = 0
    nc: tuple[int, bytes] = (0, b"")
    logs: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    exits: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)  # ContainerStats of "app"
    cgroup: dict[str, int] = field(default_factory=dict)  # app's cgroup files, read after
    listed: set[str] = field(default_factory=set)
    updated: dict[str, int] = field(default_factory=dict)  # app's cgroup after the update
    events_stats: dict = field(default_factory=dict)
    oom_stream: list[str] = field(default_factory=list)
    oom_stream_rc: int | None = None
    leftovers: dict[str, list] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _state(cid: str) -> dict:
    with open(f"{SHIM_ROOT}/{cid}/state.json") as f:
        return json.load(f)


def _workload_pid(handler: str, state: dict) -> int:
    """The container's first process: runsc-py's init (the sentry is the task's pid)."""
    return state["init_pid"] if handler == "runsc-py" else state["init_process_pid"]


def _ns_inodes(pid: int) -> dict[str, int]:
    return {ns: os.stat(f"/proc/{pid}/ns/{ns}").st_ino for ns in ("net", "ipc", "uts", "pid")}


def _runtime_cmd(handler: str) -> list[str]:
    return [runsc_py_binary()] if handler == "runsc-py" else ["runc"]


def _cgroup_value(pod: Pod, controller: str, name: str, container: str = "app") -> int:
    """A file of a container's cgroup (where the runtime made it)."""
    if pod.handler == "runsc-py":
        rel = pod.state[container]["cgroup_path"]
        path = f"/sys/fs/cgroup/{controller}/{rel.lstrip('/')}/{name}"
    else:
        path = f"{pod.state[container]['cgroup_paths'][controller]}/{name}"
    with open(path) as f:
        return int(f.read())


def _read_log(path: str) -> list[tuple[str, str, str]]:
    """CRI log lines as (stream, tag, text); each timestamp must parse."""
    out = []
    for line in Path(path).read_text().splitlines():
        m = LOG_LINE.match(line)
        assert m, f"not a CRI log line: {line!r}"
        out.append(m.group(2, 3, 4))
    return out


def _leftovers(pod: Pod) -> dict[str, list]:
    """What of the pod is still on the machine: processes, cgroups, mounts, state."""
    pids = set(pod.pids.values())
    for state in pod.state.values():
        pids.update(p for p, _ in state.get("sandbox", []))
        pids.update(state[k] for k in ("gofer_pid", "init_pid", "init_process_pid") if k in state)
    ids = [pod.pod_id, *pod.ids.values()]
    cgroups = subprocess.run(["find", "/sys/fs/cgroup", "-maxdepth", "6", "-type", "d", "("]
                             + [x for i in ids for x in ("-name", i, "-o")][:-1] + [")"],
                             capture_output=True, text=True).stdout.split()
    mounts = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True,
                            text=True).stdout.split()
    return {
        "processes": sorted(p for p in pids if process_alive(p)),
        "cgroups": cgroups,
        "mounts": [m for m in mounts if any(i in m for i in ids) or m == pod.netns],
        "state": [i for i in ids if os.path.exists(f"{SHIM_ROOT}/{i}")],
        "netns": [pod.netns] if os.path.exists(pod.netns) else [],
    }


def _start(cri: Cri, pod: Pod, name: str, pod_cfg, command: list[str],
           memory: int = 0) -> str:
    cid = cri.create(pod.pod_id, pod_cfg, name, command, memory)
    cri.rt.StartContainer(cri.pb.StartContainerRequest(container_id=cid))
    pod.ids[name] = cid
    pod.pids[name] = cri.pid(cid)
    pod.state[name] = _state(cid)
    return cid


def _wait_exited(cri: Cri, cid: str) -> object:
    return wait_for(lambda: (s := cri.status(cid).status).state == cri.pb.CONTAINER_EXITED
                    and s, 30, f"container {cid} to exit")


def run_pod(cri: Cri, handler: str) -> Pod:
    pb = cri.pb
    pod = Pod(handler)
    t0 = time.monotonic()
    cfg = cri.pod_config(f"pod-{handler}")
    pod.pod_id = cri.rt.RunPodSandbox(pb.RunPodSandboxRequest(
        config=cfg, runtime_handler=handler)).pod_sandbox_id
    cri.pods.append(pod.pod_id)
    pod.seconds["RunPodSandbox"] = time.monotonic() - t0
    info = json.loads(cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(
        pod_sandbox_id=pod.pod_id, verbose=True)).info["info"])
    pod.pids["pod"] = info["pid"]
    # The pod's shim (containerd 1.6 runs one for the pod's containers; it reaps the
    # task's pid as a subreaper): gone at the end too.
    pod.pids["shim"] = int(proc_status(pod.pids["pod"], "PPid"))
    assert "containerd-shim" in Path(f"/proc/{pod.pids['shim']}/cmdline").read_text()
    pod.state["pod"] = _state(pod.pod_id)
    pod.netns = next(n["path"] for n in info["runtimeSpec"]["linux"]["namespaces"]
                     if n["type"] == "network")
    pod.netns_inode = os.stat(pod.netns).st_ino

    t0 = time.monotonic()
    app = _start(cri, pod, "app", cfg, ["/bin/sh", "-c",
                 APP_SCRIPT])
    side = _start(cri, pod, "side", cfg, ["/bin/sh", "-c", "sleep 600"])
    pod.seconds["create+start app and side"] = time.monotonic() - t0
    for name in ("pod", "app", "side"):
        pod.ns[name] = _ns_inodes(_workload_pid(handler, pod.state[name]))
        pod.ns[name + " task"] = _ns_inodes(pod.pids[name])

    t0 = time.monotonic()
    pod.uname = cri.exec_sync(app, "uname", "-r").stdout
    pod.seconds["ExecSync uname"] = time.monotonic() - t0
    # The pod's hostname, from the UTS namespace app joined (the pause's).
    pod.hostname = cri.exec_sync(app, "hostname").stdout
    pod.ps = [line.split(None, 1) for line in
              cri.exec_sync(app, "ps", "-o", "pid,args").stdout.decode().splitlines()]
    # The shared network namespace, from inside: side reaches app's listener on loopback.
    r = cri.exec_sync(side, "sh", "-c", "for i in $(seq 100); do "
                      "echo hello | nc 127.0.0.1 7777 && exit 0; sleep 0.1; done; exit 1")
    try:
        got = wait_for(lambda: cri.exec_sync(app, "cat", "/tmp/got").stdout, 5, "app's nc")
    except AssertionError:
        got = b""  # test_containers_share_the_pods_network_and_ipc says so
    pod.nc = (r.exit_code, got)

    # The kubelet's in-place resize: containerd's `update --resources -` of the runtime.
    cri.rt.UpdateContainerResources(pb.UpdateContainerResourcesRequest(
        container_id=app, linux=pb.LinuxContainerResources(
            memory_limit_in_bytes=UPDATED["memory.limit_in_bytes"],
            cpu_quota=UPDATED["cpu.cfs_quota_us"], cpu_period=100000,
            cpu_shares=UPDATED["cpu.shares"])))
    pod.updated = {name: _cgroup_value(pod, name.split(".")[0], name) for name in UPDATED}
    pod.updated["free"] = int(cri.exec_sync(app, "free", "-b").stdout.split()[7])

    # Exit statuses: a plain exit, and an OOM kill (the stream of `events` runs meanwhile).
    exits = _start(cri, pod, "exits", cfg, ["/bin/sh", "-c", "echo bye; exit 3"])
    # The OOM container allocates once told to: after `events` has shown its first stats
    # (so it watches for OOM kills by then).
    oom = cri.create(pod.pod_id, cfg, "oom", ["/bin/sh", "-c",
                     "while [ ! -e /tmp/go ]; do sleep 0.1; done; "
                     "exec dd if=/dev/zero of=/dev/null bs=100M count=1"], memory=OOM_LIMIT)
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=oom))
    pod.ids["oom"] = oom
    pod.pids["oom"] = cri.pid(oom)
    pod.state["oom"] = _state(oom)
    stream = subprocess.Popen([*_runtime_cmd(handler), "--root", SHIM_ROOT, "events",
                               "--interval", "1s", oom], stdout=subprocess.PIPE, text=True)
    out = ""
    try:
        if select.select([stream.stdout], [], [], 30)[0]:
            out = stream.stdout.readline()
        cri.exec_sync(oom, "touch", "/tmp/go")
        for name, cid in (("exits", exits), ("oom", oom)):
            s = _wait_exited(cri, cid)
            pod.exits[name] = (s.exit_code, s.state, s.reason)
        # The stream ends once the task is deleted (its cgroup with it).
        out += stream.communicate(timeout=15)[0]
    except subprocess.TimeoutExpired:
        stream.kill()
        out += stream.communicate()[0]
        stream.returncode = None  # did not end: test_events_streams_oom_as_runc says so
    finally:
        if stream.poll() is None:
            stream.kill()
            stream.wait()
    pod.oom_stream, pod.oom_stream_rc = out.splitlines(), stream.returncode

    # Stats: the shim's (CRI), the runtime's `events --stats`, and the cgroup's files.
    time.sleep(0.5)
    pod.stats = cri.rt.ContainerStats(pb.ContainerStatsRequest(container_id=app)).stats
    r = subprocess.run([*_runtime_cmd(handler), "--root", SHIM_ROOT, "events", "--stats",
                        app], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r
    pod.events_stats = json.loads(r.stdout)
    pod.cgroup = {"memory": _cgroup_value(pod, "memory", "memory.usage_in_bytes"),
                  "cpu": _cgroup_value(pod, "cpuacct", "cpuacct.usage"),
                  "pause memory": _cgroup_value(pod, "memory", "memory.usage_in_bytes",
                                                "pod")}
    listed = cri.rt.ListContainerStats(pb.ListContainerStatsRequest(
        filter=pb.ContainerStatsFilter(pod_sandbox_id=pod.pod_id))).stats
    pod.listed = {s.attributes.id for s in listed if s.memory.working_set_bytes.value}

    logs = Path(cfg.log_directory)
    pod.logs = {name: _read_log(str(logs / name / "0.log")) for name in ("app", "exits")}

    t0 = time.monotonic()
    cri.remove_pod(pod.pod_id)
    pod.seconds["Stop+RemovePodSandbox"] = time.monotonic() - t0
    try:
        wait_for(lambda: not any(_leftovers(pod).values()), 10, "the pod to be gone")
    except AssertionError:
        pass
    pod.leftovers = _leftovers(pod)
    return pod


@pytest.fixture(scope="module")
def pods(cri) -> dict[str, Pod]:
    handler = runtime_class_handler()
    assert handler == "runsc-py"
    out = {}
    for h in (handler, "runc"):
        out[h] = run_pod(cri, h)
    for h, p in out.items():  # shown with -s: the README's measurements
        print(f"\n{h}: seconds {({k: round(v, 2) for k, v in p.seconds.items()})}, "
              f"MiB: app {p.cgroup['memory'] / 2**20:.1f}, "
              f"pause {p.cgroup['pause memory'] / 2**20:.1f}", file=sys.stderr)
    return out


def test_runtime_and_network_ready(cri):
    conditions = {c.type: c.status
                  for c in cri.rt.Status(cri.pb.StatusRequest()).status.conditions}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}


def test_the_kernel_is_the_sentrys(pods):
    assert pods["runsc-py"].uname == b"4.4.0\n"
    assert pods["runc"].uname == (os.uname().release + "\n").encode()


def test_hostname_is_the_pods(pods):
    for pod in pods.values():
        assert pod.hostname == f"pod-{pod.handler}\n".encode(), pod.handler


def test_ps_shows_the_containers_own_processes(pods):
    for pod in pods.values():
        assert pod.ps[0] == ["PID", "COMMAND"], pod.ps
        # The container's shell (its first process), nc, and ps itself: nothing of the
        # host's, nothing of the sandbox (sentry, gofer: python3) and not the pause.
        assert [args for _, args in pod.ps[1:]] == [
            f"/bin/sh -c {APP_SCRIPT}", f"nc {NC_SERVER}", "ps -o pid,args"], (pod.handler,
                                                                                pod.ps)
        assert pod.ps[1][0] == "1"


def test_containers_share_the_pods_network_and_ipc(pods):
    for pod in pods.values():
        ns = pod.ns
        assert ns["app"]["net"] == ns["side"]["net"] == ns["pod"]["net"] == pod.netns_inode
        assert ns["app"]["ipc"] == ns["side"]["ipc"] == ns["pod"]["ipc"]
        assert ns["app"]["pid"] != ns["side"]["pid"] != ns["pod"]["pid"]
        host = _ns_inodes(os.getpid())
        assert ns["app"]["ipc"] != host["ipc"] and ns["app"]["net"] != host["net"]
        assert pod.nc == (0, b"hello\n"), (pod.handler, pod.nc)


def test_runsc_py_task_pid_is_in_the_containers_namespaces(pods):
    """The CRI plugin joins a container to the pod by /proc/<task pid>/ns/*; under
    runsc-py that pid is the pause container's sentry, so its network, IPC and UTS
    namespaces must be the pause workload's (and a container's sentry its own's)."""
    ns = pods["runsc-py"].ns
    for name in ("pod", "app", "side"):
        for kind in ("net", "ipc", "uts"):
            assert ns[name + " task"][kind] == ns[name][kind], (name, kind)
        # The sentry stays in the host's PID namespace (it must see host PIDs).
        assert ns[name + " task"]["pid"] != ns[name]["pid"]


def test_logs_in_cri_format(pods):
    for pod in pods.values():
        assert sorted(pod.logs["app"]) == [("stderr", "F", "err"), ("stdout", "F", "out")]
        assert pod.logs["exits"] == [("stdout", "F", "bye")]
    assert pods["runsc-py"].logs["exits"] == pods["runc"].logs["exits"]


def test_update_container_resources(pods):
    """The cgroup has the new limits, and under runsc-py the container's view (free)
    follows the memory limit, as it does under runc (its cgroup-aware /proc: LXCFS-less
    runc shows the host's memory, so only runsc-py's is compared with the limit)."""
    for pod in pods.values():
        assert {k: v for k, v in pod.updated.items() if k != "free"} == UPDATED, pod.handler
    assert pods["runsc-py"].updated["free"] == UPDATED["memory.limit_in_bytes"]


def test_exit_codes_and_oom_killed(pods):
    exited = 2  # CONTAINER_EXITED
    for pod in pods.values():
        assert pod.exits == {"exits": (3, exited, "Error"),
                             "oom": (137, exited, "OOMKilled")}, pod.handler


def test_events_streams_oom_as_runc(pods):
    for pod in pods.values():
        kinds = [json.loads(line)["type"] for line in pod.oom_stream]
        assert pod.oom_stream_rc == 0, pod.handler
        assert "oom" in kinds, (pod.handler, kinds)
        assert set(kinds) == {"oom", "stats"}, (pod.handler, kinds)
        first = json.loads(pod.oom_stream[0])
        assert first["id"] == pod.ids["oom"]
        stats = next(json.loads(line)["data"] for line in pod.oom_stream
                     if '"stats"' in line)
        assert stats["memory"]["usage"]["limit"] == OOM_LIMIT


def _keys(doc, top: str = "") -> set[str]:
    """Every key path of a JSON document (list items and memory.stat's keys left out)."""
    out = set()
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.add(f"{top}.{k}")
            if k != "raw":
                out |= _keys(v, f"{top}.{k}")
    return out


def test_events_stats_as_runc(pods):
    ours, runc = pods["runsc-py"].events_stats, pods["runc"].events_stats
    assert ours["type"] == runc["type"] == "stats"
    assert ours["id"] == pods["runsc-py"].ids["app"]
    # Zero counters are left out (Go's omitempty): compare where both have a value.
    assert _keys(ours) >= _keys(runc) - {".data.memory.cache"}, _keys(runc) - _keys(ours)
    assert set(ours["data"]["memory"]["raw"]) == set(runc["data"]["memory"]["raw"])


def test_container_stats_are_the_containers_cgroup(pods):
    """ContainerStats (the shim reads the cgroup of the task's pid) and `events --stats`
    give the container's own memory and CPU: its cgroup's, which under runsc-py holds
    the sandbox too (sentry, gofer, watchdog: about 20 MiB)."""
    for pod in pods.values():
        mem, cpu = pod.stats.memory, pod.stats.cpu
        assert pod.stats.attributes.id == pod.ids["app"]
        assert 0 < mem.working_set_bytes.value <= mem.usage_bytes.value
        assert abs(mem.usage_bytes.value - pod.cgroup["memory"]) < 4 << 20, pod.handler
        assert 0 < cpu.usage_core_nano_seconds.value <= pod.cgroup["cpu"]
        ev = pod.events_stats["data"]
        assert abs(ev["memory"]["usage"]["usage"] - pod.cgroup["memory"]) < 4 << 20
        assert 0 < ev["cpu"]["usage"]["total"] <= pod.cgroup["cpu"]
        assert pod.listed >= {pod.ids["app"], pod.ids["side"]}, pod.handler
    assert pods["runsc-py"].stats.memory.usage_bytes.value > 10 << 20


def test_stop_and_remove_leave_nothing(pods):
    for pod in pods.values():
        assert pod.leftovers == {"processes": [], "cgroups": [], "mounts": [], "state": [],
                                 "netns": []}, pod.handler


def test_shared_pid_namespace_pod(cri):
    """A pod with shareProcessNamespace (pid POD): under runc a container sees the pause
    process; runsc-py's sandboxes are one per container, and joining another's PID
    namespace by path (the pause sentry's, which is the host's) is refused with a message
    that says so, at StartContainer, and the pod is removed cleanly."""
    import grpc
    pb = cri.pb
    seen = {}
    for handler in ("runsc-py", "runc"):
        cfg = cri.pod_config(f"shared-pid-{handler}")
        cfg.linux.security_context.namespace_options.pid = pb.POD
        pod_id = cri.rt.RunPodSandbox(pb.RunPodSandboxRequest(
            config=cfg, runtime_handler=handler)).pod_sandbox_id
        cri.pods.append(pod_id)
        try:
            cid = cri.create(pod_id, cfg, "app", ["/bin/sleep", "600"])
            try:
                cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid))
                seen[handler] = cri.exec_sync(cid, "ps", "-o", "args").stdout.decode()
            except grpc.RpcError as e:
                seen[handler] = e.details()
        finally:
            cri.remove_pod(pod_id)
    assert seen["runc"].splitlines() == ["COMMAND", "/bin/sleep infinity", "/bin/sleep 600",
                                         "ps -o args"], seen["runc"]
    assert ("joining an existing pid namespace is not supported (the sandbox makes its "
            "own)") in seen["runsc-py"], seen["runsc-py"]


def _error(stderr: str) -> str:
    """The error line: runc's logrus msg="...", or runsc-py's "runsc-py: ..."."""
    m = re.search(r'level=error msg="((?:[^"\\]|\\.)*)"', stderr)
    if m:
        return m.group(1).replace('\\"', '"')
    return stderr.strip().splitlines()[-1].removeprefix("runsc-py: ")


def test_events_refuses_as_runc(make_bundle, tmp_path):
    """`events` on a container whose process has exited, and with a bad --interval: the
    same status and message as runc."""
    seen = {}
    for name, cmd in (("runsc-py", list(RUNSC_PY)), ("runc", ["runc"])):
        bundle = make_bundle("true")
        root = str(tmp_path / f"{name}-state")
        cid = f"ev-{name}"
        run = [*cmd, "--root", root]
        r = subprocess.run([*run, "run", "-d", "--bundle", str(bundle.path), cid],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        assert r.returncode == 0, r
        try:
            def stopped(run=run, cid=cid) -> bool:
                r = subprocess.run([*run, "state", cid], capture_output=True, text=True)
                return json.loads(r.stdout)["status"] == "stopped"
            wait_for(stopped, 20, f"{cid} to stop")
            seen[name] = []
            for args in (["--stats"], ["--interval", "0s"], ["--interval", "xx"]):
                r = subprocess.run([*run, "events", *args, cid], capture_output=True,
                                   text=True, timeout=30)
                seen[name].append((r.returncode, _error(r.stderr).replace(cid, "ID")))
        finally:
            subprocess.run([*run, "delete", "--force", cid], capture_output=True)
    assert seen["runsc-py"] == seen["runc"]
    assert seen["runc"][0] == (1, "container with id ID is not running")


_NUMBER = st.one_of(st.integers(0, 10**20).map(str), st.from_regex(r"\A[0-9]{0,22}\.[0-9]{0,22}\Z"))
_UNIT = st.sampled_from(["ns", "us", "\u00b5s", "\u03bcs", "ms", "s", "m", "h", "", "x", "S"])
_DURATIONS = st.one_of(
    st.tuples(st.sampled_from(["", "+", "-"]),
              st.lists(st.tuples(_NUMBER, _UNIT), min_size=0, max_size=4))
    .map(lambda t: t[0] + "".join(n + u for n, u in t[1])),
    st.text(alphabet="0123456789.+-nsu\u00b5\u03bcmhx ", max_size=12))


@pytest.fixture(scope="module")
def stopped_runc(tmp_path_factory, rootfs_template):
    """A runc container whose process has exited: `events` parses --interval, checks it,
    then says the container is not running."""
    base = tmp_path_factory.mktemp("runc-events")
    shutil.copytree(rootfs_template, base / "rootfs", symlinks=True)
    from conftest import default_spec
    spec = default_spec()
    spec["process"]["args"] = ["true"]
    (base / "config.json").write_text(json.dumps(spec))
    run = ["runc", "--root", str(base / "state")]
    r = subprocess.run([*run, "run", "-d", "--bundle", str(base), "stopped"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert r.returncode == 0, r
    try:
        wait_for(lambda: json.loads(subprocess.run(
            [*run, "state", "stopped"], capture_output=True, text=True).stdout)["status"]
                 == "stopped", 20, "runc's container to stop")
        yield run
    finally:
        subprocess.run([*run, "delete", "--force", "stopped"], capture_output=True)


@settings(max_examples=300)
@given(text=_DURATIONS)
def test_interval_parses_as_runcs(stopped_runc, text):
    """--interval accepts, refuses and signs every string as runc (Go's ParseDuration)."""
    from runsc_py.events import parse_duration
    r = subprocess.run([*stopped_runc, "events", f"--interval={text}", "stopped"],
                       capture_output=True, text=True, timeout=10)
    msg = _error(r.stderr)
    runc = ("invalid" if msg.endswith("parse error") else
            "not positive" if msg == "duration interval must be greater than 0" else
            "positive" if msg == "container with id stopped is not running" else msg)
    try:
        ours = "positive" if parse_duration(text) > 0 else "not positive"
    except ValueError:
        ours = "invalid"
    assert ours == runc, (text, r.stderr)


def test_kill_all_as_runc(make_bundle, tmp_path):
    """`kill --all` (what the shim sends after a container's exit, and `ctr task kill
    --all`): every process of the container gets the signal, so a TERM ignored by the
    container's init (PID 1 of its namespace) still ends its child and so the container;
    on a container that has stopped it is no error, where a plain kill is."""
    seen = {}
    for name, cmd in (("runsc-py", list(RUNSC_PY)), ("runc", ["runc"])):
        run = [*cmd, "--root", str(tmp_path / f"{name}-state")]

        def status(cid: str, run=run) -> str:
            r = subprocess.run([*run, "state", cid], capture_output=True, text=True)
            return json.loads(r.stdout)["status"]

        def rc(*args: str, run=run) -> int:
            return subprocess.run([*run, *args], capture_output=True, timeout=30).returncode

        got = seen[name] = {}
        for all_ in (False, True):
            cid = f"k-{name}-{all_}"
            bundle = make_bundle("sh", "-c", "sleep 100 & wait")
            try:
                # The container keeps the stdio it is given: no pipes to wait on.
                r = subprocess.run([*run, "run", "-d", "--bundle", str(bundle.path), cid],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, timeout=60)
                assert r.returncode == 0, r
                wait_for(lambda cid=cid: status(cid) == "running", 20, f"{cid} to run")
                time.sleep(0.5)  # the shell has started its child
                got[f"TERM all={all_}"] = rc("kill", *(["--all"] if all_ else []), cid, "TERM")
                try:
                    wait_for(lambda cid=cid: status(cid) == "stopped", 2, f"{cid} to stop")
                except AssertionError:
                    pass
                got[f"status after, all={all_}"] = status(cid)
                rc("kill", cid, "KILL")
                wait_for(lambda cid=cid: status(cid) == "stopped", 20, f"{cid} to stop")
                got["KILL once stopped"] = rc("kill", cid, "KILL")
                got["KILL --all once stopped"] = rc("kill", "--all", cid, "KILL")
            finally:
                rc("delete", "--force", cid)
    assert seen["runsc-py"] == seen["runc"]
    assert seen["runc"] == {"TERM all=False": 0, "status after, all=False": "running",
                            "TERM all=True": 0, "status after, all=True": "stopped",
                            "KILL once stopped": 1, "KILL --all once stopped": 0}
