package github

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"

	"github.com/aetherium/aetherium/internal/integrations"
)

// defaultGitURL is where repositories are pushed when git_url is not set.
const defaultGitURL = "https://github.com"

// gitHardening is given to every git the host runs on a sandbox's bundle:
// no system or user config, no hooks, objects checked as they arrive, and
// only the transports the push needs (file for the bundle, http(s) for the
// remote).
var gitHardening = []string{"-c", "core.hooksPath=/dev/null", "-c", "fetch.fsckObjects=true",
	"-c", "protocol.allow=never", "-c", "protocol.file.allow=always", "-c", "protocol.https.allow=always",
	"-c", "protocol.http.allow=always", "-c", "credential.helper="}

// pushBundle fetches the HEAD of the bundle (a host file read from the
// sandbox, hostile) into a scratch bare repository and pushes it to
// a.Branch of a.Repo. The credential goes in an Authorization header
// (http.extraHeader, given through git's environment), never in the URL,
// a command line, the sandbox or a log. It returns
// the commit pushed.
func (g *GitHub) pushBundle(ctx context.Context, a *integrations.Artifact) (string, error) {
	token, err := g.pushToken(ctx)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "aether-artifact-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	ref := "refs/heads/" + a.Branch
	if _, err := runGit(ctx, dir, "init", "-q", "--bare", "."); err != nil {
		return "", err
	}
	if _, err := runGit(ctx, dir, "fetch", "-q", "--no-tags", a.Bundle, "HEAD:"+ref); err != nil {
		if ctx.Err() != nil {
			return "", err
		}
		return "", integrations.Permanent(fmt.Errorf("github: the sandbox's bundle: %w", err))
	}
	commit, err := runGit(ctx, dir, "rev-parse", ref)
	if err != nil {
		return "", err
	}
	// As config from the environment, not -c: a command line is readable
	// by every local user (ps), a process's environment only by its owner.
	auth := []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader",
		"GIT_CONFIG_VALUE_0=Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+token))}
	if _, err := runGitEnv(ctx, dir, auth, "push", "-q", g.remote(a.Repo), ref+":"+ref); err != nil {
		return "", fmt.Errorf("github: push %s to %s: %w", a.Branch, a.Repo, err)
	}
	return commit, nil
}

// remote is repo's git URL under git_url.
func (g *GitHub) remote(repo string) string {
	base := g.cfg.GitURL
	if base == "" {
		base = defaultGitURL
	}
	return strings.TrimRight(base, "/") + "/" + repo + ".git"
}

// pushToken is the token git pushes with: the configured one, or the
// GitHub App's installation token.
func (g *GitHub) pushToken(ctx context.Context) (string, error) {
	if g.app == nil {
		return g.cfg.Token, nil
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	if err != nil {
		return "", err
	}
	return g.app.installationToken(r)
}

// maxGitOutput bounds the git output kept for an error message.
const maxGitOutput = 2048

// runGit runs git in dir with gitHardening and a bare environment, and
// returns its trimmed stdout. An error carries the tail of its stderr
// (never its arguments or environment).
func runGit(ctx context.Context, dir string, args ...string) (string, error) {
	return runGitEnv(ctx, dir, nil, args...)
}

// runGitEnv is runGit with env added to git's environment.
func runGitEnv(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append(append([]string{}, gitHardening...), args...)...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := stderr.Bytes()
		if len(msg) > maxGitOutput {
			msg = msg[len(msg)-maxGitOutput:]
		}
		return "", fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(string(msg)))
	}
	return strings.TrimSpace(stdout.String()), nil
}
