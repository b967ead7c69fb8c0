package cluster

// Pid is the process id of the child (a soak reads its /proc/PID/status). It is the leader of
// its own process group.
func (p *Process) Pid() int { return p.cmd.Process.Pid }
