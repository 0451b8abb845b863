"""The OCI runtime spec's features, each run under runc and runsc-py: what the container
sees must agree (issue 12)."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import tempfile
from types import SimpleNamespace

from gofer.devices import Device, Policy, Rule

SCRIPT = r"""
cat /etc/masked-file 2>&1; echo "read masked file: $?"
echo "masked dir lists $(ls -A /etc/masked-dir | wc -l) entries"
stat -c '%F %a' /etc/masked-file /etc/masked-dir /etc/via-link
cat /etc/via-link; echo "read through a link to it: $?"
echo x > /etc/masked-file; echo "write masked file: $?"
touch /etc/masked-dir/new 2>&1; echo "create in masked dir: $?"
cat /ro-dir/kept; touch /ro-dir/new 2>&1; echo "create in read-only dir: $?"
echo y >> /ro-dir/kept 2>&1; echo "append to read-only file: $?"
echo z > /ro-file 2>&1; echo "write read-only file: $?"
touch /ro-dir/sub/new 2>&1; echo "create below a read-only dir: $?"
touch /rw-dir/new; echo "create in writable dir: $?"
echo "meminfo: $(wc -c < /proc/meminfo) bytes"
echo "kcore: $(cat /proc/kcore 2>&1 | wc -c)"
"""


def _bundle(make_bundle):
    b = make_bundle("sh", "-c", SCRIPT, readonly=False)
    etc = b.rootfs / "etc"
    (etc / "masked-dir").mkdir()
    (etc / "masked-dir" / "secret").write_text("secret\n")
    (etc / "masked-file").write_text("secret\n")
    (etc / "via-link").symlink_to("masked-file")
    (b.rootfs / "ro-dir" / "sub").mkdir(parents=True)
    (b.rootfs / "ro-dir" / "kept").write_text("kept\n")
    (b.rootfs / "ro-file").write_text("ro\n")
    (b.rootfs / "rw-dir").mkdir()
    b.spec["linux"]["maskedPaths"] = ["/etc/masked-dir", "/etc/masked-file", "/no/such",
                                      "/proc/meminfo", "/proc/kcore"]
    b.spec["linux"]["readonlyPaths"] = ["/ro-dir", "/ro-file", "/no/such/either", "/proc/sys"]
    return b.write()


def test_masked_and_readonly_paths_as_runc(runsc, runc, make_bundle):
    bundle = _bundle(make_bundle)
    theirs = runc(bundle)
    assert theirs.returncode == 0, theirs.stderr
    ours = runsc.run(bundle)
    assert ours.returncode == 0, ours.stderr
    assert "read masked file: 0" in theirs.stdout and "secret" not in theirs.stdout
    assert "create in read-only dir: 1" in theirs.stdout
    assert ours.stdout == theirs.stdout


def test_masked_paths_must_be_absolute(runsc, make_bundle):
    bundle = make_bundle("true")
    bundle.spec["linux"]["maskedPaths"] = ["etc/passwd"]
    r = runsc.run(bundle.write())
    assert r.returncode == 1
    assert r.stderr == ("runsc-py: config.json: linux.maskedPaths[0] must be an absolute "
                        "path\n")


DEVICE_SCRIPT = r"""
stat -c '%n %F %t:%T %a %u:%g' /dev/mynull /dev/myzero /dev/sub/mykmsg /dev/fifo0
echo hi > /dev/mynull; echo "write mynull: $?"
head -c 4 /dev/myzero | od -An -tx1; echo "read myzero: $?"
head -c 4 /dev/sub/mykmsg > /dev/null; echo "read mykmsg (denied): $?"
echo x > /dev/sub/mykmsg; echo "write mykmsg (denied): $?"
cat /dev/null; echo "read null: $?"
"""


def test_devices_and_their_cgroup_rules_as_runc(runsc, runc, make_bundle):
    bundle = make_bundle("sh", "-c", DEVICE_SCRIPT, readonly=False)
    bundle.spec["linux"]["devices"] = [
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o620,
         "uid": 1000, "gid": 1000},
        {"path": "/dev/myzero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o666},
        {"path": "/dev/sub/mykmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o600},
        {"path": "/dev/fifo0", "type": "p", "fileMode": 0o640}]
    bundle.spec["linux"]["resources"]["devices"] = [
        {"allow": False, "access": "rwm"},
        *({"allow": True, "type": "c", "major": 1, "minor": m, "access": "rwm"}
          for m in (3, 5, 8, 9)),
        {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
        {"allow": True, "type": "c", "major": 136, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "m"}]
    bundle.write()
    theirs = runc(bundle)
    assert theirs.returncode == 0, theirs.stderr
    assert "read mykmsg (denied): 1" in theirs.stdout
    ours = runsc.run(bundle)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout


def test_device_policy_rules():
    """The devices cgroup's rule order, as runc gives it (pure logic, no root)."""
    deny_all = [Rule(False)]
    p = Policy([Device("/dev/x", "c", 10, 229)], [*deny_all, Rule(True, "c", 10, 229, "r")])
    assert p.permits("c", 10, 229, "r") and not p.permits("c", 10, 229, "w")
    assert p.permits("c", 1, 3, "rw")  # runc's defaults come last and win
    assert not p.permits("c", 1, 11, "r")
    assert not Policy([], [Rule(True, "c", 1, 11)]).check(_chr(1, 11), "r")  # not listed
    assert Policy([Device("/dev/k", "c", 1, 11)]).check(_chr(1, 11), "r")  # no rules: all
    assert Policy([], [Rule(True, "a")]).check(_chr(136, 4), "rw")  # a pty slave


def _chr(major: int, minor: int) -> SimpleNamespace:
    """What Policy.check reads of a character device major:minor's stat."""
    return SimpleNamespace(st_mode=stat.S_IFCHR | 0o600, st_rdev=os.makedev(major, minor))


SYSCTL_SCRIPT = r"""
for f in kernel/shmmax kernel/shmmni kernel/msgmax kernel/sem fs/mqueue/msg_max \
         net/ipv4/ip_forward net/core/somaxconn net/ipv4/ip_local_port_range; do
    echo "$f: $(cat /proc/sys/$f)"
done
ipcs -l | grep -i -e 'max seg size' -e 'max queues'
(echo 0 > /proc/sys/net/ipv4/ip_forward) 2>&1; echo "write ip_forward: $?"
ls /proc/self/ns | tr '\n' ' '; echo
grep -c . /proc/self/smaps_rollup > /dev/null; echo "smaps_rollup: $?"
cat /proc/self/oom_score_adj
"""


def test_sysctl_as_runc(runsc, runc, make_bundle):
    bundle = make_bundle("sh", "-c", SYSCTL_SCRIPT)
    bundle.spec["linux"]["sysctl"] = {"kernel.shmmax": "123456789", "kernel.msgmax": "4096",
                                      "fs.mqueue.msg_max": "20", "net.ipv4.ip_forward": "1",
                                      "net.core.somaxconn": "1000"}
    bundle.spec["linux"]["readonlyPaths"] = ["/proc/sys"]
    bundle.spec["process"]["oomScoreAdj"] = 500
    bundle.write()
    theirs = runc(bundle)
    assert theirs.returncode == 0, theirs.stderr
    assert "kernel/shmmax: 123456789" in theirs.stdout
    ours = runsc.run(bundle)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout


def test_sysctl_outside_a_namespace_is_refused(runsc, make_bundle):
    for key in ("kernel.core_pattern", "vm.swappiness", "net/../kernel/core_pattern"):
        bundle = make_bundle("true")
        bundle.spec["linux"]["sysctl"] = {key: "x"}
        r = runsc.run(bundle.write())
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert "sysctl" in r.stderr and "Traceback" not in r.stderr


def _namespaces(bundle, keep: set[str], **paths: str) -> None:
    ns = [n for n in bundle.spec["linux"]["namespaces"] if n["type"] in keep]
    ns += [{"type": t, "path": p} for t, p in paths.items()]
    bundle.spec["linux"]["namespaces"] = ns
    bundle.write()


def test_namespace_path_of_the_wrong_type_fails_as_under_runc(runsc, runc, make_bundle):
    bundle = make_bundle("true")
    _namespaces(bundle, {"pid", "mount", "network", "ipc"}, uts="/proc/self/ns/net")
    assert runc(bundle).returncode != 0
    r = runsc.run(bundle)
    assert (r.returncode, r.stderr) == (1, "runsc-py: config.json: linux.namespaces[4]: "
                                            "'/proc/self/ns/net' is a network namespace, "
                                            "not uts\n")


def test_joining_a_pid_or_user_namespace_is_refused(runsc, make_bundle):
    for kind, path in (("pid", "/proc/self/ns/pid"), ("mount", "/proc/self/ns/mnt")):
        bundle = make_bundle("true")
        _namespaces(bundle, {"network", "ipc", "uts"}, **{kind: path})
        r = runsc.run(bundle)
        assert r.returncode == 1 and "is not supported" in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1


def test_namespaces_left_out_are_the_runtimes_as_under_runc(runsc, runc, make_bundle):
    """No network, ipc or uts entry: the container shares the runtime's (the host's),
    compared by namespace inode from the host, under both runtimes."""
    host = {k: os.stat(f"/proc/self/ns/{k}").st_ino for k in ("net", "ipc", "uts")}
    bundle = make_bundle("sh", "-c", "hostname; sleep 30")
    _namespaces(bundle, {"pid", "mount"})
    bundle.spec.pop("hostname", None)
    bundle.write()
    for rt in (runsc, None):
        cid = "ns-" + os.urandom(4).hex()
        cmd = (["runc", "--root", str(runsc.root.parent / "runc-state")] if rt is None
               else runsc.cmd())
        # The created container keeps the caller's stdio: files, not pipes.
        with tempfile.TemporaryFile() as err:
            created = subprocess.run([*cmd, "create", "--bundle", str(bundle.path), cid],
                                     stderr=err, timeout=60, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL)
            err.seek(0)
            message = err.read().decode()
        try:
            assert created.returncode == 0, message
            pid = json.loads(subprocess.run([*cmd, "state", cid], capture_output=True,
                                            text=True).stdout)["pid"]
            if rt is not None:  # runsc-py's state pid is the sentry; the init is its
                pid = json.loads((runsc.root / cid / "state.json").read_text())["init_pid"]
            seen = {k: os.stat(f"/proc/{pid}/ns/{k}").st_ino for k in host}
            assert seen == host, (rt, seen, host)
        finally:
            subprocess.run([*cmd, "delete", "--force", cid], capture_output=True)


_CGROUP_FILES = (("memory", "memory.soft_limit_in_bytes"), ("memory", "memory.swappiness"),
                 ("memory", "memory.oom_control"), ("blkio", "blkio.throttle.read_bps_device"),
                 ("blkio", "blkio.throttle.write_iops_device"))


def _root_disk() -> tuple[int, int]:
    """A whole block device of the host (throttles name devices)."""
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram", "zram")):
            major, minor = open(f"/sys/block/{name}/dev").read().split(":")
            return int(major), int(minor)
    raise AssertionError("no block device on this host")


def test_more_cgroup_resources_as_runc(runsc, make_bundle, tmp_path):
    """Memory reservation, swappiness, the OOM killer switch and block I/O throttles land
    in the container's cgroup files as runc writes them (cgroup v1 here)."""
    major, minor = _root_disk()
    bundle = make_bundle("sleep", "30")
    bundle.spec["linux"]["resources"].update({
        "memory": {"limit": 256 << 20, "reservation": 64 << 20, "swappiness": 10,
                   "disableOOMKiller": True},
        "blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor,
                                               "rate": 1048576}],
                    "throttleWriteIOPSDevice": [{"major": major, "minor": minor,
                                                 "rate": 100}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}],
        "network": {"classID": 0x100001, "priorities": [{"name": "lo", "priority": 5}]}})
    # hugetlb, net_cls and net_prio: written where the host mounts the controller (compared
    # with runc's files then); else runsc-py warns, naming the field, and runc refuses.
    extra = {c: os.path.isdir(f"/sys/fs/cgroup/{c}") for c in ("hugetlb", "net_cls",
                                                               "net_prio")}
    files = list(_CGROUP_FILES)
    files += [("hugetlb", "hugetlb.2MB.limit_in_bytes")] * extra["hugetlb"]
    files += [("net_cls", "net_cls.classid")] * extra["net_cls"]
    files += [("net_prio", "net_prio.ifpriomap")] * extra["net_prio"]
    refused = {"hugetlb": "hugepageLimits", "net_cls": "network", "net_prio": "network"}
    seen = {}
    for name in ("runsc-py", "runc"):
        cid = f"res-{name}-{os.urandom(3).hex()}"
        bundle.spec["linux"]["cgroupsPath"] = f"/rpy-res/{cid}"
        bundle.write()
        cmd = (runsc.cmd("--log", str(tmp_path / "log")) if name == "runsc-py"
               else ["runc", "--root", str(tmp_path / "runc")])
        with tempfile.TemporaryFile() as err:
            r = subprocess.run([*cmd, "create", "--bundle", str(bundle.path), cid],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=err, timeout=60)
            err.seek(0)
            message = err.read().decode()
        try:
            while name == "runc" and r.returncode != 0:
                # runc refuses what the host lacks, one controller at a time; without
                # those fields it agrees on the rest.
                missing = next(c for c, there in extra.items() if not there and
                               f"cannot set {c} limit" in message)
                assert bundle.spec["linux"]["resources"].pop(refused[missing], None)
                bundle.write()
                with tempfile.TemporaryFile() as err:
                    r = subprocess.run([*cmd, "create", "--bundle", str(bundle.path), cid],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=err, timeout=60)
                    err.seek(0)
                    message = err.read().decode()
            assert r.returncode == 0, (name, message)
            seen[name] = {f: open(f"/sys/fs/cgroup/{c}/rpy-res/{cid}/{f}").read()
                          for c, f in files}
        finally:
            subprocess.run([*cmd, "delete", "--force", cid], capture_output=True)
    for c in ("memory", "blkio", *(c for c, there in extra.items() if there)):
        try:
            os.rmdir(f"/sys/fs/cgroup/{c}/rpy-res")
        except OSError:
            pass
    assert seen["runsc-py"] == seen["runc"]
    assert "oom_kill_disable 1" in seen["runc"]["memory.oom_control"]
    log = (tmp_path / "log").read_text()
    warnings = {"hugetlb": "linux.resources.hugepageLimits: the host has no hugetlb",
                "net_cls": "linux.resources.network.classID: the host has no net_cls",
                "net_prio": "linux.resources.network.priorities: the host has no net_prio"}
    for c, there in extra.items():
        assert (warnings[c] in log) != there, c
    if extra["net_cls"]:
        assert seen["runc"]["net_cls.classid"] == f"{0x100001}\n"


def test_hugetlb_and_network_resources_parsed():
    """hugepageLimits and network (classID, priorities) as the cgroup writes take them;
    a value no cgroup file would accept is a one-line error at create (pure logic)."""
    from runsc_py.errors import UserError
    from runsc_py.spec import parse_resources
    r = parse_resources({"hugepageLimits": [{"pageSize": "1GB", "limit": 0}],
                         "network": {"classID": 7, "priorities": [{"name": "eth0",
                                                                   "priority": 2}]}})
    assert (r.hugepage_limits, r.net_classid, r.net_priorities) == \
        ([["1GB", 0]], 7, [["eth0", 2]])
    assert not r.unsupported
    for bad in ({"hugepageLimits": [{"pageSize": "2mb", "limit": 1}]},
                {"hugepageLimits": [{"pageSize": "../2MB", "limit": 1}]},
                {"hugepageLimits": [{"pageSize": "2MB"}]},
                {"network": {"classID": 1 << 32}},
                {"network": {"priorities": [{"name": "a b", "priority": 1}]}},
                {"network": {"priorities": [{"name": "lo", "priority": -1}]}}):
        try:
            parse_resources(bad)
        except UserError:
            continue
        raise AssertionError(f"accepted {bad}")
