// Package redisbus is the events.Bus across processes: Redis pub/sub on one
// channel. Pub/sub keeps nothing: a subscriber that is disconnected misses
// what was published meanwhile, which the events contract allows.
package redisbus

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/aetherium/aetherium/internal/events"
)

// Channel is the Redis pub/sub channel events travel on.
const Channel = "aetherium:events"

// Bus is an events.Bus on Redis pub/sub. It is safe for concurrent use.
type Bus struct {
	rdb *redis.Client
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
	return &Bus{rdb: redis.NewClient(&redis.Options{Addr: cfg.Addr, Password: cfg.Password, TLSConfig: cfg.TLS})}, nil
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

// Subscribe implements events.Bus. It returns once Redis confirmed the
// subscription, so events published after it returns are delivered.
func (b *Bus) Subscribe(ctx context.Context) (<-chan *events.Event, error) {
	ps := b.rdb.Subscribe(ctx, Channel)
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return nil, fmt.Errorf("subscribe to events: %w", err)
	}
	out := make(chan *events.Event, 256)
	go func() {
		defer close(out)
		defer ps.Close()
		in := ps.Channel(redis.WithChannelSize(256))
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-in:
				if !ok {
					return
				}
				var e events.Event
				if json.Unmarshal([]byte(m.Payload), &e) != nil {
					continue
				}
				select {
				case out <- &e:
				default: // lagging subscriber: it re-reads the store
				}
			}
		}
	}()
	return out, nil
}

// Close implements events.Bus.
func (b *Bus) Close() error {
	if err := b.rdb.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return err
	}
	return nil
}
