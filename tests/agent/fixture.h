/* Reading fixture files for the agent's unit tests (run from the source root). */
#ifndef BELLOWS_TEST_AGENT_FIXTURE_H
#define BELLOWS_TEST_AGENT_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#define FIXTURES "tests/data/proc/"

/* Read a whole fixture into a malloc'd buffer; aborts the test program if missing. */
static inline char *fixture_read(const char *name, size_t *ret_len)
{
    char path[512];
    snprintf(path, sizeof(path), FIXTURES "%s", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "missing fixture %s\n", path);
        abort();
    }
    char *buf = malloc(65536);
    size_t n = fread(buf, 1, 65536, f);
    fclose(f);
    *ret_len = n;
    return buf;
}

#endif
