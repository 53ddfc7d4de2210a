package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/aetherium/aetherium/client"
)

// errorLine is the one line the CLI prints for err: the API's message and,
// when there is one, what to do next.
func errorLine(err error) string {
	if h := hint(err); h != "" {
		return "aether: " + printable(err.Error()) + " — " + h
	}
	return "aether: " + printable(err.Error())
}

var (
	// Messages of the API (internal/api, internal/store) the hints read.
	vmStatusRe  = regexp.MustCompile(`^sandbox (\S+) is (\w+)`)
	quotaRe     = regexp.MustCompile(`^project (\S+): quota of (\d+) (.+?) reached`)
	execQuotaRe = regexp.MustCompile(`quota exceeded: (\d+) concurrent execs`)
)

// quotaFlagOf maps the quota names in the API's messages to the flags of
// `aether project quota`.
var quotaFlagOf = map[string]string{"sandboxes": "--sandboxes", "vCPUs": "--vcpus", "MiB of memory": "--memory-mb",
	"templates": "--templates", "warm-pool sandboxes": "--pool-size"}

// hint says what to do next about err, in a few words; "" when the message
// already says it or nothing the user can do helps.
func hint(err error) string {
	var e *client.Error
	if !errors.As(err, &e) {
		return transportHint(err)
	}
	switch e.Status {
	case http.StatusUnauthorized:
		return "set AETHER_API_KEY, or run on the aetherd host with its data dir in AETHER_DATA_DIR"
	case http.StatusForbidden:
		if strings.Contains(e.Message, "admin key") {
			return "use an admin key in AETHER_API_KEY (an admin makes one: aether key create --admin)"
		}
	case http.StatusNotFound:
		return notFoundHint(e.Message)
	case http.StatusConflict:
		return conflictHint(e)
	case http.StatusMisdirectedRequest:
		return "reach aetherd by IP or localhost, or add this name to api.allowed_hosts in its config"
	case http.StatusTooManyRequests:
		return tooManyHint(e)
	case http.StatusServiceUnavailable:
		return "the sandbox's worker may be down or busy: check aether health, then retry"
	}
	return ""
}

// transportHint covers errors that never reached the API.
func transportHint(err error) string {
	var dns *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "is aetherd running? start it with aetherd (./bin/aetherd &), or point AETHER_SERVER (--server) at it"
	case errors.As(err, &dns):
		return "check the host name in AETHER_SERVER (--server)"
	case errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, syscall.EHOSTUNREACH):
		return "aetherd does not answer at that address: check AETHER_SERVER (--server) and the network"
	}
	return ""
}

func notFoundHint(msg string) string {
	for _, h := range []struct{ prefix, hint string }{
		{"sandbox ", "aether vm ls lists yours"},
		{"template ", "aether template ls lists them"},
		{"project ", "aether project ls lists them (admin key)"},
		{"api key ", "aether key ls lists them (admin key)"},
		{"preview token ", "aether preview VM --list lists a sandbox's tokens"},
		{"process ", "aether ps VM lists a sandbox's processes"},
		{"task ", "task IDs are printed by the command that queued them"},
	} {
		if strings.HasPrefix(msg, h.prefix) {
			return h.hint
		}
	}
	return ""
}

func conflictHint(e *client.Error) string {
	if m := vmStatusRe.FindStringSubmatch(e.Message); m != nil {
		vm, status := m[1], m[2]
		switch status {
		case "paused":
			return "resume it first: aether vm resume " + vm
		case "creating":
			return "wait until it runs: aether vm get " + vm + " (aether vm create waits by default)"
		case "running":
			return "it is already running"
		case "lost":
			return "its worker stopped answering; it comes back with the worker (aether health), or delete it: aether vm rm " + vm
		case "deleting", "deleted":
			return "it is gone: create another with aether vm create"
		default: // failed, stopped
			return "delete it and create it again: aether vm rm " + vm + " && aether vm create " + vm
		}
	}
	switch {
	case e.Code == "already_exists" && strings.HasPrefix(e.Message, "sandbox "):
		return "pick another name, or delete the old one: aether vm rm NAME"
	case e.Code == "already_exists" || strings.Contains(e.Message, "exists with another spec"):
		return "pick another name, or delete the old one first"
	case strings.Contains(e.Message, "still building"):
		return "wait for the build: aether template ls shows when it is ready"
	}
	return ""
}

func tooManyHint(e *client.Error) string {
	if e.Code == "rate_limited" {
		wait := max(e.RetryAfter, time.Second)
		return fmt.Sprintf("retry after %d s", int(wait/time.Second))
	}
	if m := quotaRe.FindStringSubmatch(e.Message); m != nil {
		if flag, ok := quotaFlagOf[m[3]]; ok {
			return fmt.Sprintf("free some, or an admin raises it: aether project quota %s %s N (give every limit to keep: the command replaces the quota)", m[1], flag)
		}
	}
	if execQuotaRe.MatchString(e.Message) {
		return "wait for a running exec to end, or an admin raises it: aether project quota PROJECT --execs N (with the other limits)"
	}
	return ""
}
