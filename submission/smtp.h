#ifndef POSTERN_SMTP_H
#define POSTERN_SMTP_H

/* submission/: the ESMTP server on 587 (STARTTLS), 465 (implicit TLS)
 * and the inbound MX port 25. */

#include "core/conn.h"

extern const struct proto smtp_proto;

#endif
