/* The ATRN command and its reply (RFC 2645), once for retrieve = atrn over
 * TCP (dialup/atrn.c) and for the modem line (dialup/direct.c), both on the
 * one client dialogue (retrieve_client.h). */
#ifndef DIALUP_ATRN_H
#define DIALUP_ATRN_H

#include "dialup/retrieve_client.h"
#include "dialup/session_config.h"

/* ATRN atrn_domains; its reply goes to the client's ops->reply. */
void atrn_command(struct retrieve_client *c, const struct session_config *sc);
/* The hub's reply to ATRN: a step (event 4124), and QUIT unless it is 250.
 * 1: 250, the roles reverse; 0: 453, no mail waiting; -1: refused. */
int atrn_answer(struct retrieve_client *c, int code, const char *text);

#endif
