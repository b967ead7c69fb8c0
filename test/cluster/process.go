package cluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"function/internal/testutil"
)

// Process is a child process whose output is kept for the test log.
type Process struct {
	Name string
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer
	done chan struct{}
	err  error
}

// StartProcess runs bin with args and env (added to a minimal environment).
func StartProcess(name, bin string, args, env []string) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}, env...)
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	p := &Process{Name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Output is everything the process printed so far.
func (p *Process) Output() string { return p.out.String() }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits up to 10 s, then kills the process group.
func (p *Process) Stop() error {
	if p.Exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s did not stop within 10s of SIGTERM; killed", p.Name)
	}
}

// Kill ends the process at once (SIGKILL), as a crash or an OOM kill would.
func (p *Process) Kill() {
	if !p.Exited() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// WaitHTTP polls url every 50 ms until it answers 200, and fails when the process p (if not
// nil) exits first, timeout passes or ctx ends.
func WaitHTTP(ctx context.Context, p *Process, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true, nil
			}
		}
		if p != nil && p.Exited() {
			return false, fmt.Errorf("%s exited before %s answered: %v\n%s", p.Name, url, p.err, p.Output())
		}
		return false, nil
	})
	if wait.Interrupted(err) && ctx.Err() == nil {
		return fmt.Errorf("%s did not answer 200 within %s", url, timeout)
	}
	return err
}

// BuildFunction builds the function's main (kn func's scaffolding, cmd/vpa-graceful-drain)
// into dir and returns the binary's path.
func BuildFunction(dir string) (string, error) {
	bin := filepath.Join(dir, "vpa-graceful-drain")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/vpa-graceful-drain")
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the function: %w\n%s", err, out)
	}
	return bin, nil
}

// Function is the function served by func-go, as `make run` serves it.
type Function struct {
	*Process
	Addr string
	URL  string
}

// StartFunction runs the function binary on addr with kubeconfig and extra env
// (configuration keys such as gracePeriodSeconds=3) and waits until it is Ready. A KUBECONFIG
// in env wins over kubeconfig. Tests pass ControlPlane.FunctionKubeconfig (the function's own
// ServiceAccount), not the admin Kubeconfig, unless they need admin.
func StartFunction(ctx context.Context, bin, addr, kubeconfig string, env ...string) (*Function, error) {
	env = append([]string{"LISTEN_ADDRESS=" + addr, "KUBECONFIG=" + kubeconfig, "CONFIG_DIR=" + filepath.Join(os.TempDir(), "vpagd-no-config"), "LOG_LEVEL=debug"}, env...)
	p, err := StartProcess("function", bin, nil, env)
	if err != nil {
		return nil, err
	}
	f := &Function{Process: p, Addr: addr, URL: "http://" + addr + "/"}
	if err := WaitHTTP(ctx, p, "http://"+addr+"/health/readiness", 30*time.Second); err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("function not ready: %w\n%s", err, p.Output())
	}
	return f, nil
}

// Adapter is the real Knative ApiServerSource receive adapter.
type Adapter struct{ *Process }

// Watched is a resource the adapter watches besides pods (an ApiServerSource resource).
type Watched struct{ Group, Version, Resource string }

// VPAs are VerticalPodAutoscalers, as eventing/knative.yaml's ApiServerSource watches them.
var VPAs = Watched{"autoscaling.k8s.io", "v1", "verticalpodautoscalers"}

// StartAdapter runs the adapter watching pods (and also) in namespace, in mode "Resource" or
// "Reference", sending to sink.
func StartAdapter(kubeconfig, namespace, mode, sink string, also ...Watched) (*Adapter, error) {
	bin, err := Binary("apiserver_receive_adapter")
	if err != nil {
		return nil, err
	}
	profiling, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(profiling)
	resources := `{"gvr":{"Group":"","Version":"v1","Resource":"pods"},"selector":""}`
	for _, w := range also {
		resources += fmt.Sprintf(`,{"gvr":{"Group":%q,"Version":%q,"Resource":%q},"selector":""}`, w.Group, w.Version, w.Resource)
	}
	cfg := fmt.Sprintf(`{"namespaces":[%q],"allNamespaces":false,"resources":[%s],"mode":%q}`, namespace, resources, mode)
	p, err := StartProcess("adapter", bin, nil, []string{
		"NAME=vpagd-test", "NAMESPACE=" + namespace, "K_SINK=" + sink, "KUBECONFIG=" + kubeconfig,
		"K_SOURCE_CONFIG=" + cfg, "PROFILING_PORT=" + port, "K_METRICS_CONFIG={}", "K_LOGGING_CONFIG={}",
	})
	if err != nil {
		return nil, err
	}
	return &Adapter{Process: p}, nil
}
