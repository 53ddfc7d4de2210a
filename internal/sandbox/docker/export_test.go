package docker

import "context"

// AgentThread is agentProcess.thread for process pid checked against
// sandbox id's container (pid 0: the container's init, its agent), for
// the external tests: the host id of the process's thread nsTID.
func (r *Runtime) AgentThread(ctx context.Context, id string, pid, nsTID int) (int, error) {
	c, err := r.cli.ContainerInspect(ctx, containerName(id))
	if err != nil {
		return 0, err
	}
	if pid == 0 {
		pid = c.State.Pid
	}
	return agentProcess{pid: pid, container: c.ID}.thread(nsTID)
}

// AgentPID is the host pid of sandbox id's agent, its container's init.
func (r *Runtime) AgentPID(ctx context.Context, id string) (int, error) {
	c, err := r.cli.ContainerInspect(ctx, containerName(id))
	if err != nil {
		return 0, err
	}
	return c.State.Pid, nil
}

// ExitCode is sandbox id's container's exit code once it stopped.
func (r *Runtime) ExitCode(ctx context.Context, id string) (int, error) {
	c, err := r.cli.ContainerInspect(ctx, containerName(id))
	if err != nil {
		return 0, err
	}
	return c.State.ExitCode, nil
}
