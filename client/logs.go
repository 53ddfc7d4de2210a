package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/aetherium/aetherium/apiv1"
)

// QueryLogs returns one page of log records matching q.
func (c *Client) QueryLogs(ctx context.Context, q *apiv1.LogQuery) (*apiv1.LogPage, error) {
	var p apiv1.LogPage
	return &p, c.doJSON(ctx, http.MethodPost, c.prefix+"/logs/query", q, &p)
}

// StreamLogs tails log records over a WebSocket: the last tail stored ones
// (or those since q.Since), then new ones, calling fn for each message until
// ctx ends (nil) or fn or the stream fails. q's limit, direction and cursor
// are not used.
func (c *Client) StreamLogs(ctx context.Context, q *apiv1.LogQuery, tail int, fn func(*apiv1.LogStreamMessage) error) error {
	v := url.Values{}
	for k, s := range map[string]string{"vm_id": q.VMID, "task_id": q.TaskID, "execution_id": q.ExecutionID,
		"stream": q.Stream, "level": q.Level, "contains": q.Contains} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if tail > 0 {
		v.Set("tail", strconv.Itoa(tail))
	}
	u := "ws" + strings.TrimPrefix(c.base, "http") + c.prefix + "/logs/stream?" + v.Encode()
	opts := &websocket.DialOptions{HTTPClient: c.http, HTTPHeader: http.Header{}}
	if c.token != "" {
		opts.HTTPHeader.Set("Authorization", "Bearer "+c.token)
	}
	conn, resp, err := websocket.Dial(ctx, u, opts)
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 {
			return decodeError(resp)
		}
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("cannot reach aetherd at %s: %w", c.base, err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("log stream: %w", err)
		}
		var m apiv1.LogStreamMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("log stream: bad message: %w", err)
		}
		if err := fn(&m); err != nil {
			return err
		}
	}
}
