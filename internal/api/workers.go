package api

import (
	"net/http"

	"github.com/aetherium/aetherium/apiv1"
)

// handleWorkerList lists the hosts that run sandboxes, with how many
// sandboxes each holds. Workers serve every project, so it is an admin route.
func (s *Server) handleWorkerList(w http.ResponseWriter, r *http.Request) {
	ws, err := s.store.WorkerList(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	load, err := s.store.WorkerLoad(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := apiv1.WorkerList{Workers: make([]*apiv1.Worker, 0, len(ws))}
	for _, wk := range ws {
		out.Workers = append(out.Workers, &apiv1.Worker{ID: wk.ID, Address: wk.Address, Runtime: wk.Runtime,
			Capacity: wk.Capacity, VCPUs: wk.VCPUs, MemoryMB: wk.MemoryMB, Sandboxes: load[wk.ID].Sandboxes,
			UsedVCPUs: load[wk.ID].VCPUs, UsedMemoryMB: load[wk.ID].MemoryMB, StartedAt: wk.StartedAt, HeartbeatAt: wk.HeartbeatAt})
	}
	writeJSON(w, http.StatusOK, out)
}
