/* TLS contexts for the SMTP server side (STARTTLS, RFC 3207) from PEM files.
 * Invariant: a context returned here has a certificate and a matching key
 * loaded and refuses protocol versions below TLS 1.2. */
#ifndef SMTP_TLS_H
#define SMTP_TLS_H
#include <openssl/ssl.h>

#include "lib/buf.h"

/* A server context from cert_file (PEM chain) and key_file (PEM); NULL
 * with "path: problem" lines appended to err. */
SSL_CTX *tls_server_ctx(const char *cert_file, const char *key_file, struct buf *err);
/* The text of OpenSSL's most recent error (and clears the error queue). */
const char *tls_error_text(char *out, size_t len);

#endif
