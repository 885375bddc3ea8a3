/* Service manager notifications through libsystemd's sd_notify. Invariant:
 * a failure to notify never stops the daemon (the service manager may be
 * gone, or there is none). */
#include <stdlib.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "lib/notify.h"

int notify_enabled(void)
{
	return getenv("NOTIFY_SOCKET") != NULL;
}

void notify_ready(const char *status)
{
	(void)sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void notify_reloading(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	(void)sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
			 (unsigned long long)ts.tv_sec * 1000000ULL +
			     (unsigned long long)ts.tv_nsec / 1000ULL);
}

void notify_stopping(void)
{
	(void)sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

void notify_status(const char *status)
{
	(void)sd_notifyf(0, "STATUS=%s", status);
}
