package queue

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"
)

func TestCaps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		concurrency int
		weights     map[string]int
		want        map[string]int
	}{
		{"default 16", 16, DefaultWeights, map[string]int{PriorityCritical: 16, PriorityHigh: 8, PriorityDefault: 4, PriorityLow: 2}},
		{"default 4", 4, DefaultWeights, map[string]int{PriorityCritical: 4, PriorityHigh: 2, PriorityDefault: 1, PriorityLow: 1}},
		{"one slot", 1, DefaultWeights, map[string]int{PriorityCritical: 1, PriorityHigh: 1, PriorityDefault: 1, PriorityLow: 1}},
		{"equal weights", 8, map[string]int{PriorityCritical: 1, PriorityHigh: 1, PriorityDefault: 1, PriorityLow: 1},
			map[string]int{PriorityCritical: 8, PriorityHigh: 6, PriorityDefault: 4, PriorityLow: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Caps(tt.concurrency, tt.weights); !maps.Equal(got, tt.want) {
				t.Errorf("Caps(%d, %v) = %v, want %v", tt.concurrency, tt.weights, got, tt.want)
			}
		})
	}
}

func TestPriorityOf(t *testing.T) {
	t.Parallel()
	for _, p := range Priorities {
		for _, w := range []string{"", "worker-a", "Worker.B_w_x"} {
			if got := PriorityOf(QueueName(p, w)); got != p {
				t.Errorf("PriorityOf(QueueName(%q, %q)) = %q, want %q", p, w, got, p)
			}
		}
	}
}

// acquireNow takes a slot only if one is free at once: with a cancelled
// context, Acquire returns a slot it can grant without waiting and an error
// otherwise.
func acquireNow(s *Slots, prio string) (func(), bool) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	release, err := s.Acquire(ctx, prio)
	return release, err == nil
}

// TestSlotsBurstAndCaps guards the embedded queue's old split (each River
// queue got concurrency×weight/(2×total weights) slots), under which a
// burst of deletes to one worker ran 4 at a time out of 16: one priority
// may take every free slot up to its cap, and lower priorities leave the
// higher ones' shares free.
func TestSlotsBurstAndCaps(t *testing.T) {
	t.Parallel()
	s := NewSlots(16, DefaultWeights)
	take := func(prio string, n int) {
		t.Helper()
		for i := range n {
			if _, ok := acquireNow(s, prio); !ok {
				t.Fatalf("%s slot %d of %d not granted", prio, i+1, n)
			}
		}
	}
	take(PriorityLow, 2)
	if _, ok := acquireNow(s, PriorityLow); ok {
		t.Fatal("low took a third slot: its cap is 2")
	}
	take(PriorityHigh, 8)
	if _, ok := acquireNow(s, PriorityHigh); ok {
		t.Fatal("high took a ninth slot: its cap is 8")
	}
	take(PriorityCritical, 6)
	if _, ok := acquireNow(s, PriorityCritical); ok {
		t.Fatal("a 17th slot was granted")
	}

	burst := NewSlots(16, DefaultWeights)
	for i := range 16 {
		if _, ok := acquireNow(burst, PriorityCritical); !ok {
			t.Fatalf("critical burst: slot %d of 16 not granted", i+1)
		}
	}
}

// TestSlotsGrantByWeight: while every slot is held, a freed slot goes to
// the waiting priorities by weight (high 3 : low 1), first come first
// served within one, and a waiter whose context ends leaves without a slot.
func TestSlotsGrantByWeight(t *testing.T) {
	t.Parallel()
	s := NewSlots(4, DefaultWeights)
	var release func()
	for range 4 {
		r, ok := acquireNow(s, PriorityCritical)
		if !ok {
			t.Fatal("critical slot not granted")
		}
		release = r
	}
	type grant struct {
		prio    string
		release func()
	}
	granted := make(chan grant, 8)
	wait := func(ctx context.Context, prio string) {
		r, err := s.Acquire(ctx, prio)
		if err != nil {
			prio = "cancelled " + prio
		}
		granted <- grant{prio, r}
	}
	waiters := func(prio string, n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			s.mu.Lock()
			got := len(s.prios[prio].waiting)
			s.mu.Unlock()
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d %s waiters, want %d", got, prio, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	gone, cancel := context.WithCancel(context.Background())
	go wait(gone, PriorityHigh)
	waiters(PriorityHigh, 1)
	for i := range 4 {
		go wait(context.Background(), PriorityHigh)
		waiters(PriorityHigh, i+2)
	}
	for i := range 2 {
		go wait(context.Background(), PriorityLow)
		waiters(PriorityLow, i+1)
	}
	cancel()
	if g := <-granted; g.prio != "cancelled high" {
		t.Fatalf("cancelled waiter: %s", g.prio)
	}
	waiters(PriorityHigh, 4)

	// One slot changes hands at a time: each grant's holder gives it back
	// for the next, so no priority reaches its cap.
	var order []string
	for range 6 {
		release()
		g := <-granted
		order = append(order, g.prio)
		release = g.release
	}
	want := []string{PriorityHigh, PriorityHigh, PriorityLow, PriorityHigh, PriorityHigh, PriorityLow}
	if !slices.Equal(order, want) {
		t.Errorf("grant order %v, want %v", order, want)
	}
}
