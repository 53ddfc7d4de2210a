package e2e_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/aetherium/aetherium/internal/task"
	"github.com/aetherium/aetherium/internal/testbin"
)

// browser starts one headless Chromium (Debian's package; scripts/setup.sh
// installs it) with a fresh profile and returns a tab's context.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	testbin.Need(t, "chromium", err)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	tctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel)
	if err := chromedp.Do(tctx); err != nil { // start the browser without a deadline (chromedp.Run's rule)
		t.Fatalf("start chromium: %v", err)
	}
	return tctx
}

// artifacts is where the test keeps its screenshots: $AETHER_TEST_ARTIFACTS
// (CI's .ci/run sets it), else a new temporary directory that is kept and
// logged.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("AETHER_TEST_ARTIFACTS")
	var err error
	if dir != "" {
		dir = filepath.Join(dir, "dashboard")
		err = os.MkdirAll(dir, 0o755)
	} else {
		dir, err = os.MkdirTemp("", "aether-dashboard-")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// screenshot saves the page as name.png.
func screenshot(dir, name string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		png, err := chromedp.FullScreenshot(100)(ctx, t)
		if err != nil {
			return chromedp.Void{}, err
		}
		return chromedp.Void{}, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
	}
}

// waitTrue polls a JavaScript expression until it is true (the browser
// context's deadline bounds it, not the poll).
func waitTrue(expr string) chromedp.Action[chromedp.Void] {
	poll := chromedp.Poll[bool](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0))
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := poll(ctx, t)
		return chromedp.Void{}, err
	}
}

// typeLine types text and Enter into the focused element the way a browser
// delivers typing: the text as inserted text, then one Enter key press.
// (chromedp.SendKeys sends each key as keyDown plus char, which xterm.js
// takes as two keystrokes.)
func typeLine(text string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: text}); err != nil {
			return err
		}
		enter := input.DispatchKeyEventParams{Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13}
		down, up := enter, enter
		down.Type, down.Text, down.UnmodifiedText = input.DispatchKeyEventTypeKeyDown, "\r", "\r"
		up.Type = input.DispatchKeyEventTypeKeyUp
		for _, k := range []input.DispatchKeyEventParams{down, up} {
			if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, k); err != nil {
				return err
			}
		}
		return nil
	})
}

// visit goes to a page of the dashboard (a fragment: no document load).
func visit(fragment string) chromedp.Action[chromedp.Void] {
	return waitTrue(fmt.Sprintf("(location.hash = %q, true)", fragment))
}

// acceptConfirm answers yes to the page's window.confirm (delete).
var acceptConfirm = waitTrue("(window.confirm = () => true, true)")

// TestDashboard drives the web dashboard in real headless Chromium against
// a real aetherd with Docker sandboxes: log in with the admin key, load
// every page, create a sandbox through the form, watch a live event arrive,
// type a command into the terminal and read its output, delete the
// sandbox, log out. Screenshots of each page are kept as artifacts.
func TestDashboard(t *testing.T) {
	tab := browser(t)
	// The whole browser session is bounded; no single step is timed.
	b, cancel := context.WithTimeout(tab, 4*time.Minute)
	defer cancel()
	e := newDockerEnv(t)
	dir := artifacts(t)
	base := "http://" + e.addr + "/"
	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(b, actions...); err != nil {
			shot, cancel := context.WithTimeout(tab, 10*time.Second)
			defer cancel()
			chromedp.Do(shot, screenshot(dir, "failed-"+name))
			t.Fatalf("%s: %v", name, err)
		}
	}
	page := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			visit("#/"+name),
			chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`main[data-page=%q] h1`, name))),
			screenshot(dir, name),
		)
	}

	step("login",
		chromedp.Navigate(base),
		chromedp.WaitVisible(chromedp.ID("login-key")),
		screenshot(dir, "login"),
		chromedp.SendKeys(chromedp.ID("login-key"), e.key()),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("create-form")))

	step("create a sandbox",
		chromedp.SendKeys(chromedp.ID("create-name"), "ui-box"),
		chromedp.Click(chromedp.ID("create-submit")),
		// The list re-renders on the sandbox's events until it runs.
		chromedp.WaitVisible(chromedp.CSS(`tr[data-vm-name="ui-box"][data-status="running"]`)),
		screenshot(dir, "sandboxes"))
	vm, err := e.c.GetVM(ctx(t), "ui-box")
	if err != nil || vm.Status != "running" {
		t.Fatalf("the sandbox created through the page: %+v, %v", vm, err)
	}

	step("live event", page("events"))
	acc, err := e.c.Execute(ctx(t), vm.ID, &task.ExecParams{Command: "echo from-the-queue"})
	if err != nil {
		t.Fatal(err)
	}
	e.mustWait(acc.TaskID)
	step("live event arrives",
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#events li[data-task-id=%q][data-status="succeeded"]`, acc.TaskID))),
		screenshot(dir, "events"))

	for _, name := range []string{"tasks", "jobs", "templates", "workers", "logs"} {
		step(name, page(name))
	}
	step("executions",
		visit("#/executions/"+vm.ID),
		chromedp.WaitVisible(chromedp.CSS(`main[data-page="executions"] pre.stdout`)),
		waitTrue(`document.querySelector('main').textContent.includes('from-the-queue')`),
		// The queued command ran as a shell line, and the table says so.
		waitTrue(`document.querySelector('tr[data-ran-as="shell"] td.ran-as')?.textContent === 'shell'`),
		screenshot(dir, "executions"))

	step("terminal",
		visit("#/terminal/"+vm.ID),
		waitTrue(`document.getElementById('terminal-state')?.textContent === 'connected'`),
		chromedp.Focus(chromedp.CSS(".xterm-helper-textarea")),
		typeLine("echo dash-$((6*7))"),
		waitTrue(`document.querySelector('.xterm-rows').textContent.includes('dash-42')`),
		screenshot(dir, "terminal"))

	step("delete the sandbox",
		visit("#/sandboxes"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-vm-name="ui-box"] button.delete`)),
		acceptConfirm,
		chromedp.Click(chromedp.CSS(`tr[data-vm-name="ui-box"] button.delete`)),
		// Deleted sandboxes leave the list once the delete has run.
		waitTrue(`document.querySelector('main[data-page="sandboxes"]') && !document.querySelector('tr[data-vm-name="ui-box"]')`),
		screenshot(dir, "deleted"))
	if vm, err := e.c.GetVM(ctx(t), vm.ID); err != nil || vm.Status != "deleted" {
		t.Errorf("after the page's delete: %+v, %v; want deleted", vm, err)
	}

	step("logout",
		chromedp.Click(chromedp.ID("logout")),
		chromedp.WaitVisible(chromedp.ID("login-key")),
		chromedp.Reload(), // the cookie is gone: a fresh load shows the login again
		chromedp.WaitVisible(chromedp.ID("login-key")))
	text, err := chromedp.Run(b, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, "ui-box") {
		t.Errorf("after logout the page shows %q", text)
	}
}
