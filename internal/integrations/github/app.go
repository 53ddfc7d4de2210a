package github

import (
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/aetherium/aetherium/internal/config"
	"github.com/aetherium/aetherium/internal/errdefs"
)

// appTransport authenticates as a GitHub App installation: it signs a JWT
// (RS256, issuer the app ID, valid 10 minutes) with the app's private key,
// exchanges it for an installation token at
// POST {base}/app/installations/{id}/access_tokens, and sends that token
// until a minute before it expires. It is safe for concurrent use.
type appTransport struct {
	base           http.RoundTripper
	apiURL         string
	appID          string
	installationID string
	key            *rsa.PrivateKey

	mu      sync.Mutex
	token   string
	expires time.Time
}

func newAppTransport(cfg config.GitHub, base http.RoundTripper) (*appTransport, error) {
	if base == nil {
		base = http.DefaultTransport
	}
	pem := cfg.PrivateKey
	if !strings.Contains(pem, "-----BEGIN") {
		b, err := os.ReadFile(pem)
		if err != nil {
			return nil, errdefs.InvalidArgument("integrations.github.private_key: neither a PEM key nor a readable file: %v", err)
		}
		pem = string(b)
	}
	key, err := jwt.ParseRSAPrivateKeyFromPEM([]byte(pem))
	if err != nil {
		return nil, errdefs.InvalidArgument("integrations.github.private_key: %v", err)
	}
	api := strings.TrimRight(cfg.BaseURL, "/")
	if api == "" {
		api = "https://api.github.com"
	}
	return &appTransport{base: base, apiURL: api, appID: cfg.AppID, installationID: cfg.InstallationID, key: key}, nil
}

// RoundTrip implements http.RoundTripper.
func (t *appTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	token, err := t.installationToken(r)
	if err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "token "+token)
	return t.base.RoundTrip(r)
}

func (t *appTransport) installationToken(r *http.Request) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && time.Until(t.expires) > time.Minute {
		return t.token, nil
	}
	now := time.Now()
	signed, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Issuer:    t.appID,
		IssuedAt:  jwt.NewNumericDate(now.Add(-time.Minute)), // GitHub's advice for clock drift
		ExpiresAt: jwt.NewNumericDate(now.Add(9 * time.Minute)),
	}).SignedString(t.key)
	if err != nil {
		return "", fmt.Errorf("github app: sign JWT: %w", err)
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost,
		t.apiURL+"/app/installations/"+t.installationID+"/access_tokens", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+signed)
	req.Header.Set("Accept", "application/vnd.github+json")
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return "", fmt.Errorf("github app: installation token: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("github app: installation token: HTTP %d", resp.StatusCode)
	}
	var out struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 64<<10)).Decode(&out); err != nil || out.Token == "" {
		return "", fmt.Errorf("github app: installation token: bad answer (%v)", err)
	}
	t.token, t.expires = out.Token, out.ExpiresAt
	return t.token, nil
}
