package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/task"
)

// execFlags are shared by exec and execute.
type execFlags struct {
	env     []string
	cwd     string
	user    string
	timeout int
	noShell bool
}

func (f *execFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVarP(&f.env, "env", "e", nil, "KEY=VALUE to set (repeatable)")
	cmd.Flags().StringVarP(&f.cwd, "workdir", "w", "", "working directory inside the sandbox")
	cmd.Flags().StringVarP(&f.user, "user", "u", "", "user to run as")
	cmd.Flags().IntVarP(&f.timeout, "timeout", "t", 0, "kill the command after this many seconds (0: no limit)")
	cmd.Flags().BoolVar(&f.noShell, "no-shell", false, "run a lone COMMAND as the program, not as a /bin/sh -c line")
}

// prepare returns the API client and the request for `-- cmd args`.
func (f *execFlags) prepare(g *globals, argv []string) (*client.Client, *task.ExecParams, error) {
	req, err := f.request(argv)
	if err != nil {
		return nil, nil, err
	}
	c, err := g.client()
	return c, req, err
}

// request builds the API request from `-- cmd args`: one word is run by the
// shell (so "a | b" works) unless --no-shell, several are a program and its
// arguments.
func (f *execFlags) request(argv []string) (*task.ExecParams, error) {
	req := &task.ExecParams{Command: argv[0], Args: argv[1:], Cwd: f.cwd, User: f.user, TimeoutSeconds: f.timeout}
	if f.noShell {
		req.Shell = new(false)
	}
	for _, kv := range f.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--env %q: want KEY=VALUE", kv)
		}
		if req.Env == nil {
			req.Env = map[string]string{}
		}
		req.Env[k] = v
	}
	return req, nil
}

func newExecCmd(g *globals) *cobra.Command {
	f := &execFlags{}
	var noStdin, detach, keepRunning bool
	cmd := &cobra.Command{
		Use: "exec VM -- COMMAND [ARG...]", ValidArgsFunction: completeVM(g, false),
		Short: "Run a command in a sandbox, streaming its output; exits with its exit code",
		Long: "Runs directly in the sandbox (not through the queue). Output streams as it is produced.\n" +
			"Piped stdin is forwarded. The exit code is the command's; a signal gives 128+N, a timeout 124.\n" +
			"Interrupting aether kills the command, unless --keep-running; --detach starts it in the background.",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, req, err := f.prepare(g, args[1:])
			if err != nil {
				return err
			}
			if detach {
				req.Background = true
				pid, err := c.StartProcess(cmd.Context(), args[0], req)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), pid)
				return nil
			}
			req.KeepRunning = keepRunning
			var stdin io.Reader
			if !noStdin && !isTerminal(os.Stdin) {
				stdin = os.Stdin
			}
			res, err := c.Exec(cmd.Context(), args[0], req, stdin, cmd.OutOrStdout(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return exitFor(res)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "do not forward stdin")
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "start in the background and print its PID (see ps, attach, kill)")
	cmd.Flags().BoolVar(&keepRunning, "keep-running", false, "keep the command running if aether is interrupted (see ps, attach)")
	return cmd
}

// exitFor maps the remote outcome to this process's exit code, the way a
// shell would.
func exitFor(res *apiv1.ExecExit) error {
	switch {
	case res.TimedOut:
		fmt.Fprintln(os.Stderr, "aether: command timed out")
		return &exitError{124}
	case res.Signal != "":
		return &exitError{128 + signalNumber(res.Signal)}
	case res.ExitCode != nil && *res.ExitCode != 0:
		return &exitError{*res.ExitCode}
	}
	return nil
}

func signalNumber(name string) int {
	for i := 1; i < 65; i++ {
		if "SIG"+strings.ToUpper(strings.TrimPrefix(syscall.Signal(i).String(), "SIG")) == name {
			return i
		}
	}
	known := map[string]int{"SIGKILL": 9, "SIGTERM": 15, "SIGINT": 2, "SIGSEGV": 11, "SIGABRT": 6, "SIGHUP": 1, "SIGPIPE": 13}
	if n, ok := known[name]; ok {
		return n
	}
	return 0
}

func newExecuteCmd(g *globals) *cobra.Command {
	f := &execFlags{}
	var wait bool
	cmd := &cobra.Command{
		Use: "execute VM -- COMMAND [ARG...]", ValidArgsFunction: completeVM(g, false),
		Short: "Queue a command (async); prints the task id",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, req, err := f.prepare(g, args[1:])
			if err != nil {
				return err
			}
			acc, err := c.Execute(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			if !wait {
				return g.print(cmd.OutOrStdout(), acc, func(tw *tabwriter.Writer) { fmt.Fprintln(tw, acc.TaskID) })
			}
			t, err := waitTask(cmd, g, c, acc.TaskID, "execute")
			if err != nil {
				return err
			}
			return printTask(g, cmd, t)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the result")
	return cmd
}
