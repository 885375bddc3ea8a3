/* type = modem: a call through a Hayes modem (modem.c) on the entry's
 * device, then the data phase its data setting names (none, ppp, direct,
 * command; ppp lives in link_ppp.c). Invariant: the device stays open and
 * locked from open to close, across every attempt and recovery, and a call
 * that is not up leaves no data phase running and the modem on hook. */
#include <string.h>

#include "link/link_type.h"

/* The state of a modem link. */
struct link_modem {
	struct modem m;
	const struct link_data *data;
	pid_t child; /* the data phase's process (pppd), 0 if none */
};

/* data = none: nobody else reads the line, so the modem's own words tell
 * whether the carrier is still there. */
static int link_modem_carrier(struct modem *m, pid_t *child, struct cause *c)
{
	return modem_carrier(m, c);
}

/* data = command: `up` runs with the line as its stdin and stdout. */
static int link_modem_up_command(const struct phonebook_entry *e, struct modem *m, pid_t *child,
				 struct cause *c)
{
	return link_run(e->up, m->port.fd, e->up_timeout_ms, c);
}

static const struct link_data link_data_none = {.name = "none", .alive = link_modem_carrier};
static const struct link_data link_data_direct = {.name = "direct", .direct = 1};
static const struct link_data link_data_command = {.name = "command",
						   .start = link_modem_up_command};

/* The data phases; the first is the default. */
static const struct link_data *const link_modem_datas[] = {
    &link_data_none,
    &link_data_ppp,
    &link_data_direct,
    &link_data_command,
};

static const struct link_data *link_modem_data(enum pb_data d)
{
	const char *name = phonebook_data_name(d);

	for (size_t i = 0; i < sizeof(link_modem_datas) / sizeof(link_modem_datas[0]); i++)
		if (strcmp(link_modem_datas[i]->name, name) == 0)
			return link_modem_datas[i];
	return link_modem_datas[0];
}

static int link_modem_open(struct link *l, const char *lock_dir, struct cause *c)
{
	struct link_modem *lm = l->state;

	lm->data = link_modem_data(l->e->data);
	return modem_open(&lm->m, l->e, lock_dir, c);
}

/* Init strings, then the dial; CONNECT is the line up. */
static int link_modem_call(struct link *l, const char *number, struct cause *c)
{
	struct link_modem *lm = l->state;

	if (modem_init(&lm->m, c) < 0 || modem_dial(&lm->m, number, c) < 0)
		return -1;
	snprintf(l->connect, sizeof(l->connect), "%s", lm->m.connect);
	l->speed = lm->m.speed;
	return 0;
}

static int link_modem_start(struct link *l, struct cause *c)
{
	struct link_modem *lm = l->state;

	if (lm->data->start == NULL)
		return 0;
	return lm->data->start(l->e, &lm->m, &lm->child, c);
}

/* Stops the data phase (pppd). */
static void link_modem_down(struct link *l)
{
	struct link_modem *lm = l->state;

	if (lm->child)
		link_reap(lm->child);
	lm->child = 0;
}

/* Stops the data phase of a failed call and hangs the modem up. */
static void link_modem_abort(struct link *l, int hold_ms)
{
	struct link_modem *lm = l->state;
	struct cause ignored;

	link_modem_down(l);
	if (lm->m.connect[0])
		modem_hangup(&lm->m, hold_ms, &ignored);
}

/* DTR drop, reopen, ATZ and the init strings again. */
static int link_modem_recover(struct link *l, int hold_ms, struct cause *c)
{
	struct link_modem *lm = l->state;

	return modem_recover(&lm->m, hold_ms, c);
}

static int link_modem_fd(const struct link *l)
{
	const struct link_modem *lm = l->state;

	return lm->data->direct ? lm->m.port.fd : -1;
}

static int link_modem_alive(struct link *l, struct cause *c)
{
	struct link_modem *lm = l->state;

	if (lm->data->alive == NULL)
		return 0;
	return lm->data->alive(&lm->m, &lm->child, c);
}

/* DTR drop, close, and the lock removed. */
static void link_modem_close(struct link *l)
{
	struct link_modem *lm = l->state;

	modem_close(&lm->m);
}

const struct link_type link_type_modem = {
    .name = "modem",
    .state_size = sizeof(struct link_modem),
    .dials = 1,
    .open = link_modem_open,
    .call = link_modem_call,
    .start = link_modem_start,
    .abort = link_modem_abort,
    .recover = link_modem_recover,
    .fd = link_modem_fd,
    .alive = link_modem_alive,
    .down = link_modem_down,
    .close = link_modem_close,
};
