/* crypt(3) checks in a thread of their own. The thread reads only its
 * copies of the hash and the password, writes the result, then one octet
 * to the pipe, and touches nothing after that: the loop side owns the job
 * and frees it when the octet has arrived (after a cancel too). */
#include <crypt.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "lib/xmalloc.h"
#include "smtp/crypt_verify.h"

struct crypt_verify {
	char *hash, *pass;
	int ok;
	int fds[2];
	struct event *ev;
	int cancelled;
	void (*done)(int ok, void *arg);
	void *arg;
};

int crypt_verify_now(const char *hash, const char *pass)
{
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	const char *got = crypt_rn(pass, hash, cd, (int)sizeof(*cd));
	int ok = got && got[0] != '*' && strlen(got) == strlen(hash) &&
		 CRYPTO_memcmp(got, hash, strlen(hash)) == 0;

	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

static void crypt_verify_free(struct crypt_verify *v)
{
	if (v->ev)
		event_free(v->ev);
	close(v->fds[0]);
	close(v->fds[1]);
	explicit_bzero(v->pass, strlen(v->pass));
	free(v->pass);
	free(v->hash);
	free(v);
}

static void *crypt_verify_thread(void *arg)
{
	struct crypt_verify *v = arg;
	char one = 1;

	v->ok = crypt_verify_now(v->hash, v->pass);
	if (write(v->fds[1], &one, 1) != 1)
		abort(); /* a pipe with room for one octet: cannot fail */
	return NULL;
}

static void crypt_verify_ready(evutil_socket_t fd, short what, void *arg)
{
	struct crypt_verify *v = arg;
	void (*done)(int ok, void *a) = v->cancelled ? NULL : v->done;
	void *done_arg = v->arg;
	int ok = v->ok;

	crypt_verify_free(v);
	if (done)
		done(ok, done_arg);
}

struct crypt_verify *crypt_verify_start(struct event_base *base, const char *hash, const char *pass,
					void (*done)(int ok, void *arg), void *arg)
{
	struct crypt_verify *v = xcalloc(1, sizeof(*v));
	pthread_t t;

	if (pipe2(v->fds, O_CLOEXEC) < 0) {
		free(v);
		return NULL;
	}
	v->hash = xstrdup(hash);
	v->pass = xstrdup(pass);
	v->done = done;
	v->arg = arg;
	v->ev = event_new(base, v->fds[0], EV_READ, crypt_verify_ready, v);
	if (v->ev == NULL || event_add(v->ev, NULL) < 0 ||
	    pthread_create(&t, NULL, crypt_verify_thread, v) != 0) {
		crypt_verify_free(v);
		return NULL;
	}
	pthread_detach(t);
	return v;
}

void crypt_verify_cancel(struct crypt_verify *v)
{
	if (v)
		v->cancelled = 1;
}
