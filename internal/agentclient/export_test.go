package agentclient

import "time"

// Tests ping sessions often, so a stuck agent is found in about ten seconds
// (the ping's write timeout) instead of forty.
func init() { keepAliveInterval = 200 * time.Millisecond }
