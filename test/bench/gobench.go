package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"function/test/cluster"
)

// The Go benchmarks of row 1 (eventing/bench_test.go): the function's decode + decide of a
// captured event, and the floor, the same pod decoded with encoding/json alone.
const (
	benchDecodeDecide = "BenchmarkDecodeDecide"
	benchFloor        = "BenchmarkDecodeEncodingJSON"
	benchCount        = 7
)

// goBench is one benchmark's runs.
type goBench struct {
	nsPerOp, allocsPerOp, bytesPerOp []float64
}

// decodeDecide is row 1: the median of benchCount runs of each benchmark.
func decodeDecide(ctx context.Context) (Row, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^("+benchDecodeDecide+"|"+benchFloor+")$",
		"-benchmem", "-count", strconv.Itoa(benchCount), "./eventing")
	cmd.Dir = cluster.RepoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return Row{}, fmt.Errorf("go test -bench: %w\n%s", err, out)
	}
	runs := parseGoBench(out)
	fn, floor := runs[benchDecodeDecide], runs[benchFloor]
	if fn == nil || floor == nil {
		return Row{}, fmt.Errorf("go test -bench printed no %s or %s:\n%s", benchDecodeDecide, benchFloor, out)
	}
	ns, allocs := median(fn.nsPerOp), median(fn.allocsPerOp)
	floorNs := median(floor.nsPerOp)
	return Row{
		N: 1, Name: "decode + decide, one event",
		Result:   fmt.Sprintf("%.1f µs/op, %.0f allocs/op", ns/1e3, allocs),
		Baseline: fmt.Sprintf("encoding/json decode alone: %.1f µs/op, %.0f allocs/op", floorNs/1e3, median(floor.allocsPerOp)),
		Target:   "≤ 20 µs/op, ≤ 50 allocs/op",
		Met:      ns <= 20e3 && allocs <= 50,
		Values: map[string]any{
			"nsPerOp": ns, "allocsPerOp": allocs, "bytesPerOp": median(fn.bytesPerOp), "runs": benchCount,
			"floorNsPerOp": floorNs, "floorAllocsPerOp": median(floor.allocsPerOp), "speedupOverFloor": floorNs / ns,
		},
	}, nil
}

// parseGoBench reads `go test -bench -benchmem` output: "BenchmarkX-2  N  ns/op  B/op  allocs/op".
func parseGoBench(out []byte) map[string]*goBench {
	runs := map[string]*goBench{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name, _, _ := strings.Cut(f[0], "-")
		b := runs[name]
		if b == nil {
			b = &goBench{}
			runs[name] = b
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				b.nsPerOp = append(b.nsPerOp, v)
			case "allocs/op":
				b.allocsPerOp = append(b.allocsPerOp, v)
			case "B/op":
				b.bytesPerOp = append(b.bytesPerOp, v)
			}
		}
	}
	return runs
}

// median of xs (0 if empty); xs is not changed.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// quantile is the q-quantile (0..1) of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(int(q*float64(len(sorted))), len(sorted)-1)]
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
