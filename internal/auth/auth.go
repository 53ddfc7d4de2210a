// Package auth makes and checks API keys and carries the caller's identity
// (its Principal) through a request's context.
//
// A key looks like ae_k7f3q9xz_<43 characters>: "ae_" and an 8-character
// random ID form the visible prefix that tells keys apart in lists and the
// audit log; the rest is 256 random bits. The store keeps the prefix and
// the SHA-256 of the whole key, never the key. A fast hash is right here:
// keys are random, not passwords, so there is nothing to guess offline.
//
// The API imports it; so do cmd/aetherd (the bootstrap key) and the CLI
// (the key file). It is a leaf over store and errdefs.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
)

// keyPrefix starts every key; scanners for leaked secrets can match it.
const keyPrefix = "ae_"

// prefixLen is the length of a key's visible prefix: "ae_" + 8 characters.
const prefixLen = len(keyPrefix) + 8

// secretLen is the length of a key's random part: 32 bytes, base64url.
var secretLen = base64.RawURLEncoding.EncodedLen(32)

var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewKey returns a new random key, its visible prefix and the hash to store.
func NewKey() (key, prefix, hash string) {
	id := make([]byte, 5) // 8 base32 characters
	secret := make([]byte, 32)
	rand.Read(id)
	rand.Read(secret)
	prefix = keyPrefix + lowerBase32.EncodeToString(id)
	key = prefix + "_" + base64.RawURLEncoding.EncodeToString(secret)
	return key, prefix, Hash(key)
}

// Hash is the stored form of a key: hex SHA-256.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// PrefixOf returns a well-formed key's visible prefix; ok is false for
// anything that is not shaped like a key.
func PrefixOf(key string) (prefix string, ok bool) {
	if len(key) != prefixLen+1+secretLen || !strings.HasPrefix(key, keyPrefix) || key[prefixLen] != '_' {
		return "", false
	}
	return key[:prefixLen], true
}

// Principal is who a request acts as.
type Principal struct {
	// KeyID and KeyPrefix identify the key (the prefix is safe to log).
	KeyID, KeyPrefix string
	// ProjectID is the key's project: every object the request touches
	// belongs to it.
	ProjectID string
	// Role is store.RoleAdmin or store.RoleMember.
	Role string
	// ExpiresAt is when the key expires; zero means never.
	ExpiresAt time.Time
}

// Admin reports whether p may do everything.
func (p *Principal) Admin() bool { return p.Role == store.RoleAdmin }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the request's principal, or nil.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// ErrUnauthenticated is a missing, malformed, unknown, revoked or expired
// key: HTTP 401. Its message never says which, so keys cannot be probed.
var ErrUnauthenticated = errors.New("a valid API key is required (Authorization: Bearer <key>)")

// Keys is what an Authenticator needs of the store.
type Keys interface {
	APIKeyByPrefix(ctx context.Context, prefix string) (*store.APIKey, error)
}

// Authenticator checks keys against the store, caching each key row for
// CacheTTL so a request costs a hash and a map lookup, not a query. It is
// safe for concurrent use.
type Authenticator struct {
	keys Keys
	ttl  time.Duration
	now  func() time.Time

	mu    sync.Mutex
	cache map[string]cached // by prefix
}

type cached struct {
	key     *store.APIKey // nil: no such key
	fetched time.Time
}

// AuthenticatorConfig configures an Authenticator.
type AuthenticatorConfig struct {
	// CacheTTL bounds how long a key row is trusted without reading it
	// again: the longest a revocation made by another process takes to
	// apply. 0 means 5s; Forget applies a local revocation at once.
	CacheTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewAuthenticator returns an Authenticator over keys.
func NewAuthenticator(keys Keys, cfg AuthenticatorConfig) *Authenticator {
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Authenticator{keys: keys, ttl: cfg.CacheTTL, now: cfg.Now, cache: map[string]cached{}}
}

// Authenticate returns the principal of a presented key. It is
// ErrUnauthenticated for anything but a known, usable key whose hash matches,
// and ErrUnavailable when the store cannot say.
func (a *Authenticator) Authenticate(ctx context.Context, presented string) (*Principal, error) {
	prefix, ok := PrefixOf(presented)
	if !ok {
		return nil, ErrUnauthenticated
	}
	k, err := a.lookup(ctx, prefix)
	if err != nil {
		return nil, err
	}
	return a.principal(k, presented)
}

// Cached is Authenticate answered without the store: hit is false when
// the answer needs it (the key's row is not cached or is stale); then
// known says a stale row of this very key is cached (its hash matches),
// so the lookup refreshes a key once seen, not a guess. A malformed key is
// a hit: it never costs a query.
func (a *Authenticator) Cached(presented string) (p *Principal, hit, known bool, err error) {
	prefix, ok := PrefixOf(presented)
	if !ok {
		return nil, true, false, ErrUnauthenticated
	}
	a.mu.Lock()
	c, ok := a.cache[prefix]
	a.mu.Unlock()
	if !ok {
		return nil, false, false, nil
	}
	if a.now().Sub(c.fetched) >= a.ttl {
		return nil, false, c.key != nil && matches(c.key, presented), nil
	}
	p, err = a.principal(c.key, presented)
	return p, true, false, err
}

// principal is the principal of presented if k (nil: no such key) is its
// usable key.
func (a *Authenticator) principal(k *store.APIKey, presented string) (*Principal, error) {
	if k == nil || !matches(k, presented) || !k.Usable(a.now()) {
		return nil, ErrUnauthenticated
	}
	p := &Principal{KeyID: k.ID, KeyPrefix: k.Prefix, ProjectID: k.ProjectID, Role: k.Role}
	if k.ExpiresAt != nil {
		p.ExpiresAt = *k.ExpiresAt
	}
	return p, nil
}

// matches reports, in constant time, whether presented is k's secret.
func matches(k *store.APIKey, presented string) bool {
	return subtle.ConstantTimeCompare([]byte(Hash(presented)), []byte(k.Hash)) == 1
}

func (a *Authenticator) lookup(ctx context.Context, prefix string) (*store.APIKey, error) {
	a.mu.Lock()
	c, ok := a.cache[prefix]
	a.mu.Unlock()
	if ok && a.now().Sub(c.fetched) < a.ttl {
		return c.key, nil
	}
	k, err := a.keys.APIKeyByPrefix(ctx, prefix)
	if errors.Is(err, errdefs.ErrNotFound) {
		k, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	if len(a.cache) >= maxCached {
		a.evict()
	}
	a.cache[prefix] = cached{key: k, fetched: a.now()}
	a.mu.Unlock()
	return k, nil
}

// maxCached bounds the cache: unknown prefixes cannot grow it forever.
const maxCached = 10000

// evict makes room in the full cache: stale rows first, then rows of
// unknown prefixes, and only then everything, so a flood of unknown keys
// does not push out the rows of keys in use. a.mu is held.
func (a *Authenticator) evict() {
	now := a.now()
	maps.DeleteFunc(a.cache, func(_ string, c cached) bool { return now.Sub(c.fetched) >= a.ttl })
	if len(a.cache) >= maxCached {
		maps.DeleteFunc(a.cache, func(_ string, c cached) bool { return c.key == nil })
	}
	if len(a.cache) >= maxCached {
		clear(a.cache)
	}
}

// Forget drops a key from the cache, so a revocation through this process
// applies to its next request.
func (a *Authenticator) Forget(prefix string) {
	a.mu.Lock()
	delete(a.cache, prefix)
	a.mu.Unlock()
}
