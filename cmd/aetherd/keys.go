package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/aetherium/aetherium/client"
	"github.com/aetherium/aetherium/internal/auth"
	"github.com/aetherium/aetherium/internal/config"
	"github.com/aetherium/aetherium/internal/store"
)

// AdminKeyFile is the bootstrap admin key's file in the data dir; the CLI
// on the same host reads it when no key is given.
const AdminKeyFile = client.AdminKeyFile

// bootstrapKeys makes the first admin key on a fresh store, so the laptop
// path needs no setup: written to <data>/admin.key (0600) for the local CLI.
// A store with usable keys is left alone. With no keys, only a loopback
// listen address may serve the API: on any other one aetherd refuses to
// start until an operator creates a key (`aetherd key create`).
func bootstrapKeys(ctx context.Context, cfg *config.Config, st store.Tenancy, log *slog.Logger) error {
	n, err := st.APIKeyCount(ctx)
	if err != nil || n > 0 {
		return err
	}
	if !loopback(cfg.Listen) {
		return fmt.Errorf("listen %s is not a loopback address and no API key exists: create one first with "+
			"`aetherd key create --admin` (same --database-url/--data-dir), or listen on 127.0.0.1", cfg.Listen)
	}
	key, err := createKey(ctx, st, store.DefaultProjectID, store.RoleAdmin, "bootstrap", nil)
	if err != nil {
		return fmt.Errorf("bootstrap admin key: %w", err)
	}
	path := filepath.Join(cfg.DataDir, AdminKeyFile)
	if err := writeSecret(path, key+"\n"); err != nil {
		return fmt.Errorf("bootstrap admin key: %w", err)
	}
	log.Info("created the first admin API key; the aether CLI on this host finds it (or set AETHER_API_KEY)", slog.String("file", path))
	return nil
}

// loopback reports whether a listen address only accepts local connections.
func loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// createKey stores a new key and returns it; it is shown once, never again.
func createKey(ctx context.Context, st store.Tenancy, projectID, role, name string, expires *time.Time) (string, error) {
	key, prefix, hash := auth.NewKey()
	_, err := st.APIKeyInsert(ctx, &store.APIKeyInsertParams{ID: uuid.NewString(), ProjectID: projectID, Name: name,
		Prefix: prefix, Hash: hash, Role: role, ExpiresAt: expires})
	return key, err
}

// writeSecret writes a file only its owner can read, atomically.
func writeSecret(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// runKey implements `aetherd key create|list|revoke`, which work on the
// store directly (no running aetherd needed): how an operator makes the
// first key before serving on a non-loopback address.
func runKey(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("aetherd key", flag.ContinueOnError)
	project := fs.String("project", store.DefaultProjectID, "project ID or name the key belongs to")
	admin := fs.Bool("admin", false, "an admin key (default: a member key of --project)")
	name := fs.String("name", "", "a name to tell the key apart")
	ttl := fs.Duration("ttl", 0, "expire the key after this long (0: never)")
	cfg, rest, err := config.ParseWith("aetherd key", fs, args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return errors.New("key: want create, list or revoke PREFIX")
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	switch {
	case rest[0] == "create" && len(rest) == 1:
		role := store.RoleMember
		if *admin {
			role = store.RoleAdmin
		}
		p, err := st.ProjectGet(ctx, *project)
		if err != nil {
			return err
		}
		var expires *time.Time
		if *ttl > 0 {
			t := time.Now().Add(*ttl)
			expires = &t
		}
		key, err := createKey(ctx, st, p.ID, role, *name, expires)
		if err != nil {
			return err
		}
		fmt.Println(key)
	case rest[0] == "list" && len(rest) == 1:
		keys, err := st.APIKeyList(ctx, "")
		if err != nil {
			return err
		}
		for _, k := range keys {
			state := "active"
			if !k.Usable(time.Now()) {
				state = "revoked or expired"
			}
			fmt.Printf("%s\t%s\t%s\t%s\t%s\n", k.Prefix, k.ProjectID, k.Role, k.Name, state)
		}
	case rest[0] == "revoke" && len(rest) == 2:
		k, err := st.APIKeyRevoke(ctx, "", rest[1])
		if err != nil {
			return err
		}
		fmt.Printf("revoked %s\n", k.Prefix)
	default:
		return fmt.Errorf("key: unknown command %q (want create, list or revoke PREFIX)", rest)
	}
	return nil
}
