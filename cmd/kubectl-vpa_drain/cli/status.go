package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"function/config"
	"function/handlers"
	"function/handlers/drain"
	"function/names"
)

// statusHelp is the status command's help. Its account of the reads names the facts of the
// gates of drain.Gates, so a gate added there is named here too.
var statusHelp = `kubectl vpa-drain status: the pods that hold the finalizer ` + names.Finalizer + `.

Usage:
  kubectl vpa-drain status [-n NAMESPACE | -A] [-o table|json] [--watch] [--config-map NS/NAME]

` + wrap(helpWidth, "Each pod is shown as the function decides it now (the same policy, with the same reads of "+
	gateReads()+" for a draining pod whose grace period is over): its owner, "+
	"PHASE (held: the finalizer is in place, the pod is not deleting; draining: deleting, held until "+
	"its gates open or its deadline), when the drain STARTED, its DEADLINE, the time LEFT, each gate "+
	"(+ open, - closed, with why) and what it is WAITING FOR (\"release due (REASON)\": the function "+
	"removes the finalizer at its next look; a pod that stays so means the function is not running). "+
	"The configuration comes from the function's ConfigMap (--config-map); when it cannot be read, "+
	"the defaults, with a warning.") + `

Examples:
  kubectl vpa-drain status
  kubectl vpa-drain status -A
  kubectl vpa-drain status -n shop -o json | jq '.[] | select(.deleting) | .name'
  kubectl vpa-drain status -n shop --watch
`

// helpWidth is the width help paragraphs are wrapped at.
const helpWidth = 95

// gateReads names what the decision reads for the gates of drain.Gates: "the owner's replicas
// and the endpoints".
func gateReads() string {
	var reads []string
	for _, g := range drain.Gates() {
		reads = append(reads, g.Reads)
	}
	if len(reads) < 2 {
		return strings.Join(reads, "")
	}
	return strings.Join(reads[:len(reads)-1], ", ") + " and " + reads[len(reads)-1]
}

// wrap breaks text into lines of at most width bytes (a longer word has a line of its own).
func wrap(width int, text string) string {
	var b strings.Builder
	line := 0
	for _, w := range strings.Fields(text) {
		switch {
		case line == 0:
		case line+1+len(w) > width:
			b.WriteByte('\n')
			line = 0
		default:
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	return b.String()
}

type statusOptions struct {
	kube          kubeFlags
	allNamespaces bool
	output        string
	watch         bool
	configMap     string
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o statusOptions
	fs := newFlagSet("status")
	o.kube.bind(fs)
	fs.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "every namespace (wins over -n, as in kubectl)")
	fs.StringVarP(&o.output, "output", "o", "table", "output format: table or json (a JSON array; with --watch one per change)")
	fs.BoolVarP(&o.watch, "watch", "w", false, "print again whenever a pod that holds the finalizer changes (at most once a second), until interrupted")
	fs.StringVar(&o.configMap, "config-map", "vpa-graceful-drain/vpa-graceful-drain", "the function's ConfigMap (namespace/name); empty: the defaults")
	if done, code := parse(fs, args, statusHelp, stdout, stderr); done {
		return code
	}
	if err := o.validate(fs.Args()); err != nil {
		return reportUsage(stderr, "status", err)
	}
	c, err := connect(o.kube)
	if err != nil {
		return fail(stderr, err)
	}
	ns := c.namespace
	if o.allNamespaces {
		ns = ""
	}
	cfg := loadConfig(ctx, c.client, o.configMap, stderr)
	// Inspect writes nothing; read failures show in the gates.
	rec := handlers.NewReconciler(handlers.Deps{Client: c.client, Dynamic: c.dynamic, DryRun: true, Clock: clock.RealClock{}, Log: slog.New(slog.DiscardHandler)}, cfg)
	p := printer{out: stdout, errOut: stderr, json: o.output == "json", allNamespaces: o.allNamespaces, namespace: ns}
	if o.watch {
		return fail0(stderr, watchStatus(ctx, c.client, rec, ns, p))
	}
	pods, err := listHeld(ctx, c.client, ns)
	if err != nil {
		return fail(stderr, err)
	}
	return fail0(stderr, p.print(collect(ctx, rec, pods, time.Now), false))
}

// fail0 is exitOK for a nil error, else fail.
func fail0(stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	return fail(stderr, err)
}

func (o *statusOptions) validate(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q (status lists every held pod of the namespace)", args[0])
	}
	if o.output != "table" && o.output != "json" {
		return fmt.Errorf("-o %q: want table or json", o.output)
	}
	if o.configMap != "" {
		if ns, n, ok := strings.Cut(o.configMap, "/"); !ok || ns == "" || n == "" || strings.Contains(n, "/") {
			return fmt.Errorf("--config-map %q: want namespace/name", o.configMap)
		}
	}
	return nil
}

// loadConfig reads the function's configuration from its ConfigMap (ref namespace/name, "":
// none), as the function does (its keys over the defaults; the uninstalling annotation). What
// cannot be read or parsed is reported in one warning line, and the defaults are used. (The
// function's environment, func.yaml's envs, is not visible from here: keys set only there are
// shown at their defaults.)
func loadConfig(ctx context.Context, client kubernetes.Interface, ref string, stderr io.Writer) config.Config {
	if ref == "" {
		return config.Default()
	}
	ns, name, _ := strings.Cut(ref, "/")
	cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		fmt.Fprintf(stderr, "warning: cannot read the function's ConfigMap %s (%v): showing decisions with the default configuration\n", ref, apiStatusMessage(err))
		return config.Default()
	}
	values := make(map[string]string, len(cm.Data))
	for k, v := range cm.Data {
		values[k] = strings.TrimSpace(v)
	}
	cfg, err := config.Parse(values)
	if err != nil {
		fmt.Fprintf(stderr, "warning: the function's ConfigMap %s is invalid (%v): showing decisions with the default configuration (the function keeps its last good one)\n", ref, err)
		return config.Default()
	}
	cfg.Uninstalling = strings.EqualFold(strings.TrimSpace(cm.Annotations[names.AnnotationUninstalling]), "true")
	if cfg.Uninstalling {
		fmt.Fprintf(stderr, "warning: the function's ConfigMap %s is marked %s=true: the function releases every pod it finds\n", ref, names.AnnotationUninstalling)
	}
	return cfg
}

// apiStatusMessage is an API error's message without the wrapping.
func apiStatusMessage(err error) string {
	var status interface{ Status() metav1.Status }
	if errors.As(err, &status) && status.Status().Message != "" {
		return status.Status().Message
	}
	return err.Error()
}

// holds reports whether obj is a pod that holds the finalizer.
func holds(obj any) bool {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	return ok && slices.Contains(pod.Finalizers, names.Finalizer)
}

// listHeld lists the pods of namespace ("": all) that hold the finalizer, in pages of 500.
func listHeld(ctx context.Context, client kubernetes.Interface, namespace string) ([]*corev1.Pod, error) {
	var held []*corev1.Pod
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := client.CoreV1().Pods(namespace).List(ctx, opts)
		if err != nil {
			return nil, apiError(err, "list", "pods", "", namespace)
		}
		for i := range list.Items {
			if holds(&list.Items[i]) {
				held = append(held, &list.Items[i])
			}
		}
		if list.Continue == "" {
			return held, nil
		}
		opts.Continue = list.Continue
	}
}

// row is one held pod, as the table and -o json show it.
type row struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	UID       types.UID `json:"uid"`
	OwnerKind string    `json:"ownerKind"`
	Owner     string    `json:"owner"`
	// Deleting: the pod is deleting (draining); else the finalizer is only in place.
	Deleting bool `json:"deleting"`
	// Phase is "held" (not deleting) or "draining".
	Phase string `json:"phase"`
	// Action is what the function decides now: none, start-drain, wait, remove-finalizer.
	Action string `json:"action"`
	// Started and Deadline are null until the pod is draining.
	Started  *time.Time `json:"started"`
	Deadline *time.Time `json:"deadline"`
	// SecondsLeft is the time to the deadline in whole seconds (negative: overdue), null
	// without a deadline.
	SecondsLeft *int64       `json:"secondsLeft"`
	Gates       []drain.Gate `json:"gates"`
	// WaitingFor is the table's WAITING FOR; Reason the decision's own reason.
	WaitingFor string   `json:"waitingFor"`
	Reason     string   `json:"reason"`
	Warnings   []string `json:"warnings,omitempty"`
}

// Phases.
const (
	phaseHeld     = "held"
	phaseDraining = "draining"
)

// newRow is what pod and the decision made on it at now show.
func newRow(pod *corev1.Pod, d drain.Decision, now time.Time) row {
	r := row{
		Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
		Deleting: pod.DeletionTimestamp != nil, Phase: phaseHeld,
		Action: d.Action.String(), Gates: d.Gates,
		WaitingFor: waitingFor(d), Reason: d.Reason, Warnings: d.Warnings,
	}
	if r.Gates == nil {
		r.Gates = []drain.Gate{} // [] in JSON, not null
	}
	r.OwnerKind, r.Owner = string(d.Kind), d.Owner
	if d.Kind == "" { // not managed: no owner was resolved; show the controller as it is
		if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
			r.OwnerKind, r.Owner = ref.Kind, ref.Name
		}
	}
	if r.Deleting {
		r.Phase = phaseDraining
	}
	// Times are shown as the API and the annotations show them, whole seconds; the
	// decision times the drain from the latest moment of that second (secondsLeft counts so).
	if !d.Started.IsZero() {
		t := d.Started.UTC().Truncate(time.Second)
		r.Started = &t
	}
	for i, g := range r.Gates {
		if g.Name == names.GateGracePeriod && !g.Open && !d.Started.IsZero() {
			r.Gates = slices.Clone(r.Gates)
			r.Gates[i].Detail = fmt.Sprintf("%s left of %s", formatLeft(d.Started.Add(d.Grace).Sub(now)), d.Grace)
		}
	}
	if !d.Deadline.IsZero() {
		t := d.Deadline.UTC().Truncate(time.Second)
		r.Deadline = &t
		left := int64(d.Deadline.Sub(now) / time.Second)
		r.SecondsLeft = &left
	}
	return r
}

// waitingFor is what the pod waits for, from the decision.
func waitingFor(d drain.Decision) string {
	switch d.Action {
	case drain.RemoveFinalizer:
		return "release due (" + d.Reason + ")"
	case drain.Wait, drain.StartDrain:
		return strings.TrimPrefix(d.Reason, "waiting for ")
	}
	if d.Reason == "finalizer in place, pod not deleting" {
		return "an eviction (not deleting)"
	}
	return d.Reason
}

// collect decides on each held pod as the function would now, sorted by namespace and name.
func collect(ctx context.Context, rec *handlers.Reconciler, pods []*corev1.Pod, now func() time.Time) []row {
	slices.SortFunc(pods, func(a, b *corev1.Pod) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	rows := make([]row, 0, len(pods))
	for _, pod := range pods {
		d := rec.Inspect(ctx, pod)
		rows = append(rows, newRow(pod, d, now()))
	}
	return rows
}

// printer prints rows as a table or JSON.
type printer struct {
	out, errOut   io.Writer
	json          bool
	allNamespaces bool
	namespace     string // "" with -A
}

// print prints rows; watching, an empty table is said on out and tables are separated by a
// blank line.
func (p printer) print(rows []row, watching bool) error {
	if p.json {
		b, err := json.MarshalIndent(rows, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding JSON: %w", err)
		}
		_, err = fmt.Fprintf(p.out, "%s\n", b)
		return err
	}
	if len(rows) == 0 {
		where := "in namespace " + p.namespace
		if p.allNamespaces {
			where = "in any namespace"
		}
		msg := fmt.Sprintf("No pods hold the finalizer %s %s.\n", names.Finalizer, where)
		if watching {
			_, err := fmt.Fprint(p.out, msg)
			return err
		}
		_, err := fmt.Fprint(p.errOut, msg) // like kubectl's "No resources found"
		return err
	}
	return writeTable(p.out, rows, p.allNamespaces)
}

// writeTable writes rows as kubectl does: aligned columns, upper-case headers.
func writeTable(w io.Writer, rows []row, allNamespaces bool) error {
	tw := tabwriter.NewWriter(w, 6, 4, 3, ' ', 0)
	cols := []string{"POD", "OWNER", "PHASE", "STARTED", "DEADLINE", "LEFT", "GATES", "WAITING FOR"}
	if allNamespaces {
		cols = append([]string{"NAMESPACE"}, cols...)
	}
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	for _, r := range rows {
		cells := []string{r.Name, ownerCell(r), r.Phase, timeCell(r.Started), timeCell(r.Deadline), leftCell(r.SecondsLeft), gatesCell(r.Gates), r.WaitingFor}
		if allNamespaces {
			cells = append([]string{r.Namespace}, cells...)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func ownerCell(r row) string {
	switch {
	case r.OwnerKind == "":
		return "-"
	case r.Owner == "":
		return r.OwnerKind // a pod without an owner: "Pod"
	}
	return r.OwnerKind + "/" + r.Owner
}

func timeCell(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func leftCell(seconds *int64) string {
	if seconds == nil {
		return "-"
	}
	return formatLeft(time.Duration(*seconds) * time.Second)
}

// formatLeft is the time left to a deadline in whole seconds, "4m12s", or "overdue 12s".
func formatLeft(left time.Duration) string {
	left = left.Truncate(time.Second)
	if left < 0 {
		return "overdue " + (-left).String()
	}
	return left.String()
}

// gatesCell is each gate with + (open) or - (closed, with its detail, but for a gate not looked
// at yet and for containers-stopped, whose closed detail only repeats its name):
// "+grace-period +containers-stopped -replacement-ready(1/2 Ready)".
func gatesCell(gates []drain.Gate) string {
	if len(gates) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(gates))
	for _, g := range gates {
		s := "-" + g.Name
		if g.Open {
			s = "+" + g.Name
		} else if g.Detail != "" && g.Detail != drain.DetailNotLookedAt && g.Name != names.GateContainers {
			s += "(" + g.Detail + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// watchStatus prints the status, then again whenever a pod that holds (or held) the finalizer
// changes, at most once a second, until ctx ends. The pods come from an informer (one list,
// then one watch), so a change costs no list.
func watchStatus(ctx context.Context, client kubernetes.Interface, rec *handlers.Reconciler, ns string, p printer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns))
	inf := factory.Core().V1().Pods().Informer()
	_ = inf.SetTransform(func(obj any) (any, error) {
		if pod, ok := obj.(*corev1.Pod); ok {
			pod.ManagedFields = nil // memory: not needed to decide
		}
		return obj, nil
	})
	failed := make(chan error, 1)
	_ = inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		if apierrors.IsForbidden(err) {
			select {
			case failed <- apiError(err, "list and watch", "pods", "", ns):
			default:
			}
			return
		}
		cache.DefaultWatchErrorHandler(ctx, r, err) // logged; the reflector retries
	})
	changed := make(chan struct{}, 1)
	signal := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { onlyIf(holds(obj), signal) },
		UpdateFunc: func(old, obj any) { onlyIf(holds(old) || holds(obj), signal) },
		DeleteFunc: func(obj any) { onlyIf(holds(obj), signal) },
	}); err != nil {
		return fmt.Errorf("watching pods: %w", err)
	}
	go inf.RunWithContext(ctx)
	synced := make(chan struct{})
	go func() {
		cache.WaitForCacheSync(ctx.Done(), inf.HasSynced)
		close(synced)
	}()
	select {
	case err := <-failed:
		return err
	case <-synced:
	}
	first := true
	for ctx.Err() == nil {
		select { // the changes so far are in this print
		case <-changed:
		default:
		}
		var pods []*corev1.Pod
		for _, obj := range inf.GetStore().List() {
			if holds(obj) {
				pods = append(pods, obj.(*corev1.Pod))
			}
		}
		if !first && !p.json {
			fmt.Fprintln(p.out)
		}
		first = false
		if err := p.print(collect(ctx, rec, pods, time.Now), true); err != nil {
			return err
		}
		printed := time.Now()
		select {
		case <-ctx.Done():
		case err := <-failed:
			return err
		case <-changed:
			select { // at most once a second
			case <-ctx.Done():
			case <-time.After(time.Until(printed.Add(time.Second))):
			}
		}
	}
	return nil
}

func onlyIf(cond bool, f func()) {
	if cond {
		f()
	}
}
