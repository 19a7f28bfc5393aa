/* The operator state's file: <state_dir>/state.json, written atomically (a temporary file
 * in the same folder, fsync, rename over the old one, fsync of the folder), so a crash or
 * a power cut leaves either the old state or the new one, never a torn file.
 *
 * Loading is done once at start, on the loop thread (a small file, before anything runs).
 * Saving happens after each operator change and must not stall the loop: the text is
 * made on the loop and written by libuv's thread pool; changes made while a write is in
 * flight are coalesced into one more write of the latest state.
 */
#ifndef BELLOWS_STATE_STORE_H
#define BELLOWS_STATE_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "host-daemon/state/state.h"

#define STATE_FILE_NAME "state.json"

/* Read <dir>/state.json into *ret (the folder is made, mode 0700, when missing). A missing
 * file is an empty state (0). A file that cannot be read or parsed gives a negative errno
 * with the reason in err, and *ret is empty: the caller logs it, and may move the file
 * aside with state_file_set_aside() so that the next save does not destroy it. */
int state_file_load(const char *dir, struct state *ret, char *err, size_t err_cap);

/* Rename <dir>/state.json to <dir>/state.json.bad (replacing an older one). 0 or -errno. */
int state_file_set_aside(const char *dir);

/* Write text atomically as <dir>/state.json. Blocking (the store calls it from the thread
 * pool; tests call it directly). 0 or -errno. */
int state_file_write(const char *dir, const char *text, size_t len);

struct state_store;

/* Called on the loop after each write: 0 or a negative errno. May be NULL. */
typedef void (*state_store_done_cb)(struct state_store *s, int err, void *opaque);

/* A saver for <dir> on loop. Returns 0 or -ENOMEM / -ENAMETOOLONG. */
int state_store_new(uv_loop_t *loop, const char *dir, state_store_done_cb done, void *opaque,
                    struct state_store **ret);

/* Save st (serialized now; st may change right after). Never blocks. 0 or -ENOMEM. */
int state_store_save(struct state_store *s, const struct state *st);

/* Writes finished since the store was made, and failed ones. */
unsigned long state_store_writes(const struct state_store *s);

/* Finish: a save still waiting is written, then the store is freed (the loop runs until
 * then: the last state is never lost by a clean stop). No done callback after this. */
void state_store_close(struct state_store *s);

#endif
