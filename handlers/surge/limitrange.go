package surge

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/autoscaler/vertical-pod-autoscaler/pkg/utils/limitrange"
)

// LimitRangeCalculator is VPA's limitrange.LimitRangeCalculator over the given LimitRanges (as
// the API server stores them, so with its defaults filled in) instead of an informer's lister:
// VPA's own implementation (limitrange.NewLimitsRangeCalculator) is built only from a
// SharedInformerFactory, and a lister over a slice needs client-go's listers and cache, which
// the pure policy does not import (TestPolicyIsPure). Each answer is the one item VPA's
// calculator (v1.8.1, pkg/utils/limitrange getLimitRangeItem) makes of a namespace's items of
// the type: the lowest max and the highest min of cpu and memory, and the last item's default;
// nil when no item of the type has a max, min or default. A namespace is answered with only the
// list's LimitRanges of that namespace. VPA lists them in its informer's order, which is not
// defined; they are taken here sorted by name, so the answer is one of those VPA can give and
// always the same.
func LimitRangeCalculator(limitRanges []*corev1.LimitRange) limitrange.LimitRangeCalculator {
	sorted := slices.Clone(limitRanges)
	sorted = slices.DeleteFunc(sorted, func(lr *corev1.LimitRange) bool { return lr == nil })
	slices.SortStableFunc(sorted, func(a, b *corev1.LimitRange) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return limitRangeList(sorted)
}

// limitRangeList is the calculator over a list, sorted by namespace and name.
type limitRangeList []*corev1.LimitRange

var _ limitrange.LimitRangeCalculator = limitRangeList(nil)

// GetContainerLimitRangeItem is the namespace's combined limit on a container.
func (l limitRangeList) GetContainerLimitRangeItem(namespace string) (*corev1.LimitRangeItem, error) {
	return l.item(namespace, corev1.LimitTypeContainer), nil
}

// GetPodLimitRangeItem is the namespace's combined limit on a pod.
func (l limitRangeList) GetPodLimitRangeItem(namespace string) (*corev1.LimitRangeItem, error) {
	return l.item(namespace, corev1.LimitTypePod), nil
}

// inNamespace are the list's LimitRanges of namespace, in the list's order.
func (l limitRangeList) inNamespace(namespace string) []*corev1.LimitRange {
	var in []*corev1.LimitRange
	for _, lr := range l {
		if lr.Namespace == namespace {
			in = append(in, lr)
		}
	}
	return in
}

// item combines the namespace's items of limitType as VPA v1.8.1's limitsChecker does,
// statement for statement (pkg/utils/limitrange/limit_range_calculator.go getLimitRangeItem):
// its quirks are kept, since the admission controller sizes pods with them. The first max (min)
// is copied whole, later ones lower (raise) only cpu and memory; the default is the last one
// seen, not merged. TestLimitRangeCalculatorIsVPAs compares it with VPA's own calculator.
func (l limitRangeList) item(namespace string, limitType corev1.LimitType) *corev1.LimitRangeItem {
	updatedResult := func(result, lrItem corev1.ResourceList, name corev1.ResourceName,
		picker func(q1, q2 resource.Quantity) resource.Quantity) corev1.ResourceList {
		if lrItem == nil {
			return result
		}
		if result == nil {
			return lrItem.DeepCopy()
		}
		if lrResource, lrHas := lrItem[name]; lrHas {
			resultResource, resultHas := result[name]
			if !resultHas {
				result[name] = lrResource.DeepCopy()
			} else {
				result[name] = picker(resultResource, lrResource)
			}
		}
		return result
	}
	lowerMax := func(q1, q2 resource.Quantity) resource.Quantity {
		if q1.Cmp(q2) < 0 {
			return q1
		}
		return q2
	}
	higherMin := func(q1, q2 resource.Quantity) resource.Quantity {
		if q1.Cmp(q2) > 0 {
			return q1
		}
		return q2
	}
	result := &corev1.LimitRangeItem{Type: limitType}
	for _, lr := range l.inNamespace(namespace) {
		for _, lri := range lr.Spec.Limits {
			if lri.Type != limitType || (lri.Max == nil && lri.Default == nil && lri.Min == nil) {
				continue
			}
			if lri.Default != nil {
				result.Default = lri.Default.DeepCopy()
			}
			result.Max = updatedResult(result.Max, lri.Max, corev1.ResourceCPU, lowerMax)
			result.Max = updatedResult(result.Max, lri.Max, corev1.ResourceMemory, lowerMax)
			result.Min = updatedResult(result.Min, lri.Min, corev1.ResourceCPU, higherMin)
			result.Min = updatedResult(result.Min, lri.Min, corev1.ResourceMemory, higherMin)
		}
	}
	if result.Min != nil || result.Max != nil || result.Default != nil {
		return result
	}
	return nil
}

// admitted is the pod of template as VPA's admission webhook receives it in namespace: the API
// server has defaulted it (a container's missing request defaults to its limit,
// k8s.io/kubernetes pkg/apis/core/v1 SetDefaults_Pod, which a Deployment's template does not
// get) and its LimitRanger admission plugin, which runs before mutating webhooks, has given
// each container the defaults of the namespace's LimitRanges it lacks (plugin/pkg/admission/
// limitranger PodMutateLimitFunc: per LimitRange, its container items' defaultRequest and
// default, later items of one LimitRange winning; across LimitRanges the first to give a value
// wins). Both are the API server's code (k8s.io/kubernetes, not a dependency here), so they are
// restated: they decide the requests and limits VPA's capping starts from.
func admitted(template *corev1.Pod, namespace string, limitRanges limitRangeList) *corev1.Pod {
	pod := template.DeepCopy()
	if pod.Namespace == "" {
		pod.Namespace = namespace
	}
	defaultRequests := func(cs []corev1.Container) {
		for i := range cs {
			r := &cs[i].Resources
			if r.Limits == nil {
				continue
			}
			if r.Requests == nil {
				r.Requests = corev1.ResourceList{}
			}
			for name, q := range r.Limits {
				if _, ok := r.Requests[name]; !ok {
					r.Requests[name] = q.DeepCopy()
				}
			}
		}
	}
	defaultRequests(pod.Spec.Containers)
	defaultRequests(pod.Spec.InitContainers)

	merge := func(cs []corev1.Container, requests, limits corev1.ResourceList) {
		for i := range cs {
			r := &cs[i].Resources
			if r.Limits == nil {
				r.Limits = corev1.ResourceList{}
			}
			if r.Requests == nil {
				r.Requests = corev1.ResourceList{}
			}
			for name, q := range limits {
				if _, ok := r.Limits[name]; !ok {
					r.Limits[name] = q.DeepCopy()
				}
			}
			for name, q := range requests {
				if _, ok := r.Requests[name]; !ok {
					r.Requests[name] = q.DeepCopy()
				}
			}
		}
	}
	for _, lr := range limitRanges.inNamespace(pod.Namespace) {
		requests, limits := corev1.ResourceList{}, corev1.ResourceList{}
		for _, item := range lr.Spec.Limits {
			if item.Type != corev1.LimitTypeContainer {
				continue
			}
			for name, q := range item.DefaultRequest {
				requests[name] = q.DeepCopy()
			}
			for name, q := range item.Default {
				limits[name] = q.DeepCopy()
			}
		}
		merge(pod.Spec.Containers, requests, limits)
		merge(pod.Spec.InitContainers, requests, limits)
	}
	return pod
}
