/* Real or frozen time for the whole program. */
#include <errno.h>
#include <stdio.h>
#include <sys/time.h>

#include "lib/clock.h"

static int64_t fake_usec;

int64_t clock_usec(void)
{
	struct timespec ts;

	if (fake_usec)
		return fake_usec;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

time_t clock_now(void)
{
	return (time_t)(clock_usec() / 1000000);
}

void clock_set_fake(int64_t usec)
{
	fake_usec = usec;
}

void clock_advance(int64_t usec)
{
	fake_usec += usec;
}

void clock_rfc5322(time_t t, char *out, size_t outlen)
{
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(out, outlen, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

void clock_iso8601(int64_t usec, char *out, size_t outlen)
{
	time_t t = (time_t)(usec / 1000000);
	struct tm tm;
	char base[32];

	gmtime_r(&t, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, outlen, "%s.%03dZ", base, (int)((usec / 1000) % 1000));
}

void clock_local(time_t t, char *out, size_t outlen)
{
	struct tm tm;

	if (t == 0) {
		snprintf(out, outlen, "none");
		return;
	}
	localtime_r(&t, &tm);
	strftime(out, outlen, "%Y-%m-%d %H:%M:%S %Z", &tm);
}

long long clock_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void clock_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}
