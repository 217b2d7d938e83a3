#ifndef POSTERN_POP3_H
#define POSTERN_POP3_H

/* pop3/: the POP3 server on 110 (STLS) and 995 (implicit TLS). */

#include "core/conn.h"

extern const struct proto pop3_proto;

#endif
