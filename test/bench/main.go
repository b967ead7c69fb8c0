// Command bench measures the function against the targets of its performance budget and prints
// one table (`make bench`); the same table goes to .bench/ as JSON with the machine it ran on.
// Every row that has a floor measures it in the same run, on the same machine:
//
//  1. decode + decide of a real captured Resource-mode event (Go benchmark), against the same
//     pod decoded with encoding/json
//  2. HTTP: the served function (func-go runtime, dry-run) under a Go load generator over
//     loopback, concurrency 32, against a bare net/http server answering the same way
//  3. finalizers at scale: 1,000 new managed pods through the real ApiServerSource adapter,
//     against the same finalizer patches sent by a bare client-go loop
//  4. release lag: 1,000 pods evicted at once (5 s grace): finalizer removal minus due time
//  5. API writes per pod lifecycle (add, drain, release), from the function's own counters
//  6. one sweep of 10,000 pods (1,000 managed): duration, API requests, peak RSS
//  7. cold start to the first 200 on /health/readiness, against a bare Go server's
//  8. the function's RSS idle and at its peaks during rows 3, 4 and 6
//
// Rows 3 to 8 run against a real etcd and kube-apiserver from bin/ (make binaries).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"function/test/cluster"
)

// options are the command's flags.
type options struct {
	rows        []int
	out         string
	pods        int
	sweepPods   int
	httpFor     time.Duration
	concurrency int
	starts      int
	binary      string
	keep        bool
	// fnEnv is more configuration for the function measured (-fn-env, e.g. surgeRollout=true).
	fnEnv []string
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == floorFlag {
		if err := serveFloor(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "floor server:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	rows := flag.String("rows", "1,2,3,4,5,6,7,8", "rows to measure (comma-separated)")
	flag.StringVar(&o.out, "out", filepath.Join(cluster.RepoRoot(), ".bench"), "directory for the JSON results")
	flag.IntVar(&o.pods, "pods", 1000, "managed pods of rows 3 to 5")
	flag.IntVar(&o.sweepPods, "sweep-pods", 10000, "pods of row 6 (a tenth of them managed)")
	flag.DurationVar(&o.httpFor, "http-duration", 20*time.Second, "how long row 2 drives each server")
	flag.IntVar(&o.concurrency, "concurrency", 32, "row 2's concurrent senders")
	flag.IntVar(&o.starts, "starts", 10, "row 7's process starts (each, function and floor)")
	flag.StringVar(&o.binary, "binary", os.Getenv("VPA_DRAIN_BINARY"), "a built function to measure instead of building cmd/vpa-graceful-drain (e.g. an older commit's, to compare)")
	flag.BoolVar(&o.keep, "keep", false, "keep the scratch directory (the function's logs) and print its path")
	fnEnv := flag.String("fn-env", "", "more configuration for the function measured, comma-separated KEY=VALUE (e.g. surgeRollout=true)")
	flag.Parse()
	if *fnEnv != "" {
		o.fnEnv = strings.Split(*fnEnv, ",")
	}
	for _, s := range strings.Split(*rows, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 8 {
			fmt.Fprintf(os.Stderr, "bench: -rows: %q is not a row number 1..8\n", s)
			os.Exit(2)
		}
		o.rows = append(o.rows, n)
	}
	ctrllog.SetLogger(logr.Discard()) // envtest's own client logs nothing the table needs
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := run(ctx, o)
	if report != nil {
		report.print(os.Stdout)
		if path, werr := report.write(o.out); werr != nil {
			fmt.Fprintln(os.Stderr, "bench: writing the results:", werr)
		} else {
			fmt.Printf("\nresults: %s\n", path)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench failed:", err)
		os.Exit(1)
	}
}

// run measures the rows asked for, in an order that shares the expensive setup: the Go
// benchmark and the loopback rows first, then one control plane for rows 3 to 8.
func run(ctx context.Context, o options) (*Report, error) {
	r := newReport()
	want := func(n ...int) bool {
		for _, x := range n {
			if slices.Contains(o.rows, x) {
				return true
			}
		}
		return false
	}
	say := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(r.started).Seconds(), fmt.Sprintf(format, args...))
	}
	if want(1) {
		say("row 1: go test -bench over a captured event")
		row, err := decodeDecide(ctx)
		if err != nil {
			return r, fmt.Errorf("row 1: %w", err)
		}
		r.add(row)
	}
	if !want(2, 3, 4, 5, 6, 7, 8) {
		return r, nil
	}
	dir, err := os.MkdirTemp("", "vpagd-bench-")
	if err != nil {
		return r, err
	}
	if o.keep {
		say("scratch directory (kept): %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin := o.binary
	if bin == "" {
		say("building the function (cmd/vpa-graceful-drain)")
		if bin, err = cluster.BuildFunction(dir); err != nil {
			return r, err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return r, fmt.Errorf("finding this program for the floor server: %w", err)
	}
	env := &machineEnv{fn: bin, floor: self, dir: dir, say: say}
	if want(2) {
		say("row 2: HTTP, %d senders, %s per server", o.concurrency, o.httpFor)
		row, err := httpRow(ctx, env, o)
		if err != nil {
			return r, fmt.Errorf("row 2: %w", err)
		}
		r.add(row)
	}
	if !want(3, 4, 5, 6, 7, 8) {
		return r, nil
	}
	rows, err := clusterRows(ctx, env, o, want)
	for _, row := range rows {
		r.add(row)
	}
	if err != nil {
		return r, err
	}
	return r, nil
}

// machineEnv is what the rows share: the binaries and a scratch directory.
type machineEnv struct {
	fn, floor, dir string
	say            func(format string, args ...any)
}

// Report is the table: the machine, then one Row per measure.
type Report struct {
	started time.Time
	Date    string  `json:"date"`
	Machine Machine `json:"machine"`
	Rows    []Row   `json:"rows"`
}

// Machine says where the numbers were measured.
type Machine struct {
	Cores  int    `json:"cores"`
	CPU    string `json:"cpu"`
	Go     string `json:"go"`
	OSArch string `json:"osArch"`
	Kernel string `json:"kernel,omitempty"`
}

// Row is one measure: the figure, its floor measured in the same run (if any), the target and
// whether it was met, plus the numbers behind it.
type Row struct {
	N        int            `json:"row"`
	Name     string         `json:"name"`
	Result   string         `json:"result"`
	Baseline string         `json:"baseline,omitempty"`
	Target   string         `json:"target"`
	Met      bool           `json:"met"`
	Values   map[string]any `json:"values"`
}

func newReport() *Report {
	now := time.Now()
	return &Report{started: now, Date: now.UTC().Format(time.RFC3339), Machine: Machine{
		Cores: runtime.NumCPU(), CPU: cpuModel(), Go: runtime.Version(), OSArch: runtime.GOOS + "/" + runtime.GOARCH, Kernel: kernel(),
	}}
}

func (r *Report) add(rows ...Row) {
	r.Rows = append(r.Rows, rows...)
	slices.SortStableFunc(r.Rows, func(a, b Row) int { return a.N - b.N })
}

func (r *Report) print(w *os.File) {
	fmt.Fprintf(w, "\nvpa-graceful-drain bench, %s, %d cores (%s), %s %s\n\n", r.Date, r.Machine.Cores, r.Machine.CPU, r.Machine.Go, r.Machine.OSArch)
	cols := []string{"#", "measure", "result", "floor (same run)", "target", "met"}
	cells := [][]string{cols}
	for _, row := range r.Rows {
		met := "yes"
		if !row.Met {
			met = "NO"
		}
		cells = append(cells, []string{strconv.Itoa(row.N), row.Name, row.Result, row.Baseline, row.Target, met})
	}
	widths := make([]int, len(cols))
	for _, c := range cells {
		for i, s := range c {
			widths[i] = max(widths[i], len(s))
		}
	}
	for i, c := range cells {
		for j, s := range c {
			fmt.Fprintf(w, "| %-*s ", widths[j], s)
		}
		fmt.Fprintln(w, "|")
		if i == 0 {
			for j := range cols {
				fmt.Fprintf(w, "|%s", strings.Repeat("-", widths[j]+2))
			}
			fmt.Fprintln(w, "|")
		}
	}
}

// write stores the report as results-<time>.json and latest.json in dir.
func (r *Report) write(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "results-"+r.started.UTC().Format("20060102T150405Z")+".json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return "", err
	}
	return path, os.WriteFile(filepath.Join(dir, "latest.json"), b, 0o644)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
