package config_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"function/config"
	"function/names"
)

// documents splits a multi-document YAML file.
func documents(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var docs [][]byte
	for _, d := range bytes.Split(b, []byte("\n---\n")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

// The shipped ConfigMap documents the defaults: it holds every key of the table with the key's
// default, nothing else, and parses to exactly config.Default().
func TestConfigMapHoldsTheDefaults(t *testing.T) {
	docs := documents(t, "configmap.yaml")
	require.Len(t, docs, 1)
	var cm corev1.ConfigMap
	require.NoError(t, yaml.UnmarshalStrict(docs[0], &cm))
	assert.Equal(t, "vpa-graceful-drain", cm.Name)
	specs := config.KeySpecs()
	names := make([]string, 0, len(specs))
	for _, k := range specs {
		names = append(names, k.Name)
		v, ok := cm.Data[k.Name]
		if !assert.True(t, ok, "configmap.yaml lacks the key %s (default %s)", k.Name, k.Default) {
			continue
		}
		// The same value, as Data writes it (whatever the spelling: 12h, {"include":[]}).
		fromYAML, err := config.Parse(map[string]string{k.Name: v})
		if assert.NoError(t, err, "configmap.yaml's %s", k.Name) {
			assert.Equal(t, config.Default().Data()[k.Name], fromYAML.Data()[k.Name], "configmap.yaml's %s is the table's default %s", k.Name, k.Default)
		}
	}
	assert.ElementsMatch(t, names, keys(cm.Data), "configmap.yaml holds the table's keys, and nothing else")
	assert.Equal(t, config.Keys(), names)
	// Its comment on workloadDefaults names every gate's field.
	raw, err := os.ReadFile("configmap.yaml")
	require.NoError(t, err)
	for _, g := range config.WorkloadGates() {
		assert.Contains(t, string(raw), g.Field, "configmap.yaml documents workloadDefaults' field of the gate %s", g.Gate)
	}

	cfg, err := config.Parse(cm.Data)
	require.NoError(t, err)
	want := config.Default()
	want.Namespaces.Include = []string{}
	assert.Equal(t, want, cfg)

	// Mounted as a volume, the same ConfigMap gives the same configuration.
	dir := t.TempDir()
	for k, v := range cm.Data {
		require.NoError(t, os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600))
	}
	fromFiles, err := config.Load(map[string]string{config.KeyConfigDir: dir})
	require.NoError(t, err)
	assert.Equal(t, cfg, fromFiles)
}

// rbacFiles are the RBAC manifests: the default install, then the opt-in modes' roles
// (pacing, surge rollouts), each applied only where its mode is on.
var rbacFiles = []string{"rbac.yaml", "rbac-pacing.yaml", "rbac-surge.yaml"}

// rbacManifest is what RBAC manifests hold, by name (namespace/name for namespaced objects),
// with the file each object is in.
type rbacManifest struct {
	roles      map[string]rbacv1.ClusterRole
	bindings   map[string]rbacv1.ClusterRoleBinding
	nsRoles    map[string]rbacv1.Role
	nsBindings map[string]rbacv1.RoleBinding
	accounts   map[string]bool
	file       map[string]string // kind/name (kind/namespace/name) -> its file
}

// readRBAC decodes the files strictly; a kind the manifests should not hold fails.
func readRBAC(t *testing.T, files ...string) rbacManifest {
	t.Helper()
	m := rbacManifest{roles: map[string]rbacv1.ClusterRole{}, bindings: map[string]rbacv1.ClusterRoleBinding{},
		nsRoles: map[string]rbacv1.Role{}, nsBindings: map[string]rbacv1.RoleBinding{}, accounts: map[string]bool{},
		file: map[string]string{}}
	for _, f := range files {
		for _, d := range documents(t, f) {
			var meta struct{ Kind string }
			require.NoError(t, yaml.Unmarshal(d, &meta))
			var key string
			switch meta.Kind {
			case "ClusterRole":
				var r rbacv1.ClusterRole
				require.NoError(t, yaml.UnmarshalStrict(d, &r))
				m.roles[r.Name] = r
				key = r.Name
			case "ClusterRoleBinding":
				var b rbacv1.ClusterRoleBinding
				require.NoError(t, yaml.UnmarshalStrict(d, &b))
				m.bindings[b.Name] = b
				key = b.Name
			case "Role":
				var r rbacv1.Role
				require.NoError(t, yaml.UnmarshalStrict(d, &r))
				key = r.Namespace + "/" + r.Name
				m.nsRoles[key] = r
			case "RoleBinding":
				var b rbacv1.RoleBinding
				require.NoError(t, yaml.UnmarshalStrict(d, &b))
				key = b.Namespace + "/" + b.Name
				m.nsBindings[key] = b
			case "ServiceAccount":
				var sa corev1.ServiceAccount
				require.NoError(t, yaml.UnmarshalStrict(d, &sa))
				key = sa.Namespace + "/" + sa.Name
				m.accounts[key] = true
			case "Namespace":
				var ns corev1.Namespace
				require.NoError(t, yaml.UnmarshalStrict(d, &ns))
				key = ns.Name
			case "":
				continue // comments only
			default:
				require.Failf(t, "unexpected kind", "%s: %s", f, meta.Kind)
			}
			_, dup := m.file[meta.Kind+"/"+key]
			require.False(t, dup, "%s %s is in more than one file", meta.Kind, key)
			m.file[meta.Kind+"/"+key] = f
		}
	}
	return m
}

// The function's roles allow exactly the calls the code makes, each in the file of the mode
// that needs it, and are bound to the service account func.yaml deploys with.
func TestRBACMatchesWhatTheFunctionCalls(t *testing.T) {
	m := readRBAC(t, rbacFiles...)
	roles, bindings, accounts, nsRoles, nsBindings := m.roles, m.bindings, m.accounts, m.nsRoles, m.nsBindings
	// Each rule, as group/resource (core resources bare), and the calls that need it.
	tests := []struct {
		role, file, account string
		want                map[string][]string
	}{
		{"vpa-graceful-drain", "rbac.yaml", "vpa-graceful-drain/vpa-graceful-drain", map[string][]string{
			// get: Reference mode and re-checks; list: sweeps and a Deployment's Ready replicas
			// (readReplicas); patch: the finalizer and drain annotations.
			"pods": {"get", "list", "patch"},
			// Events on pods and (DrainNotGraceful) on their owners.
			"events": {"create"},
			// countServing (the endpoints-gone gate).
			"discovery.k8s.io/endpointslices": {"list"},
			// Advice's pdbSelects (one namespace) and the sweeps' prunePDBs (every namespace).
			"policy/poddisruptionbudgets": {"list"},
			// Advice's vpaFor through the dynamic client.
			"autoscaling.k8s.io/verticalpodautoscalers": {"list"},
		}},
		// Pacing (ensurePodDisruptionBudget): ensurePDB creates, prunePDBs deletes.
		{"vpa-graceful-drain-pacing", "rbac-pacing.yaml", "vpa-graceful-drain/vpa-graceful-drain", map[string][]string{
			"policy/poddisruptionbudgets": {"create", "delete"},
		}},
		// Surge rollouts (surgeRollout): SurgeSweep lists Deployments, an event's evaluation gets
		// one, and an opted-in one is patched; the prediction reads the namespace's LimitRanges.
		{"vpa-graceful-drain-surge", "rbac-surge.yaml", "vpa-graceful-drain/vpa-graceful-drain", map[string][]string{
			"apps/deployments": {"get", "list", "patch"},
			"limitranges":      {"list"},
		}},
		// Sender authentication (SENDER_AUDIENCE): auth.Verifier's TokenReviews.
		{"vpa-graceful-drain-sender-auth", "rbac.yaml", "vpa-graceful-drain/vpa-graceful-drain", map[string][]string{
			"authentication.k8s.io/tokenreviews": {"create"},
		}},
		{"vpa-graceful-drain-source", "rbac.yaml", "vpa-graceful-drain/vpa-graceful-drain-source", map[string][]string{"pods": {"get", "list", "watch"},
			"autoscaling.k8s.io/verticalpodautoscalers": {"get", "list", "watch"}}},
	}
	// resolveOwner, readReplicas, advice and pacing read each kind the table of kinds marks
	// Read (handlers' generic owner reader): get on its group/resource.
	for _, k := range config.Kinds() {
		if s := k.Spec(); s.Read {
			tests[0].want[s.Group+"/"+s.Resource] = []string{"get"}
		}
	}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			role, ok := roles[tt.role]
			require.True(t, ok)
			got := map[string][]string{}
			for _, r := range role.Rules {
				assert.Empty(t, r.ResourceNames, "the ClusterRoles cannot be narrowed by name")
				for _, g := range r.APIGroups {
					for _, res := range r.Resources {
						if g != "" {
							res = g + "/" + res
						}
						got[res] = append(got[res], r.Verbs...)
					}
				}
			}
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.file, m.file["ClusterRole/"+tt.role], "the file of its mode")
			b, ok := bindings[tt.role]
			require.True(t, ok)
			assert.Equal(t, tt.file, m.file["ClusterRoleBinding/"+tt.role], "bound in the same file")
			assert.Equal(t, tt.role, b.RoleRef.Name)
			require.Len(t, b.Subjects, 1)
			assert.Equal(t, tt.account, b.Subjects[0].Namespace+"/"+b.Subjects[0].Name)
			assert.True(t, accounts[tt.account], "service account %s is created", tt.account)
		})
	}

	// The live configuration: exactly the one ConfigMap func.yaml's CONFIG_MAP names, read-only.
	cfgRole, ok := nsRoles["vpa-graceful-drain/vpa-graceful-drain-config"]
	require.True(t, ok)
	assert.Equal(t, "rbac.yaml", m.file["Role/vpa-graceful-drain/vpa-graceful-drain-config"], "every install follows its ConfigMap")
	require.Len(t, cfgRole.Rules, 3)
	assert.Equal(t, []string{"configmaps"}, cfgRole.Rules[0].Resources)
	assert.Equal(t, []string{"vpa-graceful-drain"}, cfgRole.Rules[0].ResourceNames)
	assert.Equal(t, []string{"get", "list", "watch"}, cfgRole.Rules[0].Verbs)
	// The sweep Lease: read and claimed by name, created once.
	assert.Equal(t, []string{"leases"}, cfgRole.Rules[1].Resources)
	assert.Equal(t, []string{names.SweepLeaseName}, cfgRole.Rules[1].ResourceNames)
	assert.Equal(t, []string{"get", "update"}, cfgRole.Rules[1].Verbs)
	assert.Equal(t, []string{"leases"}, cfgRole.Rules[2].Resources)
	assert.Equal(t, []string{"create"}, cfgRole.Rules[2].Verbs)
	// Surge rollouts: VPA's admission controller status Lease, by name, read only, in the
	// surge file (in kube-system, the default of admissionControllerStatusLeaseNamespace).
	statusRole, ok := nsRoles["kube-system/vpa-graceful-drain-vpa-status"]
	require.True(t, ok)
	assert.Equal(t, "rbac-surge.yaml", m.file["Role/kube-system/vpa-graceful-drain-vpa-status"])
	assert.Equal(t, "rbac-surge.yaml", m.file["RoleBinding/kube-system/vpa-graceful-drain-vpa-status"])
	require.Len(t, statusRole.Rules, 1)
	assert.Equal(t, []string{"leases"}, statusRole.Rules[0].Resources)
	assert.Equal(t, []string{"vpa-admission-controller"}, statusRole.Rules[0].ResourceNames)
	assert.Equal(t, []string{"get"}, statusRole.Rules[0].Verbs)
	// Surge rollouts: the budget's Lease beside the sweep's, read and claimed by name (created
	// with the config Role's create).
	budgetRole, ok := nsRoles["vpa-graceful-drain/vpa-graceful-drain-surge-budget"]
	require.True(t, ok)
	assert.Equal(t, "rbac-surge.yaml", m.file["Role/vpa-graceful-drain/vpa-graceful-drain-surge-budget"])
	require.Len(t, budgetRole.Rules, 1)
	assert.Equal(t, []string{"coordination.k8s.io"}, budgetRole.Rules[0].APIGroups)
	assert.Equal(t, []string{"leases"}, budgetRole.Rules[0].Resources)
	assert.Equal(t, []string{names.SurgeLeaseName}, budgetRole.Rules[0].ResourceNames)
	assert.Equal(t, []string{"get", "update"}, budgetRole.Rules[0].Verbs)
	budgetBinding, ok := nsBindings["vpa-graceful-drain/vpa-graceful-drain-surge-budget"]
	require.True(t, ok)
	assert.Equal(t, "vpa-graceful-drain-surge-budget", budgetBinding.RoleRef.Name)
	require.Len(t, budgetBinding.Subjects, 1)
	assert.Equal(t, "vpa-graceful-drain/vpa-graceful-drain", budgetBinding.Subjects[0].Namespace+"/"+budgetBinding.Subjects[0].Name)
	statusBinding, ok := nsBindings["kube-system/vpa-graceful-drain-vpa-status"]
	require.True(t, ok)
	assert.Equal(t, "vpa-graceful-drain-vpa-status", statusBinding.RoleRef.Name)
	assert.Equal(t, "vpa-graceful-drain/vpa-graceful-drain", statusBinding.Subjects[0].Namespace+"/"+statusBinding.Subjects[0].Name)
	cfgBinding, ok := nsBindings["vpa-graceful-drain/vpa-graceful-drain-config"]
	require.True(t, ok)
	assert.Equal(t, "vpa-graceful-drain-config", cfgBinding.RoleRef.Name)
	require.Len(t, cfgBinding.Subjects, 1)
	assert.Equal(t, "vpa-graceful-drain/vpa-graceful-drain", cfgBinding.Subjects[0].Namespace+"/"+cfgBinding.Subjects[0].Name)

	var fn struct {
		SpecVersion string `json:"specVersion"`
		Name        string `json:"name"`
		Runtime     string `json:"runtime"`
		Invoke      string `json:"invoke"`
		Run         struct {
			Envs []struct{ Name, Value string } `json:"envs"`
		} `json:"run"`
		Deploy struct {
			Namespace          string `json:"namespace"`
			ServiceAccountName string `json:"serviceAccountName"`
		} `json:"deploy"`
	}
	b, err := os.ReadFile("../func.yaml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &fn))
	assert.Equal(t, "0.36.0", fn.SpecVersion)
	assert.Equal(t, "go", fn.Runtime)
	// kn func picks the Go scaffolding from `invoke` (not from the Handle signature): "http"
	// builds cmd/vpa-graceful-drain's main, func-go's http runtime around Handle(w, r).
	assert.Equal(t, "http", fn.Invoke)
	assert.True(t, accounts[fn.Deploy.Namespace+"/"+fn.Deploy.ServiceAccountName], "func.yaml deploys with a service account rbac.yaml creates")
	require.Len(t, fn.Run.Envs, 1)
	assert.Equal(t, config.KeyConfigMap, fn.Run.Envs[0].Name)
	ns, name, follow, err := config.ConfigMapRef(map[string]string{config.KeyConfigMap: fn.Run.Envs[0].Value})
	require.NoError(t, err)
	assert.True(t, follow)
	assert.Equal(t, "vpa-graceful-drain/vpa-graceful-drain", ns+"/"+name, "the ConfigMap of configmap.yaml, readable by the Role")
}

// grants reports whether one of rules allows verb on group/resource (RBAC's "*" included).
func grants(rules []rbacv1.PolicyRule, group, resource, verb string) bool {
	has := func(list []string, v string) bool { return slices.Contains(list, v) || slices.Contains(list, "*") }
	for _, r := range rules {
		if has(r.APIGroups, group) && has(r.Resources, resource) && has(r.Verbs, verb) {
			return true
		}
	}
	return false
}

// The default install (config/rbac.yaml alone, without the opt-in files) lets the function's
// account write no PodDisruptionBudget and no Deployment, nor read what only surge rollouts
// need: pacing and surge rollouts are turned on by applying their own files. And the opt-in
// files bind only that account, and create nothing the default install must (the namespace
// and the ServiceAccounts are rbac.yaml's).
func TestDefaultRBACGrantsNoOptInRights(t *testing.T) {
	def := readRBAC(t, "rbac.yaml")
	const account = "vpa-graceful-drain/vpa-graceful-drain"
	var rules []rbacv1.PolicyRule // every rule rbac.yaml binds to the function's account
	bound := func(subjects []rbacv1.Subject) bool {
		return slices.ContainsFunc(subjects, func(s rbacv1.Subject) bool {
			return s.Kind == rbacv1.ServiceAccountKind && s.Namespace+"/"+s.Name == account
		})
	}
	for _, b := range def.bindings {
		if bound(b.Subjects) {
			role, ok := def.roles[b.RoleRef.Name]
			require.True(t, ok, "ClusterRoleBinding %s binds a ClusterRole of rbac.yaml", b.Name)
			rules = append(rules, role.Rules...)
		}
	}
	for _, b := range def.nsBindings {
		if bound(b.Subjects) {
			require.Equal(t, "Role", b.RoleRef.Kind, b.Name)
			role, ok := def.nsRoles[b.Namespace+"/"+b.RoleRef.Name]
			require.True(t, ok, "RoleBinding %s/%s binds a Role of rbac.yaml", b.Namespace, b.Name)
			assert.Equal(t, "vpa-graceful-drain", b.Namespace, "the default install grants nothing outside its namespace but ClusterRoles")
			rules = append(rules, role.Rules...)
		}
	}
	require.NotEmpty(t, rules)
	tests := []struct{ group, resource, verb string }{
		{"policy", "poddisruptionbudgets", "create"},
		{"policy", "poddisruptionbudgets", "delete"},
		{"policy", "poddisruptionbudgets", "deletecollection"},
		{"policy", "poddisruptionbudgets", "update"},
		{"policy", "poddisruptionbudgets", "patch"},
		{"apps", "deployments", "patch"},
		{"apps", "deployments", "update"},
		{"apps", "deployments", "create"},
		{"apps", "deployments", "delete"},
		{"apps", "deployments", "list"},
		{"apps", "deployments/scale", "patch"},
		{"", "limitranges", "list"},
		{"coordination.k8s.io", "leases", "get"},    // only the sweep Lease, by name (next check)
		{"coordination.k8s.io", "leases", "update"}, // the same
	}
	for _, tt := range tests {
		t.Run(tt.verb+" "+tt.group+"/"+tt.resource, func(t *testing.T) {
			if tt.resource == "leases" {
				for _, r := range rules {
					if grants([]rbacv1.PolicyRule{r}, tt.group, tt.resource, tt.verb) {
						assert.Equal(t, []string{names.SweepLeaseName}, r.ResourceNames, "the sweep Lease only")
					}
				}
				return
			}
			assert.False(t, grants(rules, tt.group, tt.resource, tt.verb))
		})
	}

	for _, f := range []string{"rbac-pacing.yaml", "rbac-surge.yaml"} {
		t.Run(f, func(t *testing.T) {
			opt := readRBAC(t, f)
			assert.Empty(t, opt.accounts, "the ServiceAccount is rbac.yaml's")
			for key, file := range opt.file {
				assert.False(t, strings.HasPrefix(key, "Namespace/"), "%s: the namespace is rbac.yaml's", file)
			}
			for _, b := range opt.bindings {
				assert.True(t, bound(b.Subjects) && len(b.Subjects) == 1, "%s binds the function's account only", b.Name)
				_, ok := opt.roles[b.RoleRef.Name]
				assert.True(t, ok, "%s binds a ClusterRole of its own file", b.Name)
			}
			for _, b := range opt.nsBindings {
				assert.True(t, bound(b.Subjects) && len(b.Subjects) == 1, "%s binds the function's account only", b.Name)
				_, ok := opt.nsRoles[b.Namespace+"/"+b.RoleRef.Name]
				assert.True(t, ok, "%s binds a Role of its own file", b.Name)
			}
		})
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The admission policy (config/admission-policy.yaml) narrows the pod writes of exactly the
// ServiceAccount rbac.yaml creates and func.yaml deploys with, to its own finalizer and
// annotations, and refuses with 403s; the real API server runs it in
// test/integration (TestIntegrationAdmissionPolicy).
func TestAdmissionPolicyNarrowsOnlyTheFunction(t *testing.T) {
	docs := documents(t, "admission-policy.yaml")
	require.Len(t, docs, 2)
	var policy admissionv1.ValidatingAdmissionPolicy
	require.NoError(t, yaml.UnmarshalStrict(docs[0], &policy))
	var binding admissionv1.ValidatingAdmissionPolicyBinding
	require.NoError(t, yaml.UnmarshalStrict(docs[1], &binding))
	assert.Equal(t, "admissionregistration.k8s.io/v1", policy.APIVersion)
	assert.Equal(t, "ValidatingAdmissionPolicy", policy.Kind)
	assert.Equal(t, "admissionregistration.k8s.io/v1", binding.APIVersion)
	assert.Equal(t, "ValidatingAdmissionPolicyBinding", binding.Kind)

	// Only the function's ServiceAccount, the one rbac.yaml binds its ClusterRole to.
	var bound string
	for _, b := range readRBAC(t, "rbac.yaml").bindings {
		if b.RoleRef.Name == "vpa-graceful-drain" {
			bound = "system:serviceaccount:" + b.Subjects[0].Namespace + ":" + b.Subjects[0].Name
		}
	}
	require.Equal(t, "system:serviceaccount:vpa-graceful-drain:vpa-graceful-drain", bound)
	require.Len(t, policy.Spec.MatchConditions, 1)
	assert.Equal(t, "request.userInfo.username == '"+bound+"'", policy.Spec.MatchConditions[0].Expression)

	// Every write to pods and their subresources but CONNECT (which policies cannot match), to
	// Deployments and theirs (surge rollouts), to PodDisruptionBudgets and theirs (pacing), and
	// to Events of both groups.
	rules := []struct{ group, resource, sub string }{
		{"", "pods", "pods/*"}, {"apps", "deployments", "deployments/*"}, {"policy", "poddisruptionbudgets", "poddisruptionbudgets/*"},
		{"", "events", ""}, {"events.k8s.io", "events", ""},
	}
	require.Len(t, policy.Spec.MatchConstraints.ResourceRules, len(rules))
	for i, want := range rules {
		rule := policy.Spec.MatchConstraints.ResourceRules[i]
		assert.Equal(t, []string{want.group}, rule.APIGroups)
		assert.Equal(t, []string{"v1"}, rule.APIVersions)
		resources := []string{want.resource}
		if want.sub != "" {
			resources = append(resources, want.sub)
		}
		assert.Equal(t, resources, rule.Resources)
		assert.ElementsMatch(t, []admissionv1.OperationType{admissionv1.Create, admissionv1.Update, admissionv1.Delete}, rule.Operations)
	}
	assert.Empty(t, binding.Spec.MatchResources, "every namespace")

	// Fail closed, enforced, and refused with 403: a 422 is what the function takes for a
	// failed guard of its JSON patch (it re-reads and tries again).
	require.NotNil(t, policy.Spec.FailurePolicy)
	assert.Equal(t, admissionv1.Fail, *policy.Spec.FailurePolicy)
	assert.Equal(t, policy.Name, binding.Spec.PolicyName)
	assert.Equal(t, []admissionv1.ValidationAction{admissionv1.Deny}, binding.Spec.ValidationActions)
	var expressions string
	for _, v := range policy.Spec.Validations {
		require.NotNil(t, v.Reason, v.Expression)
		assert.Equal(t, metav1.StatusReasonForbidden, *v.Reason, v.Expression)
		assert.True(t, v.Message != "" || v.MessageExpression != "", "a message of its own: %s", v.Expression)
		expressions += v.Expression
	}

	// The names the function writes are the ones the policy lets through.
	assert.Contains(t, expressions, "'"+names.Finalizer+"'")
	const prefix = "vpagracefuldrain.dev/"
	assert.Contains(t, expressions, "k.startsWith('"+prefix+"')")
	for _, a := range []string{names.AnnotationDrainStarted, names.AnnotationDrainDeadline} {
		assert.True(t, strings.HasPrefix(a, prefix), a)
	}
	var variables string
	for _, v := range policy.Spec.Variables {
		variables += v.Expression + "\n"
	}
	// Surge rollouts: the opt-in, the state on the Deployment, the restart in its template.
	assert.Contains(t, variables, "'"+names.AnnotationSurgeRollout+"'")
	assert.Contains(t, variables, "['"+names.AnnotationSurgeState+"']")
	assert.Contains(t, variables, "['"+names.AnnotationRestartedAt+"', '"+names.AnnotationPredictedResources+"']")
	// Pacing: the label, the owner-kind label and the name pacing gives its budgets.
	assert.Contains(t, variables, "'"+names.LabelManagedBy+"'")
	assert.Contains(t, expressions, "optional.of('"+names.Component+"')")
	assert.Contains(t, expressions, "'"+names.LabelOwnerKind+"'")
	assert.Contains(t, expressions, ".name + '"+names.PDBNameSuffix+"'")
	// Events: the reporting controller handlers' APIEventRecorder writes.
	assert.Contains(t, expressions, "optional.of('vpagracefuldrain.dev/"+names.Component+"')")
}
