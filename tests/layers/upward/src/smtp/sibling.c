/* A deliberate offence for `make check-layers`: smtp and link are siblings
 * (one line of src/LAYERS) and may not use each other. */
#include "link/modem.h"
#include "queue/queue.h"
