package surge_test

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	vpa_types "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	"k8s.io/utils/ptr"
)

// now is the fixed clock of these tests; pods start at started.
var (
	now     = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	started = now.Add(-13 * time.Hour)
)

// cpuMem is a resource list of cpu and memory ("" leaves one out).
func cpuMem(cpu, mem string) corev1.ResourceList {
	l := corev1.ResourceList{}
	if cpu != "" {
		l[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		l[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return l
}

type podOpt func(*corev1.Pod)

// pod is a Ready pod of the Deployment web, container app with the given requests, started
// at `at`.
func pod(name string, requests corev1.ResourceList, at time.Time, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: "uid-" + "name"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{Requests: requests}}}},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			StartTime:  &metav1.Time{Time: at},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// oomKilled: the container was OOM-killed after running `ran`, `ago` before now.
func oomKilled(ran, ago time.Duration) podOpt {
	return func(p *corev1.Pod) {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", LastTerminationState: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled",
				StartedAt: metav1.NewTime(now.Add(-ago - ran)), FinishedAt: metav1.NewTime(now.Add(-ago))}}}}
	}
}

type vpaOpt func(*vpa_types.VerticalPodAutoscaler)

// vpa is the VerticalPodAutoscaler of the Deployment web in mode Initial with a recommendation
// for container app: target, lower and upper bound.
func vpa(target, lower, upper corev1.ResourceList, opts ...vpaOpt) *vpa_types.VerticalPodAutoscaler {
	v := &vpa_types.VerticalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", CreationTimestamp: metav1.NewTime(now.Add(-48 * time.Hour))},
		Spec: vpa_types.VerticalPodAutoscalerSpec{
			TargetRef:    &autoscalingv1.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			UpdatePolicy: &vpa_types.PodUpdatePolicy{UpdateMode: ptr.To(vpa_types.UpdateModeInitial)},
		},
		Status: vpa_types.VerticalPodAutoscalerStatus{Recommendation: &vpa_types.RecommendedPodResources{
			ContainerRecommendations: []vpa_types.RecommendedContainerResources{{ContainerName: "app", Target: target, LowerBound: lower, UpperBound: upper}},
		}},
	}
	for _, o := range opts {
		o(v)
	}
	return v
}

func mode(m vpa_types.UpdateMode) vpaOpt {
	return func(v *vpa_types.VerticalPodAutoscaler) { v.Spec.UpdatePolicy.UpdateMode = ptr.To(m) }
}

type deployOpt func(*appsv1.Deployment)

// deployment is the Deployment web, its last rollout complete, RollingUpdate with the given
// maxSurge and maxUnavailable (nil: the API's 25%).
func deployment(replicas int32, maxSurge, maxUnavailable *intstr.IntOrString, opts ...deployOpt) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Generation: 3},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Strategy: appsv1.DeploymentStrategy{
			Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: maxSurge, MaxUnavailable: maxUnavailable}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: replicas, UpdatedReplicas: replicas, ReadyReplicas: replicas, AvailableReplicas: replicas},
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

func intOrStr(v intstr.IntOrString) *intstr.IntOrString { return &v }

// withLimits gives container app the limits.
func withLimits(limits corev1.ResourceList) podOpt {
	return func(p *corev1.Pod) { p.Spec.Containers[0].Resources.Limits = limits }
}

// withContainer adds a container with the requests and limits.
func withContainer(name string, requests, limits corev1.ResourceList) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: name,
			Resources: corev1.ResourceRequirements{Requests: requests, Limits: limits}})
	}
}

// recommend adds a recommendation for container name: target, as its bounds too.
func recommend(name string, target corev1.ResourceList) vpaOpt {
	return func(v *vpa_types.VerticalPodAutoscaler) {
		v.Status.Recommendation.ContainerRecommendations = append(v.Status.Recommendation.ContainerRecommendations,
			vpa_types.RecommendedContainerResources{ContainerName: name, Target: target, LowerBound: target, UpperBound: target})
	}
}

// limitRange is the LimitRange name of namespace default with the items, as the API server
// stores it: a container item's missing default is its max, its missing defaultRequest its
// default, else its min (k8s.io/kubernetes pkg/apis/core/v1 SetDefaults_LimitRangeItem), which
// is what handlers reads and what VPA's admission controller works with.
func limitRange(name string, items ...corev1.LimitRangeItem) *corev1.LimitRange {
	lr := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	for _, it := range items {
		it = *it.DeepCopy()
		if it.Type == corev1.LimitTypeContainer {
			if it.Default == nil {
				it.Default = corev1.ResourceList{}
			}
			if it.DefaultRequest == nil {
				it.DefaultRequest = corev1.ResourceList{}
			}
			for _, from := range []struct{ src, dst corev1.ResourceList }{
				{it.Max, it.Default}, {it.Default, it.DefaultRequest}, {it.Min, it.DefaultRequest}} {
				for k, q := range from.src {
					if _, ok := from.dst[k]; !ok {
						from.dst[k] = q.DeepCopy()
					}
				}
			}
		}
		lr.Spec.Limits = append(lr.Spec.Limits, it)
	}
	return lr
}
