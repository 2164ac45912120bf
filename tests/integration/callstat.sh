#!/bin/bash
# scripts/callstat.c, the shim docs/profile.md's per-call figures come from:
# it builds with the project's warnings as errors, and linked with --wrap
# into a program it counts that program's calls by kind and fd type, the
# user time between them, and with CALLSTAT_CPU the CPU inside them; never
# its own writes of the figures, and a forked child's calls apart.
. "$(dirname "$0")/lib.sh"

CC=${CC:-cc}
SRC="$MIC_SRC/scripts/callstat.c"
check "callstat.c builds with -Wall -Wextra -Werror" \
    "$CC" -O2 -Wall -Wextra -Werror -c "$SRC" -o "$RUNDIR/callstat.o"
cat >"$RUNDIR/prog.c" <<'C'
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void)
{
	int fd = open("/dev/null", O_WRONLY), p[2], st;
	char c = 'x';
	if (fd < 0 || pipe(p) < 0)
		return 1;
	/* 50000 each: one dump at the 100000th call */
	for (int i = 0; i < 50000; i++)
		if (write(fd, &c, 1) != 1 || read(p[0], &c, 0) != 0)
			return 1;
	/* 100000 more writes: a second dump, at the 200000th call if the
	 * first dump's own writes were not counted */
	for (int i = 0; i < 100000; i++)
		if (write(fd, &c, 1) != 1)
			return 1;
	/* a child of its own: 100000 writes, a dump of its own */
	pid_t child = fork();
	if (child == 0) {
		for (int i = 0; i < 100000; i++)
			if (write(fd, &c, 1) != 1)
				_exit(1);
		_exit(0);
	}
	return child > 0 && waitpid(child, &st, 0) == child && WIFEXITED(st) && !WEXITSTATUS(st) ? 0 : 1;
}
C
# the wrap list docs/profile.md and callstat.c's usage give
WRAP=-Wl,--wrap=read,--wrap=write,--wrap=readv,--wrap=writev,--wrap=recv,--wrap=recvfrom,--wrap=sendto,--wrap=poll,--wrap=epoll_wait
check "a program links with the shim wrapped around the data path's calls" \
    "$CC" -O2 -o "$RUNDIR/prog" "$RUNDIR/prog.c" "$RUNDIR/callstat.o" "$WRAP"
CALLSTAT_CPU=1 "$RUNDIR/prog" 2>"$RUNDIR/cs.txt"
check "the program runs as before" test $? -eq 0
cs=$(cat "$RUNDIR/cs.txt")
check "a summary line at the 100000th call" \
    grep -Eq '^CS [0-9]+ user [0-9]+ nuser [0-9]+ calls 100000$' <<<"$cs"
check "the writes to /dev/null counted as a character device, with p25, p50, gap and CPU" \
    grep -Eq '^CS [0-9]+ write\.chr\.ok n=50000 p25=[0-9]+ p50=[0-9]+ gap=[0-9]+ cpu_ns=[1-9][0-9]*$' <<<"$cs"
check "the reads of the pipe counted apart" \
    grep -Eq '^CS [0-9]+ read\.pipe\.ok n=50000 ' <<<"$cs"
check "the shim's own figures are not counted as the program's calls" \
    grep -Eq '^CS [0-9]+ write\.chr\.ok n=150000 ' <<<"$cs"
check "a forked child counts its own calls from zero: a summary at its 100000th" \
    test "$(grep -Ec '^CS [0-9]+ user [0-9]+ nuser [0-9]+ calls 100000$' <<<"$cs")" -eq 2
check "the child's writes alone in its figures" \
    grep -Eq '^CS [0-9]+ write\.chr\.ok n=100000 ' <<<"$cs"
[ "$T_FAILS" -eq 0 ] || say "$cs"
finish
