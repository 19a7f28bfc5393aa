/* libvirt's event loop on libuv: an implementation of virEventRegisterImpl() whose file
 * handles are uv_poll_t and whose timeouts are uv_timer_t / uv_idle_t of one uv loop, so
 * bellowsd runs libvirt's connection I/O, keepalive and domain events in its own loop.
 *
 * Semantics (libvirt-event.h):
 *   handles   READABLE/WRITABLE as asked; ERROR when the fd is in error (libuv stops the
 *             poll then; it restarts on the next update), HANGUP when the peer shut its
 *             end down (sockets: EPOLLRDHUP). A plain EPOLLHUP (a pipe whose writer
 *             closed) arrives as READABLE with EOF to read, as libuv reports it.
 *             Events 0 stop the watch without removing it. The same fd may be watched
 *             more than once with non-overlapping events (each extra watch polls a dup).
 *   timeouts  -1 disabled; 0 fires once on every loop iteration (and keeps the loop from
 *             blocking, like libvirt's own loop); N > 0 fires every N ms. An update
 *             restarts the period from now.
 *   removal   allowed from inside any callback; no callback runs after its removal.
 *             The free callback ff(opaque) runs from the loop after the uv handle has
 *             closed, never from inside the remove call.
 *
 * All libvirt API calls must be made on the loop's thread (libuv is single threaded);
 * calls into this event impl from another thread fail (-1) instead of corrupting the loop.
 */
#ifndef BELLOWS_LIBVIRT_EVENT_UV_H
#define BELLOWS_LIBVIRT_EVENT_UV_H

#include <uv.h>

/* Register the implementation on `loop` with virEventRegisterImpl(). Call it before any
 * other libvirt API call. libvirt allows one registration per process: a second call
 * with the same loop returns 0, with another loop -EBUSY. */
int libvirt_event_uv_register(uv_loop_t *loop);

/* Number of handles and timeouts registered and not yet freed (their ff not yet run). */
unsigned libvirt_event_uv_pending(void);

#endif
