#include "core/connlimit.h"
#include "core/log.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define CONNLIMIT_BUCKETS 4096

struct connlimit_row {
	volatile uint32_t total;
	volatile uint32_t per_ip[CONNLIMIT_BUCKETS];
};

struct connlimit {
	int slots;
	struct connlimit_row rows[];
};

struct connlimit *connlimit_create(int slots)
{
	size_t size = sizeof(struct connlimit) + (size_t)slots * sizeof(struct connlimit_row);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fatal("event=mmap-failed size=%zu", size);
	struct connlimit *cl = p;
	cl->slots = slots;
	return cl;
}

int connlimit_slots(const struct connlimit *cl)
{
	return cl->slots;
}

static unsigned int bucket_of(const char *ip)
{
	uint32_t h = 2166136261u;   /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)ip; *p != '\0'; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return h % CONNLIMIT_BUCKETS;
}

bool connlimit_acquire(struct connlimit *cl, int slot, const char *ip, int max_total,
		       int max_per_ip, unsigned int *bucket_r, const char **reason_r)
{
	unsigned int bucket = bucket_of(ip);
	uint64_t total = 0, mine = 0;
	for (int i = 0; i < cl->slots; i++) {
		total += cl->rows[i].total;
		mine += cl->rows[i].per_ip[bucket];
	}
	if (total >= (uint64_t)max_total) {
		*reason_r = "server-connection-limit";
		return false;
	}
	if (mine >= (uint64_t)max_per_ip) {
		*reason_r = "per-address-connection-limit";
		return false;
	}
	cl->rows[slot].total++;
	cl->rows[slot].per_ip[bucket]++;
	*bucket_r = bucket;
	return true;
}

void connlimit_release(struct connlimit *cl, int slot, unsigned int bucket)
{
	if (cl->rows[slot].total > 0)
		cl->rows[slot].total--;
	if (cl->rows[slot].per_ip[bucket] > 0)
		cl->rows[slot].per_ip[bucket]--;
}

void connlimit_clear_slot(struct connlimit *cl, int slot)
{
	memset((void *)&cl->rows[slot], 0, sizeof(cl->rows[slot]));
}
