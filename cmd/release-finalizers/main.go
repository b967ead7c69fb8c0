// Command release-finalizers removes the finalizer vpagracefuldrain.dev/drain from every pod.
// Run it when uninstalling vpa-graceful-drain: without the function nothing else removes it,
// and an evicted pod would stay Terminating forever. It uses KUBECONFIG / ~/.kube/config (or
// the in-cluster config).
//
// It needs exactly these permissions (see permissions), and checks each with a
// SelfSubjectAccessReview before it does anything: when one is denied it changes nothing and
// exits 1 with one line per missing permission, "release-finalizers needs <verb> on <resource>
// (<scope>); ask your cluster admin or run with an account that has it".
//
//   - get, list and patch on pods, in -namespace (all namespaces without it): list to find
//     them, patch to remove the finalizer (a guarded JSON patch), get to read a pod again when
//     it changed in between;
//   - create on events, in the same scope: a FinalizerRemoved Event on each released pod;
//   - without -namespace only: patch on the ConfigMap -config-map names (none when
//     -config-map is empty), to mark it, and list and delete on poddisruptionbudgets (policy),
//     in all namespaces: the ones pacing created are found by their label wherever they are.
//
// With -dry-run it needs only list on pods (and, without -namespace, list on
// poddisruptionbudgets).
//
//	go run ./cmd/release-finalizers [-namespace NS] [-dry-run] [-workers 16] [-qps 100] [-burst 200]
//	    [-config-map vpa-graceful-drain/vpa-graceful-drain] [-settle 5s]
//
// First it marks the function's ConfigMap with vpagracefuldrain.dev/uninstalling: "true":
// every replica that follows it stops adding finalizers and removes its own, so the order of
// the uninstall steps does not matter. Then it releases every pod, and passes again after
// -settle until a pass finds nothing left (a replica may have added one before it saw the
// mark). Last it deletes the PodDisruptionBudgets the function created for eviction pacing
// (ensurePodDisruptionBudget; labelled app.kubernetes.io/managed-by=vpa-graceful-drain), in
// every namespace, and says how many.
//
// With -namespace it touches that namespace only: it releases the pods there (pass after pass,
// as above) and nothing else. The ConfigMap is not marked and no PodDisruptionBudget is
// deleted anywhere: the function stays installed (and adds the finalizer again to the pods it
// manages there, unless its namespaceSelector excludes the namespace). It says so on stderr,
// and that a run without -namespace removes it all.
//
// It patches -workers pods at once, each with the function's guarded patch, prints a progress
// line on stderr about once a second, and ends with "released N pod(s)" on stdout (" in
// namespace NS" with -namespace; ", M failed" when some pods could not be released, the exit
// code is then 1). When the last of its passes still released pods, something keeps putting
// the finalizer back: it says so, names them and exits 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"function/config"
	"function/handlers"
	"function/names"
)

type options struct {
	namespace string
	dryRun    bool
	qps       float64
	burst     int
	workers   int
	configMap string
	settle    time.Duration
}

// maxPasses bounds the release passes.
const maxPasses = 5

func main() {
	var o options
	flag.StringVar(&o.namespace, "namespace", "", "release only this namespace's pods; the function stays installed: no ConfigMap mark, no PodDisruptionBudget deleted (default: all namespaces, the whole uninstall)")
	flag.BoolVar(&o.dryRun, "dry-run", false, "list the pods that hold the finalizer, change nothing")
	flag.Float64Var(&o.qps, "qps", 100, "API requests per second (client-side rate limit)")
	flag.IntVar(&o.burst, "burst", 200, "API requests allowed in a burst above -qps")
	flag.IntVar(&o.workers, "workers", 16, "pods patched at once")
	flag.StringVar(&o.configMap, "config-map", "vpa-graceful-drain/vpa-graceful-drain", "the function's ConfigMap (namespace/name) to mark as uninstalling; empty: none")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "wait between release passes")
	flag.Usage = func() { usage(flag.CommandLine.Output(), flag.CommandLine) }
	flag.Parse()
	if err := run(o); err != nil {
		var missing missingPermissions
		if errors.As(err, &missing) {
			fmt.Fprint(os.Stderr, missing.Error())
		} else {
			fmt.Fprintln(os.Stderr, "release-finalizers:", err)
		}
		os.Exit(1)
	}
}

// usage is the -help text: what the command does, the permissions it needs, its flags.
func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage: release-finalizers [flags]

Removes the finalizer vpagracefuldrain.dev/drain from every pod (uninstalling vpa-graceful-drain):
marks the function's ConfigMap as uninstalling, releases every pod (passing again until nothing is
left), then deletes the PodDisruptionBudgets the function created for eviction pacing.
With -namespace it releases that namespace's pods only and changes nothing else: the ConfigMap is
not marked, no PodDisruptionBudget is deleted, the function stays installed.

Permissions it needs (each checked with a SelfSubjectAccessReview before it does anything):
  get, list, patch  pods                         in -namespace (all namespaces without it)
  create            events                       in the same scope
  patch             configmaps                   the one -config-map names (none if it is empty); none with -namespace
  list, delete      poddisruptionbudgets.policy  in all namespaces; none with -namespace
With -dry-run: list on pods and list on poddisruptionbudgets.policy (not with -namespace) only.

Flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func run(o options) error {
	if o.qps <= 0 || o.burst <= 0 || o.workers <= 0 {
		return fmt.Errorf("-qps, -burst and -workers must be positive")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return fmt.Errorf("loading cluster config: %w", err)
	}
	cfg.UserAgent = names.Component + "-release"
	// client-go's default (5 requests/s) would take over an hour for 10,000 pods.
	cfg.QPS, cfg.Burst = float32(o.qps), o.burst
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	needed, err := permissions(o)
	if err != nil {
		return err
	}
	if err := checkPermissions(ctx, client, needed); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	res, err := uninstall(ctx, client, o, log, os.Stderr)
	fmt.Println(summary(res, o))
	return err
}

// everywhere reports whether o is the whole uninstall (no -namespace): only then is the
// ConfigMap marked and are the PodDisruptionBudgets deleted, both cluster-wide.
func (o options) everywhere() bool { return o.namespace == "" }

// uninstall marks the ConfigMap, then releases every pod, pass after pass until one finds
// nothing left to do (or maxPasses), then deletes the PodDisruptionBudgets the function created.
// With -namespace it only releases that namespace's pods and says what it left.
func uninstall(ctx context.Context, client kubernetes.Interface, o options, log *slog.Logger, progressOut io.Writer) (handlers.ReleaseResult, error) {
	if o.everywhere() && !o.dryRun && o.configMap != "" {
		if err := markUninstalling(ctx, client, o.configMap, progressOut); err != nil {
			return handlers.ReleaseResult{}, err
		}
	}
	rec := handlers.NewReconciler(handlers.NewDeps(client, o.dryRun, log), config.Default())
	defer rec.Stop()
	total, err := release(ctx, handlers.NewReleaser(rec), o, progressOut)
	if ctx.Err() != nil {
		return total, err
	}
	if !o.everywhere() {
		fmt.Fprintln(progressOut, leftInstalled(o))
		return total, err
	}
	n, pdbErr := rec.Checks.DeletePDBs(ctx)
	pdbVerb := "deleted"
	if o.dryRun {
		pdbVerb = "would delete"
	}
	fmt.Fprintf(progressOut, "%s %d PodDisruptionBudget(s) vpa-graceful-drain created\n", pdbVerb, n)
	return total, errors.Join(err, pdbErr)
}

// release releases every pod, pass after pass until one finds nothing left to do (or
// maxPasses).
func release(ctx context.Context, rec *handlers.Releaser, o options, progressOut io.Writer) (handlers.ReleaseResult, error) {
	var total handlers.ReleaseResult
	for pass := 1; ; pass++ {
		res, err := rec.ReleaseAll(ctx, o.namespace, handlers.ReleaseOptions{
			Workers:  o.workers,
			Progress: progress(progressOut, o),
		})
		total.Released = append(total.Released, res.Released...)
		total.Failed, total.Listed = res.Failed, res.Listed
		if o.dryRun || (len(res.Released) == 0 && res.Failed == 0) || ctx.Err() != nil {
			return total, err
		}
		if pass == maxPasses {
			if len(res.Released) > 0 {
				err = errors.Join(err, stillReAdded(pass, res.Released, o.namespace))
			}
			return total, err
		}
		fmt.Fprintf(progressOut, "pass %d done; passing again in %s until nothing is left\n", pass, o.settle)
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(o.settle):
		}
	}
}

// leftInstalled is the line a -namespace run ends with: what it did not touch, and how to
// remove it all.
func leftInstalled(o options) string {
	return fmt.Sprintf("-namespace %s: %s pods in namespace %s only; vpa-graceful-drain is still installed "+
		"(its ConfigMap was not marked as uninstalling: it adds %s again to the pods it manages in %s unless its %s excludes it) "+
		"and its PodDisruptionBudgets were left in every namespace; to remove all, run release-finalizers without -namespace",
		o.namespace, verb(o.dryRun), o.namespace, names.Finalizer, o.namespace, config.KeyNamespaceSelector)
}

// stillReAdded is the error of a last pass that still had pods to release: something keeps
// putting the finalizer back. namespace is -namespace ("" for all namespaces).
func stillReAdded(passes int, pods []string, namespace string) error {
	shown := pods[:min(len(pods), 5)]
	more := ""
	if len(pods) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(pods)-len(shown))
	}
	cause, get := "a replica of the function that is not in uninstall mode (it does not follow the ConfigMap given with -config-map, or runs with another one)", "-A"
	if namespace != "" {
		cause = fmt.Sprintf("the function, which a -namespace run leaves installed and which still manages namespace %s "+
			"(exclude it from the function's %s first, or run without -namespace to uninstall it)", namespace, config.KeyNamespaceSelector)
		get = "-n " + namespace
	}
	return fmt.Errorf("pass %d of %d still released %d pod(s) (%s%s): something keeps adding %s back: "+
		"%s, or a controller or admission webhook of your own; stop it (kubectl get pods %s -o yaml shows the finalizer's field manager in metadata.managedFields) and run again",
		passes, passes, len(pods), strings.Join(shown, ", "), more, names.Finalizer, cause, get)
}

// markUninstalling annotates the function's ConfigMap (namespace/name). A ConfigMap that does
// not exist needs no mark: a function that follows it is in uninstall mode without it.
func markUninstalling(ctx context.Context, client kubernetes.Interface, ref string, out io.Writer) error {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || name == "" {
		return fmt.Errorf("-config-map %q: want namespace/name", ref)
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"true"}}}`, names.AnnotationUninstalling)
	_, err := client.CoreV1().ConfigMaps(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: names.Component + "-release"})
	switch {
	case apierrors.IsNotFound(err):
		fmt.Fprintf(out, "ConfigMap %s not found: nothing to mark (a function that follows it is already in uninstall mode)\n", ref)
		return nil
	case err != nil:
		return fmt.Errorf("marking ConfigMap %s as uninstalling: %w", ref, err)
	}
	fmt.Fprintf(out, "marked ConfigMap %s with %s=true: the function adds no finalizer from now on\n", ref, names.AnnotationUninstalling)
	return nil
}

func verb(dryRun bool) string {
	if dryRun {
		return "would release"
	}
	return "released"
}

// inScope is "" for all namespaces, " in namespace NS" with -namespace.
func inScope(o options) string {
	if o.everywhere() {
		return ""
	}
	return " in namespace " + o.namespace
}

// progress writes "released N, failed M, checked K pods" (" in namespace NS" with -namespace)
// to w.
func progress(w io.Writer, o options) func(done, released, failed int) {
	return func(done, released, failed int) {
		fmt.Fprintf(w, "%s %d, failed %d, checked %d pods%s\n", verb(o.dryRun), released, failed, done, inScope(o))
	}
}

// summary is the last line: "released N pod(s)" (" in namespace NS" with -namespace), with ",
// M failed" when some failed.
func summary(res handlers.ReleaseResult, o options) string {
	s := fmt.Sprintf("%s %d pod(s)%s", verb(o.dryRun), len(res.Released), inScope(o))
	if res.Failed > 0 {
		s += fmt.Sprintf(", %d failed", res.Failed)
	}
	return s
}

// permissions returns every access a run with o needs (see the package doc): in o.namespace
// ("" for all namespaces) for pods and events; without -namespace also the ConfigMap by name
// and poddisruptionbudgets in all namespaces (DeletePDBs lists them everywhere). A -namespace
// run asks for nothing outside its namespace.
func permissions(o options) ([]authorizationv1.ResourceAttributes, error) {
	pods := func(verb string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: verb, Resource: "pods", Namespace: o.namespace}
	}
	pdbs := func(verb string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: verb, Group: "policy", Resource: "poddisruptionbudgets"}
	}
	switch {
	case o.dryRun && o.everywhere():
		return []authorizationv1.ResourceAttributes{pods("list"), pdbs("list")}, nil
	case o.dryRun:
		return []authorizationv1.ResourceAttributes{pods("list")}, nil
	}
	needed := []authorizationv1.ResourceAttributes{pods("get"), pods("list"), pods("patch"),
		{Verb: "create", Resource: "events", Namespace: o.namespace}}
	if !o.everywhere() {
		return needed, nil
	}
	if o.configMap != "" {
		ns, name, ok := strings.Cut(o.configMap, "/")
		if !ok || ns == "" || name == "" {
			return nil, fmt.Errorf("-config-map %q: want namespace/name", o.configMap)
		}
		needed = append(needed, authorizationv1.ResourceAttributes{Verb: "patch", Resource: "configmaps", Namespace: ns, Name: name})
	}
	return append(needed, pdbs("list"), pdbs("delete")), nil
}

// missingPermissions is the accesses the authorizer denied, one line each.
type missingPermissions []authorizationv1.ResourceAttributes

func (m missingPermissions) Error() string {
	var b strings.Builder
	for _, a := range m {
		fmt.Fprintf(&b, "release-finalizers needs %s on %s (%s); ask your cluster admin or run with an account that has it\n",
			a.Verb, resourceName(a), scope(a))
	}
	return b.String()
}

// resourceName is "pods", "poddisruptionbudgets.policy" or "configmaps named NAME".
func resourceName(a authorizationv1.ResourceAttributes) string {
	s := a.Resource
	if a.Group != "" {
		s += "." + a.Group
	}
	if a.Name != "" {
		s += " named " + a.Name
	}
	return s
}

// scope is "namespace NS" or "all namespaces".
func scope(a authorizationv1.ResourceAttributes) string {
	if a.Namespace == "" {
		return "all namespaces"
	}
	return "namespace " + a.Namespace
}

// checkPermissions asks the API server (SelfSubjectAccessReviews, which every authenticated
// user may create) whether the caller has each access, and returns missingPermissions listing
// every one denied.
func checkPermissions(ctx context.Context, client kubernetes.Interface, needed []authorizationv1.ResourceAttributes) error {
	var missing missingPermissions
	for _, a := range needed {
		review, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &a}}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("checking whether this account may %s %s (%s): %w", a.Verb, resourceName(a), scope(a), err)
		}
		if !review.Status.Allowed {
			missing = append(missing, a)
		}
	}
	if len(missing) > 0 {
		return missing
	}
	return nil
}
