package main

import (
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/aetherium/aetherium/client"
)

func newShellCmd(g *globals) *cobra.Command {
	var o client.PtyOptions
	cmd := &cobra.Command{
		Use: "shell VM [-- COMMAND [ARG...]]", ValidArgsFunction: completeVM(g, false),
		Short: "Open an interactive terminal in a sandbox; exits with the remote exit code",
		Long: "Runs a login shell (bash if the sandbox has it, else sh), or the command, on a pseudo-terminal\n" +
			"in the sandbox. Your terminal is put in raw mode, so keys like Ctrl-C and Ctrl-Z reach the sandbox;\n" +
			"its size follows yours. One command word is run by /bin/sh -c, several are a program and its\n" +
			"arguments. Piped (non-terminal) stdin is typed in, then Ctrl-D. The exit code is the remote\n" +
			"command's; a signal gives 128+N.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch argv := args[1:]; len(argv) {
			case 0:
			case 1:
				o.Command = argv[0]
			default:
				o.Argv = argv
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			inFd, outFd := int(os.Stdin.Fd()), int(os.Stdout.Fd())
			interactive := term.IsTerminal(inFd)
			if w, h, err := term.GetSize(outFd); err == nil {
				o.Cols, o.Rows = w, h
			}
			t, err := c.Pty(cmd.Context(), args[0], &o)
			if err != nil {
				return err
			}
			defer t.Close()
			if interactive {
				old, err := term.MakeRaw(inFd)
				if err != nil {
					return err
				}
				defer term.Restore(inFd, old)
			}
			stop := followSize(t, outFd)
			defer stop()
			go typeInto(t, os.Stdin, interactive)
			if _, err := io.Copy(cmd.OutOrStdout(), t); err != nil {
				return err
			}
			exit, err := t.Wait()
			if err != nil {
				return err
			}
			switch {
			case exit.Signal != "":
				return &exitError{128 + signalNumber(exit.Signal)}
			case *exit.ExitCode != 0:
				return &exitError{*exit.ExitCode}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&o.Env, "env", "e", nil, "KEY=VALUE to set (repeatable)")
	cmd.Flags().StringVarP(&o.Cwd, "workdir", "w", "", "working directory inside the sandbox")
	cmd.Flags().StringVarP(&o.User, "user", "u", "", "user to run as")
	return cmd
}

// followSize resizes the remote terminal whenever ours changes (SIGWINCH).
func followSize(t *client.Terminal, fd int) (stop func()) {
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	go func() {
		for range winch {
			if w, h, err := term.GetSize(fd); err == nil {
				t.Resize(w, h)
			}
		}
	}()
	return func() { signal.Stop(winch); close(winch) }
}

// typeInto copies stdin into the terminal; piped input ends with Ctrl-D,
// as if typed.
func typeInto(t *client.Terminal, in io.Reader, interactive bool) {
	io.Copy(t, in)
	if !interactive {
		t.Write([]byte{4})
	}
}
