/* openread N PATH SIZE: N times open(PATH, O_RDONLY), read SIZE bytes, close; prints
 * "time: <mean ns per open+read+close>" (the probe's output format). tests/probe.c's
 * `time` op repeats one operation only, so this is the open+read+close loop of the
 * benchmark suite, built static by bench/rootfs.py and run inside each sandbox. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: openread N PATH SIZE\n"); return 2; }
    long n = atol(argv[1]), size = atol(argv[3]);
    const char *path = argv[2];
    static char buf[1 << 20];
    struct timespec t0, t1;
    if (n < 1) n = 1;
    if (size < 0 || size > (long)sizeof buf) size = sizeof buf;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) { perror("open"); return 1; }
        ssize_t r = read(fd, buf, size);
        if (r != size) { fprintf(stderr, "openread: read returned %zd\n", r); return 1; }
        if (close(fd) < 0) { perror("close"); return 1; }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("time: %.0f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / n);
    return 0;
}
