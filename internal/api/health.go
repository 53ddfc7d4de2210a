package api

import (
	"context"
	_ "embed"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"
)

// handleHealth runs every component check concurrently with a short timeout
// and answers 200 when all pass, 503 otherwise. It needs no key, so it says
// only "ok" or "unavailable" per component (the reason, which may name
// internal addresses, goes to the log) and nothing of any project (pool
// gauges are in /metrics).
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	checks := map[string]string{}
	names := make([]string, 0, len(s.cfg.Health))
	for name, check := range s.cfg.Health {
		names = append(names, name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := "ok"
			if err := check(ctx); err != nil {
				res = "unavailable"
				s.log.WarnContext(ctx, "health check failed", slog.String("component", name), slog.Any("err", err))
			}
			mu.Lock()
			checks[name] = res
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Strings(names)
	status, code := "ok", http.StatusOK
	for _, n := range names {
		if checks[n] != "ok" {
			status, code = "degraded", http.StatusServiceUnavailable
		}
	}
	body := map[string]any{"status": status, "checks": checks}
	if s.cfg.Runtime != nil {
		body["runtime"] = s.cfg.Runtime()
	}
	writeJSON(w, code, body)
}

//go:embed openapi.json
var openapiDoc []byte

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openapiDoc)
}
