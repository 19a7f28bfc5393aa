/* `bellowsctl top`: the live terminal view (ncurses) and its batch mode. */
#ifndef BELLOWS_TOP_H
#define BELLOWS_TOP_H

/* Run `top` against the control socket at socket_path; argv[0] is "top", the rest its
 * options. Returns the process's exit status. */
int top_main(const char *socket_path, int argc, char **argv);

#endif
