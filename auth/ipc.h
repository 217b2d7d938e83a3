#ifndef POSTERN_AUTH_IPC_H
#define POSTERN_AUTH_IPC_H

/* The messages between workers (and the relay) and the auth process, one
 * per SOCK_SEQPACKET record (auth/ only):
 *
 *   u32 id (little-endian), u8 type, u8 count, then count fields, each
 *   u16 length (little-endian) and that many bytes.
 *
 * The auth process trusts nothing a worker sends: ipc_decode() checks
 * every length against the record, and refuses a field that holds a NUL
 * (fields are text; binary values travel hex-encoded). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IPC_MAX 32768               /* one record, header included */
#define IPC_FIELDS_MAX 16

enum ipc_type {
	/* lookups, on the synchronous socket */
	IPC_USER_LOOKUP = 1,        /* address -> status address key quota enabled created */
	IPC_DOMAIN_IS_LOCAL,        /* domain -> "1"/"0" */
	IPC_RESOLVE,                /* address -> status error (address local)... */
	IPC_SENDER_ALLOWED,         /* user address -> "1"/"0" */
	IPC_MECHANISMS,             /* -> every mechanism the server has */
	/* sessions, on the asynchronous socket */
	IPC_LOGIN = 16,             /* sid info... user password */
	IPC_START,                  /* sid info... mech [initial] */
	IPC_STEP,                   /* sid response */
	IPC_FREE,                   /* sid (no answer) */
	IPC_ANSWER = 32,            /* result challenge username delay_ms */
};

/* The connection facts a session carries (after sid in LOGIN/START). */
#define IPC_INFO_FIELDS 8           /* service lip lport rip rport flags cbname cbhex */

struct ipc_msg {
	uint32_t id;
	uint8_t type;
	unsigned count;
	const char *field[IPC_FIELDS_MAX];
	size_t len[IPC_FIELDS_MAX];
	char text[IPC_MAX + IPC_FIELDS_MAX];   /* the fields, NUL-terminated */
};

/* 0, or -1 when data is not one well-formed record. */
int ipc_decode(const void *data, size_t len, struct ipc_msg *m);

struct ipc_out {
	unsigned char data[IPC_MAX];
	size_t len;
	unsigned count;
	bool overflow;
};

void ipc_begin(struct ipc_out *o, uint32_t id, enum ipc_type type);
void ipc_add(struct ipc_out *o, const void *data, size_t len);
void ipc_add_str(struct ipc_out *o, const char *s);
void ipc_add_u64(struct ipc_out *o, uint64_t v);
/* The record on fd (waits up to the socket's send timeout). 0 or -1. */
int ipc_send(int fd, struct ipc_out *o);
/* One record into buf: its length, 0 at EOF, -1 on error (errno). */
long ipc_recv(int fd, void *buf, size_t size);

/* Hex for binary values (channel binding data). dst: 2 * len + 1. */
void ipc_hex(char *dst, const unsigned char *src, size_t len);
/* Decodes up to max bytes; the length, or -1 on bad hex. */
long ipc_unhex(unsigned char *dst, size_t max, const char *src);

#endif
