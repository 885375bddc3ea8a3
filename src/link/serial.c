/* Serial port handling for the modem dialer: UUCP lock files (HDB format,
 * stale-lock removal), raw termios, DTR drop and close/reopen for hang-up,
 * and reads/writes bounded by poll() timeouts. Invariant: no call blocks
 * longer than the timeout it was given (plus the DTR hold time in hang-up). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "link/serial.h"

long long serial_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void serial_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

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
static int serial_setup(struct serial *s, struct cause *c)
{
	struct termios t;
	speed_t code;

	if (!isatty(s->fd) || tcgetattr(s->fd, &t) < 0) {
		cause_set(c, CAUSE_DEVICE_ERROR, NULL);
		snprintf(c->words, sizeof(c->words), "%s is not a terminal", s->device);
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
	if (tcsetattr(s->fd, TCSANOW, &t) < 0) {
		serial_errno_cause(c, s->device, "cannot set up", errno);
		return -1;
	}
	return 0;
}

static int serial_open_fd(struct serial *s, struct cause *c)
{
	s->fd = open(s->device, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (s->fd < 0) {
		serial_errno_cause(c, s->device, "cannot open", errno);
		return -1;
	}
	if (serial_setup(s, c) < 0) {
		close(s->fd);
		s->fd = -1;
		return -1;
	}
	return 0;
}

int serial_open(struct serial *s, const char *device, int speed, int hwflow, const char *lock_dir,
		struct cause *c)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	if (stat(device, &st) < 0) {
		serial_errno_cause(c, device, "cannot open", errno);
		return -1;
	}
	s->device = xstrdup(device);
	s->speed = speed;
	s->hwflow = hwflow;
	if (lock_dir && serial_lock(lock_dir, device, &s->lockfile, c) < 0)
		goto fail;
	if (serial_open_fd(s, c) < 0)
		goto fail;
	return 0;
fail:
	serial_close(s);
	return -1;
}

static void serial_drop_dtr(struct serial *s, int hold_ms)
{
	int bits = TIOCM_DTR;

	/* A pty refuses modem-control ioctls; the close that follows is then
	 * the hang-up its master sees. */
	if (ioctl(s->fd, TIOCMBIC, &bits) == 0 && hold_ms > 0)
		serial_sleep_ms(hold_ms);
}

int serial_hangup(struct serial *s, int hold_ms, struct cause *c)
{
	if (s->fd >= 0) {
		serial_drop_dtr(s, hold_ms);
		tcflush(s->fd, TCIOFLUSH);
		close(s->fd);
		s->fd = -1;
	}
	if (hold_ms > 0)
		serial_sleep_ms(hold_ms);
	if (serial_open_fd(s, c) < 0) {
		if (c->id == CAUSE_DEVICE_MISSING || c->id == CAUSE_DEVICE_ERROR)
			c->id = CAUSE_DEVICE_GONE;
		return -1;
	}
	return 0;
}

void serial_close(struct serial *s)
{
	if (s->fd >= 0) {
		serial_drop_dtr(s, 0);
		tcflush(s->fd, TCIOFLUSH);
		close(s->fd);
	}
	s->fd = -1;
	serial_unlock(&s->lockfile);
	free(s->device);
	s->device = NULL;
}

static void serial_io_cause(struct serial *s, struct cause *c, int err)
{
	cause_set(c, CAUSE_DEVICE_GONE, NULL);
	snprintf(c->words, sizeof(c->words), "%s: %s", s->device, strerror(err));
}

int serial_write(struct serial *s, const void *data, size_t len, int timeout_ms, struct cause *c)
{
	const char *p = data;
	long long deadline = serial_mono_ms() + timeout_ms;

	while (len > 0) {
		struct pollfd pfd = {s->fd, POLLOUT, 0};
		long long left = deadline - serial_mono_ms();
		ssize_t n;

		if (left <= 0) {
			cause_set(c, CAUSE_NO_RESPONSE,
				  "the modem does not accept data (flow control?)");
			return -1;
		}
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
			serial_io_cause(s, c, errno);
			return -1;
		}
		n = write(s->fd, p, len);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			serial_io_cause(s, c, errno);
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t serial_read(struct serial *s, void *data, size_t len, int timeout_ms, struct cause *c)
{
	long long deadline = serial_mono_ms() + timeout_ms;

	for (;;) {
		struct pollfd pfd = {s->fd, POLLIN, 0};
		long long left = deadline - serial_mono_ms();
		int rc;
		ssize_t n;

		if (left < 0)
			left = 0;
		rc = poll(&pfd, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0) {
			serial_io_cause(s, c, errno);
			return -1;
		}
		if (rc == 0)
			return 0;
		n = read(s->fd, data, len);
		if (n > 0)
			return n;
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (left == 0)
				return 0;
			continue;
		}
		if (n == 0) {
			cause_set(c, CAUSE_CARRIER_LOST, "end of file on the line");
			return -1;
		}
		serial_io_cause(s, c, errno);
		return -1;
	}
}

void serial_flush_input(struct serial *s)
{
	if (s->fd >= 0)
		tcflush(s->fd, TCIFLUSH);
}
