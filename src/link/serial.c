/* The serial back-end of port.h for the modem dialer: UUCP lock files (HDB
 * format, stale-lock removal), raw termios, DTR drop and close/reopen for
 * hang-up, and reads/writes bounded by poll() timeouts. Invariant: no call
 * blocks longer than the timeout it was given (plus the DTR hold time in
 * hang-up). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "link/serial.h"

/* A serial port's state behind struct port (whose fd is the open tty). */
struct serial {
	char *lockfile; /* "LOCK_DIR/LCK..ttyS0", NULL when not locked */
	int speed;	/* bits per second */
	int hwflow;	/* RTS/CTS */
};

/* The lock name of /dev/ttyS0 is LCK..ttyS0; of /dev/pts/3, LCK..pts_3 (the
 * part after /dev/ with '/' as '_'); of any other path, its last component. */
char *serial_lock_path(const char *lock_dir, const char *device)
{
	const char *name = device;
	char *path, *c;

	if (strncmp(name, "/dev/", 5) == 0)
		name += 5;
	else if (strrchr(name, '/'))
		name = strrchr(name, '/') + 1;
	path = xasprintf("%s/LCK..%s", lock_dir, name);
	for (c = path + strlen(lock_dir) + 6; *c; c++)
		if (*c == '/')
			*c = '_';
	return path;
}

/* Pid in a lock file: HDB ASCII ("      1234\n"), or a 4-byte binary pid
 * (old UUCP). 0 when unreadable. */
static pid_t serial_lock_owner(const char *lockfile)
{
	char text[64];
	int fd = open(lockfile, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	long pid;

	if (fd < 0)
		return 0;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n == 4 && (text[3] == 0 || text[0] == 0)) {
		int32_t bin;
		memcpy(&bin, text, 4);
		return bin > 0 ? (pid_t)bin : 0;
	}
	if (n <= 0)
		return 0;
	text[n] = '\0';
	pid = strtol(text, NULL, 10);
	return pid > 0 ? (pid_t)pid : 0;
}

/* Writes our HDB lock to a temporary file and links it into place, so the
 * lock appears whole or not at all. 0, 1 if the name exists, -1 on error. */
static int serial_lock_try(const char *lock_dir, const char *lockfile, struct cause *c)
{
	char *tmp = xasprintf("%s/LTMP.%ld", lock_dir, (long)getpid());
	char text[16];
	int fd, rc = -1;

	snprintf(text, sizeof(text), "%10ld\n", (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, 11) != 11) {
		cause_set(c, CAUSE_DEVICE_ERROR, NULL);
		snprintf(c->words, sizeof(c->words), "cannot write a lock in %s: %s", lock_dir,
			 strerror(errno));
		goto done;
	}
	if (link(tmp, lockfile) == 0)
		rc = 0;
	else if (errno == EEXIST)
		rc = 1;
	else {
		cause_set(c, CAUSE_DEVICE_ERROR, NULL);
		snprintf(c->words, sizeof(c->words), "cannot create %s: %s", lockfile,
			 strerror(errno));
	}
done:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return rc;
}

int serial_lock(const char *lock_dir, const char *device, char **lockfile, struct cause *c)
{
	char *path = serial_lock_path(lock_dir, device);

	for (int round = 0; round < 3; round++) {
		int rc = serial_lock_try(lock_dir, path, c);
		pid_t owner;

		if (rc == 0) {
			*lockfile = path;
			return 0;
		}
		if (rc < 0)
			break;
		owner = serial_lock_owner(path);
		if (owner == getpid()) {
			*lockfile = path; /* our own lock, left by an earlier open */
			return 0;
		}
		if (owner > 0 && (kill(owner, 0) == 0 || errno == EPERM)) {
			cause_set(c, CAUSE_DEVICE_BUSY, NULL);
			snprintf(c->words, sizeof(c->words), "%s locked by pid %ld", device,
				 (long)owner);
			break;
		}
		log_info("serial: removing stale lock %s (pid %ld is gone)", path, (long)owner);
		if (unlink(path) < 0 && errno != ENOENT) {
			cause_set(c, CAUSE_DEVICE_ERROR, NULL);
			snprintf(c->words, sizeof(c->words), "cannot remove stale lock %s: %s",
				 path, strerror(errno));
			break;
		}
	}
	free(path);
	return -1;
}

void serial_unlock(char **lockfile)
{
	if (*lockfile && serial_lock_owner(*lockfile) == getpid())
		unlink(*lockfile);
	free(*lockfile);
	*lockfile = NULL;
}

static const struct {
	int bps;
	speed_t code;
} serial_speeds[] = {
    {300, B300},       {1200, B1200},	  {2400, B2400},     {4800, B4800},
    {9600, B9600},     {19200, B19200},	  {38400, B38400},   {57600, B57600},
    {115200, B115200}, {230400, B230400}, {460800, B460800}, {921600, B921600},
};

static int serial_speed_code(int bps, speed_t *out)
{
	for (size_t i = 0; i < sizeof(serial_speeds) / sizeof(serial_speeds[0]); i++)
		if (serial_speeds[i].bps == bps) {
			*out = serial_speeds[i].code;
			return 0;
		}
	return -1;
}

static void serial_errno_cause(struct cause *c, const char *device, const char *what, int err)
{
	cause_set(c,
		  err == ENOENT || err == ENXIO || err == ENODEV ? CAUSE_DEVICE_MISSING
								 : CAUSE_DEVICE_ERROR,
		  NULL);
	snprintf(c->words, sizeof(c->words), "%s %s: %s", what, device, strerror(err));
}

/* Raw 8N1 at the port speed; CLOCAL so that open and the AT dialog do not
 * wait for carrier; HUPCL so that a close drops DTR (hang-up). */
static int serial_setup(struct port *p, struct cause *c)
{
	struct serial *s = p->state;
	struct termios t;
	speed_t code;

	if (!isatty(p->fd) || tcgetattr(p->fd, &t) < 0) {
		cause_set(c, CAUSE_DEVICE_ERROR, NULL);
		snprintf(c->words, sizeof(c->words), "%s is not a terminal", p->device);
		return -1;
	}
	if (serial_speed_code(s->speed, &code) < 0) {
		cause_set(c, CAUSE_DEVICE_ERROR, NULL);
		snprintf(c->words, sizeof(c->words), "unsupported speed %d", s->speed);
		return -1;
	}
	cfmakeraw(&t);
	t.c_cflag |= CLOCAL | CREAD | HUPCL;
	if (s->hwflow)
		t.c_cflag |= CRTSCTS;
	else
		t.c_cflag &= ~(tcflag_t)CRTSCTS;
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	cfsetispeed(&t, code);
	cfsetospeed(&t, code);
	if (tcsetattr(p->fd, TCSANOW, &t) < 0) {
		serial_errno_cause(c, p->device, "cannot set up", errno);
		return -1;
	}
	return 0;
}

static int serial_open_fd(struct port *p, struct cause *c)
{
	p->fd = open(p->device, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (p->fd < 0) {
		serial_errno_cause(c, p->device, "cannot open", errno);
		return -1;
	}
	if (serial_setup(p, c) < 0) {
		close(p->fd);
		p->fd = -1;
		return -1;
	}
	return 0;
}

static void serial_close(struct port *p);

static int serial_open(struct port *p, const struct port_spec *spec, struct cause *c)
{
	struct serial *s;
	struct stat st;

	if (stat(spec->device, &st) < 0) {
		serial_errno_cause(c, spec->device, "cannot open", errno);
		return -1;
	}
	s = p->state = xcalloc(1, sizeof(*s));
	s->speed = spec->speed;
	s->hwflow = spec->hwflow;
	if (spec->lock_dir && serial_lock(spec->lock_dir, spec->device, &s->lockfile, c) < 0)
		goto fail;
	if (serial_open_fd(p, c) < 0)
		goto fail;
	return 0;
fail:
	serial_close(p);
	return -1;
}

static void serial_drop_dtr(int fd, int hold_ms)
{
	int bits = TIOCM_DTR;

	/* A pty refuses modem-control ioctls; the close that follows is then
	 * the hang-up its master sees. */
	if (ioctl(fd, TIOCMBIC, &bits) == 0 && hold_ms > 0)
		clock_sleep_ms(hold_ms);
}

static int serial_hangup(struct port *p, int hold_ms, struct cause *c)
{
	if (p->fd >= 0) {
		serial_drop_dtr(p->fd, hold_ms);
		tcflush(p->fd, TCIOFLUSH);
		close(p->fd);
		p->fd = -1;
	}
	if (hold_ms > 0)
		clock_sleep_ms(hold_ms);
	if (serial_open_fd(p, c) < 0) {
		if (c->id == CAUSE_DEVICE_MISSING || c->id == CAUSE_DEVICE_ERROR)
			c->id = CAUSE_DEVICE_GONE;
		return -1;
	}
	return 0;
}

static void serial_close(struct port *p)
{
	struct serial *s = p->state;

	if (p->fd >= 0) {
		serial_drop_dtr(p->fd, 0);
		tcflush(p->fd, TCIOFLUSH);
		close(p->fd);
	}
	p->fd = -1;
	if (s) {
		serial_unlock(&s->lockfile);
		free(s);
	}
	p->state = NULL;
}

static void serial_drain(struct port *p)
{
	if (p->fd >= 0)
		tcflush(p->fd, TCIFLUSH);
}

const struct port_ops serial_port_ops = {
    .name = "serial",
    .prefix = NULL,
    .open = serial_open,
    .read = port_fd_read,
    .write = port_fd_write,
    .drain = serial_drain,
    .hangup = serial_hangup,
    .close = serial_close,
};
