// SPDX-License-Identifier: GPL-2.0
#define _GNU_SOURCE /* setns */
/* sl_gc: removes the pinned state of network namespaces that are gone.
 *
 * State lives in SL_PIN_ROOT/netns-COOKIE. When a namespace is deleted
 * without `sluice reset`, its interfaces and so its links go with it, but
 * its pinned maps stay. A folder is removed only when no namespace on the
 * host has its cookie (every process's and thread's namespace, and every
 * namespace bind mount this mount namespace sees) and none of its links is
 * still attached: a namespace held by something not visible from here, a
 * mount in another mount namespace or an open fd, keeps its folder while
 * sluice runs in it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <bpf/bpf.h>
#include "internal.h"

#define GC_LINK_TCX 11 /* BPF_LINK_TYPE_TCX: newer than this uapi header */

struct ns_set {
	size_t n, cap;
	bool nomem;
	struct {
		dev_t dev;
		ino_t ino;
		char *path;
	} *ns;
};

static void ns_add(struct ns_set *s, const char *path)
{
	struct stat st;

	if (stat(path, &st))
		return;
	for (size_t i = 0; i < s->n; i++)
		if (s->ns[i].dev == st.st_dev && s->ns[i].ino == st.st_ino)
			return;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		void *ns = realloc(s->ns, cap * sizeof(*s->ns));

		if (!ns) {
			s->nomem = true;
			return;
		}
		s->ns = ns;
		s->cap = cap;
	}
	s->ns[s->n].path = strdup(path);
	if (!s->ns[s->n].path) {
		s->nomem = true;
		return;
	}
	s->ns[s->n].dev = st.st_dev;
	s->ns[s->n].ino = st.st_ino;
	s->n++;
}

/* Every namespace that a task is in, and every nsfs bind mount. */
static void ns_collect(struct ns_set *s)
{
	char path[PATH_MAX], line[4096];
	struct dirent *p, *t;
	DIR *proc = opendir("/proc"), *task;
	FILE *f;

	while (proc && (p = readdir(proc))) {
		if (p->d_name[0] < '0' || p->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/task", p->d_name);
		task = opendir(path);
		while (task && (t = readdir(task))) {
			if (t->d_name[0] < '0' || t->d_name[0] > '9')
				continue;
			snprintf(path, sizeof(path), "/proc/%s/task/%s/ns/net",
				 p->d_name, t->d_name);
			ns_add(s, path);
		}
		if (task)
			closedir(task);
	}
	if (proc)
		closedir(proc);
	f = fopen("/proc/self/mountinfo", "r");
	while (f && fgets(line, sizeof(line), f)) {
		char mnt[PATH_MAX], fstype[64];
		const char *sep = strstr(line, " - ");

		/* id parent dev root MOUNTPOINT ... - FSTYPE ... */
		if (sep && sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1 &&
		    sscanf(sep + 3, "%63s", fstype) == 1 && !strcmp(fstype, "nsfs"))
			ns_add(s, mnt); /* not a netns: its cookie read fails */
	}
	if (f)
		fclose(f);
}

/* The cookies of the namespaces in s, into cookies (0 where unreadable).
 * A child process enters each in turn: setns() needs a single thread. */
static int ns_cookies(const struct ns_set *s, __u64 *cookies)
{
	int fds[2], status;
	size_t got = 0;
	ssize_t r;
	pid_t pid;

	if (pipe(fds))
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -errno;
	}
	if (!pid) {
		close(fds[0]);
		for (size_t i = 0; i < s->n; i++) {
			socklen_t len = sizeof(__u64);
			__u64 c = 0;
			int nfd = open(s->ns[i].path, O_RDONLY | O_CLOEXEC), sk;

			if (nfd >= 0 && !setns(nfd, CLONE_NEWNET)) {
				sk = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
				if (sk < 0 || getsockopt(sk, SOL_SOCKET, SO_NETNS_COOKIE,
							 &c, &len))
					c = 0;
				if (sk >= 0)
					close(sk);
			}
			if (nfd >= 0)
				close(nfd);
			if (write(fds[1], &c, sizeof(c)) != sizeof(c))
				_exit(1);
		}
		_exit(0);
	}
	close(fds[1]);
	while (got < s->n * sizeof(__u64) &&
	       (r = read(fds[0], (char *)cookies + got,
			 s->n * sizeof(__u64) - got)) > 0)
		got += r;
	close(fds[0]);
	waitpid(pid, &status, 0);
	if (got != s->n * sizeof(__u64) || !WIFEXITED(status) ||
	    WEXITSTATUS(status))
		return sl_err(-EIO, "cannot read the cookies of the host's "
			      "network namespaces");
	return 0;
}

/* Whether a link pinned in dir is still attached to an interface. */
static bool links_attached(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	bool attached = false;

	while (d && !attached && (de = readdir(d))) {
		struct bpf_link_info info = {};
		__u32 len = sizeof(info);
		char path[PATH_MAX + NAME_MAX + 2];
		int fd;

		/* Named by lib/chain.c's link_pin_name(). */
		if (strncmp(de->d_name, "link_", 5) || de->d_type != DT_REG)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		if (!bpf_obj_get_info_by_fd(fd, &info, &len) &&
		    (info.type == BPF_LINK_TYPE_XDP || info.type == GC_LINK_TCX))
			attached = info.xdp.ifindex != 0; /* tcx: same place */
		close(fd);
	}
	if (d)
		closedir(d);
	return attached;
}

/* Removes one namespace's state under its writer lock, as sl_reset does. */
static int state_remove(const char *dir, unsigned long long cookie)
{
	char path[PATH_MAX];
	int fd, err;

	snprintf(path, sizeof(path), SL_RUN_DIR "/netns-%llu.lock", cookie);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB)) {
		close(fd);
		return sl_err(-EBUSY, "%s is in use by a sluice process", dir);
	}
	err = sl_state_remove(dir);
	if (fd >= 0)
		close(fd);
	return err;
}

/* The cookies of the state folders, into *out (*n of them). */
static int folders_list(unsigned long long **out, size_t *n)
{
	unsigned long long cookie, *c = NULL, *grown;
	size_t cap = 0;
	struct dirent *de;
	DIR *d = opendir(SL_PIN_ROOT);
	char rest;

	*n = 0;
	while (d && (de = readdir(d))) {
		if (sscanf(de->d_name, "netns-%llu%c", &cookie, &rest) != 1)
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 64;
			grown = realloc(c, cap * sizeof(*c));
			if (!grown) {
				free(c);
				closedir(d);
				return sl_err(-ENOMEM, "out of memory");
			}
			c = grown;
		}
		c[(*n)++] = cookie;
	}
	if (d)
		closedir(d);
	*out = c;
	return 0;
}

int sl_gc(bool dry_run, sl_gc_cb cb, void *arg)
{
	unsigned long long *folders = NULL;
	struct ns_set s = { 0 };
	__u64 *cookies = NULL;
	size_t nfolders;
	int err;

	/* Folders first, namespaces second: a folder is made from inside
	 * its namespace, so one listed here had its namespace before the
	 * namespaces are looked for, and is found if it is still there. */
	err = folders_list(&folders, &nfolders);
	if (err)
		return err;
	ns_collect(&s);
	cookies = calloc(s.n + 1, sizeof(*cookies));
	if (s.nomem || !cookies) {
		/* Unsure what is live: remove nothing. */
		err = sl_err(-ENOMEM, "out of memory");
		goto out;
	}
	err = ns_cookies(&s, cookies);
	for (size_t f = 0; f < nfolders && !err; f++) {
		char dir[PATH_MAX];
		bool live = false;

		for (size_t i = 0; i < s.n && !live; i++)
			live = cookies[i] == folders[f];
		snprintf(dir, sizeof(dir), SL_PIN_ROOT "/netns-%llu", folders[f]);
		if (live || links_attached(dir))
			continue;
		if (!dry_run)
			err = state_remove(dir, folders[f]);
		if (!err)
			err = cb(dir, folders[f], arg);
	}
out:
	for (size_t i = 0; i < s.n; i++)
		free(s.ns[i].path);
	free(s.ns);
	free(cookies);
	free(folders);
	return err;
}
