// Package redisbus is the events.Bus across processes: Redis pub/sub on one
// channel. Each process holds one Redis subscription, whatever its number of
// subscribers (SSE streams, long-polls), and fans what arrives out locally
// through an events.Local. Pub/sub keeps nothing: while the subscription is
// reconnecting, what is published is missed, which the events contract
// allows.
package redisbus

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/aetherium/aetherium/internal/events"
)

// Channel is the Redis pub/sub channel events travel on.
const Channel = "aetherium:events"

// Bus is an events.Bus on Redis pub/sub. It is safe for concurrent use.
type Bus struct {
	rdb   *redis.Client
	local *events.Local // this process's subscribers

	mu   sync.Mutex
	ps   *redis.PubSub // the process's one subscription, once confirmed
	stop context.CancelFunc
	done chan struct{} // closed when the relay has ended
}

var _ events.Bus = (*Bus)(nil)

// Config configures a Bus.
type Config struct {
	// Addr is the Redis server's host:port. Required.
	Addr string
	// Password authenticates to Redis; empty means none.
	Password string
	// TLS, when set, connects over TLS with this configuration; nil means
	// plain TCP.
	TLS *tls.Config
}

// New returns a Bus on the Redis server of cfg. It does not connect yet.
func New(cfg Config) (*Bus, error) {
	if cfg.Addr == "" {
		return nil, errors.New("redisbus: Addr is required")
	}
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Addr, Password: cfg.Password, TLSConfig: cfg.TLS})
	return &Bus{rdb: rdb, local: events.NewLocal()}, nil
}

// Publish implements events.Bus.
func (b *Bus) Publish(ctx context.Context, e *events.Event) error {
	msg, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := b.rdb.Publish(ctx, Channel, msg).Err(); err != nil {
		return fmt.Errorf("publish event: %w", err)
	}
	return nil
}

// Subscribe implements events.Bus. The first call subscribes the process to
// Redis and returns once Redis confirmed it, so events published after any
// call returns are delivered; later calls only join the local fan-out.
func (b *Bus) Subscribe(ctx context.Context) (<-chan *events.Event, error) {
	if err := b.subscribeOnce(ctx); err != nil {
		return nil, err
	}
	return b.local.Subscribe(ctx)
}

// subscribeOnce starts the process's Redis subscription and its relay into
// the local bus, unless they run already.
func (b *Bus) subscribeOnce(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ps != nil {
		return nil
	}
	ps := b.rdb.Subscribe(ctx, Channel)
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return fmt.Errorf("subscribe to events: %w", err)
	}
	rctx, stop := context.WithCancel(context.Background())
	b.ps, b.stop, b.done = ps, stop, make(chan struct{})
	go b.relay(rctx, ps.Channel(redis.WithChannelSize(1024)))
	return nil
}

// relay publishes what arrives from Redis to the local subscribers. A
// malformed message is skipped.
func (b *Bus) relay(ctx context.Context, in <-chan *redis.Message) {
	defer close(b.done)
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-in:
			if !ok {
				return
			}
			var e events.Event
			if json.Unmarshal([]byte(m.Payload), &e) == nil {
				b.local.Publish(ctx, &e)
			}
		}
	}
}

// Close implements events.Bus.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.ps != nil {
		b.stop()
		b.ps.Close()
		<-b.done
	}
	b.mu.Unlock()
	b.local.Close()
	if err := b.rdb.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return err
	}
	return nil
}
