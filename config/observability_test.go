package config_test

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"function/telemetry"
)

// The dashboard and the alerts are checked against the series the function exports
// (telemetry.Series), so that a renamed metric cannot leave an empty panel or an alert that
// never fires. github.com/prometheus/prometheus is not a dependency of this module (and too
// heavy to become one for a test), so expressions are read by promQL below: a small scanner
// that checks brackets, strings, label matchers and range durations, and returns the metric
// names and label names an expression uses.

// prefix is the prefix of every series the function exports.
const prefix = "vpagracefuldrain_"

// exported returns every Prometheus series name the function exports: a histogram exists
// only as its _bucket, _sum and _count.
func exported() map[string]bool {
	m := map[string]bool{}
	for _, s := range telemetry.Series() {
		if telemetry.IsHistogram(s) {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				m[s+suffix] = true
			}
			continue
		}
		m[s] = true
	}
	return m
}

// labelNames are the label names an expression may use: the function's attributes, and le
// of the histogram buckets.
var labelNames = map[string]bool{
	telemetry.AttrAction:    true,
	telemetry.AttrReason:    true,
	telemetry.AttrOwnerKind: true,
	telemetry.AttrNamespace: true,
	telemetry.AttrType:      true,
	telemetry.AttrCode:      true,
	telemetry.AttrVerb:      true,
	telemetry.AttrResult:    true,
	telemetry.AttrOutcome:   true,
	"le":                    true,
}

// parsed is what promQL found in an expression.
type parsed struct {
	metrics []string // metric names, in order of appearance
	labels  []string // label names in matchers and in by/without/on/ignoring/group_x lists
}

// keywords are PromQL's identifiers that are never a metric name: binary and set operators,
// modifiers, aggregations (which may be followed by by/without before their parenthesis) and
// the number literals.
var keywords = map[string]bool{
	"and": true, "or": true, "unless": true, "atan2": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true, "inf": true, "nan": true,
}

// grouping are the keywords that take a parenthesised list of label names.
var grouping = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

var (
	identRE    = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`)
	matcherRE  = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*(,|$)`)
	labelRE    = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	durationRE = `(?:[0-9]+(?:ms|s|m|h|d|w|y))+|\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?`
	rangeRE    = regexp.MustCompile(`^\s*(?:` + durationRE + `)\s*(?::\s*(?:` + durationRE + `)?\s*)?$`)
	variableRE = regexp.MustCompile(`^\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?`)
)

// promQL scans a PromQL expression (with Grafana's $variables) and returns the metric names
// and label names it uses, or an error if it is not well-formed.
func promQL(expr string) (parsed, error) {
	var p parsed
	var parens []int // offsets of the open parentheses
	i := 0
	// next returns the offset of the next non-space byte from j.
	next := func(j int) int {
		for j < len(expr) && strings.ContainsRune(" \t\r\n", rune(expr[j])) {
			j++
		}
		return j
	}
	// closing returns the offset of the byte that closes the bracket at j, skipping strings.
	closing := func(j int, closer byte) (int, error) {
		for k := j + 1; k < len(expr); k++ {
			switch expr[k] {
			case closer:
				return k, nil
			case '"', '\'', '`':
				end, err := stringEnd(expr, k)
				if err != nil {
					return 0, err
				}
				k = end
			}
		}
		return 0, fmt.Errorf("%q at %d is never closed", expr[j], j)
	}
	for i = next(i); i < len(expr); i = next(i) {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end, err := stringEnd(expr, i)
			if err != nil {
				return p, err
			}
			i = end + 1
		case c == '{':
			end, err := closing(i, '}')
			if err != nil {
				return p, err
			}
			body := expr[i+1 : end]
			for strings.TrimSpace(body) != "" {
				m := matcherRE.FindStringSubmatch(body)
				if m == nil {
					return p, fmt.Errorf("bad label matchers {%s}", expr[i+1:end])
				}
				p.labels = append(p.labels, m[1])
				body = body[len(m[0]):]
			}
			i = end + 1
		case c == '[':
			end, err := closing(i, ']')
			if err != nil {
				return p, err
			}
			if !rangeRE.MatchString(expr[i+1 : end]) {
				return p, fmt.Errorf("bad range [%s]", expr[i+1:end])
			}
			i = end + 1
		case c == '(':
			parens = append(parens, i)
			i++
		case c == ')':
			if len(parens) == 0 {
				return p, fmt.Errorf("unbalanced ) at %d", i)
			}
			parens = parens[:len(parens)-1]
			i++
		case c == '}' || c == ']':
			return p, fmt.Errorf("unbalanced %c at %d", c, i)
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(expr) && expr[i+1] >= '0' && expr[i+1] <= '9':
			// A number or a duration (offset 5m): digits, letters, dots, and an exponent's sign.
			for i++; i < len(expr); i++ {
				d := expr[i]
				if !(d == '.' || d == '_' || d >= '0' && d <= '9' || d >= 'a' && d <= 'z' || d >= 'A' && d <= 'Z' ||
					(d == '+' || d == '-') && (expr[i-1] == 'e' || expr[i-1] == 'E')) {
					break
				}
			}
		case c == '$':
			v := variableRE.FindString(expr[i:])
			if v == "" {
				return p, fmt.Errorf("bad variable at %d", i)
			}
			i += len(v)
		case identRE.MatchString(expr[i:]):
			id := identRE.FindString(expr[i:])
			i += len(id)
			j := next(i)
			followedByParen := j < len(expr) && expr[j] == '('
			switch {
			case grouping[id] && followedByParen:
				end, err := closing(j, ')')
				if err != nil {
					return p, err
				}
				for _, l := range strings.Split(expr[j+1:end], ",") {
					l = strings.TrimSpace(l)
					if l == "" {
						continue
					}
					if !labelRE.MatchString(l) {
						return p, fmt.Errorf("bad label %q in %s (...)", l, id)
					}
					p.labels = append(p.labels, l)
				}
				i = end + 1
			case keywords[strings.ToLower(id)], followedByParen: // an operator or a function
			default:
				p.metrics = append(p.metrics, id)
			}
		case strings.IndexByte("+-*/%^=!<>,@", c) >= 0:
			i++
		default:
			return p, fmt.Errorf("unexpected %q at %d", c, i)
		}
	}
	if len(parens) > 0 {
		return p, fmt.Errorf("( at %d is never closed", parens[len(parens)-1])
	}
	return p, nil
}

// stringEnd returns the offset of the quote that ends the string literal starting at i.
func stringEnd(s string, i int) (int, error) {
	q := s[i]
	for k := i + 1; k < len(s); k++ {
		switch {
		case s[k] == '\\' && q != '`':
			k++
		case s[k] == q:
			return k, nil
		}
	}
	return 0, fmt.Errorf("string at %d is never closed", i)
}

// checkExpr checks one dashboard query or rule expression: it must be well-formed, name at
// least one of the function's series, and name none that the function does not export, and
// use only the function's label names.
func checkExpr(expr string) error {
	p, err := promQL(expr)
	if err != nil {
		return err
	}
	known := exported()
	ours := 0
	for _, m := range p.metrics {
		if !strings.HasPrefix(m, prefix) {
			continue
		}
		if !known[m] {
			return fmt.Errorf("%s is not a series the function exports (telemetry.Series)", m)
		}
		ours++
	}
	if ours == 0 {
		return fmt.Errorf("names none of the function's series (metrics: %v)", p.metrics)
	}
	for _, l := range p.labels {
		if !labelNames[l] {
			return fmt.Errorf("label %q is not one of the function's", l)
		}
	}
	return nil
}

func TestPromQLScanner(t *testing.T) {
	tests := []struct {
		expr    string
		metrics []string
		labels  []string
	}{
		{`sum(vpagracefuldrain_drains_in_progress)`, []string{"vpagracefuldrain_drains_in_progress"}, nil},
		{`max(vpagracefuldrain_drains_overdue) > 0`, []string{"vpagracefuldrain_drains_overdue"}, nil},
		{
			`histogram_quantile(0.99, sum by (le, reason) (rate(vpagracefuldrain_drain_duration_seconds_bucket{namespace=~"$namespace"}[$__rate_interval])))`,
			[]string{"vpagracefuldrain_drain_duration_seconds_bucket"}, []string{"le", "reason", "namespace"},
		},
		{
			`sum by (type) (rate(a{code=~"5..", type!="x\"y}"}[5m] offset 1h)) / ignoring(type) group_left sum(rate(b[1m:30s]))`,
			[]string{"a", "b"}, []string{"type", "code", "type", "type"},
		},
		{
			`(sum(increase(x[15m])) or vector(0)) < 1 and on() count(time() - kube_pod_created{namespace!="ns"} < 900) > 0`,
			[]string{"x", "kube_pod_created"}, []string{"namespace"},
		},
		{`sum(rate(x[${__range}])) * 1e-3 + .5`, []string{"x"}, nil},
		{`record:with:colons unless bool_metric`, []string{"record:with:colons", "bool_metric"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			p, err := promQL(tt.expr)
			require.NoError(t, err)
			assert.Equal(t, tt.metrics, p.metrics)
			assert.Equal(t, tt.labels, p.labels)
		})
	}
}

// The checker must catch what it is there to catch, or the tests below prove nothing.
func TestCheckExprRejects(t *testing.T) {
	tests := []struct {
		name, expr, want string
	}{
		{"made-up series", `sum(rate(vpagracefuldrain_drains_evicted_total[5m]))`, "vpagracefuldrain_drains_evicted_total is not a series"},
		{"made-up series beside a real one", `vpagracefuldrain_drains_overdue + vpagracefuldrain_drain_overdue`, "vpagracefuldrain_drain_overdue is not a series"},
		{"histogram without a suffix", `rate(vpagracefuldrain_drain_duration_seconds[5m])`, "vpagracefuldrain_drain_duration_seconds is not a series"},
		{"counter with a histogram suffix", `rate(vpagracefuldrain_decisions_total_bucket[5m])`, "vpagracefuldrain_decisions_total_bucket is not a series"},
		{"none of ours", `count(kube_pod_created) > 0`, "names none of the function's series"},
		{"unknown label", `sum by (reasn) (rate(vpagracefuldrain_decisions_total[5m]))`, `label "reasn"`},
		{"unknown label in a matcher", `vpagracefuldrain_decisions_total{action="wait",resaon="x"}`, `label "resaon"`},
		{"unbalanced parenthesis", `sum(rate(vpagracefuldrain_decisions_total[5m])`, "never closed"},
		{"extra parenthesis", `sum(vpagracefuldrain_drains_overdue))`, "unbalanced )"},
		{"unterminated string", `vpagracefuldrain_decisions_total{reason="timeout}`, "never closed"},
		{"bad matcher", `vpagracefuldrain_decisions_total{reason=timeout}`, "bad label matchers"},
		{"bad range", `rate(vpagracefuldrain_decisions_total[5 minutes])`, "bad range"},
		{"stray character", `vpagracefuldrain_drains_overdue ; 1`, "unexpected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkExpr(tt.expr)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Targets    []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// allPanels returns the dashboard's panels with the panels of collapsed rows, rows included.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("dashboard.json")
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(b, &d))
	return d
}

func TestDashboardParses(t *testing.T) {
	d := readDashboard(t)
	assert.NotEmpty(t, d.UID)
	assert.NotEmpty(t, d.Title)
	assert.GreaterOrEqual(t, d.SchemaVersion, 39)

	vars := map[string]int{}
	for i, v := range d.Templating.List {
		vars[v.Name] = i
	}
	require.Contains(t, vars, "datasource")
	ds := d.Templating.List[vars["datasource"]]
	assert.Equal(t, "datasource", ds.Type)
	assert.JSONEq(t, `"prometheus"`, string(ds.Query))

	// The namespace variable's query names an exported series too.
	require.Contains(t, vars, "namespace")
	ns := d.Templating.List[vars["namespace"]]
	var q struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(ns.Query, &q.Query) != nil { // a string (older Grafana) or an object
		require.NoError(t, json.Unmarshal(ns.Query, &q))
	}
	assert.Equal(t, ns.Definition, q.Query)
	m := regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*namespace\s*\)$`).FindStringSubmatch(q.Query)
	require.NotNil(t, m, "namespace variable query %q", q.Query)
	assert.True(t, exported()[m[1]], "%s is not exported", m[1])
	require.NotNil(t, ns.Datasource)
	assert.Equal(t, "${datasource}", ns.Datasource.UID)

	ids := map[int]string{}
	panels := 0
	for _, p := range allPanels(d.Panels) {
		assert.NotContains(t, ids, p.ID, "panel %q: id %d also used by %q", p.Title, p.ID, ids[p.ID])
		ids[p.ID] = p.Title
		assert.NotEmpty(t, p.Title, "panel %d", p.ID)
		if p.Type == "row" {
			assert.Empty(t, p.Targets, "row %q", p.Title)
			continue
		}
		panels++
		require.NotNil(t, p.Datasource, "panel %q", p.Title)
		assert.Equal(t, "${datasource}", p.Datasource.UID, "panel %q", p.Title)
		assert.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			assert.False(t, refs[tg.RefID], "panel %q: refId %s twice", p.Title, tg.RefID)
			refs[tg.RefID] = true
			if tg.Datasource != nil {
				assert.Equal(t, "${datasource}", tg.Datasource.UID, "panel %q", p.Title)
			}
			assert.NoError(t, checkExpr(tg.Expr), "panel %q, query %s: %s", p.Title, tg.RefID, tg.Expr)
		}
	}
	assert.GreaterOrEqual(t, panels, 10)
}

// The dashboard shows what issue 8 asks for.
func TestDashboardCoversTheSeries(t *testing.T) {
	d := readDashboard(t)
	used := map[string]bool{}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			parsed, err := promQL(tg.Expr)
			require.NoError(t, err)
			for _, m := range parsed.metrics {
				used[m] = true
			}
		}
	}
	for _, s := range telemetry.Series() {
		if telemetry.IsHistogram(s) {
			s += "_bucket" // percentiles
		}
		assert.True(t, used[s], "no panel shows %s", s)
	}
}

// rule is the PrometheusRule, read strictly: a misspelt field is an error.
type rule struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Groups []struct {
			Name     string `json:"name"`
			Interval string `json:"interval,omitempty"`
			Rules    []struct {
				Alert       string            `json:"alert,omitempty"`
				Record      string            `json:"record,omitempty"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels,omitempty"`
				Annotations map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

func TestPrometheusRule(t *testing.T) {
	docs := documents(t, "prometheusrule.yaml")
	require.Len(t, docs, 1)
	var r rule
	require.NoError(t, yaml.UnmarshalStrict(docs[0], &r))
	assert.Equal(t, "monitoring.coreos.com/v1", r.APIVersion)
	assert.Equal(t, "PrometheusRule", r.Kind)
	assert.Equal(t, "vpa-graceful-drain", r.Metadata.Namespace)
	assert.NotEmpty(t, r.Metadata.Labels)

	durationOK := regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)
	recordOK := regexp.MustCompile(`^[a-zA-Z_]*:` + prefix + `[a-zA-Z0-9_]+:[a-zA-Z0-9_]+$`)
	groups := map[string]bool{}
	names := map[string]bool{}
	var alerts []string
	for _, g := range r.Spec.Groups {
		assert.False(t, groups[g.Name], "group %s twice", g.Name)
		groups[g.Name] = true
		if g.Interval != "" {
			assert.Regexp(t, durationOK, g.Interval)
		}
		for _, rl := range g.Rules {
			name := rl.Alert + rl.Record
			require.True(t, (rl.Alert == "") != (rl.Record == ""), "a rule is an alert or a record: %q", name)
			assert.False(t, names[name], "%s twice", name)
			names[name] = true
			assert.NoError(t, checkExpr(rl.Expr), "%s: %s", name, rl.Expr)
			if rl.Record != "" {
				assert.Regexp(t, recordOK, rl.Record)
				assert.Empty(t, rl.For, rl.Record)
				assert.Empty(t, rl.Annotations, rl.Record)
				continue
			}
			alerts = append(alerts, rl.Alert)
			assert.Contains(t, []string{"critical", "warning", "info"}, rl.Labels["severity"], "%s: severity", name)
			for _, a := range []string{"summary", "description", "runbook"} {
				assert.NotEmpty(t, strings.TrimSpace(rl.Annotations[a]), "%s: annotation %s", name, a)
			}
			if rl.For != "" {
				assert.Regexp(t, durationOK, rl.For, name)
			}
			// The runbook says what to run.
			assert.Contains(t, rl.Annotations["runbook"], "kubectl vpa-drain status -A", name)
		}
	}
	for _, want := range []string{
		"VPAGracefulDrainTimeoutsRising",
		"VPAGracefulDrainPodHeldPastDeadline",
		"VPAGracefulDrainNoEvents",
		"VPAGracefulDrainSweepsFailing",
		"VPAGracefulDrainEventErrors",
	} {
		assert.True(t, slices.Contains(alerts, want), "alert %s missing", want)
	}
}
