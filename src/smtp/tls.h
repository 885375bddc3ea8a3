/* TLS contexts for the SMTP server side (STARTTLS, RFC 3207) from PEM files,
 * and the checks every TLS client here shares (name, certificate pin).
 * Invariant: a server context returned here has a certificate and a
 * matching key loaded and refuses protocol versions below TLS 1.2. */
#ifndef SMTP_TLS_H
#define SMTP_TLS_H
#include <openssl/ssl.h>

#include "lib/fingerprint.h"
#include "lib/buf.h"

/* A server context from cert_file (PEM chain) and key_file (PEM); NULL
 * with "path: problem" lines appended to err. */
SSL_CTX *tls_server_ctx(const char *cert_file, const char *key_file, struct buf *err);
/* The same, with the problems of the certificate and of the key apart (the
 * configuration check names the line of each setting). */
SSL_CTX *tls_server_ctx_split(const char *cert_file, const char *key_file, struct buf *cert_err,
			      struct buf *key_err);
/* The text of OpenSSL's most recent error (and clears the error queue). */
const char *tls_error_text(char *out, size_t len);

/* --- client side (smtp_client.c, the ATRN and direct-line clients) ------- */

/* 1 if the SHA-256 of cert (DER) is the pin (any form fingerprint_parse takes). */
int tls_pin_matches(X509 *cert, const char *pin);
/* Sets SNI for a host name (not for an address) and, when verify, the name
 * or address the peer's certificate must carry. name NULL: nothing. */
void tls_client_name(SSL *ssl, const char *name, int verify);

/* Session resumption (RFC 8446 2.2, RFC 5077): on a metered link a resumed
 * handshake saves the certificate chain, kilobytes each call. A client
 * context set up with tls_resume_ctx keeps each session a server gives in
 * the file its SSL names (tls_resume_ssl: mode 0600, replaced atomically),
 * and the next handshake with that file offers it. The file holds a secret
 * of the session: its directory should be private. */
void tls_resume_ctx(SSL_CTX *ctx);
/* Offers the session kept in path, if any, and keeps new ones there. path
 * must outlive ssl. */
void tls_resume_ssl(SSL *ssl, const char *path);
/* The file name for a peer under dir: "dir/" + peer with characters other
 * than letters, digits, '.', '-' made '_'. Caller frees. */
char *tls_resume_path(const char *dir, const char *peer);

#endif
