package docker

import "context"

// AgentThread is agentProcess.thread for sandbox id's container, for the
// external tests: the host id of its agent's thread nsTID.
func (r *Runtime) AgentThread(ctx context.Context, id string, nsTID int) (int, error) {
	c, err := r.cli.ContainerInspect(ctx, containerName(id))
	if err != nil {
		return 0, err
	}
	return agentProcess{pid: c.State.Pid, container: c.ID}.thread(nsTID)
}

// ForeignThread is agentProcess.thread for a process that is not in sandbox
// id's container.
func (r *Runtime) ForeignThread(ctx context.Context, id string, pid, nsTID int) (int, error) {
	c, err := r.cli.ContainerInspect(ctx, containerName(id))
	if err != nil {
		return 0, err
	}
	return agentProcess{pid: pid, container: c.ID}.thread(nsTID)
}
