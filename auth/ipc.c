/* The record format between workers and the auth process (ipc.h). */
#include "auth/ipc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static uint32_t get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int ipc_decode(const void *data, size_t len, struct ipc_msg *m)
{
	const unsigned char *p = data;
	size_t pos = 6, out = 0;
	if (len < 6 || len > IPC_MAX)
		return -1;
	m->id = get_u32(p);
	m->type = p[4];
	m->count = p[5];
	if (m->count > IPC_FIELDS_MAX)
		return -1;
	for (unsigned i = 0; i < m->count; i++) {
		if (len - pos < 2)
			return -1;
		size_t n = (size_t)p[pos] | (size_t)p[pos + 1] << 8;
		pos += 2;
		if (n > len - pos || memchr(p + pos, '\0', n) != NULL)
			return -1;
		memcpy(m->text + out, p + pos, n);
		m->text[out + n] = '\0';
		m->field[i] = m->text + out;
		m->len[i] = n;
		out += n + 1;
		pos += n;
	}
	return pos == len ? 0 : -1;
}

void ipc_begin(struct ipc_out *o, uint32_t id, enum ipc_type type)
{
	o->data[0] = (unsigned char)id;
	o->data[1] = (unsigned char)(id >> 8);
	o->data[2] = (unsigned char)(id >> 16);
	o->data[3] = (unsigned char)(id >> 24);
	o->data[4] = (unsigned char)type;
	o->data[5] = 0;
	o->len = 6;
	o->count = 0;
	o->overflow = false;
}

void ipc_add(struct ipc_out *o, const void *data, size_t len)
{
	if (o->overflow || o->count >= IPC_FIELDS_MAX || len > 0xffff ||
	    len + 2 > sizeof(o->data) - o->len) {
		o->overflow = true;
		return;
	}
	o->data[o->len++] = (unsigned char)len;
	o->data[o->len++] = (unsigned char)(len >> 8);
	memcpy(o->data + o->len, data, len);
	o->len += len;
	o->data[5] = (unsigned char)++o->count;
}

void ipc_add_str(struct ipc_out *o, const char *s)
{
	ipc_add(o, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

void ipc_add_u64(struct ipc_out *o, uint64_t v)
{
	char text[24];
	snprintf(text, sizeof(text), "%llu", (unsigned long long)v);
	ipc_add_str(o, text);
}

int ipc_send(int fd, struct ipc_out *o)
{
	if (o->overflow) {
		errno = EMSGSIZE;
		return -1;
	}
	ssize_t n;
	do {
		n = send(fd, o->data, o->len, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	return n == (ssize_t)o->len ? 0 : -1;
}

long ipc_recv(int fd, void *buf, size_t size)
{
	ssize_t n;
	do {
		n = recv(fd, buf, size, MSG_TRUNC);
	} while (n < 0 && errno == EINTR);
	if (n > (ssize_t)size) {   /* cut short: not a record of ours */
		errno = EMSGSIZE;
		return -1;
	}
	return (long)n;
}

void ipc_hex(char *dst, const unsigned char *src, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		dst[2 * i] = digits[src[i] >> 4];
		dst[2 * i + 1] = digits[src[i] & 15];
	}
	dst[2 * len] = '\0';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

long ipc_unhex(unsigned char *dst, size_t max, const char *src)
{
	size_t len = strlen(src);
	if (len % 2 != 0 || len / 2 > max)
		return -1;
	for (size_t i = 0; i < len / 2; i++) {
		int hi = hex_value(src[2 * i]), lo = hex_value(src[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		dst[i] = (unsigned char)(hi << 4 | lo);
	}
	return (long)(len / 2);
}
