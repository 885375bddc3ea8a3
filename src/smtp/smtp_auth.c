/* SMTP AUTH, server side (RFC 4954): the users table of auth_users_file and
 * the SASL mechanisms PLAIN (RFC 4616), LOGIN and CRAM-MD5 (RFC 2195).
 * Invariant: passwords are compared in constant time and wiped on free;
 * nothing here logs a password. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "mail/config.h"
#include "lib/clock.h"
#include "lib/xmalloc.h"
#include "smtp/listener.h"
#include "smtp/crypt_verify.h"
#include "smtp/sasl_dovecot.h"
#include "smtp/smtp_auth.h"
#include "lib/log.h"
#include "smtp/tls.h"

/* An entry holds a crypt(3) hash, or a password marked {PLAIN} (CRAM-MD5
 * needs the password itself). */
struct smtp_auth_user {
	char *name;
	char *password; /* {PLAIN} entries, else NULL */
	char *hash;	/* "$y$...", "$6$...", else NULL */
};

struct smtp_auth_users {
	struct smtp_auth_user *v;
	size_t n;
};

enum auth_mech { MECH_PLAIN, MECH_LOGIN, MECH_CRAM_MD5 };

static const char *const mech_names[] = {"PLAIN", "LOGIN", "CRAM-MD5"};

struct smtp_auth_exchange {
	enum auth_mech mech;
	/* through Dovecot: the mechanism as the client named it, the
	 * connection (NULL before the first step) and where results go */
	char *dc_mech;
	struct sasl_dovecot *dc;
	struct event_base *base;
	char *dc_socket, *client_ip;
	int secured;
	void (*done)(enum smtp_auth_rc rc, const char *challenge, void *arg);
	void *done_arg;
	struct crypt_verify *cv; /* a hash being checked in its thread */
	int step;		 /* challenges answered so far */
	const struct smtp_auth_users *users;
	char *user;
	char *challenge; /* CRAM-MD5: the challenge sent, decoded */
	char *hostname;
};

/* ------------------------------------------------------------ the table */

static const struct smtp_auth_user *auth_user_find(const struct smtp_auth_users *u,
						   const char *name)
{
	for (size_t i = 0; u && i < u->n; i++)
		if (strcmp(u->v[i].name, name) == 0)
			return &u->v[i];
	return NULL;
}

/* The plaintext password of a {PLAIN} entry (CRAM-MD5), or NULL. */
static const char *auth_password(const struct smtp_auth_users *u, const char *name)
{
	const struct smtp_auth_user *e = auth_user_find(u, name);

	return e ? e->password : NULL;
}

/* A password field: a crypt(3) hash, or {PLAIN} and the password itself. */
static int auth_users_secret(struct smtp_auth_user *e, const char *pass)
{
	if (strncmp(pass, "{PLAIN}", 7) == 0 && pass[7] != '\0') {
		e->password = xstrdup(pass + 7);
		return 0;
	}
	if (pass[0] == '$' && strlen(pass) >= 13 && strchr(pass + 1, '$') != NULL &&
	    strpbrk(pass, " \t:") == NULL) {
		e->hash = xstrdup(pass);
		return 0;
	}
	return -1;
}

/* One line: user, then ':' or blanks, then the password (rest of line). */
static int auth_users_line(struct smtp_auth_users *u, const char *path, int line, char *s,
			   struct buf *err)
{
	char *end = s + strlen(s), *sep, *pass;

	while (end > s && (end[-1] == '\n' || end[-1] == '\r'))
		*--end = '\0';
	s += strspn(s, " \t");
	if (*s == '\0' || *s == '#')
		return 0;
	sep = s + strcspn(s, ": \t");
	pass = sep + (*sep == ':' ? 1 : strspn(sep, " \t"));
	if (*sep == '\0' || sep == s || *pass == '\0') {
		buf_printf(err, "%s:%d: expected 'user password' or 'user:password'\n", path, line);
		return 1;
	}
	*sep = '\0';
	if (auth_user_find(u, s)) {
		buf_printf(err, "%s:%d: user %s given twice\n", path, line, s);
		return 1;
	}
	u->v = xrealloc(u->v, (u->n + 1) * sizeof(*u->v));
	memset(&u->v[u->n], 0, sizeof(*u->v));
	if (auth_users_secret(&u->v[u->n], pass) < 0) {
		buf_printf(err,
			   "%s:%d: the password of %s is neither a crypt(3) hash ($y$..., $6$...) "
			   "nor marked {PLAIN}: hash it with dialmail hash-password\n",
			   path, line, s);
		return 1;
	}
	u->v[u->n++].name = xstrdup(s);
	return 0;
}

/* {PLAIN} entries are allowed (CRAM-MD5 needs them) but said at every start. */
static void auth_users_warn_plain(const struct smtp_auth_users *u, const char *path,
				  struct buf *warn)
{
	size_t n = 0;

	for (size_t i = 0; i < u->n; i++)
		n += u->v[i].password != NULL;
	if (n)
		buf_printf(warn,
			   "%s: auth_users_file: %zu of %zu passwords stored in plaintext "
			   "({PLAIN}); hash them with dialmail hash-password unless CRAM-MD5 "
			   "needs them\n",
			   path, n, u->n);
}

/* Reads path; cfg (NULL: strict) says whether a file group or others may
 * access is only a warning, appended to warn. */
static int auth_users_read(struct smtp_auth_users **out, const char *path, const struct config *cfg,
			   struct buf *err, struct buf *warn)
{
	struct smtp_auth_users *u = xcalloc(1, sizeof(*u));
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	int n = 0, errors;

	if (f == NULL) {
		buf_printf(err, "%s: auth_users_file: cannot open: %s\n", path, strerror(errno));
		smtp_auth_users_free(u);
		return 1;
	}
	errors =
	    config_check_secret(cfg, "auth_users_file", path, fileno(f), "passwords", err, warn);
	while (errors == 0 && getline(&line, &cap, f) >= 0)
		errors += auth_users_line(u, path, ++n, line, err);
	if (line) {
		explicit_bzero(line, cap);
		free(line);
	}
	fclose(f);
	if (errors == 0 && u->n == 0) {
		buf_printf(err, "%s: auth_users_file: no users in it\n", path);
		errors = 1;
	}
	if (errors == 0)
		auth_users_warn_plain(u, path, warn);
	if (errors)
		smtp_auth_users_free(u);
	else
		*out = u;
	return errors;
}

int smtp_auth_users_load(struct smtp_auth_users **out, const char *path, struct buf *err)
{
	struct buf warn = BUF_INIT;
	int errors = auth_users_read(out, path, NULL, err, &warn);

	buf_free(&warn);
	return errors;
}

void smtp_auth_users_free(struct smtp_auth_users *u)
{
	if (u == NULL)
		return;
	for (size_t i = 0; i < u->n; i++) {
		free(u->v[i].name);
		if (u->v[i].password)
			explicit_bzero(u->v[i].password, strlen(u->v[i].password));
		free(u->v[i].password);
		free(u->v[i].hash);
	}
	free(u->v);
	free(u);
}

size_t smtp_auth_users_count(const struct smtp_auth_users *u)
{
	return u ? u->n : 0;
}

/* AUTH goes to Dovecot (auth_dovecot_socket). */
static int auth_dovecot(const struct config *cfg)
{
	return cfg->auth_dovecot_socket && *cfg->auth_dovecot_socket;
}

/* --------------------------------------------------------- config hook */

/* A relative file name is relative to the configuration file's directory. */
static void auth_resolve(char **field, const char *cfg_path)
{
	const char *slash = cfg_path ? strrchr(cfg_path, '/') : NULL;
	char *p;

	if (*field == NULL || **field == '\0' || **field == '/' || slash == NULL)
		return;
	p = xasprintf("%.*s/%s", (int)(slash - cfg_path), cfg_path, *field);
	free(*field);
	*field = p;
}

/* Moves text's lines to out, each after where setting was given. */
static void auth_report(struct config *cfg, const char *setting, struct buf *text, struct buf *out)
{
	struct buf where = BUF_INIT;

	config_where(cfg, setting, &where);
	config_prefix_lines(out, buf_cstr(&where), buf_cstr(text));
	buf_free(&where);
	buf_reset(text);
}

/* The private key holds a secret: only its owner may read it. */
static int auth_check_key_mode(struct config *cfg, struct buf *err)
{
	struct buf e = BUF_INIT, w = BUF_INIT;
	int fd = open(cfg->tls_key_file, O_RDONLY | O_CLOEXEC), errors = 0;

	if (fd >= 0) { /* cannot open: tls_server_ctx says so */
		errors = config_check_secret(cfg, "tls_key_file", cfg->tls_key_file, fd,
					     "a private key", &e, &w);
		close(fd);
	}
	auth_report(cfg, "tls_key_file", &e, err);
	auth_report(cfg, "tls_key_file", &w, &cfg->warnings);
	buf_free(&e);
	buf_free(&w);
	return errors;
}

static int auth_check_tls(struct config *cfg, struct buf *err)
{
	int have_cert = cfg->tls_cert_file && *cfg->tls_cert_file;
	int have_key = cfg->tls_key_file && *cfg->tls_key_file;
	struct buf ce = BUF_INIT, ke = BUF_INIT;
	SSL_CTX *ctx;
	int errors;

	if (!have_cert && !have_key)
		return 0;
	if (!have_cert || !have_key) {
		buf_puts(&ce, "tls_cert_file and tls_key_file: give both or neither\n");
		auth_report(cfg, have_cert ? "tls_cert_file" : "tls_key_file", &ce, err);
		buf_free(&ce);
		return 1;
	}
	if ((errors = auth_check_key_mode(cfg, err)) > 0)
		return errors;
	ctx = tls_server_ctx_split(cfg->tls_cert_file, cfg->tls_key_file, &ce, &ke);
	errors = ctx == NULL;
	auth_report(cfg, "tls_cert_file", &ce, err);
	auth_report(cfg, "tls_key_file", &ke, err);
	SSL_CTX_free(ctx);
	buf_free(&ce);
	buf_free(&ke);
	return errors;
}

int smtp_auth_config_finish(struct config *cfg, const char *cfg_path, struct buf *err)
{
	struct buf e = BUF_INIT, w = BUF_INIT;
	int errors;

	if (cfg->public_only)
		return 0; /* a local user's sendmail: the key and passwords are not theirs */
	auth_resolve(&cfg->tls_cert_file, cfg_path);
	auth_resolve(&cfg->tls_key_file, cfg_path);
	auth_resolve(&cfg->auth_users_file, cfg_path);
	errors = auth_check_tls(cfg, err);
	errors += listener_config_check(
	    cfg, auth_dovecot(cfg) || (cfg->auth_users_file && *cfg->auth_users_file), err);
	if (auth_dovecot(cfg) && cfg->auth_users_file && *cfg->auth_users_file) {
		buf_puts(&e, "auth_dovecot_socket: give auth_users_file or auth_dovecot_socket, "
			     "not both\n");
		auth_report(cfg, "auth_dovecot_socket", &e, err);
		errors++;
	}
	if (cfg->auth_users_file == NULL || *cfg->auth_users_file == '\0')
		return errors;
	/* the ODMR port (hub/odmr.c) and answered calls offer CRAM-MD5 without TLS */
	if (!(cfg->tls_cert_file && *cfg->tls_cert_file) && !cfg->auth_allow_plaintext &&
	    cfg->odmr_listen.n == 0 && cfg->answer == NULL) {
		buf_puts(&e, "auth_users_file: AUTH is offered only over TLS: set tls_cert_file "
			     "and tls_key_file (or auth_allow_plaintext = yes)\n");
		auth_report(cfg, "auth_users_file", &e, err);
		errors++;
	}
	errors += auth_users_read(&cfg->auth_users, cfg->auth_users_file, cfg, &e, &w);
	auth_report(cfg, "auth_users_file", &e, err);
	auth_report(cfg, "auth_users_file", &w, &cfg->warnings);
	buf_free(&e);
	buf_free(&w);
	return errors;
}

/* ------------------------------------------------------------- base64 */

static int b64_val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Strict RFC 4648 base64 (padding required); -1 if malformed. out gets
 * the octets and a terminating NUL (octets may include NULs). */
static int b64_decode(const char *in, struct buf *out)
{
	size_t n = strlen(in);

	buf_reset(out);
	if (n % 4)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;

		for (int k = 0; k < 4; k++) {
			int last = i + 4 == n;

			if (in[i + k] == '=' && last && k >= 2 && (k == 3 || in[i + 3] == '=')) {
				v[k] = 0;
				pad++;
				continue;
			}
			if ((v[k] = b64_val((unsigned char)in[i + k])) < 0 || pad)
				return -1;
		}
		buf_putc(out, (char)(v[0] << 2 | v[1] >> 4));
		if (pad < 2)
			buf_putc(out, (char)((v[1] & 15) << 4 | v[2] >> 2));
		if (pad < 1)
			buf_putc(out, (char)((v[2] & 3) << 6 | v[3]));
	}
	return 0;
}

static void b64_encode(struct buf *out, const void *data, size_t len)
{
	buf_reset(out);
	buf_reserve(out, 4 * ((len + 2) / 3) + 1);
	out->len = (size_t)EVP_EncodeBlock((unsigned char *)out->data, data, (int)len);
	out->data[out->len] = '\0';
}

/* ----------------------------------------------------------- exchanges */

/* CRAM-MD5 needs a password in the clear: offered only with {PLAIN} entries. */
static int auth_users_cram(const struct smtp_auth_users *u)
{
	for (size_t i = 0; u && i < u->n; i++)
		if (u->v[i].password)
			return 1;
	return 0;
}

int smtp_auth_enabled(const struct config *cfg)
{
	return cfg->auth_users != NULL || auth_dovecot(cfg);
}

const char *smtp_auth_mechanisms(const struct config *cfg)
{
	if (auth_dovecot(cfg))
		return "PLAIN LOGIN";
	return auth_users_cram(cfg->auth_users) ? "PLAIN LOGIN CRAM-MD5" : "PLAIN LOGIN";
}

/* Only these octets reach the auth protocol's tab-separated lines. */
static int auth_word_ok(const char *s, const char *allowed)
{
	return *s && strspn(s, allowed) == strlen(s);
}

#define B64_CHARS  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
#define MECH_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

struct smtp_auth_exchange *smtp_auth_start_dovecot(const struct config *cfg,
						   struct event_base *base, const char *mech,
						   const char *client_ip, int secured)
{
	struct smtp_auth_exchange *x;

	if (!auth_word_ok(mech, MECH_CHARS) || strlen(mech) > 20)
		return NULL;
	x = xcalloc(1, sizeof(*x));
	x->dc_mech = xstrdup(mech);
	for (char *c = x->dc_mech; *c; c++)
		*c = (char)toupper((unsigned char)*c);
	x->base = base;
	x->dc_socket = xstrdup(cfg->auth_dovecot_socket);
	x->client_ip = xstrdup(client_ip);
	x->secured = secured;
	return x;
}

void smtp_auth_set_done(struct smtp_auth_exchange *x, struct event_base *base,
			void (*done)(enum smtp_auth_rc rc, const char *challenge, void *arg),
			void *arg)
{
	x->base = base;
	x->done = done;
	x->done_arg = arg;
}

/* Dovecot's answer to a step. */
static void auth_dovecot_done(enum sasl_dc_rc rc, const char *data, void *arg)
{
	struct smtp_auth_exchange *x = arg;
	static const enum smtp_auth_rc map[] = {
	    [SASL_DC_CONTINUE] = SMTP_AUTH_CONTINUE,
	    [SASL_DC_OK] = SMTP_AUTH_OK,
	    [SASL_DC_FAIL] = SMTP_AUTH_FAIL,
	    [SASL_DC_TEMPFAIL] = SMTP_AUTH_TEMPFAIL,
	};

	if ((rc == SASL_DC_OK || rc == SASL_DC_FAIL) && data && x->user == NULL)
		x->user = xstrdup(data);
	if (rc == SASL_DC_TEMPFAIL)
		log_warnx("smtp: AUTH for %s: %s", x->client_ip, data);
	x->done(map[rc], rc == SASL_DC_CONTINUE ? data : NULL, x->done_arg);
}

/* A step of an exchange through Dovecot: the response goes there. */
static enum smtp_auth_rc auth_dovecot_step(struct smtp_auth_exchange *x, const char *response)
{
	if (response && strcmp(response, "*") == 0)
		return SMTP_AUTH_CANCELLED;
	if (response && strcmp(response, "=") != 0 && !auth_word_ok(response, B64_CHARS))
		return SMTP_AUTH_MALFORMED;
	x->step++;
	if (x->dc == NULL)
		x->dc = sasl_dovecot_start(x->base, x->dc_socket, x->dc_mech, response,
					   x->client_ip, x->secured, auth_dovecot_done, x);
	else
		sasl_dovecot_answer(x->dc, response ? response : "");
	return SMTP_AUTH_PENDING;
}

struct smtp_auth_exchange *smtp_auth_start(const char *mech, const struct smtp_auth_users *u,
					   const char *hostname)
{
	struct smtp_auth_exchange *x;

	for (size_t i = 0; i < sizeof(mech_names) / sizeof(mech_names[0]); i++) {
		if (strcasecmp(mech, mech_names[i]) != 0 ||
		    (i == MECH_CRAM_MD5 && !auth_users_cram(u)))
			continue;
		x = xcalloc(1, sizeof(*x));
		x->mech = (enum auth_mech)i;
		x->users = u;
		x->hostname = xstrdup(hostname);
		return x;
	}
	return NULL;
}

static void auth_hash_done(int ok, void *arg)
{
	struct smtp_auth_exchange *x = arg;

	x->cv = NULL;
	x->done(ok ? SMTP_AUTH_OK : SMTP_AUTH_FAIL, NULL, x->done_arg);
}

/* A password against a crypt(3) hash (libxcrypt: yescrypt, SHA-512, ...):
 * in a thread when the exchange has a loop to answer in (smtp_auth_set_done). */
static enum smtp_auth_rc auth_verify_hash(struct smtp_auth_exchange *x, const char *hash,
					  const char *pass)
{
	if (x->base && x->done &&
	    (x->cv = crypt_verify_start(x->base, hash, pass, auth_hash_done, x)) != NULL)
		return SMTP_AUTH_PENDING;
	return crypt_verify_now(hash, pass) ? SMTP_AUTH_OK : SMTP_AUTH_FAIL;
}

/* The password check shared by PLAIN and LOGIN (pass is NUL-terminated,
 * passlen octets without NUL). */
static enum smtp_auth_rc auth_verify(struct smtp_auth_exchange *x, const char *pass, size_t passlen)
{
	const struct smtp_auth_user *e = auth_user_find(x->users, x->user);
	const char *want = e ? e->password : NULL;

	if (e && e->hash)
		return strlen(pass) == passlen ? auth_verify_hash(x, e->hash, pass)
					       : SMTP_AUTH_FAIL;
	if (want == NULL || strlen(want) != passlen)
		return SMTP_AUTH_FAIL;
	return CRYPTO_memcmp(want, pass, passlen) == 0 ? SMTP_AUTH_OK : SMTP_AUTH_FAIL;
}

/* PLAIN: authzid NUL authcid NUL passwd; authzid empty or the same user. */
static enum smtp_auth_rc auth_plain(struct smtp_auth_exchange *x, const struct buf *in)
{
	const char *p = in->data ? in->data : "", *end = p + in->len;
	const char *authz = p, *authc, *pass;

	if ((authc = memchr(authz, '\0', (size_t)(end - authz))) == NULL)
		return SMTP_AUTH_MALFORMED;
	authc++;
	if ((pass = memchr(authc, '\0', (size_t)(end - authc))) == NULL)
		return SMTP_AUTH_MALFORMED;
	pass++;
	if (memchr(pass, '\0', (size_t)(end - pass)) != NULL || *authc == '\0')
		return SMTP_AUTH_MALFORMED;
	x->user = xstrdup(authc);
	if (*authz && strcmp(authz, authc) != 0)
		return SMTP_AUTH_FAIL; /* acting as another user is not supported */
	return auth_verify(x, pass, (size_t)(end - pass));
}

/* LOGIN: "Username:" then "Password:" (the user may come with AUTH). */
static enum smtp_auth_rc auth_login(struct smtp_auth_exchange *x, const struct buf *in,
				    struct buf *challenge)
{
	if (in && memchr(in->data ? in->data : "", '\0', in->len))
		return SMTP_AUTH_MALFORMED;
	if (x->user == NULL && (in == NULL || in->len == 0)) {
		b64_encode(challenge, "Username:", 9);
		return SMTP_AUTH_CONTINUE;
	}
	if (x->user == NULL) {
		x->user = xstrdup(in->data);
		b64_encode(challenge, "Password:", 9);
		return SMTP_AUTH_CONTINUE;
	}
	return auth_verify(x, in->data ? in->data : "", in->len);
}

static void auth_cram_challenge(struct smtp_auth_exchange *x, struct buf *challenge)
{
	unsigned char r[8];
	unsigned long long v = 0;

	if (RAND_bytes(r, sizeof(r)) != 1)
		abort(); /* no randomness: nothing safe to do */
	for (size_t i = 0; i < sizeof(r); i++)
		v = v << 8 | r[i];
	x->challenge = xasprintf("<%llu.%lld@%s>", v, (long long)clock_now(), x->hostname);
	b64_encode(challenge, x->challenge, strlen(x->challenge));
}

/* CRAM-MD5 answer: "user hex(HMAC-MD5(password, challenge))". */
static enum smtp_auth_rc auth_cram(struct smtp_auth_exchange *x, const struct buf *in)
{
	const char *sp = in->data ? strrchr(in->data, ' ') : NULL;
	const char *pass;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];

	if (sp == NULL || sp == in->data || memchr(in->data, '\0', in->len) || strlen(sp + 1) != 32)
		return SMTP_AUTH_MALFORMED;
	x->user = xstrndup(in->data, (size_t)(sp - in->data));
	if ((pass = auth_password(x->users, x->user)) == NULL)
		return SMTP_AUTH_FAIL;
	if (HMAC(EVP_md5(), pass, (int)strlen(pass), (const unsigned char *)x->challenge,
		 strlen(x->challenge), md, &mdlen) == NULL)
		return SMTP_AUTH_FAIL;
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	for (char *p = (char *)sp + 1; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return CRYPTO_memcmp(hex, sp + 1, 32) == 0 ? SMTP_AUTH_OK : SMTP_AUTH_FAIL;
}

enum smtp_auth_rc smtp_auth_step(struct smtp_auth_exchange *x, const char *response,
				 struct buf *challenge)
{
	struct buf in = BUF_INIT;
	enum smtp_auth_rc rc;

	buf_reset(challenge);
	if (x->dc_mech)
		return auth_dovecot_step(x, response);
	if (response && strcmp(response, "*") == 0)
		return SMTP_AUTH_CANCELLED;
	if (response && strcmp(response, "=") != 0 && b64_decode(response, &in) < 0) {
		buf_free(&in);
		return SMTP_AUTH_MALFORMED;
	}
	x->step++;
	switch (x->mech) {
	case MECH_PLAIN:
		if (response == NULL) { /* empty challenge, then the answer */
			rc = x->step > 1 ? SMTP_AUTH_MALFORMED : SMTP_AUTH_CONTINUE;
			break;
		}
		rc = auth_plain(x, &in);
		break;
	case MECH_LOGIN:
		rc = auth_login(x, response ? &in : NULL, challenge);
		break;
	default:
		if (x->challenge == NULL && response == NULL) {
			auth_cram_challenge(x, challenge);
			rc = SMTP_AUTH_CONTINUE;
		} else if (x->challenge == NULL) {
			rc = SMTP_AUTH_MALFORMED; /* no initial response in CRAM-MD5 */
		} else {
			rc = auth_cram(x, &in);
		}
	}
	if (in.data)
		explicit_bzero(in.data, in.cap);
	buf_free(&in);
	return rc;
}

const char *smtp_auth_mech(const struct smtp_auth_exchange *x)
{
	return x->dc_mech ? x->dc_mech : mech_names[x->mech];
}

const char *smtp_auth_user(const struct smtp_auth_exchange *x)
{
	return x->user;
}

void smtp_auth_free(struct smtp_auth_exchange *x)
{
	if (x == NULL)
		return;
	free(x->user);
	free(x->challenge);
	free(x->hostname);
	sasl_dovecot_free(x->dc);
	crypt_verify_cancel(x->cv);
	free(x->dc_mech);
	free(x->dc_socket);
	free(x->client_ip);
	free(x);
}

static void smtp_auth_cfg_release(struct config *cfg)
{
	smtp_auth_users_free(cfg->auth_users);
}

const struct config_module smtp_auth_config_module = {
    .name = "smtp_auth",
    .finish = smtp_auth_config_finish,
    .release = smtp_auth_cfg_release,
};
