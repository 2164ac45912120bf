/* SPDX-License-Identifier: MIT */
/*
 * micctl: controls micd.  Exit codes: 0 done, 1 the daemon refused or the
 * operation failed, 2 usage, 3 micd is not running, 4 no such card.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "mic/console.h"

#define ESCAPE_KEY 0x1d /* Ctrl-] */

/* Set by SIGTERM/SIGHUP/SIGINT while attached, so the terminal is restored. */
static volatile sig_atomic_t console_stop;

static void on_stop_signal(int sig)
{
	(void)sig;
	console_stop = 1;
}

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
		"      boot, shutdown and resume first wait for a transition under way\n"
		"      that leads where they can run (boot of a card still resetting or\n"
		"      shutting down); --timeout SECONDS bounds that wait (default: as\n"
		"      long as the card's own timeouts allow), --no-wait refuses at once\n"
		"  wait CARD STATE [--timeout SECONDS]\n"
		"  log CARD                    the card OS log, read from card memory\n"
		"  stats [CARD] [--json] [--watch SECONDS]\n"
		"                              traffic of each device and DMA channel, uptime,\n"
		"                              boots, memory and processes; --watch redraws\n"
		"  console-size CARD COLS ROWS set the console's terminal size (done by\n"
		"                              console itself on a terminal, at every resize)\n"
		"  console CARD [--linger S]   attach to the card's console (Ctrl-] detaches);\n"
		"                              with stdin not a terminal: a scripted session,\n"
		"                              stdin run by a shell, exactly its output printed,\n"
		"                              until the script ends (end of file re-sent every\n"
		"                              S seconds of quiet, default 0.5; a card without\n"
		"                              sessions: until S seconds of quiet)\n");
	exit(2);
}

/* A duration option: 0..86400 seconds (micd waits at most a day). */
static double seconds_arg(const char *opt, const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || !(v >= 0 && v <= 86400)) {
		fprintf(stderr, "micctl: %s wants seconds, 0 to 86400 (got '%s')\n", opt, s);
		exit(2);
	}
	return v;
}

/* How long a request that waits anyway also waits for a micd that is
 * starting (`micd & micctl boot mic0`): its socket appears within
 * milliseconds; a daemon that is not there is reported after this. */
#define DAEMON_START_GRACE_MS 2000

static int connect_micd(const struct sockaddr_un *sa, int grace_ms)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
			return fd;
		int e = errno;
		close(fd);
		clock_gettime(CLOCK_MONOTONIC, &t);
		long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		/* No socket yet, or bound but not yet listening. */
		if ((e != ENOENT && e != ECONNREFUSED) || ms >= grace_ms) {
			errno = e;
			return -1;
		}
		poll(NULL, 0, 5);
	}
}

/* Sends one request; the answer's text goes to out (errors to stderr).
 * grace_ms: how long to wait for a micd that is still starting. */
static int request_grace(const char *rundir, const char *line, FILE *out, int grace_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/micd.sock", rundir);
	int fd = connect_micd(&sa, grace_ms);
	if (fd < 0) {
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
		fwrite(p, 1, left, code ? stderr : out);
	}
	close(fd);
	if (first) {
		fprintf(stderr, "micctl: micd closed the connection without an answer\n");
		return 3;
	}
	return code;
}

static int request_to(const char *rundir, const char *line, FILE *out)
{
	return request_grace(rundir, line, out, 0);
}

/* "VERB CARD", its answer kept in *answer (the caller frees it; NULL if
 * none): request_to's code, or 1 out of memory. */
static int request_capture(const char *rundir, const char *verb, const char *card, char **answer)
{
	char line[96];
	size_t len = 0;
	*answer = NULL;
	FILE *mem = open_memstream(answer, &len);
	if (!mem)
		return 1;
	snprintf(line, sizeof(line), "%s %s\n", verb, card);
	int rc = request_to(rundir, line, mem);
	fclose(mem);
	return rc;
}

/*
 * stats --watch: the request again every interval until interrupted, on a
 * cleared screen like top; into a pipe or file, one block after another
 * without escape sequences (a JSON document per line with --json).
 */
static int watch(const char *rundir, const char *line, double interval, int json)
{
	int tty = isatty(1);
	for (int n = 0;; n++) {
		if (tty)
			fputs("\033[H\033[2J", stdout);
		else if (n && !json)
			fputc('\n', stdout);
		int rc = request_to(rundir, line, stdout);
		fflush(stdout);
		if (rc)
			return rc;
		struct timespec ts = { (time_t)interval,
				       (long)((interval - (double)(time_t)interval) * 1e9) };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Sends one request and drops its answer's text; returns the exit code. */
static int request_quiet(const char *rundir, const char *line)
{
	FILE *null = fopen("/dev/null", "w");
	int rc = null ? request_to(rundir, line, null) : 1;
	if (null)
		fclose(null);
	return rc;
}

/* Our terminal's size to the card's console (a virtio config change). */
static void send_size(const char *rundir, const char *card)
{
	struct winsize ws;
	char line[96];
	if (ioctl(0, TIOCGWINSZ, &ws) < 0 || !ws.ws_col || !ws.ws_row)
		return;
	snprintf(line, sizeof(line), "console-size %s %u %u\n", card, ws.ws_col, ws.ws_row);
	request_quiet(rundir, line);
}

/*
 * A scripted session's output, as the card frames it (include/mic/console.h):
 * what comes before its begin marker is earlier sessions' (dropped), what
 * comes after its end marker the terminal's shell again (not read).  A
 * marker may arrive in pieces: the tail that could start one is held.
 */
struct script {
	long boots; /* the card's boot count while online, when it began */
	char id[9];
	int begun, ended;
	char buf[65536 + 2 * MIC_CONSOLE_MARK_MAX];
	size_t len;
};

/* The card's boot count if it is online, else -1: a session lives as long
 * as the card OS it began on. */
static long card_boots(const char *rundir, const char *card)
{
	char *st;
	int rc = request_capture(rundir, "status-json", card, &st);
	const char *b = st ? strstr(st, "\"boots\":") : NULL;
	long boots = rc == 0 && st && strstr(st, "\"state\":\"online\"") && b ? atol(b + 8) : -1;
	free(st);
	return boots;
}

static int script_output(struct script *s, const char *p, size_t n)
{
	memcpy(s->buf + s->len, p, n);
	size_t len = s->len + n, i = 0;
	char *b = s->buf;
	s->len = 0;
	while (i < len && !s->ended) {
		char *m = memchr(b + i, MIC_CONSOLE_MARK, len - i);
		size_t upto = m ? (size_t)(m - b) : len;
		if (s->begun && write_all(1, b + i, upto - i) < 0)
			return -1;
		i = upto;
		if (!m)
			break;
		size_t room = len - i - 1 < MIC_CONSOLE_MARK_MAX ? len - i - 1 : MIC_CONSOLE_MARK_MAX;
		char *e = memchr(b + i + 1, MIC_CONSOLE_MARK, room);
		if (!e && len - i < MIC_CONSOLE_MARK_MAX) {
			memmove(s->buf, b + i, len - i); /* perhaps a marker, cut */
			s->len = len - i;
			return 0;
		}
		char tok[MIC_CONSOLE_MARK_MAX + 1] = "";
		if (e)
			snprintf(tok, sizeof(tok), "%.*s", (int)(e - b - i - 1), b + i + 1);
		size_t bl = strlen(MIC_CONSOLE_BEGIN), el = strlen(MIC_CONSOLE_END);
		if (!s->begun && !strncmp(tok, MIC_CONSOLE_BEGIN, bl) && !strcmp(tok + bl, s->id)) {
			s->begun = 1;
		} else if (s->begun && !strncmp(tok, MIC_CONSOLE_END, el) &&
			   !strncmp(tok + el, s->id, 8) && tok[el + 8] == ' ') {
			s->ended = 1;
		} else {
			/* Not ours: the byte is output like any other. */
			if (s->begun && write_all(1, b + i, 1) < 0)
				return -1;
			i++;
			continue;
		}
		i = (size_t)(e - b) + 1;
	}
	return 0;
}

/*
 * Attaches to <rundir>/<card>/console, the host end of the card's
 * virtio-console.  The daemon keeps the PTY open, so detaching loses
 * nothing: output waits in the PTY until the next attach.  On a terminal
 * the card's terminal follows our window (SIGWINCH); with stdin not a
 * terminal the session is a scripted one (docs/architecture.md 3.11).
 */
static int console(const char *rundir, const char *card, double linger)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s/console", rundir, card);
	/* Ask micd first: no daemon or no such card is a clear error, and a
	 * card that is not online gets a word of explanation. */
	char line[96], *st;
	int rc = request_capture(rundir, "status", card, &st);
	if (rc == 0 && st && !strstr(st, ": online")) {
		int n = (int)strcspn(st, "(\n");
		while (n > 0 && st[n - 1] == ' ')
			n--;
		fprintf(stderr, "micctl: %.*s; the console shows the card OS once it is online\n", n, st);
	}
	free(st);
	if (rc == 3 || rc == 4)
		return rc;
	int fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "micctl: %s: %s (is '%s' a card of this micd?)\n", path, strerror(errno),
			card);
		return errno == ENOENT ? 4 : 1;
	}
	int tty = isatty(0);
	struct termios saved, raw;
	/* A closed stdout (micctl console mic0 | head) ends the session,
	 * it does not kill us with the terminal left raw. */
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = { .sa_handler = on_stop_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	int winch = -1;
	static struct script scr;
	int script = 0;
	if (tty) {
		/* Every window change reaches the card, as it happens. */
		sigset_t ws;
		sigemptyset(&ws);
		sigaddset(&ws, SIGWINCH);
		sigprocmask(SIG_BLOCK, &ws, NULL);
		winch = signalfd(-1, &ws, SFD_CLOEXEC | SFD_NONBLOCK);
		send_size(rundir, card);
		tcgetattr(0, &saved);
		raw = saved;
		cfmakeraw(&raw);
		tcsetattr(0, TCSANOW, &raw);
		fprintf(stderr, "micctl: attached to %s console, Ctrl-] detaches\r\n", card);
	} else {
		/* A scripted session if the card's driver has them; else the
		 * terminal's shell, as it always was. */
		uint32_t id = 0;
		while (!id && getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
			id = (uint32_t)getpid() ^ (uint32_t)time(NULL);
		snprintf(scr.id, sizeof(scr.id), "%08x", id);
		snprintf(line, sizeof(line), "console-session %s %s\n", card, scr.id);
		scr.boots = card_boots(rundir, card);
		script = scr.boots >= 0 && request_quiet(rundir, line) == 0;
	}
	struct pollfd p[3] = { { .fd = script ? -1 : 0, .events = POLLIN },
			       { .fd = fd, .events = POLLIN },
			       { .fd = winch, .events = POLLIN } };
	char buf[65536];
	int in_open = 1, last_nl = 1, eofs = 0;
	rc = 0;
	for (;;) {
		/* A session's shell starts within this, or not at all. */
		int wait_ms = script && !scr.begun ? 5000 : in_open ? -1 : (int)(linger * 1000);
		int n = poll(p, 3, wait_ms);
		if (console_stop || (n < 0 && errno != EINTR))
			break;
		if (n < 0)
			continue;
		if (n == 0) {
			if (script && !scr.begun) {
				fprintf(stderr, "micctl: %s did not start a console session\n", card);
				rc = 1;
				break;
			}
			if (!script)
				break; /* quiet after stdin ended */
			if (card_boots(rundir, card) != scr.boots) {
				/* Lost, reset or rebooted: its shell is gone. */
				fprintf(stderr, "micctl: %s went down; the session ended with it\n", card);
				rc = 1;
				break;
			}
			/* A terminal's end of file is read once: a command
			 * of the script may have taken it, the shell still
			 * needs one (stdin stays at its end, as a pipe's).
			 * A few times: each waits in the card's PTY while a
			 * silent command runs. */
			if (eofs++ < 16)
				write_all(fd, "\x04", 1);
			continue;
		}
		if (p[2].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(winch, &si, sizeof(si)) == sizeof(si))
				;
			send_size(rundir, card);
		}
		if (p[1].revents & POLLIN) {
			ssize_t r = read(fd, buf, sizeof(buf));
			if (r <= 0)
				break;
			if (script) {
				int was = scr.begun;
				if (script_output(&scr, buf, (size_t)r) < 0 || scr.ended)
					break;
				if (!was && scr.begun) /* its shell runs: stdin may go */
					p[0].fd = 0;
			} else if (write_all(1, buf, (size_t)r) < 0) {
				break;
			}
		} else if (p[1].revents & (POLLHUP | POLLERR)) {
			break;
		}
		if (in_open && (p[0].revents & (POLLIN | POLLHUP))) {
			ssize_t r = read(0, buf, sizeof(buf));
			if (r <= 0) {
				in_open = 0;
				p[0].fd = -1;
				/* End of the script: end of file for its shell,
				 * after its last line. */
				if (script)
					write_all(fd, last_nl ? "\x04" : "\n\x04", last_nl ? 1 : 2);
				continue;
			}
			if (tty && memchr(buf, ESCAPE_KEY, (size_t)r)) {
				r = (char *)memchr(buf, ESCAPE_KEY, (size_t)r) - buf;
				write_all(fd, buf, (size_t)r);
				break;
			}
			if (write_all(fd, buf, (size_t)r) < 0) {
				rc = 1;
				break;
			}
			last_nl = buf[r - 1] == '\n';
		}
	}
	if (script && !scr.ended) {
		/* Interrupted: the session's shell goes, the terminal's comes back. */
		snprintf(line, sizeof(line), "console-session %s 0\n", card);
		request_quiet(rundir, line);
	}
	if (tty) {
		tcsetattr(0, TCSANOW, &saved);
		fprintf(stderr, "\nmicctl: detached from %s console\n", card);
	}
	if (winch >= 0)
		close(winch);
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	const char *rundir = getenv("MIC_RUNDIR");
	int json = 0, nowait = 0;
	double timeout = -1, linger = 0.5, watch_s = 0; /* timeout: -1 none given */
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
			timeout = seconds_arg("--timeout", argv[++i]);
		else if (!strcmp(argv[i], "--linger") && i + 1 < argc)
			linger = seconds_arg("--linger", argv[++i]);
		else if (!strcmp(argv[i], "--watch") && i + 1 < argc)
			watch_s = seconds_arg("--watch", argv[++i]);
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
	if (watch_s && (strcmp(words[0], "stats") || watch_s < 0.1)) {
		fprintf(stderr, "micctl: --watch is for stats, at least 0.1 seconds\n");
		return 2;
	}
	const char *cmd = words[0];
	char line[256], wait_ms[32] = "";
	/* "wait MS": how long micd may hold the verb for a transition under way */
	if (timeout >= 0)
		snprintf(wait_ms, sizeof(wait_ms), " %ld", (long)(timeout * 1000));
	int grace = 0; /* requests that wait anyway also wait for micd to start */
	if (!strcmp(cmd, "status") && nw <= 2) {
		snprintf(line, sizeof(line), "%s %s\n", json ? "status-json" : "status", nw > 1 ? words[1] : "");
	} else if ((!strcmp(cmd, "boot") || !strcmp(cmd, "shutdown") || !strcmp(cmd, "reset")) && nw == 2) {
		snprintf(line, sizeof(line), "%s %s%s%s\n", cmd, words[1], nowait ? "" : " wait",
			 nowait || !strcmp(cmd, "reset") ? "" : wait_ms);
		grace = !nowait;
	} else if (!strcmp(cmd, "suspend") && nw == 1) {
		snprintf(line, sizeof(line), "%s\n", cmd);
		grace = 1;
	} else if (!strcmp(cmd, "resume") && nw == 1) {
		snprintf(line, sizeof(line), "resume%s%s\n", wait_ms[0] ? " wait" : "", wait_ms);
		grace = 1;
	} else if (!strcmp(cmd, "wait") && nw == 3) {
		snprintf(line, sizeof(line), "wait %s %s %ld\n", words[1], words[2],
			 (long)((timeout >= 0 ? timeout : 10) * 1000));
		grace = 1;
	} else if (!strcmp(cmd, "console-size") && nw == 4) {
		snprintf(line, sizeof(line), "console-size %s %s %s\n", words[1], words[2], words[3]);
	} else if (!strcmp(cmd, "console") && nw == 2) {
		return console(rundir, words[1], linger);
	} else if (!strcmp(cmd, "log") && nw == 2) {
		snprintf(line, sizeof(line), "log %s\n", words[1]);
	} else if (!strcmp(cmd, "stats") && nw <= 2) {
		snprintf(line, sizeof(line), "%s %s\n", json ? "stats-json" : "stats",
			 nw > 1 ? words[1] : "");
		if (watch_s > 0)
			return watch(rundir, line, watch_s, json);
	} else {
		usage();
	}
	grace = grace ? DAEMON_START_GRACE_MS : 0;
	if (timeout >= 0 && timeout * 1000 < grace)
		grace = (int)(timeout * 1000);
	return request_grace(rundir, line, stdout, grace);
}
