/* Length-tracked byte buffer for protocol data and text building.
 * Invariant: data[len] == '\0' whenever data != NULL, so text can be used as a C string. */
#ifndef LIB_BUF_H
#define LIB_BUF_H
#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT                                                                                   \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
const char *buf_cstr(struct buf *b); /* never NULL */
char *buf_steal(struct buf *b);	     /* caller frees; b becomes empty */
/* Appends s[0..len) with control bytes written as \r, \n, \t or \xHH, so
 * text a user wrote (a configuration value, a file name) cannot move the
 * cursor or start an escape sequence when an error message echoes it. */
void buf_put_escaped(struct buf *b, const char *s, size_t len);

#endif
