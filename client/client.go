// Package client is the Go SDK for Aetherium's REST API v1: the aether CLI,
// the end-to-end tests and the cluster router (for workers' internal
// endpoints) use it, and so can any Go program (go get
// github.com/aetherium/aetherium/client). It sends and returns the API's wire
// types (package apiv1) and imports no server code.
//
// Errors from the API are *Error with the API's code (IsNotFound,
// IsUnauthenticated, Code). Idempotent calls are retried: GET and DELETE on
// 503 and on connection failures, and any call the rate limiter refused
// (429, after its Retry-After), up to 3 times. Streaming calls (Exec, files,
// events, logs, PTY, ports) are never retried. Sandbox is the E2B-style
// session: create, exec, files, close.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aetherium/aetherium/apiv1"
)

// Client talks to one aetherd. It is safe for concurrent use.
type Client struct {
	base    string
	prefix  string // "/api/v1", or "/internal/v1" for a worker's internal endpoint
	token   string // an API key, or the internal token
	project string // sent as X-Aether-Project when set
	http    *http.Client
}

// ProjectHeader names the project a request acts in (admin keys may name
// any; internal calls name the sandbox's).
const ProjectHeader = "X-Aether-Project"

// WithKey returns a copy of c that authenticates with an API key.
func (c *Client) WithKey(key string) *Client {
	cc := *c
	cc.token = key
	return &cc
}

// WithProject returns a copy of c whose requests act in project (ID or
// name): an admin key's way into another project, and how internal calls
// name the sandbox's project.
func (c *Client) WithProject(project string) *Client {
	cc := *c
	cc.project = project
	return &cc
}

// New returns a client for the server at base ("http://127.0.0.1:8080").
// A nil hc means a client without an overall timeout (execs stream for as
// long as they run).
func New(base string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server %q is not an http(s) URL", base)
	}
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: strings.TrimRight(base, "/"), prefix: "/api/v1", http: hc}, nil
}

// NewInternal returns a client for a worker's internal endpoint at base,
// authenticating with the cluster's shared token. Only the sandbox calls
// (Exec, PutFile, GetFile) exist there.
func NewInternal(base, token string, hc *http.Client) (*Client, error) {
	c, err := New(base, hc)
	if err != nil {
		return nil, err
	}
	c.prefix, c.token = "/internal/v1", token
	return c, nil
}

// Error is an error response from the API.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter is when the server said to come back (Retry-After of a
	// 429 or 503); 0 when it did not.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Message }

// IsUnauthenticated reports whether err is a 401 from the API: no key, or a
// wrong, revoked or expired one.
func IsUnauthenticated(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusUnauthorized
}

// IsNotFound reports whether err is a 404 from the API.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// maxAttempts bounds how often a retryable call is tried.
const maxAttempts = 3

// do sends one API call, retrying it as the package doc says, and turns an
// error status into *Error.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		resp, err := c.send(ctx, method, path, body, contentType)
		wait, retry := retryAfter(method, body, resp, err, attempt)
		if !retry || attempt == maxAttempts || ctx.Err() != nil {
			if err != nil {
				return nil, fmt.Errorf("cannot reach aetherd at %s: %w", c.base, err)
			}
			if resp.StatusCode >= 400 {
				defer resp.Body.Close()
				return nil, decodeError(resp)
			}
			return resp, nil
		}
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if b, ok := body.(io.Seeker); ok {
			b.Seek(0, io.SeekStart)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (c *Client) send(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.project != "" {
		req.Header.Set(ProjectHeader, c.project)
	}
	return c.http.Do(req)
}

// retryAfter reports whether a call that got resp or err may be sent again,
// and after how long: a 429 with Retry-After (at most 10 s) when the body
// can be sent again, or a GET or DELETE that got 503 or no answer (100 ms,
// doubling). Bodies other than *bytes.Reader (streams) are never re-sent.
func retryAfter(method string, body io.Reader, resp *http.Response, err error, attempt int) (time.Duration, bool) {
	if _, ok := body.(*bytes.Reader); body != nil && !ok {
		return 0, false
	}
	backoff := 100 * time.Millisecond << (attempt - 1)
	if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
		// aetherd's limiters refuse before any work and say when to come
		// back; a 429 without Retry-After (a quota) is an answer.
		s, perr := strconv.Atoi(resp.Header.Get("Retry-After"))
		return min(time.Duration(max(s, 0))*time.Second, 10*time.Second), perr == nil
	}
	idempotent := method == http.MethodGet || method == http.MethodDelete
	unanswered := err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	return backoff, idempotent && (unanswered || (resp != nil && resp.StatusCode == http.StatusServiceUnavailable))
}

func decodeError(resp *http.Response) error {
	var body apiv1.ErrorBody
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var retry time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retry = time.Duration(s) * time.Second
	}
	if json.Unmarshal(raw, &body) != nil || body.Error.Message == "" {
		return &Error{Status: resp.StatusCode, Code: "http", Message: fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(raw)), RetryAfter: retry}
	}
	return &Error{Status: resp.StatusCode, Code: body.Error.Code, Message: body.Error.Message, RetryAfter: retry}
}

// doJSON sends in (if non-nil) as JSON and decodes the response into out.
func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.do(ctx, method, path, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// CreateVMRequest is the body of POST /api/v1/vms.
type CreateVMRequest struct {
	Name            string            `json:"name"`
	VCPUs           int               `json:"vcpus,omitempty"`
	MemoryMB        int               `json:"memory_mb,omitempty"`
	Image           string            `json:"image,omitempty"`
	Template        string            `json:"template,omitempty"`
	AdditionalTools []string          `json:"additional_tools,omitempty"`
	ToolVersions    map[string]string `json:"tool_versions,omitempty"`
	KeepOnFailure   bool              `json:"keep_on_failure,omitempty"`
	TimeoutSeconds  int               `json:"timeout_seconds,omitempty"`
	IdleTimeout     int               `json:"idle_timeout_seconds,omitempty"`
	OnExpire        string            `json:"on_expire,omitempty"`
	// Egress is "internet", "none" or a comma-separated allowlist of IPv4
	// addresses, CIDRs and hostnames; "" means the template's or server's
	// default.
	Egress string `json:"egress,omitempty"`
}

// CreateVM queues a sandbox's creation.
func (c *Client) CreateVM(ctx context.Context, req *CreateVMRequest) (*apiv1.Accepted, error) {
	var a apiv1.Accepted
	return &a, c.doJSON(ctx, http.MethodPost, c.prefix+"/vms", req, &a)
}

// ListVMs lists live sandboxes.
func (c *Client) ListVMs(ctx context.Context) ([]*apiv1.VM, error) {
	var all []*apiv1.VM
	for cursor := ""; ; {
		var out apiv1.VMList
		if err := c.doJSON(ctx, http.MethodGet, c.prefix+"/vms?limit=1000&cursor="+url.QueryEscape(cursor), nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.VMs...)
		if cursor = out.Next; cursor == "" {
			return all, nil
		}
	}
}

// GetVM returns a sandbox by ID or name.
func (c *Client) GetVM(ctx context.Context, idOrName string) (*apiv1.VM, error) {
	var vm apiv1.VM
	return &vm, c.doJSON(ctx, http.MethodGet, c.prefix+"/vms/"+url.PathEscape(idOrName), nil, &vm)
}

// DeleteVM queues a sandbox's deletion.
func (c *Client) DeleteVM(ctx context.Context, idOrName string) (*apiv1.Accepted, error) {
	var a apiv1.Accepted
	return &a, c.doJSON(ctx, http.MethodDelete, c.prefix+"/vms/"+url.PathEscape(idOrName), nil, &a)
}

// Execute queues a command (the async path); its task's result is a
// task.ExecResult.
func (c *Client) Execute(ctx context.Context, vm string, req *apiv1.ExecRequest) (*apiv1.Accepted, error) {
	var a apiv1.Accepted
	return &a, c.doJSON(ctx, http.MethodPost, c.prefix+"/vms/"+url.PathEscape(vm)+"/execute", req, &a)
}

// Executions lists a sandbox's executions, oldest first.
func (c *Client) Executions(ctx context.Context, vm string) ([]*apiv1.Execution, error) {
	var all []*apiv1.Execution
	for cursor := ""; ; {
		var out apiv1.ExecutionList
		if err := c.doJSON(ctx, http.MethodGet, c.prefix+"/vms/"+url.PathEscape(vm)+"/executions?limit=100&cursor="+url.QueryEscape(cursor), nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Executions...)
		if cursor = out.Next; cursor == "" {
			return all, nil
		}
	}
}

// GetTask returns a task, long-polling up to wait for it to finish.
func (c *Client) GetTask(ctx context.Context, id string, wait time.Duration) (*apiv1.Task, error) {
	var t apiv1.Task
	path := c.prefix + "/tasks/" + url.PathEscape(id)
	if wait > 0 {
		path += "?wait=" + wait.String()
	}
	return &t, c.doJSON(ctx, http.MethodGet, path, nil, &t)
}

// WaitTask long-polls until the task is terminal or ctx ends. progress, if
// non-nil, sees the task after every poll.
func (c *Client) WaitTask(ctx context.Context, id string, progress func(*apiv1.Task)) (*apiv1.Task, error) {
	wait := 200 * time.Millisecond
	for {
		t, err := c.GetTask(ctx, id, wait)
		if err != nil {
			return nil, err
		}
		if progress != nil {
			progress(t)
		}
		if t.Terminal() {
			return t, nil
		}
		if progress == nil {
			wait = 30 * time.Second // nobody watches: one long poll
		}
	}
}

// CreateJob queues commands to run in order in one sandbox.
func (c *Client) CreateJob(ctx context.Context, vm string, commands []string) (*apiv1.Accepted, error) {
	var a apiv1.Accepted
	return &a, c.doJSON(ctx, http.MethodPost, c.prefix+"/jobs", map[string]any{"vm_id": vm, "commands": commands}, &a)
}

// GetJob returns a job and what it ran.
func (c *Client) GetJob(ctx context.Context, id string) (*apiv1.JobDetail, error) {
	var j apiv1.JobDetail
	return &j, c.doJSON(ctx, http.MethodGet, c.prefix+"/jobs/"+url.PathEscape(id), nil, &j)
}

// ImageSpec is the body of POST /api/v1/images.
type ImageSpec struct {
	Ref     string   `json:"ref,omitempty"`
	Suite   string   `json:"suite,omitempty"`
	Include []string `json:"include,omitempty"`
	Force   bool     `json:"force,omitempty"`
}

// BuildImage queues an image build.
func (c *Client) BuildImage(ctx context.Context, spec *ImageSpec) (*apiv1.Accepted, error) {
	var a apiv1.Accepted
	return &a, c.doJSON(ctx, http.MethodPost, c.prefix+"/images", spec, &a)
}

// Health returns the server's health report; an unhealthy server is an error.
func (c *Client) Health(ctx context.Context) (map[string]any, error) {
	var h map[string]any
	return h, c.doJSON(ctx, http.MethodGet, "/health", nil, &h)
}

// Events streams state changes matching the filter (kind "task" or "vm",
// vm ID or name, task ID; empty matches all) to fn until ctx ends or fn
// returns an error. It returns once subscribed and streaming has begun
// failing or ended.
func (c *Client) Events(ctx context.Context, kind, vm, taskID string, fn func(*apiv1.Event) error) error {
	q := url.Values{}
	for k, v := range map[string]string{"kind": kind, "vm_id": vm, "task_id": taskID} {
		if v != "" {
			q.Set(k, v)
		}
	}
	resp, err := c.do(ctx, http.MethodGet, c.prefix+"/events?"+q.Encode(), nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var e apiv1.Event
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			return fmt.Errorf("bad event: %w", err)
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// TemplateRequest is the body of POST /api/v1/templates.
type TemplateRequest struct {
	Name         string            `json:"name"`
	Base         string            `json:"base,omitempty"`
	Tools        []string          `json:"tools,omitempty"`
	ToolVersions map[string]string `json:"tool_versions,omitempty"`
	Setup        []string          `json:"setup,omitempty"`
	PoolSize     int               `json:"pool_size,omitempty"`
}

// CreateTemplate builds a template, or finds it built.
func (c *Client) CreateTemplate(ctx context.Context, req *TemplateRequest) (*apiv1.TemplateAccepted, error) {
	var a apiv1.TemplateAccepted
	return &a, c.doJSON(ctx, http.MethodPost, c.prefix+"/templates", req, &a)
}

// GetTemplate returns a template by name or ID.
func (c *Client) GetTemplate(ctx context.Context, name string) (*apiv1.Template, error) {
	var t apiv1.Template
	return &t, c.doJSON(ctx, http.MethodGet, c.prefix+"/templates/"+url.PathEscape(name), nil, &t)
}

// ListTemplates lists templates.
func (c *Client) ListTemplates(ctx context.Context) ([]*apiv1.Template, error) {
	var out apiv1.TemplateList
	return out.Templates, c.doJSON(ctx, http.MethodGet, c.prefix+"/templates", nil, &out)
}

// DeleteTemplate queues a template's deletion.
func (c *Client) DeleteTemplate(ctx context.Context, name string) (*apiv1.Accepted, error) {
	var a apiv1.Accepted
	return &a, c.doJSON(ctx, http.MethodDelete, c.prefix+"/templates/"+url.PathEscape(name), nil, &a)
}

// SetTimeout sets a sandbox's deadline to seconds from now (0 removes it).
func (c *Client) SetTimeout(ctx context.Context, vm string, seconds int) (*apiv1.VM, error) {
	var out apiv1.VM
	return &out, c.doJSON(ctx, http.MethodPost, c.prefix+"/vms/"+url.PathEscape(vm)+"/timeout", map[string]int{"timeout_seconds": seconds}, &out)
}

// Pause queues freezing a sandbox; Resume queues thawing it.
func (c *Client) Pause(ctx context.Context, vm string) (*apiv1.Accepted, error) {
	var a apiv1.Accepted
	return &a, c.doJSON(ctx, http.MethodPost, c.prefix+"/vms/"+url.PathEscape(vm)+"/pause", nil, &a)
}

// Resume queues thawing a paused sandbox.
func (c *Client) Resume(ctx context.Context, vm string) (*apiv1.Accepted, error) {
	var a apiv1.Accepted
	return &a, c.doJSON(ctx, http.MethodPost, c.prefix+"/vms/"+url.PathEscape(vm)+"/resume", nil, &a)
}

// Snapshot queues saving a sandbox's filesystem as the template name.
func (c *Client) Snapshot(ctx context.Context, vm, name string) (*apiv1.SnapshotAccepted, error) {
	var a apiv1.SnapshotAccepted
	return &a, c.doJSON(ctx, http.MethodPost, c.prefix+"/vms/"+url.PathEscape(vm)+"/snapshot", map[string]string{"name": name}, &a)
}

// PullRequest queues the push of the sandbox's git work as a branch and a
// pull request (the github integration); the task's result is an
// apiv1.PullRequestResult.
func (c *Client) PullRequest(ctx context.Context, vm string, req *apiv1.PullRequestRequest) (*apiv1.Accepted, error) {
	var a apiv1.Accepted
	return &a, c.doJSON(ctx, http.MethodPost, c.prefix+"/vms/"+url.PathEscape(vm)+"/pull-request", req, &a)
}

// SetPoolSize sets how many ready sandboxes of a template are kept started.
func (c *Client) SetPoolSize(ctx context.Context, template string, size int) (*apiv1.Template, error) {
	var t apiv1.Template
	return &t, c.doJSON(ctx, http.MethodPost, c.prefix+"/templates/"+url.PathEscape(template)+"/pool", map[string]int{"size": size}, &t)
}
