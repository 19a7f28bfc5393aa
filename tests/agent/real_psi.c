/* bellows-agent's PSI source for real on /proc/pressure/memory: the triggers it registers,
 * the fallback to 2 s windows when the kernel refuses a 1 s one with EINVAL (callers without
 * CAP_SYS_RESOURCE), the fds it holds, the errors when PSI is missing, and the reports-only
 * agent when every source is missing.
 * usage: real_psi AGENT */
#include "tests/agent/real_util.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define PSI_FILE "/proc/pressure/memory"
#define CAP_SYS_RESOURCE_BIT 24

static char dir[64], log_path[128];
static pid_t agent_pid;

static void cleanup(void)
{
    if (agent_pid > 0)
        real_stop(agent_pid);
    agent_pid = 0;
    unlink(log_path);
    rmdir(dir);
}

static bool has_cap_sys_resource(void)
{
    char *s = real_read_file("/proc/self/status");
    CHECK(s, "cannot read /proc/self/status");
    char *p = strstr(s, "CapEff:");
    unsigned long long caps = p ? strtoull(p + 7, NULL, 16) : 0;
    free(s);
    return caps & (1ull << CAP_SYS_RESOURCE_BIT);
}

/* Wait for the hello on the agent's stdout (--print): by then start-up is logged. */
static void wait_hello(int out)
{
    char buf[4096];
    size_t len = 0;
    while (!memchr(buf, '\n', len)) {
        struct pollfd p = {.fd = out, .events = POLLIN};
        CHECK(poll(&p, 1, 5000) == 1, "no output from the agent within 5 s");
        ssize_t n = read(out, buf + len, sizeof(buf) - 1 - len);
        CHECK(n > 0, "agent stdout closed before its hello");
        len += (size_t)n;
    }
    buf[len] = '\0';
    CHECK(strstr(buf, "\"type\":\"hello\"") && strstr(buf, "\"sources\":[\"psi\"]"),
          "first line is not a psi-only hello: %s", buf);
}

/* Count the agent's fds open for writing on the PSI file: one per registered trigger (the
 * snapshot reads it through one more, read-only). */
static int count_psi_fds(pid_t pid)
{
    char path[64], target[256];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    CHECK(d, "cannot list %s", path);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char link[320];
        snprintf(link, sizeof(link), "%s/%s", path, de->d_name);
        ssize_t len = readlink(link, target, sizeof(target) - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        if (strcmp(target, PSI_FILE) != 0)
            continue;
        char info_path[320];
        snprintf(info_path, sizeof(info_path), "/proc/%d/fdinfo/%s", (int)pid, de->d_name);
        char *info = real_read_file(info_path);
        char *flags = info ? strstr(info, "flags:") : NULL;
        if (flags && (strtoul(flags + 6, NULL, 8) & 3) == 2 /* O_RDWR */)
            n++;
        free(info);
    }
    closedir(d);
    return n;
}

/* Run the agent with PSI only and extra args; return its log once started. The agent keeps
 * running in agent_pid. drop_cap: remove CAP_SYS_RESOURCE from the bounding set first. */
static char *run_agent(const char *agent, const char *const *extra, bool drop_cap, int *ret_fds)
{
    const char *args[32] = {"--print", "--sources", "psi", "--no-mlock"};
    int n = 4;
    for (int i = 0; extra[i]; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    int out;
    if (drop_cap) {
        /* The kernel checks the opener's credentials: a child without the capability in
         * its bounding set execs the agent without it, even as root. */
        CHECK(prctl(PR_CAPBSET_DROP, CAP_SYS_RESOURCE_BIT, 0, 0, 0) == 0 || errno == EINVAL,
              "PR_CAPBSET_DROP: %s", strerror(errno));
    }
    agent_pid = real_spawn_agent(agent, args, log_path, &out);
    wait_hello(out);
    *ret_fds = count_psi_fds(agent_pid);
    int status = real_stop(agent_pid);
    agent_pid = 0;
    close(out);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status 0x%x", status);
    return real_read_file(log_path);
}

static void expect_line(const char *log, const char *line)
{
    CHECK(strstr(log, line), "log lacks: %s\n--- log ---\n%s", line, log);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s AGENT\n", argv[0]);
        return 2;
    }
    if (access(PSI_FILE, F_OK) != 0) {
        printf("SKIP: %s missing: this kernel has no PSI (CONFIG_PSI=y, psi=1)\n", PSI_FILE);
        return 77;
    }
    real_cleanup = cleanup;
    snprintf(dir, sizeof(dir), "/tmp/bellows-psi-XXXXXX");
    CHECK(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    snprintf(log_path, sizeof(log_path), "%s/agent.log", dir);
    const char *none[] = {NULL};
    int fds;

    /* 1. Defaults (1 s windows). What the kernel accepts depends on CAP_SYS_RESOURCE. */
    bool privileged = has_cap_sys_resource();
    char *log = run_agent(argv[1], none, false, &fds);
    printf("CAP_SYS_RESOURCE: %s; defaults registered:\n%s", privileged ? "yes" : "no", log);
    CHECK(fds == 3, "%d fds on %s, want 3 triggers", fds, PSI_FILE);
    if (privileged) {
        expect_line(log, "psi: low trigger \"some 20000 1000000\" on " PSI_FILE "\n");
        expect_line(log, "psi: medium trigger \"some 70000 1000000\" on " PSI_FILE "\n");
        expect_line(log, "psi: critical trigger \"full 700000 1000000\" on " PSI_FILE "\n");
    } else {
        expect_line(log, "psi: low trigger \"some 40000 2000000\" on " PSI_FILE
                         " (the kernel refused \"some 20000 1000000\" with EINVAL");
        expect_line(log, "psi: medium trigger \"some 140000 2000000\" on " PSI_FILE
                         " (the kernel refused \"some 70000 1000000\" with EINVAL");
        expect_line(log, "psi: critical trigger \"full 1400000 2000000\" on " PSI_FILE
                         " (the kernel refused \"full 700000 1000000\" with EINVAL");
    }
    free(log);

    /* 2. A 2 s window is accepted as asked, with no fallback; an "off" level holds no fd. */
    const char *two_s[] = {"--psi-low", "off", "--psi-medium", "some:150:2000", NULL};
    log = run_agent(argv[1], two_s, false, &fds);
    expect_line(log, "psi: medium trigger \"some 150000 2000000\" on " PSI_FILE "\n");
    CHECK(!strstr(log, "psi: low trigger"), "low is off but was registered:\n%s", log);
    CHECK(fds == 2, "%d fds on %s, want 2 triggers", fds, PSI_FILE);
    free(log);

    /* 3. Force the unprivileged case even where we hold CAP_SYS_RESOURCE. */
    if (privileged) {
        pid_t child = fork();
        CHECK(child >= 0, "fork");
        if (child == 0) {
            log = run_agent(argv[1], none, true, &fds);
            expect_line(log, "psi: medium trigger \"some 140000 2000000\" on " PSI_FILE
                             " (the kernel refused \"some 70000 1000000\" with EINVAL");
            CHECK(fds == 3, "%d fds", fds);
            exit(0);
        }
        int status;
        waitpid(child, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "unprivileged run failed");
        printf("fallback checked again without CAP_SYS_RESOURCE\n");
    }

    /* 4. A missing PSI file is a clear error that names it. */
    const char *args_missing[] = {"--print",    "--sources",  "psi",
                                  "--no-mlock", "--psi-file", "/nonexistent/memory.pressure",
                                  NULL};
    agent_pid = real_spawn_agent(argv[1], args_missing, log_path, NULL);
    int status;
    waitpid(agent_pid, &status, 0);
    agent_pid = 0;
    log = real_read_file(log_path);
    printf("missing PSI file: %s", log);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1, "exit status 0x%x", status);
    expect_line(log, "/nonexistent/memory.pressure: No such file or directory");
    free(log);

    /* 5. Neither source, with auto: the agent runs reports-only (a hello with no sources,
     * reports) instead of exiting, and its log names what is missing for each. */
    const char *args_none[] = {
        "--print",  "--no-mlock",          "--psi-file",        "/nonexistent/pressure",
        "--cgroup", "/nonexistent/cgroup", "--report-interval", "200",
        NULL};
    int out;
    agent_pid = real_spawn_agent(argv[1], args_none, log_path, &out);
    char lines[8192];
    size_t len = 0;
    int reports = 0;
    /* The hello, then reports every 200 ms: wait for two reports. */
    while (reports < 2) {
        struct pollfd p = {.fd = out, .events = POLLIN};
        CHECK(poll(&p, 1, 5000) == 1, "no output from a reports-only agent within 5 s: %.*s",
              (int)len, lines);
        CHECK(len + 1 < sizeof(lines), "too much output: %.*s", (int)len, lines);
        ssize_t n = read(out, lines + len, sizeof(lines) - 1 - len);
        CHECK(n > 0, "agent stdout closed: it exited without a source");
        len += (size_t)n;
        lines[len] = '\0';
        reports = 0;
        for (const char *r = lines; (r = strstr(r, "\"type\":\"report\"")); r++)
            reports++;
    }
    char *eol = strchr(lines, '\n');
    CHECK(eol, "no complete line: %s", lines);
    *eol = '\0';
    CHECK(strstr(lines, "\"type\":\"hello\"") && strstr(lines, "\"sources\":[]") &&
              strstr(lines, "\"caps\":[\"report\""),
          "first line is not a hello with no sources and the report cap: %s", lines);
    close(out);
    status = real_stop(agent_pid);
    agent_pid = 0;
    log = real_read_file(log_path);
    printf("no source: %s", log);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status 0x%x", status);
    expect_line(log, "no pressure source available: vmpressure: cannot register on "
                     "/nonexistent/cgroup/memory.pressure_level");
    expect_line(log, "psi: cannot register a trigger on /nonexistent/pressure");
    expect_line(log, "running reports-only: a memory report every 200 ms");
    free(log);

    /* 6. The same kernel with the sources named on the command line: the operator asked for
     * them, so it is an error (exit 1), not a reports-only agent. */
    const char *args_named[] = {
        "--print",  "--no-mlock",          "--psi-file", "/nonexistent/pressure",
        "--cgroup", "/nonexistent/cgroup", "--sources",  "vmpressure,psi",
        NULL};
    agent_pid = real_spawn_agent(argv[1], args_named, log_path, NULL);
    waitpid(agent_pid, &status, 0);
    agent_pid = 0;
    log = real_read_file(log_path);
    printf("named sources missing: %s", log);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1, "exit status 0x%x", status);
    expect_line(log, "vmpressure: cannot register on /nonexistent/cgroup/memory.pressure_level");
    free(log);

    cleanup();
    printf("PASS\n");
    return 0;
}
