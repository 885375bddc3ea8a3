/* modemsim: a Hayes-compatible modem on a pseudo-terminal, for tests and demos.
 * One struct modem holds all state and one poll() loop drives it; a call's
 * resources (sockets, queues, gateway listener) exist only while the call does. */
#ifndef MODEMSIM_H
#define MODEMSIM_H
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "lib/buf.h"

#define MS_NREG	    100 /* S-registers S0..S99 */
#define MS_MAXLINE  255 /* command line length, as on most Hayes modems */
#define MS_MAXRELAY 64	/* gateway connections at once (Postfix opens 20 a destination) */
#define MS_MAXLIST  256 /* entries in --script / --fail-results */
#define MS_MAXPOLL  (8 + 2 * MS_MAXRELAY)

/* Result codes, numbered as in the Hayes command set (5 is unused here). */
enum ms_code {
	RC_OK = 0,
	RC_CONNECT = 1,
	RC_RING = 2,
	RC_NO_CARRIER = 3,
	RC_ERROR = 4,
	RC_NO_DIALTONE = 6,
	RC_BUSY = 7,
	RC_NO_ANSWER = 8,
};

/* What one dial attempt does: connect, answer a failure code, or a fault. */
enum ms_kind { OC_CONNECT, OC_RESULT, OC_WEDGE, OC_SILENT, OC_GARBAGE };

struct ms_outcome {
	enum ms_kind kind;
	int code;   /* OC_RESULT: the result code */
	long speed; /* OC_CONNECT: CONNECT speed, 0 = --bps */
	long long
	    drop; /* OC_CONNECT: carrier lost after this many bytes, -1 = --drop-after-bytes */
};

/* A named link (--profile): the line settings it stands for. */
struct ms_profile {
	const char *name;
	long bps;
	long latency_ms;
	double setup_s; /* call setup: ATD to CONNECT */
	long turnaround_ms;
};

/* Which line settings the command line gave (a profile fills the others). */
#define MS_GIVEN_BPS	    1u
#define MS_GIVEN_LATENCY    2u
#define MS_GIVEN_DELAY	    4u
#define MS_GIVEN_TURNAROUND 8u

struct ms_opts {
	const char *link;
	const char *transcript;
	struct ms_outcome script[MS_MAXLIST];
	int nscript;
	struct ms_outcome pool[MS_MAXLIST]; /* failures --fail-rate picks from */
	int npool;
	double fail_rate;
	uint64_t seed;
	long wedge_after; /* 0 = never */
	bool silent, garbage;
	long long drop_after; /* -1 = never */
	long bps;
	long latency_ms;
	double connect_delay;
	long turnaround_ms; /* > 0: half duplex, this long to change direction */
	long long drop_lo;  /* --drop-random LO:HI; drop_hi -1 = off */
	long long drop_hi;
	double drop_chance;  /* probability a call gets a random drop */
	const char *profile; /* --profile name, NULL = none */
	bool have_target;
	struct sockaddr_storage target;
	socklen_t target_len;
	char target_name[300];
	int gateway_port; /* 0 = serial data path */
	int reverse_port; /* --reverse-gateway PORT:HOST:PORT: far-side listener, 0 = none */
	struct sockaddr_storage rtarget; /* ... where its connections go (the dialer's side) */
	socklen_t rtarget_len;
	char rtarget_name[300];
	int answer_port; /* --answer-port: incoming calls; 0 = none */
	long ring_interval_ms;
	long max_rings;
};

enum ms_state { ST_COMMAND, ST_DIALING, ST_ONLINE, ST_ONLINE_CMD };

/* The wedge model: DEAD ignores everything until the line is closed (DTR
 * drop); WANT_ATZ then ignores everything but a command line starting ATZ. */
enum ms_wedge { WEDGE_NONE, WEDGE_DEAD, WEDGE_WANT_ATZ };

/* One piece of data on the simulated wire, delivered at `due`. */
struct ms_chunk {
	struct ms_chunk *next;
	int64_t due;
	int relay;  /* gateway relay slot, -1 = the serial line / --connect socket */
	bool eof;   /* end of stream marker (len 0) */
	size_t len; /* bytes in data[] */
	size_t off; /* bytes already delivered */
	char data[];
};

/* One direction of the line: a FIFO whose due times model bps and latency. */
struct ms_pipe {
	struct ms_chunk *head, *tail;
	size_t bytes;
	int64_t wire_free; /* when the last queued byte has left the sender */
};

/* One end of a TCP stream with its pending output. */
struct ms_end {
	int fd;
	struct buf out;
	size_t off;	/* bytes of out already written */
	bool eof;	/* peer closed its sending side */
	bool shut;	/* shut down our sending side once out is written */
	bool shut_done; /* ... and we did */
};

struct ms_relay {
	bool used;
	bool reverse;	 /* accepted on the reverse gateway: the client is the far end */
	bool connecting; /* remote connect() in progress */
	struct ms_end client, remote;
};

struct ms_call {
	long no;
	char number[64];
	struct ms_outcome oc;
	int64_t due;	 /* dial result time; 0 = none (silent dial) */
	bool connecting; /* waiting for the --connect socket */
	int64_t connect_deadline;
	long speed;
	long long drop;
	unsigned long long tx, rx; /* bytes that crossed the wire each way */
	struct ms_end remote;	   /* serial data path: the --connect socket */
	struct ms_pipe up, down;   /* dialer -> far end, far end -> dialer */
	int64_t line_free;	   /* half duplex: when the shared wire is free */
	int line_dir;		   /* half duplex: 1 up, 2 down, 0 not used yet */
	int plus;		   /* escape characters seen (0..3) */
	int64_t plus_time, last_data;
	int listen_fd;	/* --gateway-port listener while the call is up */
	int rlisten_fd; /* --reverse-gateway listener while the call is up */
	struct ms_relay relays[MS_MAXRELAY];
};

struct modem {
	struct ms_opts o;
	int master;
	char slave[128];
	bool line_open;
	int ino_fd; /* inotify on the slave: sees every open and close */
	int opens;  /* slave opens minus closes, from inotify */
	int64_t tick;
	struct buf out; /* bytes for the dialer */
	size_t out_off;
	/* settings (ATZ / AT&F restore them) */
	bool echo, verbose, quiet;
	int xlevel;
	int s[MS_NREG];
	/* command line being typed */
	char line[MS_MAXLINE + 1];
	size_t linelen;
	bool overflow;
	char last[MS_MAXLINE + 1];
	enum ms_state state;
	enum ms_wedge wedge;
	long attempts;	    /* dial attempts so far = last call number */
	long since_recover; /* dial attempts since start or last wedge recovery */
	int script_pos;
	uint64_t rng, noise_rng, drop_rng;
	struct ms_call call;
	unsigned gen;	   /* bumped when fds close, so a poll batch stops early */
	int answer_fd;	   /* --answer-port listener, -1 = none */
	int ring_fd;	   /* the incoming call ringing, -1 = none */
	int rings;	   /* RINGs sent for it */
	int64_t next_ring; /* when the next RING is due */
	FILE *tr;
};

/* A poll set being built for one loop turn. */
struct ms_poll {
	struct pollfd pfd[MS_MAXPOLL];
	void (*cb[MS_MAXPOLL])(struct modem *m, void *arg, short revents);
	void *arg[MS_MAXPOLL];
	int n;
	int64_t deadline; /* earliest timer, 0 = none */
};

/* modemsim.c */
void ms_log(struct modem *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ms_send(struct modem *m, const void *data, size_t len);
void ms_poll_add(struct ms_poll *p, int fd, short events, void (*cb)(struct modem *, void *, short),
		 void *arg);
void ms_poll_timer(struct ms_poll *p, int64_t when);
uint64_t ms_rand(uint64_t *state);
void ms_quote(const char *s, size_t len, char *out, size_t outlen);

/* at.c: the command interpreter */
void at_reset(struct modem *m);
void at_input(struct modem *m, const char *data, size_t len);
const char *at_result(struct modem *m, int code, long speed);
void at_garbage(struct modem *m);
int at_parse_outcome(const char *text, struct ms_outcome *oc);
const char *at_code_name(int code);
void at_attempt_over(struct modem *m);

/* call.c: dialing, the data path and the gateway */
void call_dial(struct modem *m, const char *number);
void call_abort(struct modem *m, const char *why);
void call_hangup(struct modem *m, const char *reason);
void call_online(struct modem *m);
void call_pty_data(struct modem *m, const char *data, size_t len);
bool call_pty_blocked(struct modem *m);
void call_prepare(struct modem *m, struct ms_poll *p);
void call_timers(struct modem *m);

/* profile.c: named links and random drops */
const struct ms_profile *profile_find(const char *name);
void profile_apply(struct ms_opts *o, const struct ms_profile *p, unsigned given);
long long profile_drop(struct modem *m, long long scripted);

/* answer.c: incoming calls on --answer-port */
int answer_listen(struct modem *m);
bool answer_ringing(const struct modem *m);
/* Takes the ringing call: the call is set up, not yet online; -1 if none. */
int answer_pickup(struct modem *m);
void answer_prepare(struct modem *m, struct ms_poll *p);
void answer_timers(struct modem *m);

#endif
