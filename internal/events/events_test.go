package events_test

import (
	"sync"
	"testing"

	"github.com/aetherium/aetherium/internal/events"
	"github.com/aetherium/aetherium/internal/events/eventstest"
)

func TestLocalConformance(t *testing.T) {
	t.Parallel()
	// "Buses sharing one medium" in one process are one Local bus.
	var mu sync.Mutex
	shared := map[*testing.T]*events.Local{}
	eventstest.Run(t, func(t *testing.T) events.Bus {
		mu.Lock()
		defer mu.Unlock()
		if shared[t] == nil {
			shared[t] = events.NewLocal()
		}
		return shared[t]
	})
}
