/* bellowsctl top: a live terminal view of bellowsd's guests with ncurses, in virt-top's
 * manner (header with host totals, a reverse-video column row, one row per guest, sort
 * keys, d/s for the delay, q to quit, h for help), and a batch mode that prints the same
 * lines as plain text (-b -n N, --csv). Every refresh is one `list` on the control socket. */
#include "ctl/top.h"

#include <curses.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl/control_client.h"
#include "ctl/top_model.h"

#define LINE_MAX_ 512
#define LEVEL_COL 17 /* where the LEVEL column starts in a row (NAME is 16 wide) */

struct top_options {
    const char *socket;
    double delay_s;
    bool batch;
    bool csv;
    long iterations; /* 0: until q (or for ever in batch mode) */
    enum top_sort sort;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One `list` from the daemon. Returns 0, or -1 with a reason in err. */
static int fetch(const struct top_options *o, struct top_frame *f, char *err, size_t cap)
{
    char *reply = control_exchange(o->socket, "{\"cmd\":\"list\"}\n");
    if (!reply) {
        snprintf(err, cap, "%s: %s", o->socket, strerror(errno));
        return -1;
    }
    int r = top_frame_parse(reply, f, err, cap);
    free(reply);
    if (r < 0)
        return -1;
    top_frame_sort(f, o->sort);
    return 0;
}

static void sleep_s(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- batch mode ---- */

static int run_batch(const struct top_options *o)
{
    char l1[LINE_MAX_], l2[LINE_MAX_], err[300];
    int failures = 0;
    if (o->csv) {
        top_format_csv_header(l1, sizeof(l1));
        printf("%s\n", l1);
    }
    for (long i = 0; o->iterations == 0 || i < o->iterations; i++) {
        if (i > 0)
            sleep_s(o->delay_s);
        struct top_frame f;
        if (fetch(o, &f, err, sizeof(err)) < 0) {
            fprintf(stderr, "bellowsctl top: %s\n", err);
            failures++;
            fflush(stdout);
            continue;
        }
        int64_t now = wall_ms();
        if (o->csv) {
            for (size_t g = 0; g < f.n; g++) {
                top_format_csv_row(&f.guests[g], now, l1, sizeof(l1));
                printf("%s\n", l1);
            }
        } else {
            top_format_summary(&f, now, o->sort, l1, l2, sizeof(l1));
            printf("%s\n%s\n\n", l1, l2);
            top_format_columns(l1, sizeof(l1));
            printf("%s\n", l1);
            for (size_t g = 0; g < f.n; g++) {
                top_format_row(&f.guests[g], now, l1, sizeof(l1));
                printf("%s\n", l1);
            }
            printf("\n");
        }
        fflush(stdout);
        top_frame_free(&f);
    }
    return failures == 0 ? 0 : 3;
}

/* ---- the ncurses view ---- */

static const char *const help_text[] = {
    "bellowsctl top: keys",
    "",
    "  P   sort by pressure (level, then PSI), highest first",
    "  M   sort by memory (balloon size), largest first",
    "  T   sort by time of the last move, most recent first",
    "  N   sort by name",
    "  F   pick the sort field from a list",
    "  d   set the delay between refreshes (s is the same)",
    "  h   this help (? too)",
    "  q   quit",
    "",
    "Columns: LEVEL is the policy's pressure level; PSI% the guest's PSI some avg10;",
    "BALLOON the guest's memory as its balloon leaves it, TARGET the last target sent;",
    "USED is MemTotal - MemAvailable in the guest; LAST, REASON and AGE its last move.",
    "",
    "Press any key to go back.",
};

static bool colors;

static void draw(const struct top_options *o, const struct top_frame *f, const char *err,
                 const char *status)
{
    char l1[LINE_MAX_], l2[LINE_MAX_];
    int64_t now = wall_ms();
    erase();
    if (f) {
        top_format_summary(f, now, o->sort, l1, l2, sizeof(l1));
        mvaddnstr(0, 0, l1, COLS);
        mvaddnstr(1, 0, l2, COLS);
    } else {
        mvaddnstr(0, 0, "bellows top", COLS);
    }
    if (err) {
        if (colors)
            attron(COLOR_PAIR(4) | A_BOLD);
        mvaddnstr(1, 0, err, COLS);
        if (colors)
            attroff(COLOR_PAIR(4) | A_BOLD);
    }
    top_format_columns(l1, sizeof(l1));
    attron(A_REVERSE);
    mvaddnstr(3, 0, l1, COLS);
    for (int x = (int)strlen(l1); x < COLS; x++)
        mvaddch(3, x, ' ');
    attroff(A_REVERSE);
    for (size_t i = 0; f && i < f->n && (int)i + 4 < LINES - 1; i++) {
        const struct top_guest *g = &f->guests[i];
        top_format_row(g, now, l1, sizeof(l1));
        mvaddnstr((int)i + 4, 0, l1, COLS);
        /* The level in its colour: green, yellow, orange-ish, red. */
        if (colors && LEVEL_COL < COLS)
            mvchgat((int)i + 4, LEVEL_COL, 8, g->level >= 2 ? A_BOLD : A_NORMAL,
                    (short)(g->level + 1), NULL);
    }
    char keys[160];
    if (!status || !status[0]) {
        snprintf(keys, sizeof(keys), "delay %.1f s   P M T N sort  F pick  d delay  h help  q quit",
                 o->delay_s);
        status = keys;
    }
    mvaddnstr(LINES - 1, 0, status, COLS);
    refresh();
}

static void show_help(void)
{
    erase();
    for (size_t i = 0; i < sizeof(help_text) / sizeof(help_text[0]) && (int)i < LINES; i++)
        mvaddnstr((int)i, 0, help_text[i], COLS);
    refresh();
    timeout(-1);
    getch();
}

/* A line typed at the bottom of the screen (echoed). */
static void prompt(const char *question, char *buf, int cap)
{
    move(LINES - 1, 0);
    clrtoeol();
    mvaddnstr(LINES - 1, 0, question, COLS);
    refresh();
    echo();
    curs_set(1);
    timeout(-1);
    getnstr(buf, cap - 1);
    noecho();
    curs_set(0);
}

static bool sort_key(int ch, enum top_sort *sort)
{
    switch (ch) {
    case 'P':
    case 'p':
        *sort = TOP_SORT_PRESSURE;
        return true;
    case 'M':
    case 'm':
        *sort = TOP_SORT_MEMORY;
        return true;
    case 'T':
    case 't':
        *sort = TOP_SORT_TIME;
        return true;
    case 'N':
    case 'n':
        *sort = TOP_SORT_NAME;
        return true;
    }
    return false;
}

static int run_tui(struct top_options *o)
{
    initscr();
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);
    colors = has_colors();
    if (colors) {
        start_color();
        use_default_colors();
        init_pair(1, COLOR_GREEN, -1);
        init_pair(2, COLOR_YELLOW, -1);
        init_pair(3, COLOR_MAGENTA, -1);
        init_pair(4, COLOR_RED, -1);
    }
    char status[200] = "";
    char err[300];
    long done = 0;
    bool quit = false;
    while (!quit) {
        struct top_frame f;
        bool ok = fetch(o, &f, err, sizeof(err)) == 0;
        draw(o, ok ? &f : NULL, ok ? NULL : err, status);
        if (ok)
            top_frame_free(&f);
        status[0] = '\0';
        if (o->iterations > 0 && ++done >= o->iterations)
            break;
        /* Wait for the delay or a key; a key that changes the view refreshes at once. */
        timeout((int)(o->delay_s * 1000));
        int ch = getch();
        if (ch == ERR || ch == KEY_RESIZE)
            continue;
        if (sort_key(ch, &o->sort))
            continue;
        switch (ch) {
        case 'q':
        case 'Q':
            quit = true;
            break;
        case 'h':
        case 'H':
        case '?':
            show_help();
            break;
        case 'F':
        case 'f': {
            char pick[8] = "";
            prompt("Sort by: P pressure, M memory, T time, N name: ", pick, sizeof(pick));
            if (!sort_key(pick[0], &o->sort))
                snprintf(status, sizeof(status), "not a sort field: '%s'", pick);
            break;
        }
        case 'd':
        case 's': {
            char text[32], q[80];
            snprintf(q, sizeof(q), "Change delay from %.1f to: ", o->delay_s);
            prompt(q, text, sizeof(text));
            char *end;
            double v = strtod(text, &end);
            if (end != text && v >= 0.1 && v <= 3600)
                o->delay_s = v;
            else
                snprintf(status, sizeof(status), "not a delay (0.1 to 3600 seconds): '%s'", text);
            break;
        }
        default:
            snprintf(status, sizeof(status), "unknown key; h for help");
        }
    }
    endwin();
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: bellowsctl top [-d SECONDS] [-o pressure|memory|time|name] [-n N]\n"
                 "                      [-b [--csv]]\n"
                 "  -d, --delay S    seconds between refreshes (default 3)\n"
                 "  -o, --sort F     sort field (default pressure)\n"
                 "  -n, --iterations N  refresh N times, then exit\n"
                 "  -b, --batch      plain text on stdout, no terminal control\n"
                 "      --csv        with -b: one CSV row per guest and refresh\n"
                 "keys: P M T N sort, F pick, d/s delay, h help, q quit\n");
}

/* See top.h. */
int top_main(const char *socket_path, int argc, char **argv)
{
    static const struct option options[] = {
        {"delay", required_argument, NULL, 'd'},
        {"sort", required_argument, NULL, 'o'},
        {"iterations", required_argument, NULL, 'n'},
        {"batch", no_argument, NULL, 'b'},
        {"csv", no_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct top_options o = {.socket = socket_path, .delay_s = 3.0, .sort = TOP_SORT_PRESSURE};
    int opt;
    optind = 0; /* a full rescan: main() ran getopt over argv before */
    while ((opt = getopt_long(argc, argv, "d:o:n:bh", options, NULL)) != -1) {
        char *end;
        switch (opt) {
        case 'd':
            o.delay_s = strtod(optarg, &end);
            if (*end || o.delay_s < 0.1 || o.delay_s > 3600) {
                fprintf(stderr, "bellowsctl top: -d takes seconds, 0.1 to 3600\n");
                return 2;
            }
            break;
        case 'o': {
            enum top_sort s;
            for (s = 0; s < TOP_SORT_COUNT; s++)
                if (strcmp(optarg, top_sort_name(s)) == 0)
                    break;
            if (s == TOP_SORT_COUNT) {
                fprintf(stderr, "bellowsctl top: -o takes pressure, memory, time or name\n");
                return 2;
            }
            o.sort = s;
            break;
        }
        case 'n':
            o.iterations = strtol(optarg, &end, 10);
            if (*end || o.iterations < 1) {
                fprintf(stderr, "bellowsctl top: -n takes a number of refreshes, 1 or more\n");
                return 2;
            }
            break;
        case 'b':
            o.batch = true;
            break;
        case 'c':
            o.csv = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || (o.csv && !o.batch)) {
        usage(stderr);
        return 2;
    }
    return o.batch ? run_batch(&o) : run_tui(&o);
}
