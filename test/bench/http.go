package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"function/test/cluster"
	"function/test/load"
	"function/test/samples"
)

// floorFlag makes this program the floor server of rows 2 and 7 (`bench -floor-server ADDR`):
// a bare net/http server that reads each request and answers it with a small binary-mode
// CloudEvent, as the function does, but decides nothing. It is the loopback, HTTP and process
// floor of this machine.
const floorFlag = "-floor-server"

// floorReply is about the size of the function's dry-run reply to the sample event.
var floorReply = []byte(`{"namespace":"default","pod":"web-7d4b9c8f6-x2x9q","uid":"f3b7f5e2-1c1e-4c59-a2c4-8c3d1f0e9a11","action":"add-finalizer","reason":"managed","dryRun":true}`)

func serveFloor(addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health/readiness", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, io.LimitReader(r.Body, 2<<20)); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h := w.Header()
		h.Set("Ce-Specversion", "1.0")
		h.Set("Ce-Type", "dev.vpagracefuldrain.floor")
		h.Set("Ce-Source", "bench")
		h.Set("Ce-Id", strconv.FormatInt(time.Now().UnixNano(), 36))
		h.Set("Content-Type", "application/json")
		_, _ = w.Write(floorReply)
	})
	return (&http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}).ListenAndServe()
}

// server is a started function or floor process.
type server struct {
	cmd  *exec.Cmd
	done chan struct{}
	addr string
	log  *os.File
}

// URL is the server's root.
func (s *server) URL() string { return "http://" + s.addr + "/" }

// Pid is the process id.
func (s *server) Pid() int { return s.cmd.Process.Pid }

// stop ends the process (SIGTERM, then SIGKILL after 10 s).
func (s *server) stop() {
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
	}
	if s.log != nil {
		_ = s.log.Close()
	}
}

// start runs bin (with args) on a free loopback port, its output to logPath (or nowhere), and
// returns as soon as /health/readiness answers 200, with the time from the process start to
// that answer. The readiness endpoint is polled every 0.5 ms.
func start(ctx context.Context, bin string, args, env []string, logPath string) (*server, time.Duration, error) {
	addr, err := cluster.FreeAddr()
	if err != nil {
		return nil, 0, err
	}
	cmd := exec.Command(bin, args...)
	if len(args) == 1 && args[0] == floorFlag {
		cmd.Args = append(cmd.Args, addr)
	}
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir(), "LISTEN_ADDRESS=" + addr}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	s := &server{cmd: cmd, done: make(chan struct{}), addr: addr}
	if logPath != "" {
		if s.log, err = os.Create(logPath); err != nil {
			return nil, 0, err
		}
		cmd.Stdout, cmd.Stderr = s.log, s.log
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() { _ = cmd.Wait(); close(s.done) }()
	url := s.URL() + "health/readiness"
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, time.Since(began), nil
			}
		}
		select {
		case <-s.done:
			s.stop()
			return nil, 0, fmt.Errorf("%s exited before it was ready:\n%s", filepath.Base(bin), logTail(logPath))
		case <-ctx.Done():
			s.stop()
			return nil, 0, ctx.Err()
		case <-time.After(500 * time.Microsecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, 0, fmt.Errorf("%s not ready within 60s:\n%s", filepath.Base(bin), logTail(logPath))
		}
	}
}

// dryRunEnv serves the function with no cluster: no kubeconfig, no in-cluster credentials.
func dryRunEnv(dir string) []string {
	return []string{"KUBECONFIG=" + filepath.Join(dir, "no-kubeconfig"), "CONFIG_DIR=" + filepath.Join(dir, "no-config"), "LOG_LEVEL=info"}
}

// httpRow is row 2: the function in dry-run, then the floor server, each driven for o.httpFor
// by o.concurrency keep-alive senders posting the managed-pod sample event.
func httpRow(ctx context.Context, env *machineEnv, o options) (Row, error) {
	s, err := samples.Read(samples.Path("managed-pod-added.http"))
	if err != nil {
		return Row{}, err
	}
	req := load.Request{Header: s.Header, Body: s.Body}
	drive := func(name, bin string, args, procEnv []string) (load.Result, error) {
		srv, _, err := start(ctx, bin, args, procEnv, filepath.Join(env.dir, name+".log"))
		if err != nil {
			return load.Result{}, err
		}
		defer srv.stop()
		client := load.NewClient(o.concurrency)
		defer client.CloseIdleConnections()
		// A short warm-up (connections, the server's first allocations), not counted.
		if _, err := load.Run(ctx, client, load.Options{URL: srv.URL(), Request: req, Concurrency: o.concurrency, Total: 2000, Timeout: 5 * time.Second}); err != nil {
			return load.Result{}, err
		}
		res, err := load.Run(ctx, client, load.Options{URL: srv.URL(), Request: req, Concurrency: o.concurrency,
			Total: 1 << 30, Duration: o.httpFor, Timeout: 5 * time.Second})
		if err != nil {
			return load.Result{}, err
		}
		if len(res.Failures) > 0 || res.Statuses[http.StatusOK] != res.Answered {
			return res, fmt.Errorf("%s: not every event answered 200: %s", name, res)
		}
		env.say("  %s: %s", name, res)
		return res, nil
	}
	fn, err := drive("function-dry-run", env.fn, nil, append(dryRunEnv(env.dir), o.fnEnv...))
	if err != nil {
		return Row{}, err
	}
	floor, err := drive("floor", env.floor, []string{floorFlag}, nil)
	if err != nil {
		return Row{}, err
	}
	rate, p50, p99 := fn.PerSecond(), fn.Quantile(0.50), fn.Quantile(0.99)
	return Row{
		N: 2, Name: fmt.Sprintf("HTTP, dry-run, c=%d, %s", o.concurrency, o.httpFor),
		Result:   fmt.Sprintf("%.0f events/s, p50 %s, p99 %s", rate, ms(p50), ms(p99)),
		Baseline: fmt.Sprintf("bare net/http: %.0f events/s, p99 %s (%.0f%%)", floor.PerSecond(), ms(floor.Quantile(0.99)), 100*rate/floor.PerSecond()),
		Target:   "≥ 5,000 events/s, p99 ≤ 5 ms",
		Met:      rate >= 5000 && p99 <= 5*time.Millisecond,
		Values: map[string]any{
			"eventsPerSecond": rate, "p50Ms": ms64(p50), "p99Ms": ms64(p99), "maxMs": ms64(fn.Max()), "events": fn.Answered,
			"floorEventsPerSecond": floor.PerSecond(), "floorP50Ms": ms64(floor.Quantile(0.5)), "floorP99Ms": ms64(floor.Quantile(0.99)),
			"shareOfFloor": rate / floor.PerSecond(),
		},
	}, nil
}

// coldStarts is row 7's measure: n starts of bin, each timed from the process start to the
// first 200 on /health/readiness, then stopped. It returns the sorted times.
func coldStarts(ctx context.Context, n int, bin string, args, procEnv []string, logPath string) ([]time.Duration, error) {
	var times []time.Duration
	for range n {
		s, took, err := start(ctx, bin, args, procEnv, logPath)
		if err != nil {
			return nil, err
		}
		s.stop()
		times = append(times, took)
	}
	slices.Sort(times)
	return times, nil
}

// logTail is the last 30 lines of a log file.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

func ms64(d time.Duration) float64 { return float64(d) / 1e6 }
