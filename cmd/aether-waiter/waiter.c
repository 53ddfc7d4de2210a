/*
 * aether-waiter holds a Docker sandbox's PID 1 while its agent is dormant.
 *
 * An idle agent (a Go program, about 1.2 MiB of a sandbox's memory more than
 * `sleep`) replaces itself with this program by execve, so the process, its
 * pid and its children stay; this program keeps the agent's listening socket
 * and reaps orphans, as PID 1 must. The first connection to the socket makes
 * it execve the agent again, which accepts that connection. See
 * docs/ARCHITECTURE.md, "Dormant agents".
 *
 * It reads nothing from the sandbox: no connection, no file, no path. Its
 * arguments come from the agent: the listening socket's fd, the agent
 * binary's fd (opened when the container started, before any command ran)
 * and the agent's argv. SIGTERM and SIGINT end it, as they end the agent.
 * If the agent cannot be started, it stays (its sandbox's processes would
 * end with PID 1), refuses that connection and tries again at the next.
 *
 * C, not Go: a Go runtime is what costs the memory (see BENCHMARKS.md).
 * Static, so it runs in any image. Usage:
 *
 *	aether-waiter LISTEN_FD AGENT_FD AGENT_ARGV0 [AGENT_ARGS...]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void say(const char *msg) {
	if (write(2, msg, strlen(msg)) < 0)
		return; /* nowhere to say it */
}

static int fd_arg(const char *s) {
	char *end;
	long v;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v < 3 || v > 1 << 20)
		return -1;
	if (fcntl((int)v, F_GETFD) < 0)
		return -1;
	return (int)v;
}

/* stopping is set by a SIGTERM or SIGINT that arrives while the signals
 * are unblocked around the agent's exec; as a namespace's init, PID 1
 * would otherwise drop it (no handler, default action). */
static volatile sig_atomic_t stopping;

static void on_stop(int sig) {
	(void)sig;
	stopping = 1;
}

static void reap(void) {
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

/* stop_signalled drains the signals that arrived and reports whether one
 * of them asks the sandbox to stop. */
static int stop_signalled(int sfd) {
	struct signalfd_siginfo si;
	int stop = 0;
	while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			stop = 1;
	return stop;
}

/* exec_agent execs the agent, returning only on failure. An exec makes a
 * process dumpable until the new program says otherwise, and the workload
 * could open /proc/1/mem in that moment; with a real gid other than the
 * effective one the kernel makes the new program non-dumpable from the
 * start, and refuses the workload (whose gids match) meanwhile. The agent
 * gives the gid back first thing. */
static void exec_agent(int afd, char **agent_argv) {
	gid_t eg = getegid();
	int e;
	if (setresgid(eg == 65534 ? 65533 : 65534, eg, eg) < 0)
		return;
	syscall(SYS_execveat, afd, "", agent_argv, environ, AT_EMPTY_PATH);
	e = errno;
	if (setresgid(eg, eg, eg) < 0)
		say("aether-waiter: cannot give the real gid back\n");
	errno = e;
}

/* wait_for_connection reaps orphans until a connection waits on lfd (1)
 * or a stop is asked for (0). */
static int wait_for_connection(int lfd, int sfd) {
	for (;;) {
		struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
		reap();
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 0;
		}
		if (stop_signalled(sfd))
			return 0;
		if (p[0].revents & POLLNVAL)
			return 0;
		/* An error on the socket is the agent's to report (polling on
		 * would spin). */
		if (p[0].revents & (POLLIN | POLLERR | POLLHUP))
			return 1;
	}
}

int main(int argc, char **argv) {
	sigset_t mask, old;
	int lfd, afd, sfd;

	if (argc < 4 || (lfd = fd_arg(argv[1])) < 0 || (afd = fd_arg(argv[2])) < 0) {
		say("aether-waiter: usage: aether-waiter LISTEN_FD AGENT_FD AGENT_ARGV0 [ARGS...]\n");
		return 2;
	}
	/* Not ptraceable, and /proc/1's memory and descriptors closed to the
	 * workload (which has PID 1's capabilities and uid); then the real gid
	 * the agent's exec borrowed is given back (see exec_agent). */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (getgid() != getegid() && setresgid(getegid(), getegid(), getegid()) < 0)
		say("aether-waiter: cannot give the real gid back\n");
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, &old) < 0)
		return 1;
	signal(SIGTERM, on_stop);
	signal(SIGINT, on_stop);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		return 1;
	while (wait_for_connection(lfd, sfd)) {
		reap();
		/* The agent starts with the mask this process was given (its
		 * commands inherit it); a stop that came in meanwhile is still
		 * honoured. */
		sigprocmask(SIG_SETMASK, &old, NULL);
		if (stopping)
			return 0;
		exec_agent(afd, argv + 3);
		/* PID 1 stays, or the sandbox and its processes would end: the
		 * connection is refused, the next one tries again. */
		sigprocmask(SIG_BLOCK, &mask, NULL);
		say("aether-waiter: cannot start the agent: ");
		say(strerror(errno));
		say("\n");
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (c >= 0)
			close(c);
		sleep(1);
	}
	return 0;
}
