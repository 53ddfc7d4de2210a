package redisbus_test

import (
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

// TestOneRedisSubscriptionPerProcess: a thousand subscribers in one process
// (SSE streams, long-polls) share one Redis subscription, and every one of
// them gets what another process publishes.
func TestOneRedisSubscriptionPerProcess(t *testing.T) {
	t.Parallel()
	r := testbin.StartRedis(t)
	sub, err := redisbus.New(redisbus.Config{Addr: r.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	pub, err := redisbus.New(redisbus.Config{Addr: r.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx := t.Context()
	var chans []<-chan *events.Event
	for range 1000 {
		ch, err := sub.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, ch)
	}
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	n, err := rdb.PubSubNumSub(ctx, redisbus.Channel).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n[redisbus.Channel] != 1 {
		t.Errorf("Redis subscriptions for 1000 subscribers: %d, want 1", n[redisbus.Channel])
	}
	if err := pub.Publish(ctx, &events.Event{Kind: events.KindVM, VMID: "v1", Status: "running"}); err != nil {
		t.Fatal(err)
	}
	for i, ch := range chans {
		select {
		case e := <-ch:
			if e.VMID != "v1" {
				t.Fatalf("subscriber %d got %+v", i, e)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("subscriber %d got nothing", i)
		}
	}
}
