"""Bad input: a one-line error, a non-zero exit, and nothing left behind (no state
directory, no mount, no process)."""
from __future__ import annotations

import copy
import glob
import json
import os
import signal
import string
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from conftest import REPO, default_spec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runsc_py.errors import UserError
from runsc_py.state import Container, validate_id


@pytest.fixture(autouse=True)
def _reap_leftovers(runsc):
    """Every command line of ours carries this test's --root: whatever a failed check left
    running is killed here, so one failure does not leak sandboxes into the next tests."""
    yield
    for pid in processes_mentioning(str(runsc.root)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _cid() -> str:
    return "bad-" + uuid.uuid4().hex[:10]


def run_cmd(runsc, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Output goes to files: a `create` that succeeds leaves a sentry holding its stdio,
    and pipes would only reach EOF when that container ends."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        r = subprocess.run(runsc.cmd(*args), stdin=subprocess.DEVNULL, stdout=out,
                           stderr=err, timeout=timeout, cwd=REPO)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(r.args, r.returncode,
                                           out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))


# Where a mount escaping the sandbox would land on the host: the container's mount
# destinations (the default spec's and the tests' /mnt), or anything under the test's
# temporary directory (bundles, rootfs, state). Synthetic mounts have a "runsc-py-" source.
CONTAINER_DESTINATIONS = {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
                          "/sys/fs/cgroup", "/mnt"}


def mountinfo() -> list[str]:
    return Path("/proc/self/mountinfo").read_text().splitlines()


def new_mounts(before: list[str], tmp: Path) -> list[str]:
    """Mounts added since before that the runtime could have made. Other people's mounts
    come and go on this host meanwhile, so mountinfo as a whole is not compared."""
    new = []
    for line in mountinfo():
        if line in before:
            continue
        target = line.split()[4]
        if (target in CONTAINER_DESTINATIONS or target.startswith(str(tmp))
                or "runsc-py" in line):
            new.append(line)
    return new


def processes_mentioning(*needles: str) -> list[int]:
    """Processes (but this one) whose command line contains one of needles."""
    wanted = [n.encode() for n in needles if n]
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if any(n in cmdline for n in wanted):
            found.append(int(name))
    return found


def assert_no_processes(*needles: str, spare: tuple[int, ...] = (), timeout: float = 2.0):
    """Polls briefly; anything still there was started by this test: kill it, then fail."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in processes_mentioning(*needles) if p not in spare]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert left == [], f"processes left behind for {needles}"


def _children(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as f:
                if name.isdigit() and int(f.read().rpartition(")")[2].split()[1]) == pid:
                    found.append(int(name))
        except (OSError, ValueError, IndexError):
            pass
    return found


def _descendants(pid: int) -> list[int]:
    found = []
    for child in _children(pid):
        found += [child, *_descendants(child)]
    return found


def cgroups_named(cid: str) -> list[str]:
    """The container's cgroup directories under the default cgroupsPath (v1 and v2)."""
    name = glob.escape(cid)
    return (glob.glob(f"/sys/fs/cgroup/runsc-py/{name}")
            + glob.glob(f"/sys/fs/cgroup/*/runsc-py/{name}"))


def assert_nothing_left(runsc, mounts_before: list[str], *needles: str,
                        spare: tuple[int, ...] = ()) -> None:
    """needles: container IDs and bundle paths no process or mount may mention."""
    assert_no_processes(*needles, spare=spare)
    assert not runsc.root.exists() or os.listdir(runsc.root) == []
    for cid in (n for n in needles if "/" not in n):
        assert cgroups_named(cid) == []
    new = new_mounts(mounts_before, runsc.root.parent)
    assert new == [], "\n".join(new)
    targets = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True,
                             text=True, check=True).stdout
    assert [n for n in needles if n in targets] == []


def assert_one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode != 0, r
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("runsc-py: "), r.stderr
    for needle in needles:
        assert needle in lines[0], r.stderr


def assert_rejected(runsc, args: tuple[str, ...], *needles: str, watch: tuple[str, ...]):
    """Runs a command that must fail cleanly; watch: what no process or mount may mention
    afterwards (the container ID, the bundle path)."""
    before = mountinfo()
    r = run_cmd(runsc, *args)
    assert_one_line_error(r, *needles)
    assert_nothing_left(runsc, before, *watch)


def rejected_create(runsc, bundle: Path, *needles: str, extra: tuple[str, ...] = (),
                    command: str = "create") -> None:
    cid = _cid()
    assert_rejected(runsc, (command, "--bundle", str(bundle), *extra, cid), *needles,
                    watch=(cid, str(bundle)))


# -- the bundle itself ---------------------------------------------------------------

def test_missing_bundle_directory(runsc, tmp_path):
    """A typo in --bundle must name the path, not crash."""
    missing = tmp_path / "no-such-bundle"
    rejected_create(runsc, missing, "does not exist")


def test_bundle_without_config_json(runsc, tmp_path):
    """An empty directory is not a bundle."""
    bundle = tmp_path / "empty"
    bundle.mkdir()
    rejected_create(runsc, bundle, "config.json")


@pytest.mark.parametrize("content, needle", [
    (b"{\"ociVersion\": ", "not valid JSON"),
    (b"", "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b"[1, 2]", "must be an object"),
    (b"\"a string\"", "must be an object"),
    (b"null", "must be an object"),
    (b"42", "must be an object"),
], ids=["truncated", "empty", "not-utf8", "list", "string", "null", "number"])
def test_config_json_that_is_not_a_spec_object(runsc, make_bundle, content, needle):
    """The document is parsed before anything is created."""
    bundle = make_bundle()
    (bundle.path / "config.json").write_bytes(content)
    rejected_create(runsc, bundle.path, needle)


# -- fields of config.json -------------------------------------------------------------

def _delete(*path):
    def mutate(spec, tmp_path):
        *parents, last = path
        for key in parents:
            spec = spec[key]
        del spec[last]
    return mutate


def _set(*path_and_value):
    *path, value = path_and_value

    def mutate(spec, tmp_path):
        *parents, last = path
        for key in parents:
            spec = spec[key]
        spec[last] = value(tmp_path) if callable(value) else value
    return mutate


def _append_mount(mount):
    def mutate(spec, tmp_path):
        spec["mounts"].append(mount(tmp_path) if callable(mount) else mount)
    return mutate


SPEC_CASES = {
    "no-process": (_delete("process"), "process"),
    "process-not-object": (_set("process", ["true"]), "process"),
    "no-args": (_delete("process", "args"), "process.args"),
    "args-string": (_set("process", "args", "true"), "process.args"),
    "args-non-string": (_set("process", "args", ["true", 1]), "process.args[1]"),
    "args-null-item": (_set("process", "args", [None]), "process.args[0]"),
    "args-empty": (_set("process", "args", []), "process.args"),
    "args-empty-string": (_set("process", "args", [""]), "process.args"),
    "args-nul": (_set("process", "args", ["tr\0ue"]), "NUL"),
    "cwd-int": (_set("process", "cwd", 5), "process.cwd"),
    "cwd-list": (_set("process", "cwd", ["/"]), "process.cwd"),
    "cwd-relative": (_set("process", "cwd", "tmp"), "absolute"),
    "uid-string": (_set("process", "user", "uid", "0"), "process.user.uid"),
    "uid-bool": (_set("process", "user", "uid", True), "process.user.uid"),
    "uid-float": (_set("process", "user", "uid", 0.5), "process.user.uid"),
    # OCI ids are uint32 (runc refuses the document); -1 would mean "unchanged": root.
    "uid-negative": (_set("process", "user", "uid", -1), "process.user.uid"),
    "gid-negative": (_set("process", "user", "gid", -1), "process.user.gid"),
    "uid-over-32-bits": (_set("process", "user", "uid", 1 << 32), "process.user.uid"),
    "readonly-string": (_set("root", "readonly", "yes"), "root.readonly"),
    "readonly-int": (_set("root", "readonly", 1), "root.readonly"),
    "mounts-string": (_set("mounts", "proc"), "mounts"),
    "mounts-object": (_set("mounts", {"destination": "/x"}), "mounts"),
    "mount-not-object": (_set("mounts", ["proc"]), "mounts[0]"),
    "mounts-empty-object": (_set("mounts", {}), "mounts"),
    "mounts-false": (_set("mounts", False), "mounts"),
    "mount-over-root": (_append_mount({"destination": "/", "type": "tmpfs"}), "over /"),
    "hostname-nul": (_set("hostname", "a\0b"), "hostname"),
    "umask-negative": (_set("process", "user", "umask", -1), "process.user.umask"),
    "gid-list-negative": (_set("process", "user", "additionalGids", [-1]), "additionalGids"),
    "rlimit-soft-over-hard": (_set("process", "rlimits",
                                   [{"type": "RLIMIT_NOFILE", "soft": 2, "hard": 1}]),
                              "soft <= hard"),
    "mount-relative-destination": (_append_mount({"destination": "mnt", "type": "tmpfs"}),
                                   "destination"),
    "missing-rootfs": (_set("root", "path", "no-such-rootfs"), "rootfs"),
    "unknown-capability": (_set("process", "capabilities", "bounding", ["CAP_NO_SUCH"]),
                           "CAP_NO_SUCH"),
    "unknown-rlimit": (_set("process", "rlimits",
                            [{"type": "RLIMIT_NO_SUCH", "soft": 1, "hard": 1}]),
                       "RLIMIT_NO_SUCH"),
    "rlimit-not-rlimit": (_set("process", "rlimits",
                               [{"type": "MAX_ID_BYTES", "soft": 1, "hard": 1}]),
                          "MAX_ID_BYTES"),
    "mount-type-ext4": (_append_mount({"destination": "/mnt", "type": "ext4",
                                       "source": "/dev/sda"}), "ext4"),
    "bind-source-missing": (_append_mount(lambda tmp: {
        "destination": "/mnt", "type": "bind", "source": str(tmp / "no-such-source"),
        "options": ["rbind", "ro"]}), "no-such-source"),
}


# Found while the gofer builds the mount tree, after the sentry has forked: also tried
# with `run`, whose sentry stays in the caller's session.
IN_SANDBOX = {"mount-type-ext4", "bind-source-missing"}


@pytest.mark.parametrize("case", SPEC_CASES)
def test_bad_spec_field(runsc, make_bundle, tmp_path, case):
    """Each bad field is named in the error, whether the CLI or the sandbox set-up finds it."""
    mutate, needle = SPEC_CASES[case]
    bundle = make_bundle("true")
    mutate(bundle.spec, tmp_path)
    bundle.write()
    rejected_create(runsc, bundle.path, needle)
    if case in IN_SANDBOX:
        rejected_create(runsc, bundle.path, needle, command="run")


# -- container IDs ---------------------------------------------------------------------

BAD_IDS = {
    "slash": "a/b",
    "dotdot-path": "../escape",
    "dotdot": "..",
    "dot": ".",
    "dotdot-inside": "a..b",
    "empty": "",
    "1025-bytes": "x" * 1025,
    "1026-bytes-in-513-chars": "\u00e9" * 513,
}


def _check_bad_id(runsc, make_bundle, tmp_path, cid, commands):
    bundle = make_bundle("true")
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("still here\n")
    before = sorted(os.listdir(tmp_path))
    every = {"create": ("create", "--bundle", str(bundle.path), cid),
             "run": ("run", "--bundle", str(bundle.path), cid),
             "start": ("start", cid), "state": ("state", cid), "kill": ("kill", cid, "KILL"),
             "delete": ("delete", cid), "delete --force": ("delete", "--force", cid)}
    for args in (every[c] for c in commands):
        mounts = mountinfo()
        r = run_cmd(runsc, *args)
        assert_one_line_error(r, "container ID")
        assert_nothing_left(runsc, mounts, str(bundle.path))
    assert sentinel.read_text() == "still here\n"
    assert sorted(set(os.listdir(tmp_path)) - {runsc.root.name}) == before


@pytest.mark.parametrize("cid", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_bad_container_id(runsc, make_bundle, tmp_path, cid):
    """An ID names a directory under --root: create must not make one outside it, and
    delete --force must not remove what such an ID would resolve to."""
    _check_bad_id(runsc, make_bundle, tmp_path, cid, ["create", "delete --force"])


def test_every_command_checks_the_id(runsc, make_bundle, tmp_path):
    """'..' would name the parent of --root: no command may act on it."""
    _check_bad_id(runsc, make_bundle, tmp_path, "..",
                  ["create", "run", "start", "state", "kill", "delete", "delete --force"])


def test_id_with_a_nul_byte():
    """argv cannot carry a NUL, so the check is on the validator every command uses."""
    with pytest.raises(UserError, match="NUL"):
        validate_id("a\0b")
    with pytest.raises(UserError, match="NUL"):
        Container("/nonexistent-root", "\0")
    assert validate_id("x" * 1024) == "x" * 1024


def test_duplicate_id(runsc, make_bundle):
    """A second create with a taken ID fails and leaves the first container intact."""
    bundle = make_bundle("sleep", "1000")
    cid = _cid()
    r = run_cmd(runsc, "create", "--bundle", str(bundle.path), cid)
    assert r.returncode == 0, r.stderr
    first = json.loads((runsc.root / cid / "state.json").read_text())
    # The first container's processes: its sentry and the sentry's descendants (gofer,
    # watchdog, spawner, init).
    pids = (first["pid"], *_descendants(first["pid"]))

    mounts = mountinfo()
    r = run_cmd(runsc, "create", "--bundle", str(bundle.path), cid)
    assert_one_line_error(r, "already exists")
    assert new_mounts(mounts, runsc.root.parent) == []
    assert_no_processes(cid, spare=pids)
    assert json.loads((runsc.root / cid / "state.json").read_text()) == first

    assert run_cmd(runsc, "start", cid).returncode == 0
    assert json.loads(run_cmd(runsc, "state", cid).stdout)["status"] == "running"
    r = run_cmd(runsc, "delete", "--force", cid)
    assert r.returncode == 0, r.stderr
    assert_nothing_left(runsc, mounts, cid, str(bundle.path))


@pytest.mark.parametrize("args", [("start",), ("state",), ("kill",), ("kill", "KILL"),
                                  ("delete",)], ids=lambda a: " ".join(a))
def test_unknown_id(runsc, args):
    """Commands on a container that was never created say so."""
    cid = _cid()
    assert_rejected(runsc, (args[0], cid, *args[1:]), "does not exist", watch=(cid,))


def test_pid_file_that_cannot_be_written(runsc, make_bundle, tmp_path):
    """The pid file is written after the sandbox exists: failing there must undo it all."""
    bundle = make_bundle("sleep", "1000")
    pid_file = str(tmp_path / "no-such-dir" / "pid")
    rejected_create(runsc, bundle.path, "no-such-dir", extra=("--pid-file", pid_file))


# -- config.json documents generated from the default spec ------------------------------

_SAFE_TEXT = st.text(string.ascii_letters + string.digits + "_-.", max_size=8)
_SCALARS = (st.none() | st.booleans() | st.integers() | _SAFE_TEXT
            | st.sampled_from(["", "tmpfs", "bind", "proc", "CAP_KILL", "RLIMIT_CORE",
                               "rootfs", "mount", "network"]))
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_SAFE_TEXT, inner, max_size=3),
    max_leaves=6)


def _kind(value) -> str:
    return "bool" if isinstance(value, bool) else type(value).__name__


def _paths(node, prefix=()):
    items = (node.items() if isinstance(node, dict)
             else enumerate(node) if isinstance(node, list) else ())
    for key, child in items:
        yield prefix + (key,)
        yield from _paths(child, prefix + (key,))


@st.composite
def mutated_specs(draw, base: dict) -> dict:
    """base with 1-4 random keys deleted or values replaced by JSON of another type."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(doc))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        old = parent[path[-1]]
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON_VALUES.filter(lambda v, old=old: _kind(v) != _kind(old)))
    return doc


@pytest.fixture
def fuzz_bundle(make_bundle):
    return make_bundle("true")


def _base_spec() -> dict:
    """The default spec plus optional fields runsc-py reads, so mutations reach their checks."""
    spec = default_spec()
    spec["process"]["args"] = ["true"]
    spec["process"]["user"].update(additionalGids=[0], umask=0o22)
    spec["domainname"] = "example"
    spec["linux"]["resources"].update(memory={"limit": 1 << 30}, pids={"limit": 100})
    return spec


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=mutated_specs(_base_spec()))
def test_mutated_specs_fail_cleanly_or_work(runsc, fuzz_bundle, doc):
    """Whatever the document, create either works (and delete --force undoes it) or gives
    a one-line error; either way nothing is left behind. Nothing is started, so whatever
    process.args becomes, no workload runs."""
    (fuzz_bundle.path / "config.json").write_text(json.dumps(doc))
    mounts = mountinfo()
    cid = _cid()
    r = run_cmd(runsc, "create", "--bundle", str(fuzz_bundle.path), cid)
    if r.returncode == 0:
        assert "Traceback" not in r.stderr, r.stderr
        d = run_cmd(runsc, "delete", "--force", cid)
        assert d.returncode == 0, d.stderr
    else:
        assert_one_line_error(r)
    assert_nothing_left(runsc, mounts, cid)


# -- random command lines ----------------------------------------------------------------

# Commands that only read or refuse (install/uninstall would edit the host's daemon.json,
# spec writes into the working directory: not drawn).
_COMMANDS = ["create", "start", "run", "state", "kill", "delete", "list", "exec", "ps",
             "update", "pause", "resume", "features", "no-such-command"]
_WORDS = ["--bundle", "/nonexistent-bundle", "--pid-file", "--force", "-f", "--format",
          "json", "table", "--detach", "--console-socket", "--process", "--resources", "-",
          "KILL", "99", "-1", "x", "..", "a/b", "", "--all", "--help", "--", "--memory",
          "12abc", "sh", "-c", "true", "--bogus"]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(_COMMANDS), words=st.lists(st.sampled_from(_WORDS), max_size=5))
def test_random_command_lines_fail_cleanly(runsc, command, words):
    """Whatever the arguments, runsc-py either succeeds or prints one error line and exits
    non-zero; never a traceback, and no container state is left."""
    r = run_cmd(runsc, command, *words, timeout=30)
    assert "Traceback" not in r.stderr, r
    if r.returncode != 0 and "--help" not in words:
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("runsc-py: "), r
    assert not runsc.root.exists() or os.listdir(runsc.root) == [], os.listdir(runsc.root)
