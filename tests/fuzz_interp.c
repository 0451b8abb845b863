/* The differential fuzzer's syscall interpreter (tests/test_fuzz_syscalls.py). It reads
 * one operation per line on stdin and prints one result line per operation: the return
 * value or the errno name, plus what was read or the stable fields of a stat (never
 * inode numbers, devices or times: those differ between any two runs).
 *
 * Descriptors live in slots ("s0".."s15") so that a sequence can use what it opened
 * before whatever numbers the kernel chose. "begin N" starts an example: it closes every
 * slot, resets the umask, makes /scratch/N and enters it; "end" prints "end" and
 * flushes, so the driver knows the example's output is complete. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "flag_names.h"

#define SLOTS 16
static int slot[SLOTS];

static long flag_names(const char *s) {
    static const struct flag_name names[] = {
        {"rdonly", O_RDONLY}, {"wronly", O_WRONLY}, {"rdwr", O_RDWR}, {"creat", O_CREAT},
        {"excl", O_EXCL}, {"trunc", O_TRUNC}, {"append", O_APPEND},
        {"directory", O_DIRECTORY}, {"nofollow", O_NOFOLLOW}, {"path", O_PATH},
        {"cloexec", O_CLOEXEC}, {"nonblock", O_NONBLOCK},
        {"noreplace", RENAME_NOREPLACE}, {"exchange", RENAME_EXCHANGE},
        {"removedir", AT_REMOVEDIR}, {"symlink_nofollow", AT_SYMLINK_NOFOLLOW},
        {"eaccess", AT_EACCESS}, {"empty_path", AT_EMPTY_PATH},
        {"beneath", RESOLVE_BENEATH}, {"in_root", RESOLVE_IN_ROOT},
        {"no_symlinks", RESOLVE_NO_SYMLINKS}, {"no_xdev", RESOLVE_NO_XDEV},
        {"no_magiclinks", RESOLVE_NO_MAGICLINKS},
        {"fifo", S_IFIFO}, {"reg", S_IFREG}, {"sock", S_IFSOCK},
    };
    return flags_from_names(s, names, sizeof names / sizeof names[0]);
}

static int fd_of(const char *s) {
    if (!strcmp(s, "cwd")) return AT_FDCWD;
    if (s[0] == 's') {
        int i = atoi(s + 1);
        return i >= 0 && i < SLOTS ? slot[i] : -1;
    }
    return atoi(s);  /* a literal descriptor number, e.g. for dup2's target */
}

static void result(const char *op, long ret) {
    if (ret < 0) printf("%s: %s\n", op, strerrorname_np(errno));
    else printf("%s: %ld\n", op, ret);
}

/* A new descriptor goes into the first free slot: print the slot, not the number. */
static void new_fd(const char *op, int fd) {
    if (fd < 0) { result(op, -1); return; }
    for (int i = 0; i < SLOTS; i++)
        if (slot[i] < 0) { slot[i] = fd; printf("%s: s%d\n", op, i); return; }
    close(fd);
    printf("%s: no free slot\n", op);
}

static void print_stat(const char *op, int ret, const struct stat *st) {
    if (ret < 0) { result(op, -1); return; }
    printf("%s: type=%o mode=%04o nlink=%ld size=%ld uid=%d gid=%d\n", op,
           st->st_mode >> 12, st->st_mode & 07777, (long)st->st_nlink, (long)st->st_size,
           st->st_uid, st->st_gid);
}

static void print_data(const char *op, const char *buf, long n) {
    if (n < 0) { result(op, -1); return; }
    printf("%s: %ld \"", op, n);
    for (long i = 0; i < n; i++)
        putchar(buf[i] >= 32 && buf[i] < 127 && buf[i] != '"' ? buf[i] : '.');
    printf("\"\n");
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void getdents(const char *op, int fd) {
    char buf[8192], *names[256];
    int count = 0;
    long n;
    while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0)
        for (long off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            if (count < 256) names[count++] = strdup(d->d_name);
            off += d->d_reclen;
        }
    if (n < 0) { result(op, -1); return; }
    qsort(names, count, sizeof names[0], by_name);
    printf("%s:", op);
    for (int i = 0; i < count; i++) { printf(" %s", names[i]); free(names[i]); }
    printf("\n");
}

static void begin(const char *name) {
    for (int i = 0; i < SLOTS; i++) {
        if (slot[i] >= 0) close(slot[i]);
        slot[i] = -1;
    }
    umask(022);
    char path[256];
    snprintf(path, sizeof path, "/scratch/%s", name);
    mkdir("/scratch", 0755);
    if (mkdir(path, 0755) < 0 || chdir(path) < 0) printf("begin: %s\n", strerrorname_np(errno));
}

static void run(char *line) {
    char *a[8] = {0};
    int n = 0;
    for (char *tok = strtok(line, " \n"); tok && n < 8; tok = strtok(NULL, " \n")) a[n++] = tok;
    if (!n) return;
    const char *op = a[0];
#define ARG(i) (a[i] ? a[i] : "")
#define NUM(i) strtol(ARG(i), NULL, 0)
    char buf[4096];
    struct stat st;
    if (!strcmp(op, "begin")) begin(ARG(1));
    else if (!strcmp(op, "end")) { printf("end\n"); fflush(stdout); }
    else if (!strcmp(op, "open")) new_fd(op, open(ARG(1), flag_names(ARG(2)), (int)NUM(3)));
    else if (!strcmp(op, "openat"))
        new_fd(op, openat(fd_of(ARG(1)), ARG(2), flag_names(ARG(3)), (int)NUM(4)));
    else if (!strcmp(op, "creat")) new_fd(op, creat(ARG(1), (int)NUM(2)));
    else if (!strcmp(op, "close")) {
        int i = atoi(ARG(1) + 1);
        result(op, close(fd_of(ARG(1))));
        if (i >= 0 && i < SLOTS) slot[i] = -1;
    }
    else if (!strcmp(op, "read")) print_data(op, buf, read(fd_of(ARG(1)), buf, NUM(2) % 4096));
    else if (!strcmp(op, "pread"))
        print_data(op, buf, pread(fd_of(ARG(1)), buf, NUM(2) % 4096, NUM(3)));
    else if (!strcmp(op, "write")) result(op, write(fd_of(ARG(1)), ARG(2), strlen(ARG(2))));
    else if (!strcmp(op, "pwrite"))
        result(op, pwrite(fd_of(ARG(1)), ARG(2), strlen(ARG(2)), NUM(3)));
    else if (!strcmp(op, "lseek")) result(op, lseek(fd_of(ARG(1)), NUM(2), (int)NUM(3)));
    else if (!strcmp(op, "dup")) new_fd(op, dup(fd_of(ARG(1))));
    else if (!strcmp(op, "dup2") || !strcmp(op, "dup3")) {
        int target = (int)NUM(2), ret = !strcmp(op, "dup2")
            ? dup2(fd_of(ARG(1)), target) : dup3(fd_of(ARG(1)), target, (int)flag_names(ARG(3)));
        if (ret >= 0) {  /* the target descriptor is a slot of its own from now on */
            int taken = 0;
            for (int i = 0; i < SLOTS; i++) if (slot[i] == ret) taken = 1;
            if (!taken) { new_fd(op, ret); return; }
        }
        result(op, ret < 0 ? -1 : 0);
    }
    else if (!strcmp(op, "fcntl")) {
        static const struct { const char *n; int v; } cmds[] = {
            {"getfl", F_GETFL}, {"setfl", F_SETFL}, {"getfd", F_GETFD}, {"setfd", F_SETFD},
            {"dupfd", F_DUPFD}};
        int cmd = -1;
        for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
            if (!strcmp(ARG(2), cmds[i].n)) cmd = cmds[i].v;
        long ret = fcntl(fd_of(ARG(1)), cmd, flag_names(ARG(3)));
        if (cmd == F_DUPFD) new_fd(op, (int)ret);
        else result(op, ret);
    }
    else if (!strcmp(op, "ftruncate")) result(op, ftruncate(fd_of(ARG(1)), NUM(2)));
    else if (!strcmp(op, "fsync")) result(op, fsync(fd_of(ARG(1))));
    else if (!strcmp(op, "stat")) print_stat(op, stat(ARG(1), &st), &st);
    else if (!strcmp(op, "lstat")) print_stat(op, lstat(ARG(1), &st), &st);
    else if (!strcmp(op, "fstat")) print_stat(op, fstat(fd_of(ARG(1)), &st), &st);
    else if (!strcmp(op, "statx")) {
        struct statx sx;
        int ret = statx(AT_FDCWD, ARG(1), (int)flag_names(ARG(2)), STATX_BASIC_STATS, &sx);
        st.st_mode = sx.stx_mode; st.st_nlink = sx.stx_nlink; st.st_size = (off_t)sx.stx_size;
        st.st_uid = sx.stx_uid; st.st_gid = sx.stx_gid;
        print_stat(op, ret, &st);
    }
    else if (!strcmp(op, "access")) result(op, access(ARG(1), (int)NUM(2)));
    else if (!strcmp(op, "faccessat2"))
        result(op, syscall(SYS_faccessat2, AT_FDCWD, ARG(1), (int)NUM(2), flag_names(ARG(3))));
    else if (!strcmp(op, "mkdir")) result(op, mkdir(ARG(1), (int)NUM(2)));
    else if (!strcmp(op, "rmdir")) result(op, rmdir(ARG(1)));
    else if (!strcmp(op, "unlink")) result(op, unlink(ARG(1)));
    else if (!strcmp(op, "unlinkat")) result(op, unlinkat(AT_FDCWD, ARG(1), (int)flag_names(ARG(2))));
    else if (!strcmp(op, "rename")) result(op, rename(ARG(1), ARG(2)));
    else if (!strcmp(op, "renameat2"))
        result(op, renameat2(AT_FDCWD, ARG(1), AT_FDCWD, ARG(2), (unsigned)flag_names(ARG(3))));
    else if (!strcmp(op, "link")) result(op, link(ARG(1), ARG(2)));
    else if (!strcmp(op, "symlink")) result(op, symlink(ARG(1), ARG(2)));
    else if (!strcmp(op, "readlink")) print_data(op, buf, readlink(ARG(1), buf, sizeof buf));
    else if (!strcmp(op, "chmod")) result(op, chmod(ARG(1), (int)NUM(2)));
    else if (!strcmp(op, "fchmod")) result(op, fchmod(fd_of(ARG(1)), (int)NUM(2)));
    else if (!strcmp(op, "utimensat"))
        result(op, utimensat(AT_FDCWD, ARG(1), NULL, (int)flag_names(ARG(2))));
    else if (!strcmp(op, "getdents")) getdents(op, fd_of(ARG(1)));
    else if (!strcmp(op, "chdir")) result(op, chdir(ARG(1)));
    else if (!strcmp(op, "getcwd")) printf("getcwd: %s\n", getcwd(buf, sizeof buf) ? buf : strerrorname_np(errno));
    else if (!strcmp(op, "pipe2")) {
        int p[2];
        /* Always non-blocking: a read of an empty pipe would wait forever, in any kernel. */
        if (pipe2(p, (int)flag_names(ARG(1)) | O_NONBLOCK) < 0) { result(op, -1); return; }
        new_fd(op, p[0]);
        new_fd(op, p[1]);
    }
    else if (!strcmp(op, "openat2")) {  /* openat2 DIRFD PATH FLAGS RESOLVE */
        struct open_how how = {.flags = (unsigned long)flag_names(ARG(3)),
                               .resolve = (unsigned long)flag_names(ARG(4))};
        new_fd(op, (int)syscall(SYS_openat2, fd_of(ARG(1)), ARG(2), &how, sizeof how));
    }
    else if (!strcmp(op, "reopen")) {  /* reopen SLOT FLAGS: /proc/self/fd/N */
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd_of(ARG(1)));
        /* Non-blocking: a pipe's write end reopened without a reader waits forever. */
        new_fd(op, open(link, flag_names(ARG(2)) | O_NONBLOCK));
    }
    else if (!strcmp(op, "mknod")) result(op, mknod(ARG(1), (mode_t)flag_names(ARG(2)), 0));
    else if (!strcmp(op, "setxattr")) result(op, setxattr(ARG(1), ARG(2), ARG(3), strlen(ARG(3)), (int)NUM(4)));
    else if (!strcmp(op, "getxattr")) print_data(op, buf, getxattr(ARG(1), ARG(2), buf, 64));
    else if (!strcmp(op, "lgetxattr")) print_data(op, buf, lgetxattr(ARG(1), ARG(2), buf, 64));
    else if (!strcmp(op, "getxattr_size")) result(op, getxattr(ARG(1), ARG(2), NULL, 0));
    else if (!strcmp(op, "removexattr")) result(op, removexattr(ARG(1), ARG(2)));
    else if (!strcmp(op, "listxattr")) {  /* the names, NULs shown as '.' */
        long n = listxattr(ARG(1), buf, sizeof buf);
        print_data(op, buf, n);
    }
    else if (!strcmp(op, "iwatch")) {  /* iwatch PATH: a watch in the example's inotify */
        static int ino = -1;
        if (ino < 0) ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        result(op, inotify_add_watch(ino, ARG(1), IN_CREATE | IN_DELETE | IN_MODIFY |
                                                   IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO));
        /* Its events so far: watch, mask and name of each. */
        char ev[4096] __attribute__((aligned(8)));
        long n = read(ino, ev, sizeof ev);
        printf("ievents:");
        for (long off = 0; off > -1 && off < n;) {
            struct inotify_event *e = (struct inotify_event *)(ev + off);
            printf(" %d:%x:%s", e->wd, e->mask, e->len ? e->name : "");
            off += sizeof *e + e->len;
        }
        printf("\n");
    }
    else if (!strcmp(op, "ubind") || !strcmp(op, "uconnect")) {
        /* ubind|uconnect PATH stream|dgram: an AF_UNIX socket bound to PATH (listening,
         * kept in a slot; what getsockname says) or connected to it (then closed). */
        /* Non-blocking: a connect to a listener whose backlog is full says EAGAIN
         * rather than wait for an accept that never comes. */
        int s = socket(AF_UNIX, (!strcmp(ARG(2), "dgram") ? SOCK_DGRAM : SOCK_STREAM)
                                | SOCK_NONBLOCK, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        strncpy(sa.sun_path, ARG(1), sizeof sa.sun_path - 1);
        socklen_t len = offsetof(struct sockaddr_un, sun_path) + strlen(sa.sun_path) + 1;
        if (!strcmp(op, "uconnect")) {
            result(op, connect(s, (struct sockaddr *)&sa, len));
            close(s);
        } else if (bind(s, (struct sockaddr *)&sa, len) < 0) {
            result(op, -1);
            close(s);
        } else {
            struct sockaddr_un got = {0};
            socklen_t got_len = sizeof got;
            getsockname(s, (struct sockaddr *)&got, &got_len);
            printf("%s: bound \"%s\" len=%d\n", op, got.sun_path, (int)got_len);
            if (strcmp(ARG(2), "dgram")) listen(s, 4);
            new_fd(op, s);
        }
    }
    else if (!strcmp(op, "mkfifo")) result(op, mkfifo(ARG(1), (mode_t)NUM(2)));
    /* FIFOs are opened non-blocking: a blocking open waits for a peer this single-threaded
     * interpreter cannot be (tests/test_fifo.py covers the waiting). */
    else if (!strcmp(op, "open_nb")) new_fd(op, open(ARG(1), flag_names(ARG(2)) | O_NONBLOCK));
    /* The *at() calls on a descriptor alone (AT_EMPTY_PATH, or futimens' NULL path). */
    else if (!strcmp(op, "fstatat_empty"))
        print_stat(op, fstatat(fd_of(ARG(1)), "", &st, AT_EMPTY_PATH), &st);
    else if (!strcmp(op, "faccessat2_empty"))
        result(op, syscall(SYS_faccessat2, fd_of(ARG(1)), "", (int)NUM(2), AT_EMPTY_PATH));
    else if (!strcmp(op, "fchmodat2_empty"))
        result(op, syscall(452, fd_of(ARG(1)), "", (int)NUM(2), AT_EMPTY_PATH));
    else if (!strcmp(op, "fchownat_empty"))
        result(op, fchownat(fd_of(ARG(1)), "", (uid_t)NUM(2), (gid_t)NUM(2), AT_EMPTY_PATH));
    else if (!strcmp(op, "futimens")) result(op, futimens(fd_of(ARG(1)), NULL));
    else if (!strcmp(op, "readlinkat_empty"))
        print_data(op, buf, readlinkat(fd_of(ARG(1)), "", buf, sizeof buf));
    else if (!strcmp(op, "umask")) result(op, umask((int)NUM(1)));
    else if (!strcmp(op, "uname")) {
        struct utsname u;
        if (uname(&u) < 0) result(op, -1); else printf("uname: %s %s\n", u.sysname, u.machine);
    }
    else if (!strcmp(op, "getpid")) result(op, getpid());
    else if (!strcmp(op, "getppid")) result(op, getppid());
    else if (!strcmp(op, "kill")) result(op, kill(getpid(), (int)NUM(1)));
    else if (!strcmp(op, "getrlimit")) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0) result(op, -1);
        else printf("getrlimit: %ld %ld\n", (long)rl.rlim_cur, (long)rl.rlim_max);
    }
    else printf("%s: unknown op\n", op);
}

int main(void) {
    char line[8192];
    for (int i = 0; i < SLOTS; i++) slot[i] = -1;
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    while (fgets(line, sizeof line, stdin)) run(line);
    return 0;
}
