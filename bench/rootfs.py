"""Building what the cases run: static helper binaries, the busybox and Debian root
filesystems (the Debian one made by debootstrap and cached as a tarball) and bundles."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from runsc_py import spec
from runsc_py.bundle import build_busybox_rootfs

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
HELPER_SOURCES = {
    "probe": REPO / "tests" / "probe.c",
    "forkexec": BENCH_DIR / "forkexec.c",
    "openread": BENCH_DIR / "openread.c",
}
DATA_FILE = "/data4k"
DATA_SIZE = 4096
DEFAULT_CACHE = Path.home() / ".cache" / "runsc-py-bench"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SUITE = "bookworm"
DEBIAN_INCLUDE = "python3-minimal,python3"
DEBIAN_TARBALL = f"debian-{DEBIAN_SUITE}-minbase-python3.tar.gz"


class RootfsUnavailable(Exception):
    """A root filesystem could not be made; the cases that need it are skipped."""


def compile_helpers(dest: Path) -> dict[str, Path]:
    """Build the probe, forkexec and openread as static binaries into dest."""
    dest.mkdir(parents=True, exist_ok=True)
    built = {}
    for name, source in HELPER_SOURCES.items():
        out = dest / name
        subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(source)], check=True)
        built[name] = out
    return built


def build_busybox(root: Path, helpers: dict[str, Path]) -> Path:
    """busybox-static rootfs with the helpers in /bin and a 4 KiB data file at /data4k."""
    build_busybox_rootfs(root, helpers)
    (root / DATA_FILE.lstrip("/")).write_bytes(os.urandom(DATA_SIZE))
    return root


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for line in text.splitlines() + [""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, ""
        elif line[0] in " \t" and key:
            current[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            current[key] = value.strip()
    return stanzas


def _one_line_entries(text: str) -> list[tuple[str, str]]:
    """(uri, suite) of each `deb` line of a sources.list."""
    entries = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        rest = line[4:].strip()
        if rest.startswith("["):
            rest = rest.partition("]")[2].strip()
        words = rest.split()
        if len(words) >= 2:
            entries.append((words[0], words[1]))
    return entries


def apt_mirror(suite: str = DEBIAN_SUITE, etc: Path = Path("/etc/apt")) -> str:
    """The URI that APT's sources (sources.list, sources.list.d) use for `suite`."""
    files = [etc / "sources.list"]
    if (etc / "sources.list.d").is_dir():
        files += sorted((etc / "sources.list.d").glob("*.list"))
        files += sorted((etc / "sources.list.d").glob("*.sources"))
    for f in files:
        try:
            text = f.read_text(errors="replace")
        except OSError:
            continue
        if f.suffix == ".sources":
            for st in _deb822_stanzas(text):
                if (st.get("enabled", "yes").lower() != "no"
                        and "deb" in st.get("types", "").split()
                        and suite in st.get("suites", "").split() and st.get("uris")):
                    return st["uris"].split()[0]
        else:
            for uri, entry_suite in _one_line_entries(text):
                if entry_suite == suite:
                    return uri
    return DEFAULT_MIRROR


def _unmount_under(path: Path) -> None:
    """Lazily unmount whatever a failed debootstrap left mounted below path."""
    prefix = str(path.resolve()) + "/"
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return
    points = [ln.split()[1].encode().decode("unicode_escape") for ln in lines]
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def debian_tarball(cache: Path, log=print) -> Path:
    """The cached debootstrap tarball; made with debootstrap when it is not there yet."""
    tarball = cache / DEBIAN_TARBALL
    if tarball.exists():
        return tarball
    if not shutil.which("debootstrap"):
        raise RootfsUnavailable("debootstrap is not installed (Debian package debootstrap)")
    cache.mkdir(parents=True, exist_ok=True)
    mirror = apt_mirror()
    work = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=cache))
    target = work / "root"
    logfile = work / "debootstrap.log"
    cmd = ["debootstrap", "--variant=minbase", f"--include={DEBIAN_INCLUDE}", DEBIAN_SUITE,
           str(target), mirror]
    log(f"bench: making the Debian rootfs: {' '.join(cmd)} (a few minutes, cached in "
        f"{tarball})")
    try:
        with logfile.open("wb") as out:
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out,
                               stderr=subprocess.STDOUT, timeout=3600)
        if r.returncode != 0:
            tail = logfile.read_text(errors="replace").splitlines()[-5:]
            raise RootfsUnavailable(f"debootstrap failed (exit {r.returncode}): "
                                    + " | ".join(tail))
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(target), "--numeric-owner", "-czpf", str(partial),
                        "."], check=True)
        partial.rename(tarball)
        return tarball
    except subprocess.TimeoutExpired:
        raise RootfsUnavailable("debootstrap did not finish within an hour") from None
    finally:
        _unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)


def build_debian(root: Path, cache: Path, log=print) -> Path:
    """A Debian bookworm minbase rootfs (with python3) extracted from the cache tarball."""
    tarball = debian_tarball(cache, log)
    root.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-xzpf", str(tarball)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RootfsUnavailable(f"cannot extract {tarball}: {r.stderr.strip()[-300:]}")
    if not (root / "usr" / "bin" / "python3").exists():
        raise RootfsUnavailable(f"{tarball} has no /usr/bin/python3; delete it to rebuild")
    return root


def write_bundle(path: Path, rootfs: Path, args: list[str], tmpfs_tmp: bool = False) -> Path:
    """A bundle directory whose config.json runs args in rootfs (read-only, shared)."""
    path.mkdir(parents=True, exist_ok=True)
    doc = spec.default_spec()
    doc["process"]["terminal"] = False
    doc["process"]["args"] = args
    doc["root"] = {"path": str(rootfs.resolve()), "readonly": True}
    doc["hostname"] = "bench"
    if tmpfs_tmp:
        doc["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                              "options": ["nosuid", "nodev", "mode=1777", "size=65536k"]})
    (path / "config.json").write_text(json.dumps(doc, indent=1))
    return path
