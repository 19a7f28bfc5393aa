/* workload: a memory demand of known shape, run inside test guests.
 *
 *   workload alloc --mib N [--rate MIB_PER_S] [--hold SECONDS] [--repeat K] [--pause SECONDS]
 *                  [--touch SECONDS]
 *       Map N MiB and touch every page, at most RATE MiB per second (0: as fast as possible),
 *       hold it for HOLD seconds, free it; do that K times with PAUSE seconds between.
 *       With --touch, every page mapped so far is written again every SECONDS while growing
 *       and holding: a working set in use, not a hoard the kernel may swap out for free.
 *   workload read --file PATH [--passes K] [--pause SECONDS]
 *       Read PATH from start to end K times (file-cache pressure).
 *
 * Progress goes to stdout, one line at a time, each starting with "workload: ".
 * The last line says "workload: done" with the longest time one MiB took to touch (a stall
 * the guest suffered). Exits 1 when an allocation fails, 2 on bad arguments. A kernel OOM
 * kill ends it with SIGKILL; the guest's /init reports those.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024UL * 1024UL)

struct options {
    const char *mode;
    unsigned long mib;
    double rate; /* MiB per second, 0 = unpaced */
    double hold; /* seconds */
    unsigned long repeat;
    double pause; /* seconds */
    double touch; /* seconds between re-touches of everything mapped; 0: never */
    const char *file;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double seconds)
{
    if (seconds <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)seconds};
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: workload alloc --mib N [--rate MIB_PER_S] [--hold S] [--repeat K] [--pause S]\n"
            "                      [--touch S]\n"
            "       workload read --file PATH [--passes K] [--pause S]\n");
    exit(2);
}

static bool parse_number(const char *text, double *ret)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || v < 0)
        return false;
    *ret = v;
    return true;
}

static void parse(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"mib", required_argument, NULL, 'm'},
        {"rate", required_argument, NULL, 'r'},
        {"hold", required_argument, NULL, 'h'},
        {"repeat", required_argument, NULL, 'k'},
        {"passes", required_argument, NULL, 'k'},
        {"pause", required_argument, NULL, 'p'},
        {"file", required_argument, NULL, 'f'},
        {"touch", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2)
        usage();
    *o = (struct options){.mode = argv[1], .repeat = 1};
    int c;
    double v;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'f') {
            o->file = optarg;
            continue;
        }
        if (c == '?' || !parse_number(optarg, &v))
            usage();
        switch (c) {
        case 'm':
            o->mib = (unsigned long)v;
            break;
        case 'r':
            o->rate = v;
            break;
        case 'h':
            o->hold = v;
            break;
        case 'k':
            o->repeat = (unsigned long)v;
            break;
        case 'p':
            o->pause = v;
            break;
        case 't':
            o->touch = v;
            break;
        }
    }
    if (optind != argc)
        usage();
}

/* Free the first n of the chunks. */
static void free_chunks(unsigned char **chunks, unsigned long n)
{
    for (unsigned long i = 0; i < n; i++)
        munmap(chunks[i], MIB);
}

/* Write every page of the first n chunks again (a new value each time). */
static void retouch(unsigned char **chunks, unsigned long n, long page, unsigned char value)
{
    for (unsigned long i = 0; i < n; i++)
        for (size_t off = 0; off < MIB; off += (size_t)page)
            chunks[i][off] = value;
}

/* Sleep until `until`, re-touching the first n chunks every o->touch seconds on the way. */
static void hold_until(const struct options *o, unsigned char **chunks, unsigned long n, long page,
                       double until, double *next_touch)
{
    for (;;) {
        double now = now_s();
        if (o->touch > 0 && now >= *next_touch) {
            retouch(chunks, n, page, (unsigned char)((unsigned long)now | 1));
            *next_touch = now_s() + o->touch;
            continue;
        }
        if (now >= until)
            return;
        double wake = o->touch > 0 && *next_touch < until ? *next_touch : until;
        sleep_s(wake - now);
    }
}

/* One allocate-touch-hold-free cycle, one MiB mapping at a time as a growing program does
 * (so the kernel's overcommit heuristic never refuses the whole demand up front; running
 * out shows as an OOM kill). Returns the longest touch of one MiB in seconds, or a
 * negative value when a mapping failed. */
static double alloc_cycle(const struct options *o, unsigned long cycle)
{
    long page = sysconf(_SC_PAGESIZE);
    unsigned char **chunks = calloc(o->mib, sizeof(*chunks));
    if (chunks == NULL) {
        printf("workload: allocation of the chunk table failed\n");
        return -1;
    }
    double start = now_s(), worst = 0, last_print = start;
    double next_touch = start + o->touch;
    for (unsigned long i = 0; i < o->mib; i++) {
        double t0 = now_s();
        chunks[i] = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (chunks[i] == MAP_FAILED) {
            printf("workload: allocation failed after %lu of %lu MiB: %s\n", i, o->mib,
                   strerror(errno));
            free_chunks(chunks, i);
            free(chunks);
            return -1;
        }
        /* Non-zero bytes so no page can be shared or deduplicated. */
        for (size_t off = 0; off < MIB; off += (size_t)page)
            chunks[i][off] = (unsigned char)(i + 1);
        double took = now_s() - t0;
        if (took > worst)
            worst = took;
        if (now_s() - last_print >= 1.0 || i + 1 == o->mib) {
            last_print = now_s();
            printf("workload: cycle %lu touched %lu/%lu MiB t=%.1fs worst_mib_ms=%.0f\n", cycle,
                   i + 1, o->mib, last_print - start, worst * 1e3);
        }
        if (o->rate > 0)
            hold_until(o, chunks, i + 1, page, start + (double)(i + 1) / o->rate, &next_touch);
    }
    printf("workload: cycle %lu holding %lu MiB for %.1fs\n", cycle, o->mib, o->hold);
    hold_until(o, chunks, o->mib, page, now_s() + o->hold, &next_touch);
    free_chunks(chunks, o->mib);
    free(chunks);
    printf("workload: cycle %lu freed\n", cycle);
    return worst;
}

static int run_alloc(const struct options *o)
{
    if (o->mib == 0)
        usage();
    double worst = 0, start = now_s();
    for (unsigned long k = 1; k <= o->repeat; k++) {
        double w = alloc_cycle(o, k);
        if (w < 0)
            return 1;
        if (w > worst)
            worst = w;
        if (k < o->repeat)
            sleep_s(o->pause);
    }
    printf("workload: done mode=alloc mib=%lu cycles=%lu seconds=%.1f worst_mib_ms=%.0f\n", o->mib,
           o->repeat, now_s() - start, worst * 1e3);
    return 0;
}

static int run_read(const struct options *o)
{
    if (o->file == NULL)
        usage();
    static char buf[1 << 16];
    double start = now_s();
    unsigned long long total = 0;
    for (unsigned long k = 1; k <= o->repeat; k++) {
        int fd = open(o->file, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            printf("workload: open %s: %s\n", o->file, strerror(errno));
            return 1;
        }
        ssize_t n;
        unsigned long long pass = 0;
        while ((n = read(fd, buf, sizeof(buf))) > 0)
            pass += (unsigned long long)n;
        int err = errno;
        close(fd);
        if (n < 0) {
            printf("workload: read %s: %s\n", o->file, strerror(err));
            return 1;
        }
        total += pass;
        printf("workload: pass %lu read %llu MiB\n", k, pass / MIB);
        if (k < o->repeat)
            sleep_s(o->pause);
    }
    printf("workload: done mode=read mib=%llu passes=%lu seconds=%.1f\n", total / MIB, o->repeat,
           now_s() - start);
    return 0;
}

int main(int argc, char **argv)
{
    struct options o;
    setvbuf(stdout, NULL, _IOLBF, 0);
    parse(argc, argv, &o);
    if (strcmp(o.mode, "alloc") == 0)
        return run_alloc(&o);
    if (strcmp(o.mode, "read") == 0)
        return run_read(&o);
    usage();
    return 2;
}
