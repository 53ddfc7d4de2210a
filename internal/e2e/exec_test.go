package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/task"
)

// weirdProgram is a program whose path a shell would split at the space and
// expand at the $: run as argv it prints "ran", through /bin/sh -c it is
// "/tmp/a" (not found, 127).
const weirdProgram = "/tmp/a b$x"

// putWeirdProgram installs weirdProgram in sandbox vm.
func putWeirdProgram(t *testing.T, c *client.Client, vm string) {
	t.Helper()
	if _, err := c.PutFile(ctx(t), vm, weirdProgram, 0o755, strings.NewReader("#!/bin/sh\necho ran \"$@\"\n")); err != nil {
		t.Fatal(err)
	}
}

// TestExecWithoutShell runs a lone command with "shell":false through the
// streaming exec, the queue and the CLI: each runs it as the program, where
// the default (a shell line) does not. The history endpoint then says how
// each one ran: the records once kept only command and args, so a shell
// line and the same command run as the program read back alike.
func TestExecWithoutShell(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "argv"})
	putWeirdProgram(t, e.c, vm.Name)

	var out bytes.Buffer
	res, err := e.c.Exec(ctx(t), vm.ID, &task.ExecParams{Command: weirdProgram, Shell: new(false)}, nil, &out, &out)
	if err != nil || *res.ExitCode != 0 || out.String() != "ran\n" {
		t.Errorf("exec shell:false = %q %+v %v, want ran and exit 0", out.String(), res, err)
	}
	if out, code := e.MustExec(vm.Name, weirdProgram); code != 127 {
		t.Errorf("exec as a shell line = %q exit %d, want the shell's 127 for /tmp/a", out, code)
	}

	acc, err := e.c.Execute(ctx(t), vm.Name, &task.ExecParams{Command: weirdProgram, Shell: new(false)})
	if err != nil {
		t.Fatal(err)
	}
	tk := e.mustWait(acc.TaskID)
	var xr task.ExecResult
	json.Unmarshal(tk.Result, &xr)
	if tk.Status != store.TaskSucceeded || xr.Stdout != "ran\n" {
		t.Errorf("execute shell:false = %s %s %+v, want ran", tk.Status, tk.Error, xr)
	}

	if out, code := e.aether("", "exec", "--no-shell", vm.Name, "--", weirdProgram); out != "ran\n" || code != 0 {
		t.Errorf("aether exec --no-shell = %q exit %d, want ran", out, code)
	}
	// With args and no "shell" field the worker runs the program: the record
	// holds its decision, not the request's (absent) field.
	out.Reset()
	if res, err := e.c.Exec(ctx(t), vm.ID, &task.ExecParams{Command: weirdProgram, Args: []string{"x"}}, nil, &out, &out); err != nil ||
		*res.ExitCode != 0 || out.String() != "ran x\n" {
		t.Errorf("exec with args = %q %+v %v, want ran x and exit 0", out.String(), res, err)
	}

	execs, err := e.c.Executions(ctx(t), vm.Name)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range execs {
		if x.Command != weirdProgram {
			continue
		}
		shell, exit := "unknown", "none"
		if x.Shell != nil {
			shell = fmt.Sprint(*x.Shell)
		}
		if x.ExitCode != nil {
			exit = fmt.Sprint(*x.ExitCode)
		}
		got = append(got, fmt.Sprintf("shell=%s args=%q exit=%s", shell, x.Args, exit))
	}
	want := []string{
		`shell=false args=[] exit=0`,    // exec, "shell":false
		`shell=true args=[] exit=127`,   // exec, a shell line
		`shell=false args=[] exit=0`,    // execute (queued), "shell":false
		`shell=false args=[] exit=0`,    // aether exec --no-shell
		`shell=false args=["x"] exit=0`, // exec with args
	}
	if !slices.Equal(got, want) {
		t.Errorf("history of %s:\n got %q\nwant %q", weirdProgram, got, want)
	}
}
