/* FIFO scenarios for tests/test_fifo.py: each makes a FIFO at argv[2], runs both ends in
 * processes (or threads) of its own with the timing it names, and prints "what: result"
 * lines, the result being a value or the errno name. Run under runc and under runsc-py,
 * the output must be the same. Built static. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *path;

static void msleep(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static void result(const char *what, long r) {
    if (r < 0) printf("%s: %s\n", what, strerrorname_np(errno));
    else printf("%s: %ld\n", what, r);
    fflush(stdout);
}

/* The descriptor's access mode and O_NONBLOCK, as F_GETFL shows them. */
static void opened(const char *what, int fd) {
    if (fd < 0) { result(what, fd); return; }
    int fl = fcntl(fd, F_GETFL);
    printf("%s: ok %s%s\n", what, (fl & O_ACCMODE) == O_RDONLY ? "rdonly" :
           (fl & O_ACCMODE) == O_WRONLY ? "wronly" : "rdwr", fl & O_NONBLOCK ? " nonblock" : "");
    fflush(stdout);
}

static void read_all(const char *what, int fd) {
    char buf[256]; long n, total = 0;
    while ((n = read(fd, buf + total, sizeof buf - 1 - total)) > 0) total += n;
    if (n < 0) { result(what, n); return; }
    printf("%s: %.*s\n", what, (int)total, buf);
    fflush(stdout);
}

static void write_hi(int fd) {
    if (fd >= 0) { result("write", write(fd, "hi", 2)); close(fd); }
}

static int child_after(int ms) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) msleep(ms);
    return pid;
}

static void reap(pid_t pid) {
    int status;
    waitpid(pid, &status, 0);
}

static int handled;
static void on_alarm(int sig) { (void)sig; handled++; }

static void *open_reader(void *arg) {
    (void)arg;
    result("thread open", open(path, O_RDONLY));
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: fifo SCENARIO PATH\n"); return 2; }
    const char *s = argv[1];
    path = argv[2];
    unlink(path);
    umask(0);
    if (mkfifo(path, strcmp(s, "perm") ? 0666 : 0640) < 0) { result("mkfifo", -1); return 1; }
    pid_t pid;
    if (!strncmp(s, "reader-first", 12) || !strncmp(s, "writer-first", 12)) {
        /* "-creat": as a shell's < and > do, O_CREAT (and O_TRUNC for the writer). */
        int reader_waits = s[0] == 'r', creat = strstr(s, "-creat") != NULL;
        int rd = O_RDONLY | (creat ? O_CREAT : 0), wr = O_WRONLY | (creat ? O_CREAT | O_TRUNC : 0);
        if ((pid = child_after(300)) == 0) {
            if (reader_waits) write_hi(open(path, wr, 0644));
            else { int fd = open(path, rd, 0644); opened("child open", fd); read_all("read", fd); }
            _exit(0);
        }
        int fd = open(path, reader_waits ? rd : wr, 0644);
        opened("open", fd);
        if (reader_waits) read_all("read", fd); else write_hi(fd);
        reap(pid);
    } else if (!strcmp(s, "flags")) {
        opened("wronly|nonblock, no reader", open(path, O_WRONLY | O_NONBLOCK));
        int rw = open(path, O_RDWR);
        opened("rdwr", rw);
        close(rw);
        int r = open(path, O_RDONLY | O_NONBLOCK);
        opened("rdonly|nonblock", r);
        int wn = open(path, O_WRONLY | O_NONBLOCK);
        opened("wronly|nonblock, a reader", wn);
        close(wn);
        int w = open(path, O_WRONLY);
        opened("wronly, a reader", w);
        int r2 = open(path, O_RDONLY);
        opened("rdonly, a writer", r2);
        write_hi(w);
        read_all("read", r2);
        int c = open(path, O_WRONLY | O_CREAT, 0600);
        opened("creat on the fifo, a reader", c);
        close(c);
        opened("excl on the fifo", open(path, O_WRONLY | O_CREAT | O_EXCL, 0600));
        close(r);
        close(r2);
        result("truncate, no reader", truncate(path, 0));
        opened("creat on a directory", open("/tmp", O_RDONLY | O_CREAT, 0600));
        opened("rdonly|creat|nonblock", open(path, O_RDONLY | O_CREAT | O_NONBLOCK, 0600));
    } else if (!strcmp(s, "perm")) {
        /* Mode 0640, owner root: uid 1000 may neither end, whatever the flags; root may. */
        if ((pid = fork()) == 0) {
            if (setgid(1000) < 0 || setuid(1000) < 0) { result("setuid", -1); _exit(1); }
            result("user rdonly", open(path, O_RDONLY));
            result("user wronly", open(path, O_WRONLY));
            result("user rdonly|nonblock", open(path, O_RDONLY | O_NONBLOCK));
            result("user wronly|nonblock", open(path, O_WRONLY | O_NONBLOCK));
            result("user rdwr", open(path, O_RDWR));
            _exit(0);
        }
        reap(pid);
        if (chown(path, 0, 1000) < 0) result("chown", -1);
        if ((pid = child_after(300)) == 0) {
            /* In group 1000 only as a supplementary group. */
            gid_t groups[] = {1000};
            if (setgroups(1, groups) < 0 || setgid(2000) < 0 || setuid(1000) < 0) {
                result("setuid", -1); _exit(1);
            }
            int fd = open(path, O_RDONLY);  /* the group may read: waits for the writer */
            opened("group rdonly", fd);
            read_all("read", fd);
            _exit(0);
        }
        write_hi(open(path, O_WRONLY));
        reap(pid);
    } else if (!strcmp(s, "signal") || !strcmp(s, "signal-restart")) {
        int restart = strlen(s) > 6;
        struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = restart ? SA_RESTART : 0};
        sigaction(SIGALRM, &sa, NULL);
        if ((pid = child_after(1000)) == 0) { write_hi(open(path, O_WRONLY)); _exit(0); }
        struct itimerval it = {.it_value = {0, 300000}};
        setitimer(ITIMER_REAL, &it, NULL);
        int fd = open(path, O_RDONLY);
        opened("open", fd);
        printf("handled: %d\n", handled);
        if (fd < 0) {
            /* The interrupted reader left nothing behind: a writer finds no reader. */
            msleep(300);
            opened("wronly|nonblock after", open(path, O_WRONLY | O_NONBLOCK));
            fd = open(path, O_RDONLY);
            opened("open again", fd);
        }
        read_all("read", fd);
        reap(pid);
    } else if (!strcmp(s, "killed-reader") || !strcmp(s, "killed-writer")) {
        int reader = s[7] == 'r';
        if ((pid = fork()) == 0) { open(path, reader ? O_RDONLY : O_WRONLY); _exit(1); }
        msleep(300);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        printf("child killed: %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
        msleep(300);
        if (reader) {
            /* No reader is left, nor anyone waiting to be one. */
            opened("wronly|nonblock after", open(path, O_WRONLY | O_NONBLOCK));
        } else {
            /* No writer comes: the dead one's open must not complete now (POLLHUP would
             * say a writer came and went). */
            int fd = open(path, O_RDONLY | O_NONBLOCK);
            opened("rdonly|nonblock after", fd);
            msleep(200);
            struct pollfd p = {.fd = fd, .events = POLLIN};
            result("poll", poll(&p, 1, 0));
        }
    } else if (!strcmp(s, "served")) {
        /* While one process waits for a writer, another is served: stat and uname, then
         * it releases the first. */
        if ((pid = fork()) == 0) {
            alarm(20);
            struct stat st; struct utsname u; int ok = 0;
            msleep(200);
            for (int i = 0; i < 300; i++) ok += stat("/", &st) == 0 && uname(&u) == 0;
            result("served", ok);
            write_hi(open(path, O_WRONLY));
            _exit(0);
        }
        int fd = open(path, O_RDONLY);
        opened("open", fd);
        read_all("read", fd);
        reap(pid);
    } else if (!strcmp(s, "exit-pending")) {
        /* The init exits while one of its threads and a child wait on the FIFO. */
        if ((pid = fork()) == 0) { open(path, O_RDONLY); _exit(1); }
        pthread_t t;
        pthread_create(&t, NULL, open_reader, NULL);
        msleep(300);
        printf("exiting\n");
        fflush(stdout);
        _exit(3);
    } else if (!strcmp(s, "block")) {
        printf("waiting\n");
        fflush(stdout);
        open(path, O_RDONLY);
    } else {
        fprintf(stderr, "unknown scenario %s\n", s);
        return 2;
    }
    return 0;
}
