/* modemsim: named link profiles (--profile) and random carrier drops.
 * A profile only fills the line settings the command line left unset, so
 * `--profile iridium --bps 4800` is an Iridium call at 4800 bit/s. */
#include <stdlib.h>
#include <string.h>

#include "modemsim.h"

/* The links our users have; figures are the usual published ones. */
static const struct ms_profile ms_profiles[] = {
    /* Iridium circuit-switched data: 2400 bit/s, 1.5 s one way, ~20 s call setup */
    {"iridium", 2400, 1500, 20.0, 0},
    /* Inmarsat BGAN standard IP: ~256 kbit/s, ~1 s round trip, PDP context ~5 s */
    {"bgan", 256000, 500, 5.0, 0},
    /* HF radio (Pactor-class): 300 bytes/s, half duplex with long turnarounds */
    {"hf", 3000, 100, 15.0, 1200},
    /* V.34 modem on a phone line: 33600 bit/s, 300 ms, ~10 s training */
    {"v34", 33600, 300, 10.0, 0},
};

const struct ms_profile *profile_find(const char *name)
{
	for (size_t i = 0; i < sizeof(ms_profiles) / sizeof(ms_profiles[0]); i++)
		if (strcmp(ms_profiles[i].name, name) == 0)
			return &ms_profiles[i];
	return NULL;
}

/* Fills what the options did not set: given says which were. */
void profile_apply(struct ms_opts *o, const struct ms_profile *p, unsigned given)
{
	if (!(given & MS_GIVEN_BPS))
		o->bps = p->bps;
	if (!(given & MS_GIVEN_LATENCY))
		o->latency_ms = p->latency_ms;
	if (!(given & MS_GIVEN_DELAY))
		o->connect_delay = p->setup_s;
	if (!(given & MS_GIVEN_TURNAROUND))
		o->turnaround_ms = p->turnaround_ms;
}

/* The carrier drop of a new call: the script's, --drop-after-bytes, or a
 * random offset in [drop_lo, drop_hi] with probability drop_chance. */
long long profile_drop(struct modem *m, long long scripted)
{
	const struct ms_opts *o = &m->o;
	double r;

	if (scripted >= 0)
		return scripted;
	if (o->drop_after >= 0 || o->drop_hi < 0)
		return o->drop_after;
	r = (double)(ms_rand(&m->drop_rng) >> 11) * 0x1.0p-53;
	if (r >= o->drop_chance)
		return -1;
	return o->drop_lo + (long long)(ms_rand(&m->drop_rng) %
					(unsigned long long)(o->drop_hi - o->drop_lo + 1));
}
