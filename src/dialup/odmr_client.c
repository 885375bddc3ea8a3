/* The branch's ATRN dialogue, shared by the ATRN job over TCP
 * (dialup/atrn.c) and the direct line (dialup/direct.c): AUTH answers,
 * reply parsing, EHLO offers, and TLS with the atrn_tls, atrn_ca and
 * atrn_fingerprint checks. Invariant: the checks are the same on both paths. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/x509v3.h>

#include "dialup/odmr_client.h"
#include "lib/xmalloc.h"
#include "smtp/tls.h"

/* --- the client's dialogue ---------------------------------------------- */

char *odmr_client_host(const char *h, int *port)
{
	const char *colon = strrchr(h, ':');

	if (h[0] == '[') {
		const char *rb = strchr(h, ']');
		if (rb && rb[1] == ':')
			*port = atoi(rb + 2);
		return xstrndup(h + 1, rb ? (size_t)(rb - h - 1) : strlen(h + 1));
	}
	if (colon && strchr(h, ':') == colon) {
		*port = atoi(colon + 1);
		return xstrndup(h, (size_t)(colon - h));
	}
	return xstrdup(h);
}

void odmr_client_vsend(struct bufferevent *bev, const char *fmt, va_list ap)
{
	struct evbuffer *out = bufferevent_get_output(bev);

	evbuffer_add_vprintf(out, fmt, ap);
	evbuffer_add(out, "\r\n", 2);
}

static char *odmr_client_b64(const unsigned char *p, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

/* CRAM-MD5 (RFC 2195): "user hex(HMAC-MD5(password, challenge))". */
char *odmr_client_cram(const struct auth_cred *cred, const char *challenge64)
{
	unsigned char ch[512], mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	int n = (int)strlen(challenge64);
	struct buf ans = BUF_INIT;
	char *enc;

	if (n > 680 || (n = EVP_DecodeBlock(ch, (const unsigned char *)challenge64, n)) < 0)
		return NULL;
	for (size_t k = strlen(challenge64); k > 0 && challenge64[k - 1] == '=' && n > 0; k--)
		n--; /* DecodeBlock counts the padding as NUL octets */
	HMAC(EVP_md5(), cred->password, (int)strlen(cred->password), ch, (size_t)n, mac, &maclen);
	buf_printf(&ans, "%s ", cred->user);
	for (unsigned i = 0; i < maclen; i++)
		buf_printf(&ans, "%02x", mac[i]);
	enc = odmr_client_b64((const unsigned char *)ans.data, ans.len);
	explicit_bzero(ans.data, ans.len);
	buf_free(&ans);
	return enc;
}

char *odmr_client_plain(const struct auth_cred *cred)
{
	size_t u = strlen(cred->user), p = strlen(cred->password);
	unsigned char *raw = xmalloc(u + p + 3);
	char *enc;

	raw[0] = '\0';
	memcpy(raw + 1, cred->user, u);
	raw[u + 1] = '\0';
	memcpy(raw + u + 2, cred->password, p);
	enc = odmr_client_b64(raw, u + p + 2);
	explicit_bzero(raw, u + p + 2);
	free(raw);
	return enc;
}

void odmr_client_caps(const char *reply, struct odmr_client_caps *caps)
{
	char *t = xstrdup(reply);

	memset(caps, 0, sizeof(*caps));
	/* lines joined by '\n' (the ODMR dialogue) or "; " (plain SMTP's) */
	for (char *l = strtok(t, "\n;"); l; l = strtok(NULL, "\n;")) {
		l += strspn(l, " ");
		for (char *c = l; *c; c++)
			*c = (char)toupper((unsigned char)*c);
		caps->starttls |= strcmp(l, "STARTTLS") == 0;
		caps->atrn |= strcmp(l, "ATRN") == 0;
		if (strncmp(l, "XDMBATCH 1 ", 11) == 0 && strstr(l, " DUPLEX")) {
			const char *d = strstr(l, " DICT=");

			caps->duplex = 1;
			caps->dict = d ? atoi(d + 6) : 0;
		}
		caps->xdmbatch |= strncmp(l, "XDMBATCH", 8) == 0 && (l[8] == '\0' || l[8] == ' ');
		if (strncmp(l, "AUTH ", 5) == 0) {
			caps->cram |= strstr(l, " CRAM-MD5") != NULL;
			caps->plain |= strstr(l, " PLAIN") != NULL;
		}
	}
	free(t);
}

char *odmr_client_atrn_cmd(const struct strlist *domains)
{
	struct buf d = BUF_INIT;

	buf_puts(&d, "ATRN ");
	for (size_t i = 0; i < domains->n; i++)
		buf_printf(&d, "%s%s", i ? "," : "", domains->v[i]);
	return buf_steal(&d);
}

int odmr_client_reply_line(struct buf *reply, size_t max, const char *line, size_t n)
{
	int code = n >= 3 ? atoi(line) : 0;

	if (reply->len < max)
		buf_printf(reply, "%s%s", reply->len ? "\n" : "", n > 4 ? line + 4 : "");
	if (code < 200 || code > 599)
		return -1;
	return n < 4 || line[3] != '-' ? code : 0;
}

/* --- TLS for the client's dialogue ------------------------------------------- */

static const char *const odmr_client_tls_names[] = {"opportunistic", "none", "required"};

int odmr_client_tls_policy(const char *value)
{
	for (int i = 0; i < 3; i++)
		if (strcasecmp(value, odmr_client_tls_names[i]) == 0)
			return i;
	return -1;
}

const char *odmr_client_tls_name(int policy)
{
	return policy >= 0 && policy < 3 ? odmr_client_tls_names[policy] : "?";
}

int odmr_client_tls_verifies(const struct session_config *sc)
{
	return sc->atrn_ca != NULL ||
	       (sc->atrn_tls == ODMR_TLS_REQUIRED && sc->atrn_fingerprint == NULL);
}

/* The context: TLS 1.2 at least; the chain is judged after the handshake
 * (odmr_client_tls_check), so a failure has our words, not an alert. */
static SSL_CTX *odmr_client_tls_ctx(const struct session_config *sc, struct buf *why)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char msg[256];

	if (ctx == NULL) {
		buf_printf(why, "TLS: cannot create a context: %s",
			   tls_error_text(msg, sizeof(msg)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (sc->atrn_ca == NULL)
		SSL_CTX_set_default_verify_paths(ctx);
	else if (SSL_CTX_load_verify_locations(ctx, sc->atrn_ca, NULL) != 1) {
		buf_printf(why, "TLS: atrn_ca %s: %s", sc->atrn_ca,
			   tls_error_text(msg, sizeof(msg)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

SSL *odmr_client_tls_ssl(const struct session_config *sc, const char *host, struct buf *why)
{
	SSL_CTX *ctx = odmr_client_tls_ctx(sc, why);
	SSL *ssl = ctx ? SSL_new(ctx) : NULL; /* holds its own reference to ctx */

	SSL_CTX_free(ctx);
	if (ssl == NULL) {
		if (ctx)
			buf_puts(why, "TLS: cannot create a session");
		return NULL;
	}
	if (host == NULL)
		return ssl;
	tls_client_name(ssl, host, odmr_client_tls_verifies(sc));
	return ssl;
}

int odmr_client_tls_check(const struct session_config *sc, SSL *ssl, struct buf *why)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	long vr = SSL_get_verify_result(ssl);
	int rc = -1;

	if (cert == NULL)
		buf_puts(why, "TLS: the hub sent no certificate");
	else if (odmr_client_tls_verifies(sc) && vr != X509_V_OK)
		buf_printf(why, "TLS: the hub's certificate does not verify (%s%s): %s",
			   sc->atrn_ca ? "atrn_ca " : "system CAs", sc->atrn_ca ? sc->atrn_ca : "",
			   X509_verify_cert_error_string(vr));
	else if (sc->atrn_fingerprint && !tls_pin_matches(cert, sc->atrn_fingerprint))
		buf_puts(why, "TLS: the hub's certificate does not match atrn_fingerprint");
	else {
		buf_printf(why, "%s %s%s", SSL_get_version(ssl), SSL_get_cipher_name(ssl),
			   odmr_client_tls_verifies(sc) ? ", certificate verified"
			   : sc->atrn_fingerprint	? ", certificate matches the pin"
							: ", certificate not verified");
		rc = 0;
	}
	X509_free(cert);
	return rc;
}

void odmr_client_tls_error(struct bufferevent *bev, struct buf *why)
{
	unsigned long e, last = 0;
	char msg[256];

	while ((e = bufferevent_get_openssl_error(bev)) != 0)
		last = e;
	if (last == 0) {
		buf_puts(why, "TLS handshake failed (connection closed)");
		return;
	}
	ERR_error_string_n(last, msg, sizeof(msg));
	buf_printf(why, "TLS handshake failed: %s", msg);
}
