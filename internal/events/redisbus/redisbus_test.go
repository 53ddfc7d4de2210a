package redisbus_test

import (
	"sync"
	"testing"

	"github.com/aetherium/aetherium/internal/events"
	"github.com/aetherium/aetherium/internal/events/eventstest"
	"github.com/aetherium/aetherium/internal/events/redisbus"
	"github.com/aetherium/aetherium/internal/testbin"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	servers := map[*testing.T]*testbin.Redis{}
	eventstest.Run(t, func(t *testing.T) events.Bus {
		mu.Lock()
		r := servers[t]
		if r == nil {
			r = testbin.StartRedis(t)
			servers[t] = r
		}
		mu.Unlock()
		b, err := redisbus.New(redisbus.Config{Addr: r.Addr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	})
}
