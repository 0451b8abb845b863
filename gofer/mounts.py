"""Builds the container's mount tree (rootfs plus the spec's mounts, as runc would) in the
gofer's own mount namespace, then makes it the gofer's root with pivot_root."""
from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass, field

from gofer.devices import STANDARD, Device, Rule
from syscalls import abi, host

log = logging.getLogger("runsc-py.gofer")

# runc's mount option table: name -> (clear, set) flags. Anything else is fs data.
_FLAG_OPTIONS = {
    "ro": (0, abi.MS_RDONLY), "rw": (abi.MS_RDONLY, 0),
    "nosuid": (0, abi.MS_NOSUID), "suid": (abi.MS_NOSUID, 0),
    "nodev": (0, abi.MS_NODEV), "dev": (abi.MS_NODEV, 0),
    "noexec": (0, abi.MS_NOEXEC), "exec": (abi.MS_NOEXEC, 0),
    "sync": (0, abi.MS_SYNCHRONOUS), "async": (abi.MS_SYNCHRONOUS, 0),
    "dirsync": (0, abi.MS_DIRSYNC),
    "noatime": (0, abi.MS_NOATIME), "atime": (abi.MS_NOATIME, 0),
    "nodiratime": (0, abi.MS_NODIRATIME), "diratime": (abi.MS_NODIRATIME, 0),
    "relatime": (0, abi.MS_RELATIME), "norelatime": (abi.MS_RELATIME, 0),
    "strictatime": (0, abi.MS_STRICTATIME), "nostrictatime": (abi.MS_STRICTATIME, 0),
    "bind": (0, abi.MS_BIND), "rbind": (0, abi.MS_BIND | abi.MS_REC),
}
_IGNORED_OPTIONS = {"private", "rprivate", "shared", "rshared", "slave", "rslave",
                    "unbindable", "runbindable", "mand", "nomand", "defaults"}

# Mount types whose content the sentry synthesises: an empty tmpfs it fills.
SYNTHETIC_TYPES = {"proc", "sysfs"}
SKIPPED_TYPES = {"cgroup", "cgroup2"}
# Mounted as the spec says. mqueue is the gofer's IPC namespace's, which is the
# workload's (sentry/workload.py enter_ipc): /dev/mqueue shows the queues mq_open makes.
KERNEL_TYPES = {"tmpfs", "devpts", "mqueue"}


class MountError(Exception):
    pass


@dataclass
class TreeSpec:
    """What the gofer builds the container tree from (validated by the OCI front end)."""
    rootfs: str  # absolute host path
    readonly: bool
    mounts: list[dict]
    bundle: str
    masked: list[str] = field(default_factory=list)  # linux.maskedPaths
    readonly_paths: list[str] = field(default_factory=list)  # linux.readonlyPaths
    devices: list[Device] = field(default_factory=list)  # linux.devices
    device_rules: list[Rule] = field(default_factory=list)  # linux.resources.devices


def parse_options(options: list[str]) -> tuple[int, str]:
    flags, data = 0, []
    for opt in options:
        if opt in _FLAG_OPTIONS:
            clear, set_ = _FLAG_OPTIONS[opt]
            flags = (flags & ~clear) | set_
        elif opt not in _IGNORED_OPTIONS:
            data.append(opt)
    return flags, ",".join(data)


def _resolve_in_root(rootfd: int, path: str, flags: int) -> int:
    return host.openat2(rootfd, path.lstrip("/") or ".", flags | os.O_CLOEXEC,
                         resolve=abi.RESOLVE_IN_ROOT | abi.RESOLVE_NO_MAGICLINKS)


def make_mountpoint(rootfd: int, dest: str, is_dir: bool) -> int:
    """Create dest (and its parents) inside the root; an O_PATH descriptor to it."""
    parts = [p for p in dest.split("/") if p and p != "."]
    for i in range(len(parts)):
        sub = "/".join(parts[: i + 1])
        last = i == len(parts) - 1
        try:
            fd = _resolve_in_root(rootfd, sub, os.O_PATH)
            os.close(fd)
            continue
        except FileNotFoundError:
            pass
        parent = _resolve_in_root(rootfd, "/".join(parts[:i]), os.O_PATH | os.O_DIRECTORY)
        try:
            if last and not is_dir:
                os.close(os.open(parts[i], os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644,
                                 dir_fd=parent))
            else:
                os.mkdir(parts[i], 0o755, dir_fd=parent)
        except FileExistsError:
            pass
        finally:
            os.close(parent)
    return _resolve_in_root(rootfd, dest, os.O_PATH)


def _mount_one(rootfd: int, m: dict, bundle: str,
               synthetic: dict[str, tuple[int, str]]) -> None:
    dest, mtype = m["destination"], m.get("type") or ""
    options = m.get("options") or []
    flags, data = parse_options(options)
    is_bind = mtype == "bind" or bool(flags & abi.MS_BIND)
    if mtype in SKIPPED_TYPES and not is_bind:
        log.info("mount %s of type %s is not provided inside the sandbox", dest, mtype)
        return
    source = m.get("source") or ""
    if is_bind:
        if not os.path.isabs(source):
            source = os.path.join(bundle, source)
        try:
            st = os.stat(source)
        except OSError as e:
            raise MountError(f"bind mount source {source!r} for {dest}: {e.strerror}") from None
        fd = make_mountpoint(rootfd, dest, stat.S_ISDIR(st.st_mode))
        try:
            host.mount(source, f"/proc/self/fd/{fd}", None,
                        abi.MS_BIND | (flags & abi.MS_REC))
            extra = flags & ~(abi.MS_BIND | abi.MS_REC)
            if extra:
                # Read-only and the like take effect on a remount of the new mount, which
                # the descriptor taken before mounting does not name.
                os.close(fd)
                fd = _resolve_in_root(rootfd, dest, os.O_PATH)
                host.mount(None, f"/proc/self/fd/{fd}", None,
                            abi.MS_REMOUNT | abi.MS_BIND | extra)
        except OSError as e:
            raise MountError(f"bind mount of {source!r} at {dest}: {e.strerror}") from None
        finally:
            os.close(fd)
        return
    fd = make_mountpoint(rootfd, dest, True)
    target = f"/proc/self/fd/{fd}"
    try:
        if mtype in SYNTHETIC_TYPES:
            host.mount("runsc-py-" + mtype, target, "tmpfs",
                        abi.MS_NOSUID | abi.MS_NODEV | abi.MS_NOEXEC, "mode=0555")
            # The sentry writes the content through a private writable clone of this
            # mount; the tree's own mount is read-only, so no request of the workload's
            # can change what is there.
            mounted = _resolve_in_root(rootfd, dest, os.O_PATH)
            try:
                synthetic[dest] = (host.open_tree_clone(f"/proc/self/fd/{mounted}"), mtype)
                host.mount_setattr_readonly(f"/proc/self/fd/{mounted}", recursive=False)
            finally:
                os.close(mounted)
        elif mtype in KERNEL_TYPES:
            if mtype == "devpts" and "newinstance" not in data.split(","):
                data = ",".join(filter(None, [data, "newinstance"]))
            # The source is only a name here (mountinfo shows it: /dev/shm's is "shm").
            # A read-only tmpfs is mounted writable and made read-only by a remount of
            # the mount, as runc does: the filesystem itself stays "rw" in mountinfo.
            ro_later = mtype == "tmpfs" and flags & abi.MS_RDONLY
            host.mount(m.get("source") or mtype, target, mtype,
                        flags & ~abi.MS_RDONLY if ro_later else flags, data or None)
            if ro_later:
                mounted = _resolve_in_root(rootfd, dest, os.O_PATH)
                try:
                    host.mount(None, f"/proc/self/fd/{mounted}", None,
                                abi.MS_REMOUNT | abi.MS_BIND | flags)
                finally:
                    os.close(mounted)
        else:
            raise MountError(f"mount type {mtype!r} at {dest} is not supported")
    except OSError as e:
        raise MountError(f"mounting {mtype} at {dest}: {e.strerror}") from None
    finally:
        os.close(fd)


def _make_spec_devices(rootfd: int, devices: list[Device]) -> None:
    """linux.devices: each node made as the spec says (type, number, mode, owner), in
    place of whatever the rootfs had there."""
    for d in devices:
        parent_path, _, name = d.path.rstrip("/").rpartition("/")
        fd = make_mountpoint(rootfd, parent_path or "/", True)
        try:
            try:
                os.unlink(name, dir_fd=fd)
            except FileNotFoundError:
                pass
            os.mknod(name, d.st_mode, os.makedev(d.major, d.minor), dir_fd=fd)
            os.chown(name, d.uid, d.gid, dir_fd=fd, follow_symlinks=False)
            os.chmod(name, d.mode & 0o7777, dir_fd=fd, follow_symlinks=False)  # no umask
        except OSError as e:
            raise MountError(f"creating device {d.path}: {e.strerror}") from None
        finally:
            os.close(fd)


def _make_devices(rootfd: int) -> None:
    fd = make_mountpoint(rootfd, "/dev", True)
    try:
        for name, (major, minor) in STANDARD.items():
            try:
                os.mknod(name, 0o666 | stat.S_IFCHR, os.makedev(major, minor), dir_fd=fd)
                os.chmod(name, 0o666, dir_fd=fd, follow_symlinks=False)
            except FileExistsError:
                pass
        for name, target in (("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"),
                             ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                             ("stderr", "/proc/self/fd/2")):
            try:
                os.symlink(target, name, dir_fd=fd)
            except FileExistsError:
                pass
    except OSError as e:
        if e.errno != errno.EROFS:
            raise MountError(f"creating devices in /dev: {e.strerror}") from None
        log.info("/dev is read-only in the rootfs: standard devices not created")
    finally:
        os.close(fd)


def _restrict_paths(rootfd: int, masked: list[str], readonly: list[str]) -> None:
    """linux.maskedPaths and linux.readonlyPaths, as runc applies them: a masked
    directory is covered by an empty read-only tmpfs, a masked file by /dev/null; a
    read-only path is bound onto itself and made read-only. Paths that do not exist are
    skipped (so are those in a synthetic tree, still empty here: the sentry masks what it
    renders there). Symlinks are followed inside the root."""
    null = None
    # runc's order (read-only paths first): mountinfo lists them in that order.
    for path, masking in [*((p, False) for p in readonly), *((p, True) for p in masked)]:
        try:
            fd = _resolve_in_root(rootfd, path, os.O_PATH)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            raise MountError(f"{'masking' if masking else 'read-only path'} {path}: "
                             f"{e.strerror}") from None
        target = f"/proc/self/fd/{fd}"
        try:
            if not masking:
                host.mount(target, target, None, abi.MS_BIND | abi.MS_REC)
                os.close(fd)  # the descriptor names what is under the new mount
                fd = _resolve_in_root(rootfd, path, os.O_PATH)
                host.mount_setattr_readonly(f"/proc/self/fd/{fd}", recursive=True)
            elif stat.S_ISDIR(os.fstat(fd).st_mode):
                host.mount("tmpfs", target, "tmpfs", abi.MS_RDONLY)  # runc's: mode 1777
            else:
                # The container's own /dev/null (made by _make_devices), as runc binds
                # the one in the container: never the host's, whose mode and owner a
                # chmod or chown of the masked path would then change.
                null = null if null is not None else _container_null(rootfd)
                host.mount(f"/proc/self/fd/{null}", target, None, abi.MS_BIND)
        except OSError as e:
            raise MountError(f"{'masking' if masking else 'read-only path'} {path}: "
                             f"{e.strerror}") from None
        finally:
            os.close(fd)
    if null is not None:
        os.close(null)


def _container_null(rootfd: int) -> int:
    try:
        fd = _resolve_in_root(rootfd, "/dev/null", os.O_PATH | os.O_NOFOLLOW)
    except OSError:
        raise MountError("masking a file: the container has no /dev/null") from None
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise MountError("masking a file: the container's /dev/null is not the null device")
    return fd


def build_tree(rootfs: str, readonly: bool, mounts: list[dict], bundle: str,
               masked: list[str] = (), readonly_paths: list[str] = (),
               devices: list[Device] = ()) -> dict[str, tuple[int, str]]:
    """Make the container tree this process's root. Returns the synthetic mount points,
    each with a descriptor of a writable clone of its mount (for the sentry) and its type."""
    host.unshare(abi.CLONE_NEWNS)
    host.mount(None, "/", None, abi.MS_REC | abi.MS_PRIVATE)
    host.mount(rootfs, rootfs, None, abi.MS_BIND | abi.MS_REC)
    rootfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    synthetic: dict[str, tuple[int, str]] = {}
    try:
        for m in mounts:
            try:
                _mount_one(rootfd, m, bundle, synthetic)
            except OSError as e:  # creating the mount point
                raise MountError(f"mount at {m['destination']}: {e.strerror}") from None
        _make_devices(rootfd)
        _make_spec_devices(rootfd, list(devices))
        _restrict_paths(rootfd, list(masked), list(readonly_paths))
    finally:
        os.close(rootfd)
    os.chdir(rootfs)
    host.pivot_root(".", ".")
    host.umount2(".", abi.MNT_DETACH)
    os.chdir("/")
    if readonly:
        host.mount(None, "/", None, abi.MS_REMOUNT | abi.MS_BIND | abi.MS_RDONLY)
    return synthetic
