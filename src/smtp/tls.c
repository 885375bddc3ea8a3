/* TLS server contexts from PEM certificate and key files, shared by the SMTP
 * server and the ODMR server, and the client checks (name, pin) shared by
 * every TLS client. Invariant: no server context leaves here without a
 * certificate, its matching private key, and a TLS 1.2 floor. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "lib/fingerprint.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

#include "smtp/tls.h"

const char *tls_error_text(char *out, size_t len)
{
	unsigned long e, last = 0;

	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last == 0)
		snprintf(out, len, "unknown TLS error");
	else
		ERR_error_string_n(last, out, len);
	return out;
}

/* Both files must be readable now: a typo is a config error, not a
 * STARTTLS that silently disappears. */
static int tls_readable(const char *path, const char *what, struct buf *err)
{
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		buf_printf(err, "%s: %s: cannot open: %s\n", path, what, strerror(errno));
		return -1;
	}
	fclose(f);
	return 0;
}

SSL_CTX *tls_server_ctx(const char *cert_file, const char *key_file, struct buf *err)
{
	return tls_server_ctx_split(cert_file, key_file, err, err);
}

SSL_CTX *tls_server_ctx_split(const char *cert_file, const char *key_file, struct buf *cert_err,
			      struct buf *key_err)
{
	struct buf *err = key_err;
	SSL_CTX *ctx;
	char msg[256];

	if (tls_readable(cert_file, "tls_cert_file", cert_err) < 0 ||
	    tls_readable(key_file, "tls_key_file", key_err) < 0)
		return NULL;
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		buf_printf(err, "TLS: cannot create a context: %s\n",
			   tls_error_text(msg, sizeof(msg)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		buf_printf(cert_err, "%s: tls_cert_file: %s\n", cert_file,
			   tls_error_text(msg, sizeof(msg)));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		buf_printf(err, "%s: tls_key_file: %s\n", key_file,
			   tls_error_text(msg, sizeof(msg)));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		buf_printf(err, "%s: tls_key_file: the key does not match %s\n", key_file,
			   cert_file);
		ERR_clear_error();
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int tls_pin_matches(X509 *cert, const char *pin)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1], *want = fingerprint_parse(pin);
	int ok;

	if (want == NULL || !X509_digest(cert, EVP_sha256(), md, &n)) {
		free(want);
		return 0;
	}
	for (unsigned i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	hex[2 * n] = '\0';
	ok = strcmp(hex, want) == 0;
	free(want);
	return ok;
}

void tls_client_name(SSL *ssl, const char *name, int verify)
{
	unsigned char tmp[16];
	int ip;

	if (name == NULL)
		return;
	ip = inet_pton(AF_INET, name, tmp) == 1 || inet_pton(AF_INET6, name, tmp) == 1;
	if (!ip)
		SSL_set_tlsext_host_name(ssl, name);
	if (verify) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
		if (ip)
			X509_VERIFY_PARAM_set1_ip_asc(vp, name);
		else
			X509_VERIFY_PARAM_set1_host(vp, name, 0);
	}
}

/* --- client session resumption ------------------------------------------- */

static int tls_resume_index = -1; /* SSL ex_data slot: the session file */

/* A server sent a session (TLS 1.3: after the handshake, with the next
 * data): keep it in the SSL's file. Returns 0: OpenSSL keeps no reference. */
static int tls_resume_new(SSL *ssl, SSL_SESSION *sess)
{
	const char *path = SSL_get_ex_data(ssl, tls_resume_index);
	int len = i2d_SSL_SESSION(sess, NULL);
	unsigned char *der, *p;

	if (path == NULL || len <= 0 || !SSL_SESSION_is_resumable(sess))
		return 0;
	der = p = xmalloc((size_t)len);
	if (i2d_SSL_SESSION(sess, &p) == len && fs_write_atomic(path, der, (size_t)len, 0600) < 0)
		log_warn("tls: cannot keep the session in %s", path);
	free(der);
	return 0;
}

void tls_resume_ctx(SSL_CTX *ctx)
{
	if (tls_resume_index < 0)
		tls_resume_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	SSL_CTX_set_session_cache_mode(ctx,
				       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, tls_resume_new);
}

void tls_resume_ssl(SSL *ssl, const char *path)
{
	struct buf der = BUF_INIT;
	const unsigned char *p;
	SSL_SESSION *sess;

	if (tls_resume_index < 0 || path == NULL)
		return;
	SSL_set_ex_data(ssl, tls_resume_index, (void *)path);
	if (fs_read_file(path, &der) == 0 && der.len > 0 && der.len < 65536) {
		p = (const unsigned char *)der.data;
		sess = d2i_SSL_SESSION(NULL, &p, (long)der.len);
		if (sess && SSL_SESSION_is_resumable(sess))
			SSL_set_session(ssl, sess); /* takes its own reference */
		SSL_SESSION_free(sess);
		ERR_clear_error(); /* a stale or damaged file is only a full handshake */
	}
	buf_free(&der);
}

char *tls_resume_path(const char *dir, const char *peer)
{
	char *path = xasprintf("%s/%s", dir, peer);

	for (char *q = path + strlen(dir) + 1; *q; q++)
		if (!isalnum((unsigned char)*q) && *q != '.' && *q != '-')
			*q = '_';
	return path;
}
