/* Unit tests of [phonebook NAME] parsing through config_load: fields and
 * defaults, file order, errors with file:line, and the show-config block. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mail/config.h"
#include "lib/buf.h"
#include "link/phonebook.h"
#include "test_tmp.h"
#include "daemon/modules.h"

static char *write_conf(const char *text)
{
	char path[TEST_TMP_MAX];
	int fd = test_tmp_file(path, sizeof(path), "dialmail-pb");

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return strdup(path);
}

/* Loads text; err gets the messages with the file name replaced by "F". */
static int load(const char *text, struct config *cfg, struct buf *err)
{
	char *path = write_conf(text);
	struct buf raw = BUF_INIT;
	int rc = config_load(cfg, path, &raw);
	const char *s = buf_cstr(&raw);
	size_t n = strlen(path);

	unlink(path);
	while (*s) {
		if (strncmp(s, path, n) == 0) {
			buf_putc(err, 'F');
			s += n;
		} else
			buf_putc(err, *s++);
	}
	buf_free(&raw);
	free(path);
	return rc;
}

static void test_full_entry(void **state)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	const struct phonebook_entry *e;

	if (load("lock_dir = /tmp/locks\n"
		 "[phonebook isp]\n"
		 "type = modem\n"
		 "device = /dev/ttyS1\n"
		 "speed = 57600\n"
		 "init = ATZ | AT&F E0 V1 |  AT&D2  \n"
		 "numbers = 0 555 1234, 5559876\n"
		 "dial_prefix = ATDP\n"
		 "dial_timeout = 45s\n"
		 "at_timeout = 500ms\n"
		 "redial_attempts = 5\n"
		 "redial_interval = 2m\n"
		 "flow_control = none\n"
		 "data = ppp\n"
		 "pppd = /opt/pppd\n"
		 "ppp_options = noauth defaultroute user bob\n"
		 "ppp_up_file = /run/ppp-up\n"
		 "up_timeout = 90s\n",
		 &cfg, &err) != 0)
		fail_msg("%s", buf_cstr(&err));
	assert_string_equal(cfg.lock_dir, "/tmp/locks");
	assert_non_null(cfg.phonebook);
	assert_int_equal(cfg.phonebook->n, 1);
	e = phonebook_find(cfg.phonebook, "ISP");
	assert_non_null(e);
	assert_int_equal(e->line, 2);
	assert_int_equal(e->type, PB_MODEM);
	assert_string_equal(e->device, "/dev/ttyS1");
	assert_int_equal(e->speed, 57600);
	assert_int_equal(e->init.n, 3);
	assert_string_equal(e->init.v[1], "AT&F E0 V1");
	assert_string_equal(e->init.v[2], "AT&D2");
	assert_int_equal(e->numbers.n, 2);
	assert_string_equal(e->numbers.v[0], "0 555 1234");
	assert_string_equal(e->dial_prefix, "ATDP");
	assert_int_equal(e->dial_timeout_ms, 45000);
	assert_int_equal(e->at_timeout_ms, 500);
	assert_int_equal(e->redial_attempts, 5);
	assert_int_equal(e->redial_interval_ms, 120000);
	assert_int_equal(e->hwflow, 0);
	assert_int_equal(e->data, PB_DATA_PPP);
	assert_string_equal(e->pppd, "/opt/pppd");
	assert_string_equal(e->ppp_up_file, "/run/ppp-up");
	assert_int_equal(e->up_timeout_ms, 90000);
	config_free(&cfg);
	buf_free(&err);
}

static void test_defaults_and_order(void **state)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	const struct phonebook_entry *e;

	if (load("[phonebook second]\ndevice = /dev/ttyS0\nnumbers = 123\n"
		 "[phonebook first]\ntype = always\n"
		 "[phonebook vpn]\ntype = command\nup = wg-quick up wg0\ncheck = ping -c1 gw\n",
		 &cfg, &err) != 0)
		fail_msg("%s", buf_cstr(&err));
	assert_string_equal(cfg.lock_dir, "/var/lock");
	assert_int_equal(cfg.phonebook->n, 3);
	assert_string_equal(cfg.phonebook->v[0].name, "second");
	assert_string_equal(cfg.phonebook->v[1].name, "first");
	assert_string_equal(cfg.phonebook->v[2].name, "vpn");
	e = &cfg.phonebook->v[0];
	assert_int_equal(e->dial_timeout_ms, 60000);
	assert_int_equal(e->redial_attempts, 3);
	assert_int_equal(e->redial_interval_ms, 30000);
	assert_int_equal(e->speed, 115200);
	assert_int_equal(e->hwflow, 1);
	assert_int_equal(e->data, PB_DATA_NONE);
	assert_int_equal(e->init.n, 1);
	assert_string_equal(e->init.v[0], "ATZ");
	assert_string_equal(e->dial_prefix, "ATDT");
	assert_int_equal(cfg.phonebook->v[1].type, PB_ALWAYS);
	assert_int_equal(cfg.phonebook->v[2].type, PB_COMMAND);
	assert_string_equal(cfg.phonebook->v[2].check, "ping -c1 gw");
	config_free(&cfg);
	buf_free(&err);
}

static void test_no_phonebook(void **state)
{
	struct config cfg;
	struct buf err = BUF_INIT;

	assert_int_equal(config_load(&cfg, NULL, &err), 0);
	assert_null(cfg.phonebook);
	config_free(&cfg);
	buf_free(&err);
}

static void test_errors_name_file_and_line(void **state)
{
	struct config cfg;
	struct buf err = BUF_INIT;

	assert_int_equal(load("[phonebook isp]\n"	   /* 1 */
			      "device = /dev/ttyS0\n"	   /* 2 */
			      "speed = 12345\n"		   /* 3 */
			      "numbers = 555-1234, 555x\n" /* 4 */
			      "init = ATZ | hello\n"	   /* 5 */
			      "dial_timeout = soon\n"	   /* 6 */
			      "redial_attempts = 0\n"	   /* 7 */
			      "device = /dev/ttyS1\n"	   /* 8 */
			      "colour = blue\n"		   /* 9 */
			      "data = slip\n"		   /* 10 */
			      "[phonebook isp]\n"	   /* 11 */
			      "[phonebook bad/name]\n"	   /* 12 */
			      "[phonebook nodev]\n"	   /* 13 */
			      "numbers = 1\n"		   /* 14 */
			      "[phonebook cmd]\n"	   /* 15 */
			      "type = command\n"	   /* 16 */
			      "[phonebook]\n",		   /* 17 */
			      &cfg, &err),
			 -1);
	const char *want =
	    "F:3: speed: '12345' is not a serial port speed (300 ... 921600, e.g. 115200)\n"
	    "F:4: numbers: '555x' is not a phone number (digits, blanks, * # W P T @ ! + - ( ); at "
	    "most 40 characters)\n"
	    "F:5: init: init string 'hello' does not start with AT\n"
	    "F:6: dial_timeout: 'soon' is not a duration (e.g. 500ms, 30s, 2m)\n"
	    "F:7: redial_attempts: 0 is out of range (1 to 100)\n"
	    "F:8: device: set twice in [phonebook isp]\n"
	    "F:9: colour: unknown phone book field in [phonebook isp]\n"
	    "F:10: data: 'slip' is not one of none, ppp, direct or command\n"
	    "F:11: [phonebook]: entry 'isp' defined twice, first at line 1\n"
	    "F:12: [phonebook]: 'bad/name' is not a phone book entry name (letters, digits, "
	    "'-', '_', '.'; at most 64)\n"
	    "F:17: [phonebook]: section needs a name: [phonebook NAME]\n"
	    "F:1: [phonebook isp]: type modem needs numbers\n"
	    "F:13: [phonebook nodev]: type modem needs a device\n"
	    "F:15: [phonebook cmd]: type command needs an up command\n";
	assert_string_equal(buf_cstr(&err), want);
	assert_null(cfg.phonebook); /* a refused file leaves nothing behind */
	buf_free(&err);
}

static void test_show_config_round_trip(void **state)
{
	struct config cfg, again;
	struct buf err = BUF_INIT;
	char *text = NULL, *text2 = NULL;
	size_t len = 0, len2 = 0;
	FILE *f;

	if (load("[phonebook isp]\ndevice = /dev/ttyS0\nnumbers = 5551234, 5559876\n"
		 "init = ATZ | AT&F E0 V1\nredial_interval = 1500ms\ndata = ppp\n",
		 &cfg, &err) != 0)
		fail_msg("%s", buf_cstr(&err));
	f = open_memstream(&text, &len);
	config_show(&cfg, f, 0);
	fclose(f);
	assert_non_null(strstr(text, "\n[phonebook isp]\ntype = modem\ndevice = /dev/ttyS0\n"));
	assert_non_null(strstr(text, "init = ATZ | AT&F E0 V1\n"));
	assert_non_null(strstr(text, "numbers = 5551234, 5559876\n"));
	assert_non_null(strstr(text, "redial_interval = 1500ms\n"));
	assert_non_null(strstr(text, "dial_timeout = 1m\n"));
	assert_non_null(strstr(text, "lock_dir = /var/lock\n"));
	if (load(text, &again, &err) != 0)
		fail_msg("show-config output does not load:\n%s", buf_cstr(&err));
	f = open_memstream(&text2, &len2);
	config_show(&again, f, 0);
	fclose(f);
	assert_string_equal(text, text2);
	config_free(&cfg);
	config_free(&again);
	free(text);
	free(text2);
	buf_free(&err);
}

int main(void)
{
	modules_register();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_entry),
	    cmocka_unit_test(test_defaults_and_order),
	    cmocka_unit_test(test_no_phonebook),
	    cmocka_unit_test(test_errors_name_file_and_line),
	    cmocka_unit_test(test_show_config_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
