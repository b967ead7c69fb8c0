package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// rssKiB reads a /proc/PID/status field in KiB (VmRSS: now; VmHWM: the peak since the
// process started or since resetPeak).
func rssKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == field {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// peakWatch follows a process's peak RSS over one phase. It resets the kernel's high-water
// mark (writing 5 to /proc/PID/clear_refs) and also samples VmRSS every 50 ms, in case the
// reset is not allowed here; the peak is the larger of the two.
type peakWatch struct {
	pid     int
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	sampled int64
	reset   bool
}

func watchPeak(pid int) *peakWatch {
	w := &peakWatch{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	w.reset = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
	go func() {
		defer close(w.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if kib, err := rssKiB(pid, "VmRSS"); err == nil {
				w.mu.Lock()
				w.sampled = max(w.sampled, kib)
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// peakMiB ends the watch and returns the peak RSS in MiB.
func (w *peakWatch) peakMiB() float64 {
	close(w.stop)
	<-w.done
	peak := w.sampled
	if w.reset {
		if hwm, err := rssKiB(w.pid, "VmHWM"); err == nil {
			peak = max(peak, hwm)
		}
	}
	return float64(peak) / 1024
}

// metrics is one scrape of the function's /metrics.
type metrics map[string]*dto.MetricFamily

func scrape(ctx context.Context, url string) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %smetrics: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %smetrics: %d %v", url, resp.StatusCode, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parsing %smetrics: %w", url, err)
	}
	return fams, nil
}

// sum adds the counter (or histogram _sum, with sumOf) samples of name whose labels match
// every label in match.
func (m metrics) sum(name string, match map[string]string) float64 {
	fam := m[name]
	if fam == nil {
		return 0
	}
	total := 0.0
next:
	for _, s := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range s.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range match {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case s.Counter != nil:
			total += s.GetCounter().GetValue()
		case s.Histogram != nil:
			total += s.GetHistogram().GetSampleSum()
		case s.Gauge != nil:
			total += s.GetGauge().GetValue()
		}
	}
	return total
}

// count adds the sample counts of the histogram name.
func (m metrics) count(name string) float64 {
	fam := m[name]
	if fam == nil {
		return 0
	}
	total := 0.0
	for _, s := range fam.GetMetric() {
		if s.Histogram != nil {
			total += float64(s.GetHistogram().GetSampleCount())
		}
	}
	return total
}

// eventLoad is what the function's event handling cost between two scrapes: events handled
// and the mean time one took (the adapter sends the next only after the answer).
func eventLoad(before, after metrics) (events float64, meanMs float64) {
	events = after.count(eventDuration) - before.count(eventDuration)
	if events > 0 {
		meanMs = 1000 * (after.sum(eventDuration, nil) - before.sum(eventDuration, nil)) / events
	}
	return events, meanMs
}

// byLabels returns the counter's value per combination of the given labels ("PATCH 200").
func (m metrics) byLabels(name string, keys ...string) map[string]float64 {
	out := map[string]float64{}
	fam := m[name]
	if fam == nil {
		return out
	}
	for _, s := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range s.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			if v, ok := labels[k]; ok {
				parts = append(parts, v)
			}
		}
		out[strings.Join(parts, " ")] += s.GetCounter().GetValue()
	}
	return out
}

// diff is after minus before, per key, without the keys that did not change.
func diff(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}
