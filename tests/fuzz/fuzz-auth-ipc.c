/* libFuzzer target for the records a worker sends the auth process
 * (auth/ipc.c): the auth process must survive any bytes from a worker it
 * no longer trusts. A record that decodes must encode back to the very
 * same bytes; hex fields must decode within their bound. */
#include "auth/ipc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ipc_msg m;
	static struct ipc_out o;
	if (ipc_decode(data, size, &m) < 0)
		return 0;
	ipc_begin(&o, m.id, (enum ipc_type)m.type);
	for (unsigned i = 0; i < m.count; i++) {
		if (strlen(m.field[i]) != m.len[i])
			abort();
		ipc_add(&o, m.field[i], m.len[i]);
		unsigned char bin[64];
		long n = ipc_unhex(bin, sizeof(bin), m.field[i]);
		if (n > (long)sizeof(bin))
			abort();
	}
	if (o.overflow || o.len != size || memcmp(o.data, data, size) != 0)
		abort();
	return 0;
}
