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
 * Threads: libvirt calls this implementation from whichever thread makes a libvirt call
 * (the remote driver adds, updates and removes its socket watch around each call), and
 * bellowsd makes its libvirt calls on worker threads (libvirt_client.h). Every entry point
 * is safe from any thread: on the loop's thread a change applies at once; from another
 * thread it is recorded and the loop is woken (a uv_async_t, which keeps the loop alive
 * until libvirt_event_uv_release()) to apply it. libuv handles are only ever touched on the loop's
 * thread, and every callback (handle, timeout, free) runs there.
 */
#ifndef BELLOWS_LIBVIRT_EVENT_UV_H
#define BELLOWS_LIBVIRT_EVENT_UV_H

#include <uv.h>

/* Register the implementation on `loop` with virEventRegisterImpl(). Call it before any
 * other libvirt API call. libvirt allows one registration per process: a second call
 * with the same loop returns 0 (and makes the wake-up handle again after a release),
 * with another loop -EBUSY. */
int libvirt_event_uv_register(uv_loop_t *loop);

/* Close the wake-up handle (it is made again by the next register), so the loop can end:
 * at once when nothing is registered, else as soon as the last handle and timeout are
 * removed (a connection that a worker thread is still closing removes its watch later).
 * Call it on the loop's thread when libvirt is being let go (the backend's close). */
void libvirt_event_uv_release(void);

/* Number of handles and timeouts registered and not yet freed (their ff not yet run). */
unsigned libvirt_event_uv_pending(void);

#endif
