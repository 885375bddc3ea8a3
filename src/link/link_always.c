/* type = always: a link that is always there (a LAN, tests). It is
 * up without an attempt or a check, and nothing takes it down; link.c logs
 * its coming up and its end like any other. */
#include "link/link_type.h"

const struct link_type link_type_always = {
    .name = "always",
};
