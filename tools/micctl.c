/* SPDX-License-Identifier: MIT */
/*
 * micctl: controls micd.  Exit codes: 0 done, 1 the daemon refused or the
 * operation failed, 2 usage, 3 micd is not running, 4 no such card.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void usage(void)
{
	fprintf(stderr,
		"usage: micctl [--rundir DIR] COMMAND\n"
		"  status [CARD] [--json]      state of every card, or one\n"
		"  boot CARD [--no-wait]       boot the card OS, wait until online\n"
		"  shutdown CARD [--no-wait]   shut the card OS down, wait until ready\n"
		"  reset CARD [--no-wait]      reset the card, whatever it was doing\n"
		"  suspend                     OSPM suspend: shut every online card down\n"
		"  resume                      boot every card that suspend shut down\n"
		"  wait CARD STATE [--timeout SECONDS]\n"
		"  log CARD                    the card OS log, read from card memory\n");
	exit(2);
}

static int request(const char *rundir, const char *line)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/micd.sock", rundir);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == EACCES)
			fprintf(stderr, "micctl: %s: permission denied (root or the micd group only)\n",
				sa.sun_path);
		else
			fprintf(stderr, "micctl: micd is not running (no daemon at %s)\n", sa.sun_path);
		return 3;
	}
	size_t len = strlen(line);
	if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len) {
		fprintf(stderr, "micctl: lost micd: %s\n", strerror(errno));
		return 3;
	}
	char buf[65536];
	int first = 1, code = 0;
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		char *p = buf;
		size_t left = (size_t)n;
		if (first) {
			char *nl = memchr(buf, '\n', left);
			if (!nl)
				break;
			if (!strncmp(buf, "ERR ", 4))
				code = atoi(buf + 4);
			left -= (size_t)(nl + 1 - buf);
			p = nl + 1;
			first = 0;
		}
		fwrite(p, 1, left, code ? stderr : stdout);
	}
	close(fd);
	if (first) {
		fprintf(stderr, "micctl: micd closed the connection without an answer\n");
		return 3;
	}
	return code;
}

int main(int argc, char **argv)
{
	const char *rundir = getenv("MIC_RUNDIR");
	int json = 0, nowait = 0;
	double timeout = 10;
	/* Options may come before or after the command words. */
	char *words[4];
	int nw = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rundir") && i + 1 < argc)
			rundir = argv[++i];
		else if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strcmp(argv[i], "--no-wait"))
			nowait = 1;
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout = atof(argv[++i]);
		else if (argv[i][0] == '-')
			usage();
		else if (nw < 4)
			words[nw++] = argv[i];
		else
			usage();
	}
	if (!rundir)
		rundir = "/run/micstack";
	if (nw == 0)
		usage();
	const char *cmd = words[0];
	char line[256];
	if (!strcmp(cmd, "status") && nw <= 2) {
		snprintf(line, sizeof(line), "%s %s\n", json ? "status-json" : "status", nw > 1 ? words[1] : "");
	} else if ((!strcmp(cmd, "boot") || !strcmp(cmd, "shutdown") || !strcmp(cmd, "reset")) && nw == 2) {
		snprintf(line, sizeof(line), "%s %s%s\n", cmd, words[1], nowait ? "" : " wait");
	} else if ((!strcmp(cmd, "suspend") || !strcmp(cmd, "resume")) && nw == 1) {
		snprintf(line, sizeof(line), "%s\n", cmd);
	} else if (!strcmp(cmd, "wait") && nw == 3) {
		if (timeout < 0)
			usage();
		snprintf(line, sizeof(line), "wait %s %s %ld\n", words[1], words[2], (long)(timeout * 1000));
	} else if (!strcmp(cmd, "log") && nw == 2) {
		snprintf(line, sizeof(line), "log %s\n", words[1]);
	} else {
		usage();
	}
	return request(rundir, line);
}
