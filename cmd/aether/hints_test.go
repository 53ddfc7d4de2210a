package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aetherium/aetherium/client"
)

// TestErrorLine: each class of API error gets its one line with what to do
// next, read from the status, code and message the API sends; errors that
// never reached aetherd name it.
func TestErrorLine(t *testing.T) {
	t.Parallel()
	api := func(status int, code, msg string) error {
		return &client.Error{Status: status, Code: code, Message: msg}
	}
	tests := []struct {
		name string
		err  error
		want string // the whole line
	}{
		{"401", api(401, "unauthenticated", "a valid API key is required (Authorization: Bearer <key>)"),
			"aether: a valid API key is required (Authorization: Bearer <key>) — set AETHER_API_KEY, or run on the aetherd host with its data dir in AETHER_DATA_DIR"},
		{"403 admin", api(403, "forbidden", "this route needs an admin key"),
			"aether: this route needs an admin key — use an admin key in AETHER_API_KEY (an admin makes one: aether key create --admin)"},
		{"403 other", api(403, "forbidden", "cross-origin request refused"), "aether: cross-origin request refused"},
		{"404 sandbox", api(404, "not_found", "sandbox web not found"), "aether: sandbox web not found — aether vm ls lists yours"},
		{"404 template", api(404, "not_found", "template node22 not found"), "aether: template node22 not found — aether template ls lists them"},
		{"404 other", api(404, "not_found", "route not found"), "aether: route not found"},
		{"409 paused", api(409, "failed_precondition", "sandbox web is paused"),
			"aether: sandbox web is paused — resume it first: aether vm resume web"},
		{"409 creating", api(409, "failed_precondition", "sandbox web is creating"),
			"aether: sandbox web is creating — wait until it runs: aether vm get web (aether vm create waits by default)"},
		{"409 failed", api(409, "failed_precondition", "sandbox web is failed"),
			"aether: sandbox web is failed — delete it and create it again: aether vm rm web && aether vm create web"},
		{"409 not paused", api(409, "failed_precondition", "sandbox web is running, not paused"),
			"aether: sandbox web is running, not paused — it is already running"},
		{"409 name taken", api(409, "already_exists", "sandbox web already exists"),
			"aether: sandbox web already exists — pick another name, or delete the old one: aether vm rm NAME"},
		{"409 building", api(409, "conflict", "template t is still building (task 1)"),
			"aether: template t is still building (task 1) — wait for the build: aether template ls shows when it is ready"},
		{"429 rate", &client.Error{Status: 429, Code: "rate_limited", Message: "rate limit of key ae_x exceeded", RetryAfter: 7 * time.Second},
			"aether: rate limit of key ae_x exceeded — retry after 7 s"},
		{"429 rate without Retry-After", api(429, "rate_limited", "slow down"), "aether: slow down — retry after 1 s"},
		{"429 quota", api(429, "quota_exceeded", "project team-a: quota of 4 vCPUs reached (3 in use, 2 asked); delete some or ask an admin to raise it"),
			"aether: project team-a: quota of 4 vCPUs reached (3 in use, 2 asked); delete some or ask an admin to raise it — free some, or an admin raises it: aether project quota team-a --vcpus N (give every limit to keep: the command replaces the quota)"},
		{"429 memory quota", api(429, "quota_exceeded", "project p: quota of 1024 MiB of memory reached (1024 in use, 512 asked)"),
			"aether: project p: quota of 1024 MiB of memory reached (1024 in use, 512 asked) — free some, or an admin raises it: aether project quota p --memory-mb N (give every limit to keep: the command replaces the quota)"},
		{"429 exec quota", api(429, "quota_exceeded", "project quota exceeded: 2 concurrent execs"),
			"aether: project quota exceeded: 2 concurrent execs — wait for a running exec to end, or an admin raises it: aether project quota PROJECT --execs N (with the other limits)"},
		{"421", api(421, "wrong_host", `host "x" is not allowed`),
			`aether: host "x" is not allowed — reach aetherd by IP or localhost, or add this name to api.allowed_hosts in its config`},
		{"503", api(503, "unavailable", "worker w1 unreachable"),
			"aether: worker w1 unreachable — the sandbox's worker may be down or busy: check aether health, then retry"},
		{"400 says it all", api(400, "invalid_argument", "vcpus: 99 is more than 16"), "aether: vcpus: 99 is more than 16"},
		{"not from the API", errors.New("port \"x\": want a number"), `aether: port "x": want a number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := errorLine(tt.err); got != tt.want {
				t.Errorf("errorLine(%v)\n got %q\nwant %q", tt.err, got, tt.want)
			}
			if got := errorLine(fmt.Errorf("wrapped: %w", tt.err)); hint(tt.err) != "" && !strings.HasSuffix(got, hint(tt.err)) {
				t.Errorf("a wrapped error lost its hint: %q", got)
			}
		})
	}
}

// TestErrorLineNoServer: the client's real error for an address where
// nothing listens asks whether aetherd runs.
func TestErrorLineNoServer(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	c, err := client.New("http://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err = c.GetVM(ctx, "web")
	line := errorLine(err)
	if !strings.Contains(line, "cannot reach aetherd at http://"+addr) || !strings.HasSuffix(line, "— is aetherd running? start it with aetherd (./bin/aetherd &), or point AETHER_SERVER (--server) at it") {
		t.Fatalf("errorLine = %q", line)
	}
}
