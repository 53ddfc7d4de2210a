package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// AdminKeyFile is the bootstrap admin key's file name in aetherd's data dir.
const AdminKeyFile = "admin.key"

// DiscoverKey finds the API key a local client should send, as k3s's
// kubectl finds its kubeconfig: AETHER_API_KEY; else the bootstrap key
// file $AETHER_DATA_DIR/admin.key; else ./aether-data/admin.key (the
// default data dir). It returns the key and where it came from; no key
// anywhere is "" and no error (the server then answers 401). A key file
// that exists but cannot be read is an error.
func DiscoverKey() (key, source string, err error) {
	if k := strings.TrimSpace(os.Getenv("AETHER_API_KEY")); k != "" {
		return k, "AETHER_API_KEY", nil
	}
	dir := os.Getenv("AETHER_DATA_DIR")
	if dir == "" {
		dir = "aether-data"
	}
	path := filepath.Join(dir, AdminKeyFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", "", nil
	case err != nil:
		return "", "", fmt.Errorf("read API key: %w", err)
	}
	return strings.TrimSpace(string(b)), path, nil
}
