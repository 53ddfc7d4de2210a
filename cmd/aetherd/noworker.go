package main

import (
	"context"
	"io"

	"github.com/aetherium/aetherium/internal/agentclient"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
	"github.com/aetherium/aetherium/internal/worker"
)

// noWorker answers direct sandbox calls in --role api, which has no local
// worker; routing them to the owning worker arrives with distributed mode.
type noWorker struct{}

func (noWorker) Exec(context.Context, *store.VM, *worker.ExecParams, worker.ExecRecord, agentclient.ExecIO) (*store.Execution, error) {
	return nil, errdefs.Unavailable("this aetherd runs --role api and cannot reach sandboxes directly yet")
}

func (noWorker) PutFile(context.Context, *store.VM, string, uint32, io.Reader) (int64, error) {
	return 0, errdefs.Unavailable("this aetherd runs --role api and cannot reach sandboxes directly yet")
}

func (noWorker) GetFile(context.Context, *store.VM, string) (*agentclient.FileReader, error) {
	return nil, errdefs.Unavailable("this aetherd runs --role api and cannot reach sandboxes directly yet")
}
