/* forkexec N [PATH]: N times fork, execve(PATH, default /bin/true) in the child and
 * waitpid in the parent; prints "time_ms: <mean ms per fork+exec+wait>". Built static
 * by the benchmark suite (bench/rootfs.py) and run inside each sandbox. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100;
    const char *path = argc > 2 ? argv[2] : "/bin/true";
    char *const args[] = {(char *)path, NULL};
    struct timespec t0, t1;
    if (n < 1) n = 1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 1; }
        if (pid == 0) { execve(path, args, environ); _exit(127); }
        int status;
        if (waitpid(pid, &status, 0) < 0) { perror("waitpid"); return 1; }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "forkexec: %s failed (status %#x)\n", path, status);
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("time_ms: %.4f\n",
           ((t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6) / n);
    return 0;
}
