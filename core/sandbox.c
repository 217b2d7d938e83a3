/* Sandboxes for the children and the master (sandbox.h). */
#include "core/sandbox.h"
#include "core/buf.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif

#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_SANITIZER 1     /* ASan/LSan need /proc and ptrace at exit */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_SANITIZER 1
#endif
#endif

static char sandbox_error[256];
static bool landlocked;

/* ---- the paths: the one list (add a line for a new file or folder) ---- */

enum {
	FOR_WORKER = 1 << SANDBOX_WORKER,
	FOR_RELAY = 1 << SANDBOX_RELAY,
	FOR_AUTH = 1 << SANDBOX_AUTH,
	FOR_WEB = 1 << SANDBOX_WEB,
};

enum path_access {
	PATH_RW_TREE,     /* a folder: read, write, create, remove, rename in it */
	PATH_RW_FILE,     /* one file: read and write */
	PATH_RO_TREE,     /* a folder or file: read only */
};

struct sandbox_path {
	const char *path;         /* under data_dir when relative, else absolute */
	unsigned kinds;
	enum path_access access;
};

static const struct sandbox_path sandbox_paths[] = {
	/* the store: Maildirs and their indexes, and its temporary files */
	{ "mail", FOR_WORKER | FOR_RELAY, PATH_RW_TREE },
	{ "tmp", FOR_WORKER | FOR_RELAY, PATH_RW_TREE },
	/* the queue: spool files and its database */
	{ "queue", FOR_WORKER | FOR_RELAY, PATH_RW_TREE },
	{ "queue.lmdb", FOR_WORKER | FOR_RELAY | FOR_WEB, PATH_RW_FILE },
	{ "queue.lmdb-lock", FOR_WORKER | FOR_RELAY | FOR_WEB, PATH_RW_FILE },
	/* DKIM signing keys (`postern dkim`): workers sign what users send,
	 * the relay its reports */
	{ "dkim", FOR_WORKER | FOR_RELAY, PATH_RO_TREE },
	/* the relay's cache of MTA-STS policies */
	{ "mta-sts", FOR_RELAY, PATH_RW_TREE },
	/* the per-user submission rate counters */
	{ "ratelimit.lmdb", FOR_WORKER | FOR_RELAY, PATH_RW_FILE },
	{ "ratelimit.lmdb-lock", FOR_WORKER | FOR_RELAY, PATH_RW_FILE },
	/* accounts, login throttling and the server secret: the auth process's alone */
	{ "accounts.lmdb", FOR_AUTH, PATH_RW_FILE },
	{ "accounts.lmdb-lock", FOR_AUTH, PATH_RW_FILE },
	{ "throttle.lmdb", FOR_AUTH, PATH_RW_FILE },
	{ "throttle.lmdb-lock", FOR_AUTH, PATH_RW_FILE },
	{ "auth-secret", FOR_AUTH, PATH_RO_TREE },
	/* outbound TLS: the system's CAs, read as certificates are checked;
	 * DNS settings should libunbound want them */
	{ "/etc/ssl", FOR_RELAY, PATH_RO_TREE },
	{ "/usr/lib/ssl", FOR_RELAY, PATH_RO_TREE },
	{ "/usr/share/ca-certificates", FOR_RELAY, PATH_RO_TREE },
	{ "/etc/resolv.conf", FOR_RELAY, PATH_RO_TREE },
	{ "/etc/hosts", FOR_RELAY, PATH_RO_TREE },
	/* random bytes for libraries that read them from the device */
	{ "/dev/urandom", FOR_WORKER | FOR_RELAY | FOR_AUTH | FOR_WEB, PATH_RO_TREE },
#ifdef SANDBOX_SANITIZER
	{ "/proc", FOR_WORKER | FOR_RELAY | FOR_AUTH | FOR_WEB, PATH_RO_TREE },
#endif
};

/* ---- Landlock ---------------------------------------------------------- */

static int landlock_abi(void)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	return abi < 0 ? 0 : (int)abi;
}

static uint64_t path_rights(enum path_access access, bool is_dir, uint64_t handled)
{
	const uint64_t read = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
	const uint64_t file_rw = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
				 LANDLOCK_ACCESS_FS_TRUNCATE;
	const uint64_t tree_rw = read | file_rw | LANDLOCK_ACCESS_FS_REMOVE_DIR |
				 LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_DIR |
				 LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_REFER;
	uint64_t rights = access == PATH_RW_TREE ? tree_rw : access == PATH_RW_FILE ? file_rw : read;
	if (!is_dir)   /* a file takes only file rights */
		rights &= LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
			  LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_EXECUTE;
	return rights & handled;
}

static int landlock_add_path(int ruleset, const char *path, enum path_access access,
			     uint64_t handled)
{
	int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;   /* not there (yet): nothing to allow */
	struct stat st;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -1;
	}
	struct landlock_path_beneath_attr attr = {
		.allowed_access = path_rights(access, S_ISDIR(st.st_mode), handled),
		.parent_fd = fd,
	};
	int rc = attr.allowed_access == 0 ? 0 :
		(int)syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &attr, 0);
	close(fd);
	return rc;
}

static int landlock_enter(const struct config *cfg, enum sandbox_kind kind, const char **error_r)
{
	int abi = landlock_abi();
	landlocked = false;
	if (abi < 2) {
		/* ABI 1 forbids every rename across folders (Maildir needs them) */
		log_warn("event=sandbox-landlock-unavailable abi=%d", abi);
		return 0;
	}
	uint64_t handled = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
			   LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
			   LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
			   LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
			   LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
			   LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
			   LANDLOCK_ACCESS_FS_MAKE_SYM | LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		handled |= LANDLOCK_ACCESS_FS_TRUNCATE;
	struct landlock_ruleset_attr rattr = { .handled_access_fs = handled };
	int ruleset = (int)syscall(SYS_landlock_create_ruleset, &rattr, sizeof(rattr), 0);
	if (ruleset < 0) {
		snprintf(sandbox_error, sizeof(sandbox_error), "landlock_create_ruleset: %s",
			 strerror(errno));
		*error_r = sandbox_error;
		return -1;
	}
	int rc = 0;
	for (size_t i = 0; i < sizeof(sandbox_paths) / sizeof(sandbox_paths[0]) && rc == 0; i++) {
		const struct sandbox_path *p = &sandbox_paths[i];
		if ((p->kinds & (1u << kind)) == 0)
			continue;
		char *path = p->path[0] == '/' ? xstrdup(p->path) :
			xasprintf("%s/%s", cfg->data_dir, p->path);
		rc = landlock_add_path(ruleset, path, p->access, handled);
		if (rc < 0)
			snprintf(sandbox_error, sizeof(sandbox_error), "landlock rule for %s: %s",
				 path, strerror(errno));
		free(path);
	}
	/* the relay reads what the configuration names for its smarthost,
	 * MTA-STS and DANE */
	const char *const relay_files[] = { cfg->relay_smarthost_ca_file,
					    cfg->relay_smarthost_auth_file,
					    cfg->relay_mta_sts_ca_file,
					    cfg->relay_dane_trust_anchor };
	for (size_t i = 0; kind == SANDBOX_RELAY && rc == 0 &&
			   i < sizeof(relay_files) / sizeof(relay_files[0]); i++) {
		if (relay_files[i] != NULL &&
		    (rc = landlock_add_path(ruleset, relay_files[i], PATH_RO_TREE, handled)) < 0)
			snprintf(sandbox_error, sizeof(sandbox_error), "landlock rule for %s: %s",
				 relay_files[i], strerror(errno));
	}
	if (rc == 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) {
		snprintf(sandbox_error, sizeof(sandbox_error), "landlock_restrict_self: %s",
			 strerror(errno));
		rc = -1;
	}
	close(ruleset);
	if (rc < 0) {
		*error_r = sandbox_error;
		return -1;
	}
	landlocked = true;
	return 0;
}

bool sandbox_landlocked(void)
{
	return landlocked;
}

/* ---- seccomp ----------------------------------------------------------- */

/* What an event loop over sockets and files, LMDB and a few threads use. */
static const int seccomp_common[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(preadv), SCMP_SYS(pwritev),
	SCMP_SYS(lseek), SCMP_SYS(close), SCMP_SYS(openat), SCMP_SYS(open),
	SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(stat), SCMP_SYS(lstat), SCMP_SYS(statx),
	SCMP_SYS(statfs), SCMP_SYS(fstatfs), SCMP_SYS(access), SCMP_SYS(faccessat),
	SCMP_SYS(faccessat2), SCMP_SYS(getdents64), SCMP_SYS(fcntl), SCMP_SYS(ioctl),
	SCMP_SYS(flock), SCMP_SYS(fsync), SCMP_SYS(fdatasync), SCMP_SYS(msync),
	SCMP_SYS(ftruncate), SCMP_SYS(fallocate), SCMP_SYS(fadvise64),
	SCMP_SYS(rename), SCMP_SYS(renameat), SCMP_SYS(renameat2), SCMP_SYS(link),
	SCMP_SYS(linkat), SCMP_SYS(unlink), SCMP_SYS(unlinkat), SCMP_SYS(mkdir),
	SCMP_SYS(mkdirat), SCMP_SYS(rmdir), SCMP_SYS(readlink), SCMP_SYS(readlinkat),
	SCMP_SYS(utimensat), SCMP_SYS(fchmod), SCMP_SYS(umask), SCMP_SYS(getcwd),
	SCMP_SYS(dup), SCMP_SYS(dup2), SCMP_SYS(dup3), SCMP_SYS(pipe2),
	SCMP_SYS(inotify_init1), SCMP_SYS(inotify_add_watch), SCMP_SYS(inotify_rm_watch),
	SCMP_SYS(eventfd2), SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl),
	SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(poll), SCMP_SYS(ppoll),
	SCMP_SYS(select), SCMP_SYS(pselect6),
	SCMP_SYS(accept), SCMP_SYS(accept4), SCMP_SYS(recvfrom), SCMP_SYS(sendto),
	SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(recvmmsg), SCMP_SYS(sendmmsg),
	SCMP_SYS(shutdown), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
	SCMP_SYS(setsockopt), SCMP_SYS(getsockopt),
	SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(mprotect),
	SCMP_SYS(madvise), SCMP_SYS(mincore), SCMP_SYS(brk),
	SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(get_robust_list),
	SCMP_SYS(rseq), SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity),
	SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep), SCMP_SYS(clock_gettime),
	SCMP_SYS(clock_getres), SCMP_SYS(gettimeofday), SCMP_SYS(time),
	SCMP_SYS(getrandom), SCMP_SYS(uname), SCMP_SYS(getrusage), SCMP_SYS(prlimit64),
	SCMP_SYS(getrlimit), SCMP_SYS(sysinfo),
	SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(getppid), SCMP_SYS(getuid),
	SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid), SCMP_SYS(getgroups),
	SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn),
	SCMP_SYS(rt_sigtimedwait), SCMP_SYS(sigaltstack), SCMP_SYS(restart_syscall),
	SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(membarrier),
};

/* The relay also makes outbound connections (and libunbound its own). */
static const int seccomp_relay[] = {
	SCMP_SYS(socket), SCMP_SYS(connect), SCMP_SYS(bind), SCMP_SYS(socketpair),
};

#ifdef SANDBOX_SANITIZER
/* LeakSanitizer stops the world at exit with a ptrace-ing helper whose
 * calls cannot be listed up front: sanitizer builds (tests only) refuse
 * these instead of allowing a list. */
static const int seccomp_sanitizer_denied[] = {
	SCMP_SYS(execve), SCMP_SYS(execveat), SCMP_SYS(fork), SCMP_SYS(vfork),
	SCMP_SYS(mount), SCMP_SYS(umount2), SCMP_SYS(pivot_root), SCMP_SYS(chroot),
	SCMP_SYS(bpf), SCMP_SYS(perf_event_open), SCMP_SYS(init_module),
	SCMP_SYS(finit_module), SCMP_SYS(delete_module), SCMP_SYS(kexec_load),
	SCMP_SYS(setuid), SCMP_SYS(setgid), SCMP_SYS(setreuid), SCMP_SYS(setregid),
	SCMP_SYS(setresuid), SCMP_SYS(setresgid), SCMP_SYS(unshare), SCMP_SYS(setns),
	SCMP_SYS(keyctl), SCMP_SYS(add_key), SCMP_SYS(request_key),
};
#endif

/* One line before dying: which call stepped outside. Only async-signal-
 * safe calls here; then SIGSYS kills the process (the master logs it). */
static void sigsys_handler(int sig, siginfo_t *info, void *ctx)
{
	char line[160];
	int n = snprintf(line, sizeof(line),
			 "postern[%d] error event=sandbox-violation syscall=%d\n", (int)getpid(),
			 info->si_syscall);
	if (n > 0) {
		ssize_t w = write(STDERR_FILENO, line, (size_t)n);
		(void)w;
	}
	signal(SIGSYS, SIG_DFL);
	raise(SIGSYS);
}

static int seccomp_allow(scmp_filter_ctx ctx, const int *calls, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (calls[i] >= 0 && seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0) < 0)
			return -1;
	return 0;
}

static int seccomp_enter(enum sandbox_kind kind, const char **error_r)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigsys_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSYS, &sa, NULL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGSYS);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

#ifdef SANDBOX_SANITIZER
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (ctx == NULL) {
		*error_r = "seccomp_init failed";
		return -1;
	}
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < sizeof(seccomp_sanitizer_denied) / sizeof(int); i++)
		if (seccomp_sanitizer_denied[i] >= 0)
			rc = seccomp_rule_add(ctx, SCMP_ACT_TRAP, seccomp_sanitizer_denied[i], 0);
	(void)kind;
	(void)seccomp_allow;
	(void)seccomp_common;
	(void)seccomp_relay;
#else
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	if (ctx == NULL) {
		*error_r = "seccomp_init failed";
		return -1;
	}
	int rc = seccomp_allow(ctx, seccomp_common, sizeof(seccomp_common) / sizeof(int));
	if (rc == 0 && kind == SANDBOX_RELAY)
		rc = seccomp_allow(ctx, seccomp_relay, sizeof(seccomp_relay) / sizeof(int));
	/* threads only, never a new process: clone with CLONE_THREAD; clone3
	 * (whose flags a filter cannot see) says ENOSYS and glibc falls back */
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				      SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/* kill(2) only to itself (raise) */
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1,
				      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
				      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
#endif
	if (rc == 0)
		rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc < 0) {
		snprintf(sandbox_error, sizeof(sandbox_error), "seccomp: %s", strerror(-rc));
		*error_r = sandbox_error;
		return -1;
	}
	return 0;
}

int sandbox_enter(const struct config *cfg, enum sandbox_kind kind, const char **error_r)
{
	tzset();   /* /etc/localtime is out of reach from now on */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(sandbox_error, sizeof(sandbox_error), "no_new_privs: %s", strerror(errno));
		*error_r = sandbox_error;
		return -1;
	}
	if (landlock_enter(cfg, kind, error_r) < 0 || seccomp_enter(kind, error_r) < 0)
		return -1;
	log_info("event=sandbox kind=%s landlock=%s seccomp=yes",
		 kind == SANDBOX_WORKER ? "worker" : kind == SANDBOX_RELAY ? "relay" :
		 kind == SANDBOX_WEB ? "web" : "auth",
		 landlocked ? "yes" : "no");
	return 0;
}

/* ---- the master -------------------------------------------------------- */

int sandbox_master(const char **error_r)
{
	/* to fork children that drop to run_as, signal them, give them
	 * data_dir, and read certificates on reload */
	static const int keep[] = { CAP_SETUID, CAP_SETGID, CAP_KILL, CAP_DAC_READ_SEARCH,
				    CAP_DAC_OVERRIDE };
	if (geteuid() != 0)
		return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	uint64_t mask = 0;
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		mask |= 1ULL << keep[i];
	for (int cap = 0; cap <= 63; cap++) {
		if ((mask & (1ULL << cap)) == 0 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 &&
		    errno != EINVAL)
			break;
	}
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	data[0].effective = data[0].permitted = (uint32_t)mask;
	data[1].effective = data[1].permitted = (uint32_t)(mask >> 32);
	if (syscall(SYS_capset, &hdr, data) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(sandbox_error, sizeof(sandbox_error), "dropping capabilities: %s",
			 strerror(errno));
		*error_r = sandbox_error;
		return -1;
	}
	return 0;
}

/* ---- the test hook ------------------------------------------------------ */

void sandbox_probe(const struct config *cfg, bool violate)
{
	static const char *const names[] = { "accounts.lmdb", "throttle.lmdb", "auth-secret",
					      "queue.lmdb", "mail" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *path = xasprintf("%s/%s", cfg->data_dir, names[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		log_info("event=sandbox-probe file=%s result=%s", names[i],
			 fd >= 0 ? "opened" : strerror(errno));
		if (fd >= 0)
			close(fd);
		free(path);
	}
	if (violate) {
		/* what an attacker's shellcode would try first */
		char *const argv[] = { (char *)"/bin/true", NULL };
		execve(argv[0], argv, NULL);
		log_info("event=sandbox-probe execve=%s", strerror(errno));
	}
}
