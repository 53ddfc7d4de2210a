package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/aetherium/aetherium/apiv1"
)

// CreatePreview creates a public preview token of port of sandbox vm, valid
// for ttlSeconds (0: the server's default, 24 hours). The answer's Token and
// TokenURL carry the secret, which is not shown again. Preview hosts must
// be on (aetherd's api.preview_domain), else ErrConflict-like 409.
func (c *Client) CreatePreview(ctx context.Context, vm string, port int, ttlSeconds int64) (*apiv1.Preview, error) {
	var out apiv1.Preview
	return &out, c.doJSON(ctx, http.MethodPost, c.prefix+"/vms/"+url.PathEscape(vm)+"/previews",
		apiv1.PreviewRequest{Port: port, TTLSeconds: ttlSeconds}, &out)
}

// ListPreviews lists a sandbox's preview tokens, newest first, without their
// secrets.
func (c *Client) ListPreviews(ctx context.Context, vm string) ([]*apiv1.Preview, error) {
	var out apiv1.PreviewList
	return out.Previews, c.doJSON(ctx, http.MethodGet, c.prefix+"/vms/"+url.PathEscape(vm)+"/previews", nil, &out)
}

// RevokePreview revokes a sandbox's preview token by ID.
func (c *Client) RevokePreview(ctx context.Context, vm, id string) error {
	return c.doJSON(ctx, http.MethodDelete, c.prefix+"/vms/"+url.PathEscape(vm)+"/previews/"+url.PathEscape(id), nil, nil)
}
