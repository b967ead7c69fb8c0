package surge_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	resource_admission "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/admission-controller/resource"
	"k8s.io/autoscaler/vertical-pod-autoscaler/pkg/admission-controller/resource/pod/patch"
	"k8s.io/autoscaler/vertical-pod-autoscaler/pkg/admission-controller/resource/pod/recommendation"
	vpa_types "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/autoscaler/vertical-pod-autoscaler/pkg/utils/limitrange"
	vpa_api_util "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/utils/vpa"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"function/handlers/surge"
)

// vpasCalculator is VPA's own LimitRangeCalculator (limitrange.NewLimitsRangeCalculator, what
// its admission controller and updater run) over an informer of a fake API holding the
// LimitRanges. The test may use client-go; the policy may not (TestPolicyIsPure).
func vpasCalculator(t *testing.T, lrs []*corev1.LimitRange) limitrange.LimitRangeCalculator {
	t.Helper()
	objs := make([]runtime.Object, 0, len(lrs))
	for _, lr := range lrs {
		objs = append(objs, lr.DeepCopy())
	}
	factory := informers.NewSharedInformerFactory(fake.NewClientset(objs...), 0)
	calc, err := limitrange.NewLimitsRangeCalculator(factory)
	require.NoError(t, err)
	factory.Start(t.Context().Done())
	for typ, synced := range factory.WaitForCacheSync(t.Context().Done()) {
		require.True(t, synced, "%v synced", typ)
	}
	t.Cleanup(factory.Shutdown)
	return calc
}

// admissionControllerRequests are the requests VPA's admission controller writes into pod, as
// the API server hands it over: VPA's calculator, recommendation provider, capping processor
// and patch calculator, wired as its main.go wires them, and its JSON patch applied.
func admissionControllerRequests(t *testing.T, v *vpa_types.VerticalPodAutoscaler, pod *corev1.Pod, lrs []*corev1.LimitRange) map[string]corev1.ResourceList {
	t.Helper()
	calc := vpasCalculator(t, lrs)
	provider := recommendation.NewProvider(calc, vpa_api_util.NewCappingRecommendationProcessor(calc))
	pod = pod.DeepCopy()
	var records []resource_admission.PatchRecord
	if pod.Annotations == nil {
		records = append(records, patch.GetAddEmptyAnnotationsPatch()) // as handler.go GetPatches does
	}
	updates, err := patch.NewResourceUpdatesCalculator(provider, resource.QuantityValue{}).CalculatePatches(pod, v)
	require.NoError(t, err)
	records = append(records, updates...)
	ops, err := json.Marshal(records)
	require.NoError(t, err)
	p, err := jsonpatch.DecodePatch(ops)
	require.NoError(t, err)
	raw, err := json.Marshal(pod)
	require.NoError(t, err)
	raw, err = p.Apply(raw)
	require.NoError(t, err)
	var out corev1.Pod
	require.NoError(t, json.Unmarshal(raw, &out))
	got := map[string]corev1.ResourceList{}
	for _, c := range out.Spec.Containers {
		got[c.Name] = c.Resources.Requests
	}
	return got
}

// assertRequests compares requests as decide.go does (equality.Semantic).
func assertRequests(t *testing.T, want, got map[string]corev1.ResourceList, msg string) {
	t.Helper()
	assert.Truef(t, equality.Semantic.DeepEqual(want, got), "%s:\nwant %v\ngot  %v", msg, want, got)
}

// The prediction in a namespace with LimitRanges: each row's requests are worked out by hand
// from VPA's documented rules (want), and VPA's admission controller itself, given the pod as
// the API server admits it (admitted; nil: the template, which lacks nothing the LimitRanges
// default), must write the same requests.
func TestPredictWithLimits(t *testing.T) {
	rec := func(opts ...vpaOpt) *vpa_types.VerticalPodAutoscaler {
		return vpa(cpuMem("5", "1Gi"), cpuMem("1", "512Mi"), cpuMem("6", "2Gi"), opts...)
	}
	container := func(max, min, def, defReq corev1.ResourceList) corev1.LimitRangeItem {
		return corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Max: max, Min: min, Default: def, DefaultRequest: defReq}
	}
	podItem := func(max, min corev1.ResourceList) corev1.LimitRangeItem {
		return corev1.LimitRangeItem{Type: corev1.LimitTypePod, Max: max, Min: min}
	}
	requestsOnly := func(v *vpa_types.VerticalPodAutoscaler) {
		v.Spec.ResourcePolicy = &vpa_types.PodResourcePolicy{ContainerPolicies: []vpa_types.ContainerResourcePolicy{{
			ContainerName: "app", ControlledValues: new(vpa_types.ContainerControlledValuesRequestsOnly)}}}
	}
	eph := func(cpu, mem, storage string) corev1.ResourceList {
		l := cpuMem(cpu, mem)
		l[corev1.ResourceEphemeralStorage] = resource.MustParse(storage)
		return l
	}
	tests := []struct {
		name     string
		vpa      *vpa_types.VerticalPodAutoscaler
		tpl      *corev1.Pod
		admitted *corev1.Pod
		lrs      []*corev1.LimitRange
		want     map[string]corev1.ResourceList
	}{
		{name: "no LimitRange: the recommendation", vpa: rec(), tpl: pod("tpl", cpuMem("4", "1Gi"), started),
			want: map[string]corev1.ResourceList{"app": cpuMem("5", "1Gi")}},
		{name: "container max below the recommendation, request = limit: clamped down to the max",
			vpa: rec(), tpl: pod("tpl", cpuMem("1", "1Gi"), started, withLimits(cpuMem("1", ""))),
			lrs:  []*corev1.LimitRange{limitRange("lr", container(cpuMem("3", ""), nil, nil, nil))},
			want: map[string]corev1.ResourceList{"app": cpuMem("3", "1Gi")}},
		{name: "container max, no limit: the API server gives the max as limit (limit:request 3:1), so the request stays 1",
			vpa: rec(), tpl: pod("tpl", cpuMem("1", "1Gi"), started),
			admitted: pod("tpl", cpuMem("1", "1Gi"), started, withLimits(cpuMem("3", ""))),
			lrs:      []*corev1.LimitRange{limitRange("lr", container(cpuMem("3", ""), nil, nil, nil))},
			want:     map[string]corev1.ResourceList{"app": cpuMem("1", "1Gi")}},
		{name: "container max, no resources: request and limit default to the max, the request is clamped to it",
			vpa: rec(), tpl: pod("tpl", nil, started),
			admitted: pod("tpl", cpuMem("3", ""), started, withLimits(cpuMem("3", ""))),
			lrs:      []*corev1.LimitRange{limitRange("lr", container(cpuMem("3", ""), nil, nil, nil))},
			want:     map[string]corev1.ResourceList{"app": cpuMem("3", "1Gi")}},
		{name: "container min above the recommendation: raised to the min",
			vpa: rec(), tpl: pod("tpl", cpuMem("4", "2Gi"), started),
			lrs:  []*corev1.LimitRange{limitRange("lr", container(nil, cpuMem("", "2Gi"), nil, nil))},
			want: map[string]corev1.ResourceList{"app": cpuMem("5", "2Gi")}},
		{name: "the lowest max of two LimitRanges",
			vpa: rec(), tpl: pod("tpl", cpuMem("1", "1Gi"), started, withLimits(cpuMem("1", ""))),
			lrs: []*corev1.LimitRange{
				limitRange("a", container(cpuMem("4", ""), nil, cpuMem("1", ""), nil)),
				limitRange("b", container(cpuMem("2", ""), nil, cpuMem("1", ""), nil))},
			want: map[string]corev1.ResourceList{"app": cpuMem("2", "1Gi")}},
		{name: "pod max: the containers' limits (= requests) scaled down together to fit",
			vpa: vpa(cpuMem("3", ""), cpuMem("3", ""), cpuMem("3", ""), recommend("sidecar", cpuMem("3", ""))),
			tpl: pod("tpl", cpuMem("1", "1Gi"), started, withLimits(cpuMem("1", "1Gi")),
				withContainer("sidecar", cpuMem("1", "256Mi"), cpuMem("1", "256Mi"))),
			lrs:  []*corev1.LimitRange{limitRange("lr", podItem(cpuMem("4", ""), nil))},
			want: map[string]corev1.ResourceList{"app": cpuMem("2", "1Gi"), "sidecar": cpuMem("2", "256Mi")}},
		{name: "pod min: the containers' requests scaled up together to reach it",
			vpa: vpa(cpuMem("", "512Mi"), cpuMem("", "512Mi"), cpuMem("", "512Mi"), recommend("sidecar", cpuMem("", "512Mi"))),
			tpl: pod("tpl", cpuMem("1", "1Gi"), started, withLimits(cpuMem("1", "1Gi")),
				withContainer("sidecar", cpuMem("1", "1Gi"), cpuMem("1", "1Gi"))),
			lrs:  []*corev1.LimitRange{limitRange("lr", podItem(nil, cpuMem("", "2Gi")))},
			want: map[string]corev1.ResourceList{"app": cpuMem("1", "1Gi"), "sidecar": cpuMem("1", "1Gi")}},
		{name: "pod max far above: unchanged",
			vpa: rec(), tpl: pod("tpl", cpuMem("4", "1Gi"), started, withLimits(cpuMem("4", "1Gi"))),
			lrs:  []*corev1.LimitRange{limitRange("lr", podItem(cpuMem("100", ""), nil))},
			want: map[string]corev1.ResourceList{"app": cpuMem("5", "1Gi")}},
		{name: "default limit 2 and request 500m (4:1) with max 4: the request may grow to 1 only",
			vpa: rec(), tpl: pod("tpl", cpuMem("", "1Gi"), started),
			admitted: pod("tpl", cpuMem("500m", "1Gi"), started, withLimits(cpuMem("2", ""))),
			lrs:      []*corev1.LimitRange{limitRange("lr", container(cpuMem("4", ""), nil, cpuMem("2", ""), cpuMem("500m", "")))},
			want:     map[string]corev1.ResourceList{"app": cpuMem("1", "1Gi")}},
		{name: "default limit, no max, requests and limits controlled: the recommendation",
			vpa: rec(), tpl: pod("tpl", cpuMem("", "1Gi"), started),
			admitted: pod("tpl", cpuMem("2", "1Gi"), started, withLimits(cpuMem("2", ""))),
			lrs:      []*corev1.LimitRange{limitRange("lr", container(nil, nil, cpuMem("2", ""), nil))},
			want:     map[string]corev1.ResourceList{"app": cpuMem("5", "1Gi")}},
		{name: "default limit, requests only controlled: capped to the default limit",
			vpa: rec(requestsOnly), tpl: pod("tpl", cpuMem("", "1Gi"), started),
			admitted: pod("tpl", cpuMem("2", "1Gi"), started, withLimits(cpuMem("2", ""))),
			lrs:      []*corev1.LimitRange{limitRange("lr", container(nil, nil, cpuMem("2", ""), nil))},
			want:     map[string]corev1.ResourceList{"app": cpuMem("2", "1Gi")}},
		{name: "a resource VPA does not recommend gets the LimitRange's default request",
			vpa: rec(), tpl: pod("tpl", cpuMem("4", "1Gi"), started),
			admitted: pod("tpl", eph("4", "1Gi", "1Gi"), started),
			lrs: []*corev1.LimitRange{limitRange("lr", container(nil, nil, nil,
				corev1.ResourceList{corev1.ResourceEphemeralStorage: resource.MustParse("1Gi")}))},
			want: map[string]corev1.ResourceList{"app": eph("5", "1Gi", "1Gi")}},
		{name: "VPA mode Off: the requests the pod is admitted with",
			vpa: rec(mode(vpa_types.UpdateModeOff)), tpl: pod("tpl", cpuMem("4", "1Gi"), started),
			admitted: pod("tpl", eph("4", "1Gi", "1Gi"), started),
			lrs: []*corev1.LimitRange{limitRange("lr", container(nil, nil, nil,
				corev1.ResourceList{corev1.ResourceEphemeralStorage: resource.MustParse("1Gi")}))},
			want: map[string]corev1.ResourceList{"app": eph("4", "1Gi", "1Gi")}},
		{name: "another namespace's LimitRange: ignored", vpa: rec(), tpl: pod("tpl", cpuMem("4", "1Gi"), started),
			lrs: []*corev1.LimitRange{func() *corev1.LimitRange {
				lr := limitRange("lr", container(cpuMem("3", ""), nil, nil, nil))
				lr.Namespace = "other"
				return lr
			}()},
			want: map[string]corev1.ResourceList{"app": cpuMem("5", "1Gi")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl := tt.tpl.DeepCopy()
			tpl.Namespace = "" // a Deployment's template names no namespace: the VPA's is taken
			got, err := surge.PredictWithLimits(tt.vpa, tpl, tt.lrs)
			require.NoError(t, err)
			assertRequests(t, tt.want, got.Requests, "the prediction")
			assert.Equal(t, tt.tpl.Spec, tpl.Spec, "the template is not modified")

			admitted := tt.admitted
			if admitted == nil {
				admitted = tt.tpl
			}
			assertRequests(t, tt.want, admissionControllerRequests(t, tt.vpa, admitted, tt.lrs), "VPA's admission controller")
		})
	}
}

// The hash is of the predicted requests: without LimitRanges it is today's, and a LimitRange
// changes it exactly when it changes the requests.
func TestPredictWithLimitsHash(t *testing.T) {
	v := vpa(cpuMem("5", "1Gi"), cpuMem("1", "512Mi"), cpuMem("6", "2Gi"))
	tpl := pod("tpl", cpuMem("4", "1Gi"), started)
	sum := sha256.Sum256([]byte("app/cpu=5,app/memory=1Gi"))
	today := hex.EncodeToString(sum[:8])

	old, err := surge.Predict(v, tpl)
	require.NoError(t, err)
	assert.Equal(t, today, old.Hash, "Predict keeps its hash")
	clamp := limitRange("lr", corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Max: cpuMem("3", "")})
	other := clamp.DeepCopy()
	other.Namespace = "other"
	roomy := limitRange("lr", corev1.LimitRangeItem{Type: corev1.LimitTypePod, Max: cpuMem("100", "")})
	tests := []struct {
		name string
		lrs  []*corev1.LimitRange
		same bool
	}{
		{name: "none", same: true},
		{name: "empty list", lrs: []*corev1.LimitRange{}, same: true},
		{name: "a max that changes the requests", lrs: []*corev1.LimitRange{clamp}},
		{name: "another namespace's", lrs: []*corev1.LimitRange{other}, same: true},
		{name: "a pod max that changes nothing", lrs: []*corev1.LimitRange{roomy}, same: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := surge.PredictWithLimits(v, tpl, tt.lrs)
			require.NoError(t, err)
			if tt.same {
				assert.Equal(t, today, p.Hash)
			} else {
				assert.NotEqual(t, today, p.Hash)
			}
		})
	}
}

func TestPredictWithLimitsErrors(t *testing.T) {
	_, err := surge.PredictWithLimits(nil, pod("tpl", nil, started), nil)
	require.Error(t, err)
	_, err = surge.PredictWithLimits(vpa(nil, nil, nil), nil, nil)
	require.Error(t, err)
}

// LimitRangeCalculator answers as VPA's own calculator answers over an informer; where VPA's
// answer depends on its informer's (unordered) listing, ours is one of its answers and always
// the same.
func TestLimitRangeCalculatorIsVPAs(t *testing.T) {
	c := func(max, min, def corev1.ResourceList) corev1.LimitRangeItem {
		return corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Max: max, Min: min, Default: def}
	}
	p := func(max, min corev1.ResourceList) corev1.LimitRangeItem {
		return corev1.LimitRangeItem{Type: corev1.LimitTypePod, Max: max, Min: min}
	}
	storage := func(cpu, s string) corev1.ResourceList {
		l := cpuMem(cpu, "")
		l[corev1.ResourceEphemeralStorage] = resource.MustParse(s)
		return l
	}
	inOther := func(lr *corev1.LimitRange) *corev1.LimitRange { lr.Namespace = "other"; return lr }
	tests := []struct {
		name      string
		lrs       []*corev1.LimitRange
		unordered bool // VPA's answer depends on its listing order
	}{
		{name: "none"},
		{name: "one container item", lrs: []*corev1.LimitRange{limitRange("a", c(cpuMem("3", "2Gi"), cpuMem("100m", ""), cpuMem("1", "")))}},
		{name: "container and pod items", lrs: []*corev1.LimitRange{limitRange("a", c(cpuMem("3", ""), nil, nil), p(cpuMem("4", "4Gi"), cpuMem("", "1Gi")))}},
		{name: "two LimitRanges: lowest max, highest min", lrs: []*corev1.LimitRange{
			limitRange("a", c(cpuMem("3", ""), cpuMem("", "1Gi"), cpuMem("1", "1Gi"))),
			limitRange("b", c(cpuMem("2", "4Gi"), cpuMem("200m", "512Mi"), cpuMem("1", "1Gi")))}},
		{name: "only a maxLimitRequestRatio", lrs: []*corev1.LimitRange{limitRange("a",
			corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, MaxLimitRequestRatio: cpuMem("2", "")})}},
		{name: "another namespace's only", lrs: []*corev1.LimitRange{inOther(limitRange("a", c(cpuMem("3", ""), nil, nil)))}},
		{name: "the last default wins", unordered: true, lrs: []*corev1.LimitRange{
			limitRange("a", c(cpuMem("3", ""), nil, nil)), limitRange("b", c(nil, cpuMem("", "1Gi"), nil))}},
		{name: "the first max is copied whole", unordered: true, lrs: []*corev1.LimitRange{
			limitRange("a", c(storage("3", "2Gi"), nil, cpuMem("1", ""))), limitRange("b", c(storage("2", "1Gi"), nil, cpuMem("1", "")))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			theirs := vpasCalculator(t, tt.lrs)
			ours := surge.LimitRangeCalculator(tt.lrs)
			for _, get := range []struct {
				kind      string
				ours, vpa func(string) (*corev1.LimitRangeItem, error)
			}{
				{"container", ours.GetContainerLimitRangeItem, theirs.GetContainerLimitRangeItem},
				{"pod", ours.GetPodLimitRangeItem, theirs.GetPodLimitRangeItem},
			} {
				for _, ns := range []string{"default", "other", "none"} {
					want, err := get.vpa(ns)
					require.NoError(t, err)
					got, err := get.ours(ns)
					require.NoError(t, err)
					if !tt.unordered {
						assert.Truef(t, equality.Semantic.DeepEqual(want, got), "%s item in %s: VPA's %v, ours %v", get.kind, ns, want, got)
						continue
					}
					answers := map[string]bool{}
					for range 256 {
						want, err := get.vpa(ns)
						require.NoError(t, err)
						answers[fmt.Sprint(want)] = true
						again, err := get.ours(ns)
						require.NoError(t, err)
						require.True(t, equality.Semantic.DeepEqual(got, again), "ours is always the same")
					}
					assert.Containsf(t, answers, fmt.Sprint(got), "%s item in %s: one of VPA's answers", get.kind, ns)
					if get.kind == "container" && ns == "default" {
						assert.Greater(t, len(answers), 1, "VPA's own answer changes with its informer's listing order")
					}
				}
			}
		})
	}
}

// The updater caps to the LimitRanges too: a pod already at the LimitRange's max has nothing
// to be updated for, though the uncapped recommendation is 25% above it.
func TestSelectedWithLimits(t *testing.T) {
	v := vpa(cpuMem("5", "1Gi"), cpuMem("1", "512Mi"), cpuMem("6", "2Gi"))
	p := pod("a", cpuMem("4", "1Gi"), started, withLimits(cpuMem("4", "")))
	lrs := []*corev1.LimitRange{limitRange("lr", corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Max: cpuMem("4", "")})}
	assert.Len(t, surge.Selected(v, []*corev1.Pod{p}, now, surge.DefaultSettings()), 1, "without the LimitRange: updated")
	assert.Len(t, surge.SelectedWithLimits(v, []*corev1.Pod{p}, nil, now, surge.DefaultSettings()), 1, "no LimitRanges: as Selected")
	assert.Empty(t, surge.SelectedWithLimits(v, []*corev1.Pod{p}, lrs, now, surge.DefaultSettings()), "capped to the max: no change")
}
