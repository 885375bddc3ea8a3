/* Wiring of the configuration: mail/config parses what belongs to the
 * shared vocabulary and hands the sections of higher layers to the modules
 * registered here, so the settings code never calls up a layer. */
#include "daemon/modules.h"
#include "dialup/session.h"
#include "link/phonebook.h"
#include "mail/config.h"
#include "smtp/smtp_auth.h"

void modules_register(void)
{
	config_register(&phonebook_config_module);
	config_register(&session_config_module);
	config_register(&smtp_auth_config_module);
}
