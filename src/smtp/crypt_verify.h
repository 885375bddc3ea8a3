/* A crypt(3) check off the event loop: yescrypt costs about 100 ms of CPU
 * by design, which would stall every session if run in the loop. One
 * thread per check; the result comes back through a pipe to the loop.
 * Invariant: done runs in the loop, never inside crypt_verify_start, and
 * not at all once the check was cancelled. */
#ifndef SMTP_CRYPT_VERIFY_H
#define SMTP_CRYPT_VERIFY_H
#include <event2/event.h>

struct crypt_verify;

/* Checks pass against hash; done(ok, arg) later. NULL if no thread could
 * be started (the caller then checks in place). */
struct crypt_verify *crypt_verify_start(struct event_base *base, const char *hash, const char *pass,
					void (*done)(int ok, void *arg), void *arg);
/* Forgets a check in progress: done is not called; its memory goes when
 * the thread has finished. */
void crypt_verify_cancel(struct crypt_verify *v);
/* 1 if pass matches hash (libxcrypt), in place. */
int crypt_verify_now(const char *hash, const char *pass);

#endif
