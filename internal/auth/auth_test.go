package auth_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/store/sqlite"
)

func TestNewKeyShape(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		key, prefix, hash := auth.NewKey()
		got, ok := auth.PrefixOf(key)
		if !ok || got != prefix || !strings.HasPrefix(key, prefix+"_") || hash != auth.Hash(key) || seen[key] {
			t.Fatalf("NewKey() = %q, %q, %q; PrefixOf = %q, %v", key, prefix, hash, got, ok)
		}
		seen[key] = true
		if len(key)-len(prefix)-1 < 43 { // 256 bits in base64url
			t.Fatalf("secret part of %q is shorter than 256 bits", key)
		}
	}
}

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newStore(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "aether.db"), sqlite.SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func addKey(t *testing.T, s store.Store, role string, expires *time.Time) string {
	t.Helper()
	key, prefix, hash := auth.NewKey()
	if _, err := s.APIKeyInsert(context.Background(), &store.APIKeyInsertParams{ID: uuid.NewString(), ProjectID: store.DefaultProjectID,
		Prefix: prefix, Hash: hash, Role: role, ExpiresAt: expires}); err != nil {
		t.Fatal(err)
	}
	return key
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	clk := &clock{t: time.Now()}
	a := auth.NewAuthenticator(s, auth.AuthenticatorConfig{CacheTTL: time.Minute, Now: clk.now})
	soon := clk.t.Add(time.Hour)
	admin := addKey(t, s, store.RoleAdmin, nil)
	member := addKey(t, s, store.RoleMember, &soon)
	prefix, _ := auth.PrefixOf(admin)
	forged := prefix + "_" + strings.Repeat("A", 43)
	tests := []struct {
		name     string
		key      string
		wantRole string // "" means unauthenticated
	}{
		{"admin", admin, store.RoleAdmin},
		{"member", member, store.RoleMember},
		{"empty", "", ""},
		{"garbage", "hello", ""},
		{"right prefix, wrong secret", forged, ""},
		{"unknown key", func() string { k, _, _ := auth.NewKey(); return k }(), ""},
		{"truncated", admin[:len(admin)-1], ""},
	}
	for _, tt := range tests {
		p, err := a.Authenticate(context.Background(), tt.key)
		switch {
		case tt.wantRole == "" && !errors.Is(err, auth.ErrUnauthenticated):
			t.Errorf("%s: Authenticate = %+v, %v; want ErrUnauthenticated", tt.name, p, err)
		case tt.wantRole != "" && (err != nil || p.Role != tt.wantRole || p.ProjectID != store.DefaultProjectID):
			t.Errorf("%s: Authenticate = %+v, %v; want role %s", tt.name, p, err, tt.wantRole)
		}
	}
	// Expiry follows the clock, even for a cached key.
	clk.t = soon.Add(time.Second)
	if _, err := a.Authenticate(context.Background(), member); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("expired key: %v; want ErrUnauthenticated", err)
	}
}

// TestRevocationApplies: Forget applies a revocation made here at once; one
// made elsewhere applies when the cached row is older than CacheTTL.
func TestRevocationApplies(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	clk := &clock{t: time.Now()}
	a := auth.NewAuthenticator(s, auth.AuthenticatorConfig{CacheTTL: 5 * time.Second, Now: clk.now})
	local, remote := addKey(t, s, store.RoleMember, nil), addKey(t, s, store.RoleMember, nil)
	for _, k := range []string{local, remote} {
		if _, err := a.Authenticate(context.Background(), k); err != nil {
			t.Fatal(err)
		}
		p, _ := auth.PrefixOf(k)
		if _, err := s.APIKeyRevoke(context.Background(), "", p); err != nil {
			t.Fatal(err)
		}
	}
	lp, _ := auth.PrefixOf(local)
	a.Forget(lp)
	if _, err := a.Authenticate(context.Background(), local); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("revoked and forgotten key: %v; want ErrUnauthenticated", err)
	}
	if _, err := a.Authenticate(context.Background(), remote); err != nil {
		t.Errorf("a key revoked elsewhere is trusted until the cache expires, got %v", err)
	}
	clk.t = clk.t.Add(6 * time.Second)
	if _, err := a.Authenticate(context.Background(), remote); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("key revoked elsewhere, after CacheTTL: %v; want ErrUnauthenticated", err)
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "aether.db"), sqlite.SyncNormal)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	key, prefix, hash := auth.NewKey()
	s.APIKeyInsert(context.Background(), &store.APIKeyInsertParams{ID: "k", ProjectID: store.DefaultProjectID, Prefix: prefix, Hash: hash, Role: store.RoleAdmin})
	a := auth.NewAuthenticator(s, auth.AuthenticatorConfig{})
	for b.Loop() {
		if _, err := a.Authenticate(context.Background(), key); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCachedAndEviction: Cached answers fresh rows without the store, says
// a stale row of the presented key is known (a refresh, not a guess) and a
// stale row of another secret is not; a full cache drops stale rows and
// unknown prefixes before the rows of keys in use.
func TestCachedAndEviction(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	clk := &clock{t: time.Now()}
	a := auth.NewAuthenticator(s, auth.AuthenticatorConfig{CacheTTL: time.Minute, Now: clk.now})
	good := addKey(t, s, store.RoleMember, nil)
	prefix, _ := auth.PrefixOf(good)
	forged := prefix + "_" + strings.Repeat("A", 43)
	if _, hit, _, _ := a.Cached(good); hit {
		t.Fatal("a key never looked up is a cache hit")
	}
	if _, err := a.Authenticate(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	if p, hit, _, err := a.Cached(good); !hit || err != nil || p.Role != store.RoleMember {
		t.Fatalf("fresh row: %+v %v %v", p, hit, err)
	}
	clk.t = clk.t.Add(2 * time.Minute)
	if _, hit, known, _ := a.Cached(good); hit || !known {
		t.Errorf("stale row of the key: hit %v known %v; want a miss of a known key", hit, known)
	}
	if _, hit, known, _ := a.Cached(forged); hit || known {
		t.Errorf("stale row, another secret: hit %v known %v; want an unknown miss", hit, known)
	}
	a.Authenticate(context.Background(), good) // fresh again
	for range 10_001 {
		unknown, _, _ := auth.NewKey()
		a.Authenticate(context.Background(), unknown)
	}
	if _, hit, _, err := a.Cached(good); !hit || err != nil {
		t.Errorf("after 10,001 unknown keys the key in use was evicted: hit %v, %v", hit, err)
	}
}
