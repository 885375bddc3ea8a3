/* A deliberate offence for `make check-layers`: the queue (low) including
 * delivery (high). scripts/check-layers must refuse this tree. */
#include "deliver/delivery.h"
#include "lib/buf.h"
