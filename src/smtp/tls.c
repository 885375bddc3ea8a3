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
