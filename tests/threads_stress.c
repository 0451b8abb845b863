/* tests/test_threads_stress.py's workload: FILE_THREADS threads doing path syscalls in a
 * private directory each, while FORK_THREADS threads fork and exec /bin/true, all for
 * SECONDS seconds. Prints the number of rounds that failed per kind of work (each must
 * be 0) and "done"; how many rounds ran depends on the machine and is not printed.
 *
 *   threads_stress SECONDS FILE_THREADS FORK_THREADS */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double deadline;
static atomic_long file_errors, fork_errors, file_rounds, fork_rounds;
static char first_error[256];
static pthread_mutex_t error_lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void failed(atomic_long *counter, const char *what, int id) {
    atomic_fetch_add(counter, 1);
    pthread_mutex_lock(&error_lock);
    if (!first_error[0])
        snprintf(first_error, sizeof first_error, "thread %d: %s: %s", id, what,
                 strerrorname_np(errno));
    pthread_mutex_unlock(&error_lock);
}

/* One round: every step must succeed, and the directory is empty again at the end. */
static void *file_worker(void *arg) {
    int id = (int)(long)arg;
    char dir[64], a[96], b[96], sub[96], link[96], target[96];
    snprintf(dir, sizeof dir, "/stress/t%d", id);
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    snprintf(link, sizeof link, "%s/link", dir);
    if (mkdir(dir, 0755) < 0) { failed(&file_errors, "mkdir dir", id); return NULL; }
    while (now() < deadline) {
        struct stat st;
        ssize_t n;
        int fd = open(a, O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd < 0) { failed(&file_errors, "open", id); break; }
        if (write(fd, "x", 1) != 1) failed(&file_errors, "write", id);
        close(fd);
        if (stat(a, &st) < 0 || st.st_size != 1) failed(&file_errors, "stat", id);
        if (symlink("a", link) < 0) failed(&file_errors, "symlink", id);
        if ((n = readlink(link, target, sizeof target)) != 1 || target[0] != 'a')
            failed(&file_errors, "readlink", id);
        if (mkdir(sub, 0700) < 0) failed(&file_errors, "mkdir", id);
        if (rename(a, b) < 0) failed(&file_errors, "rename", id);
        if (access(b, R_OK) < 0) failed(&file_errors, "access", id);
        if (lstat(link, &st) < 0 || !S_ISLNK(st.st_mode)) failed(&file_errors, "lstat", id);
        if (stat(link, &st) == 0 || errno != ENOENT) failed(&file_errors, "dangling", id);
        if (unlink(b) < 0) failed(&file_errors, "unlink", id);
        if (unlink(link) < 0) failed(&file_errors, "unlink link", id);
        if (rmdir(sub) < 0) failed(&file_errors, "rmdir", id);
        atomic_fetch_add(&file_rounds, 1);
    }
    if (rmdir(dir) < 0) failed(&file_errors, "rmdir dir", id);
    return NULL;
}

static void *fork_worker(void *arg) {
    int id = (int)(long)arg;
    while (now() < deadline) {
        pid_t pid = fork();
        if (pid < 0) { failed(&fork_errors, "fork", id); continue; }
        if (pid == 0) {
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
            failed(&fork_errors, "exec /bin/true", id);
        atomic_fetch_add(&fork_rounds, 1);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: threads_stress SECONDS FILES FORKS\n"); return 2; }
    int files = atoi(argv[2]), forks = atoi(argv[3]);
    pthread_t t[256];
    int n = 0;
    mkdir("/stress", 0755);
    deadline = now() + atof(argv[1]);
    for (int i = 0; i < files && n < 256; i++)
        if (pthread_create(&t[n++], NULL, file_worker, (void *)(long)i)) return 3;
    for (int i = 0; i < forks && n < 256; i++)
        if (pthread_create(&t[n++], NULL, fork_worker, (void *)(long)i)) return 3;
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    printf("file errors: %ld\nfork errors: %ld\n", (long)file_errors, (long)fork_errors);
    printf("file rounds: %s\nfork rounds: %s\n", file_rounds ? "some" : "none",
           fork_rounds ? "some" : "none");
    if (first_error[0]) printf("first error: %s\n", first_error);
    printf("done\n");
    fprintf(stderr, "rounds: file %ld fork %ld\n", (long)file_rounds, (long)fork_rounds);
    return 0;
}
