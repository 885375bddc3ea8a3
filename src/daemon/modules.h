/* The configuration modules of the layers above mail/ (phone book and
 * answer lines, [session], AUTH users), registered with mail/config. */
#ifndef DAEMON_MODULES_H
#define DAEMON_MODULES_H

/* Registers every module, in the order their checks and show-config blocks
 * run. Call once before the first config_load (main, tools, tests). */
void modules_register(void);

#endif
