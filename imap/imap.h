#ifndef POSTERN_IMAP_H
#define POSTERN_IMAP_H

/* imap/: the IMAP server on 143 (STARTTLS) and 993 (implicit TLS). */

#include "core/conn.h"

extern const struct proto imap_proto;

#endif
