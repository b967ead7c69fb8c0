// Package cli is the kubectl plugin of vpa-graceful-drain (cmd/kubectl-vpa_drain), as a
// package so tests run it in-process: Run(ctx, args, stdout, stderr) is the whole command.
//
// `kubectl vpa-drain status` lists the pods that hold the finalizer vpagracefuldrain.dev/drain
// (owner, drain start, deadline, time left, each gate's state and what the drain waits for), as
// the function decides them now; `kubectl vpa-drain release POD` removes it from one pod by
// hand, the incident escape hatch, with the function's guarded patch and a FinalizerRemoved
// Event.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"function/names"
)

// Exit codes.
const (
	ExitOK    = 0 // done
	ExitError = 1 // failed, or refused (release of a pod without the finalizer)
	ExitUsage = 2 // a wrong command line
)

// Shorter names inside the package.
const (
	exitOK    = ExitOK
	exitError = ExitError
	exitUsage = ExitUsage
)

// name is how users call the plugin.
const name = "kubectl vpa-drain"

const usage = `kubectl vpa-drain: the pods vpa-graceful-drain holds with its finalizer ` + names.Finalizer + `
while they drain after a VPA eviction.

Usage:
  kubectl vpa-drain status [-n NAMESPACE | -A] [-o table|json] [--watch] [--config-map NS/NAME]
  kubectl vpa-drain release POD [-n NAMESPACE] [--reason TEXT]

Commands:
  status    list the pods that hold the finalizer: owner, phase (held: not deleting;
            draining), drain start, deadline, time left, each gate (+ open, - closed) and
            what the drain waits for, as the function decides it now
  release   remove the finalizer from one pod by hand, the incident escape hatch: the
            function's guarded patch and a FinalizerRemoved Event on the pod

Examples:
  kubectl vpa-drain status                     # the kubeconfig's namespace
  kubectl vpa-drain status -A                  # every namespace
  kubectl vpa-drain status -n shop -o json
  kubectl vpa-drain status -n shop --watch     # a new table on each change, until Ctrl-C
  kubectl vpa-drain release web-7d9f8-abcde -n shop --reason "INC-1234: replacement never Ready"

Every command takes --kubeconfig, --context and -n/--namespace, as kubectl does.
Run 'kubectl vpa-drain COMMAND --help' for a command's flags.

Exit codes: 0 done, 1 failed or refused, 2 usage error.
`

// Run is the plugin: args without the program name. It returns the exit code. Interrupting
// ctx ends a --watch (exit code 0).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	args = commandFirst(args)
	switch args[0] {
	case "-h", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			return Run(ctx, []string{args[1], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return exitOK
	case "status":
		return runStatus(ctx, args[1:], stdout, stderr)
	case "release":
		return runRelease(ctx, args[1:], stdout, stderr)
	}
	if strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "%s: missing command: status or release\nRun '%s --help' for usage.\n", name, name)
		return exitUsage
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\nRun '%s --help' for usage.\n", name, args[0], name)
	return exitUsage
}

// valueFlags are the flags that take a value, so commandFirst can skip it.
var valueFlags = []string{"-n", "--namespace", "--kubeconfig", "--context", "-o", "--output", "--config-map", "--reason"}

// commandFirst moves the command to the front when flags come before it, as with kubectl's
// own flags: `kubectl vpa-drain -n shop status`.
func commandFirst(args []string) []string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return args
		case !strings.HasPrefix(a, "-"):
			return slices.Concat([]string{a}, args[:i], args[i+1:])
		case slices.Contains(valueFlags, a):
			i++ // its value
		}
	}
	return args
}

// kubeFlags are the flags every command takes, as kubectl has them.
type kubeFlags struct {
	kubeconfig, context, namespace string
}

func (k *kubeFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: KUBECONFIG, else ~/.kube/config)")
	fs.StringVar(&k.context, "context", "", "the kubeconfig context to use (default: its current context)")
	fs.StringVarP(&k.namespace, "namespace", "n", "", "the namespace (default: the context's namespace)")
}

// newFlagSet is a command's flag set; parse reports -h/--help and errors.
func newFlagSet(cmd string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(cmd, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	return fs
}

// parse parses args; done is true when the command should return code right away (help
// printed, or a usage error reported).
func parse(fs *pflag.FlagSet, args []string, help string, stdout, stderr io.Writer) (done bool, code int) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		fmt.Fprint(stdout, help)
		fmt.Fprintf(stdout, "\nFlags:\n%s", fs.FlagUsages())
		return true, exitOK
	case err != nil:
		return true, reportUsage(stderr, fs.Name(), err)
	}
	return false, exitOK
}

func reportUsage(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "%s %s: %v\nRun '%s %s --help' for usage.\n", name, cmd, err, name, cmd)
	return exitUsage
}

// fail reports err on stderr and returns exit code 1.
func fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "error: %v\n", err)
	return exitError
}

// cluster is a connection to the cluster the kubeconfig names.
type cluster struct {
	client kubernetes.Interface
	// dynamic reads pods' owners, as the function does (any kind of its table of kinds).
	dynamic   dynamic.Interface
	namespace string // the -n flag, else the context's namespace, else "default"
	user      string // the kubeconfig's user for the context (a fallback for "who")
}

// errNoKubeconfig: no kubeconfig was found (and the plugin does not run in a pod).
var errNoKubeconfig = errors.New("no kubeconfig: set KUBECONFIG, pass --kubeconfig, or create ~/.kube/config (as kubectl needs)")

// connect loads the kubeconfig with kubectl's loading rules and overrides.
func connect(k kubeFlags) (*cluster, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: k.context}
	overrides.Context.Namespace = k.namespace
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	switch {
	case clientcmd.IsEmptyConfig(err):
		return nil, errNoKubeconfig
	case err != nil:
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, fmt.Errorf("reading the namespace from the kubeconfig: %w", err)
	}
	c := &cluster{namespace: ns}
	if raw, err := cc.RawConfig(); err == nil {
		ctxName := raw.CurrentContext
		if k.context != "" {
			ctxName = k.context
		}
		if kc := raw.Contexts[ctxName]; kc != nil {
			c.user = kc.AuthInfo
		}
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "kubectl-vpa_drain"
	// client-go's default of 5 requests/s would make a status of many draining pods slow: each
	// one whose grace period is over reads its owner and endpoints, as the function does.
	cfg.QPS, cfg.Burst = 50, 100
	if c.client, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("creating the client: %w", err)
	}
	if c.dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("creating the dynamic client: %w", err)
	}
	return c, nil
}

// apiError says what was refused: the verb, the resource (and its name) and where, and for a
// 403 which permission is missing.
func apiError(err error, verb, resource, name, namespace string) error {
	what := resource
	if name != "" {
		what = fmt.Sprintf("%s %q", resource, name)
	}
	where := "in namespace " + namespace
	if namespace == "" {
		where = "in all namespaces"
	}
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("forbidden: cannot %s %s %s (needs RBAC: %s on %s): %w", verb, what, where, verb, resource, err)
	}
	return fmt.Errorf("cannot %s %s %s: %w", verb, what, where, err)
}
