package postgres_test

import (
	"context"
	"testing"

	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/store/postgres"
	"github.com/aetherium/aetherium/internal/store/storetest"
	"github.com/aetherium/aetherium/internal/testbin"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(context.Background(), testbin.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
