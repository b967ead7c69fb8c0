// Command kubectl-vpa_drain is the kubectl plugin of vpa-graceful-drain (`kubectl vpa-drain`):
//
//	kubectl vpa-drain status [-n NAMESPACE | -A] [-o table|json] [--watch] [--config-map NS/NAME]
//	kubectl vpa-drain release POD [-n NAMESPACE] [--reason TEXT]
//
// status lists the pods that hold the finalizer vpagracefuldrain.dev/drain (owner, drain start,
// deadline, time left, each gate's state and what the drain waits for), as the function decides
// them now; release removes it from one pod by hand, the incident escape hatch, with the
// function's guarded patch and a FinalizerRemoved Event. `make install-plugin` installs it
// (go install: into $(go env GOBIN), else $(go env GOPATH)/bin, which must be on PATH).
//
// It uses the kubeconfig as kubectl does (KUBECONFIG, ~/.kube/config, --kubeconfig,
// --context, -n). status needs list and watch on pods, and reads what the function reads for a
// draining pod's gates (ReplicaSets, Deployments, pods, EndpointSlices) and its ConfigMap;
// release needs get and patch on pods and create on events.
//
// Exit codes: 0 done, 1 failed or refused, 2 usage error. The command is package cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"function/cmd/kubectl-vpa_drain/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
