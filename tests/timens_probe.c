/* The clocks a program reads for uptime, each way it can: clock_gettime through the vDSO
 * (libc's) and through the syscall, sysinfo, and /proc/uptime. Prints "name=seconds". */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

static double ts(struct timespec t) { return t.tv_sec + t.tv_nsec / 1e9; }

int main(void) {
    struct timespec t;
    clock_gettime(CLOCK_BOOTTIME, &t);
    printf("boottime_vdso=%.3f\n", ts(t));
    syscall(SYS_clock_gettime, CLOCK_BOOTTIME, &t);
    printf("boottime_syscall=%.3f\n", ts(t));
    clock_gettime(CLOCK_MONOTONIC, &t);
    printf("monotonic_vdso=%.3f\n", ts(t));
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &t);
    printf("monotonic_syscall=%.3f\n", ts(t));
    clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
    printf("monotonic_coarse=%.3f\n", ts(t));
    struct sysinfo si;
    sysinfo(&si);
    printf("sysinfo=%ld\n", si.uptime);
    double up = -1;
    FILE *f = fopen("/proc/uptime", "r");
    if (f && fscanf(f, "%lf", &up) != 1)
        up = -1;
    printf("proc_uptime=%.2f\n", up);
    unsigned long long start = 0;
    f = fopen("/proc/self/stat", "r");
    /* starttime is field 22; comm has no spaces here */
    if (f && fscanf(f, "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
                       "%*d %*d %*d %*d %llu", &start) != 1)
        start = 0;
    printf("starttime=%.2f\n", (double)start / sysconf(_SC_CLK_TCK));
    time_t btime = 0;
    char line[256];
    f = fopen("/proc/stat", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "btime %ld", &btime) == 1)
            break;
    struct timespec real;
    clock_gettime(CLOCK_REALTIME, &real);
    printf("since_btime=%ld\n", real.tv_sec - btime);
    return 0;
}
