/* "creat|excl|0x40": flag names (from a table the including program gives) or numbers,
 * joined with "|", as the test interpreters (probe.c, fuzz_interp.c) take them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct flag_name { const char *n; long v; };

static long flags_from_names(const char *s, const struct flag_name *names, size_t count) {
    long v = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, "|"); tok; tok = strtok(NULL, "|")) {
        int found = 0;
        for (size_t i = 0; i < count; i++)
            if (!strcmp(tok, names[i].n)) { v |= names[i].v; found = 1; }
        if (!found) v |= strtol(tok, NULL, 0);
    }
    return v;
}
