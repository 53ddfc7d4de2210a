// Package e2e holds end-to-end tests: they build aetherd, aether-agent and
// aether, start aetherd as a separate process on a temporary data directory
// and a loopback port, and drive it only through the REST API client and the
// CLI, against a real Docker daemon.
package e2e
