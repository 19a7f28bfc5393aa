/* The control socket of a bellowsd that runs as another process, asked the blocking way:
 * the test's loop does not run meanwhile, the daemon answers on its own. */
#ifndef BELLOWS_TEST_CONTROL_CLIENT_H
#define BELLOWS_TEST_CONTROL_CLIENT_H

#include <jansson.h>

/* One request line on a new connection to socket_path; its reply (the caller's to free). */
json_t *control_call(const char *socket_path, const char *request);

#endif
