// Package surge is the surge-rollout policy, pure: when VPA's updater would update a
// Deployment's pods, and whether restarting its rollout instead (so its RollingUpdate creates
// the new, VPA-sized pod before it removes an old one) is safe. It asks VPA's own updater code
// (k8s.io/autoscaler/vertical-pod-autoscaler pkg/updater/priority) which pods it would update,
// and never re-implements that policy; the requests the new pods will get come from VPA's
// admission controller's own recommendation provider. It reads nothing: handlers reads the
// Deployment, its pods, its VerticalPodAutoscaler, the namespace's LimitRanges and the
// admission controller's Lease and passes them in.
package surge

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/autoscaler/vertical-pod-autoscaler/pkg/admission-controller/resource/pod/recommendation"
	vpa_types "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"
	updaterconfig "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/updater/config"
	"k8s.io/autoscaler/vertical-pod-autoscaler/pkg/updater/priority"
	"k8s.io/autoscaler/vertical-pod-autoscaler/pkg/utils/limitrange"
	vpa_api_util "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/utils/vpa"

	"function/config"
)

// Settings are the VPA updater's settings this mode decides with, named after the updater's
// flags, with the updater's defaults (DefaultSettings).
type Settings struct {
	// PodUpdateThreshold is --pod-update-threshold: a pod inside its recommendation's bounds
	// is updated only when its resources would change by at least this fraction.
	PodUpdateThreshold float64
	// InRecommendationBoundsEvictionLifetimeThreshold is
	// --in-recommendation-bounds-eviction-lifetime-threshold: a pod inside the bounds is
	// updated only once it has run this long.
	InRecommendationBoundsEvictionLifetimeThreshold time.Duration
	// EvictAfterOOMThreshold is --evict-after-oom-threshold: a container OOM-killed this soon
	// after it started, this recently, gets its pod updated at once (the quick-OOM rule).
	EvictAfterOOMThreshold time.Duration
	// UseAdmissionControllerStatus is --use-admission-controller-status: update only while
	// VPA's admission controller reports itself alive (its status Lease).
	UseAdmissionControllerStatus bool
}

// DefaultSettings are the VPA updater's defaults, taken from VPA's own updater configuration
// (pkg/updater/config's DefaultUpdaterConfig: importing it registers no flag; InitUpdaterFlags
// does, when called).
func DefaultSettings() Settings {
	vpa := updaterconfig.DefaultUpdaterConfig()
	return Settings{
		PodUpdateThreshold: vpa.DefaultUpdateThreshold,
		InRecommendationBoundsEvictionLifetimeThreshold: vpa.PodLifetimeUpdateThreshold,
		EvictAfterOOMThreshold:                          vpa.EvictAfterOOMThreshold,
		UseAdmissionControllerStatus:                    vpa.UseAdmissionControllerStatus,
	}
}

// SettingsOf are the settings the configuration gives (its VPA updater keys).
func SettingsOf(c config.Surge) Settings {
	return Settings{PodUpdateThreshold: c.PodUpdateThreshold, InRecommendationBoundsEvictionLifetimeThreshold: c.InBoundsLifetime,
		EvictAfterOOMThreshold: c.EvictAfterOOM, UseAdmissionControllerStatus: c.UseAdmissionControllerStatus}
}

// recommendations is the recommendation processor VPA's updater and admission controller are
// built with (pkg/updater/main.go, pkg/admission-controller/main.go): the recommendation capped
// to the VPA's resource policy and to the namespace's LimitRanges, through VPA's limitrange
// calculator, here over the LimitRanges handlers read (LimitRangeCalculator).
func recommendations(limits limitrange.LimitRangeCalculator) vpa_api_util.RecommendationProcessor {
	return vpa_api_util.NewCappingRecommendationProcessor(limits)
}

// Selected is SelectedWithLimits in a namespace without LimitRanges.
func Selected(vpa *vpa_types.VerticalPodAutoscaler, pods []*corev1.Pod, now time.Time, s Settings) []*corev1.Pod {
	return SelectedWithLimits(vpa, pods, nil, now, s)
}

// SelectedWithLimits lists the pods VPA's updater would update now, highest priority first:
// VPA's update priority calculator with its capping processor (capping to the VPA's policy and
// to limitRanges, the LimitRanges of the pods' namespace, as the updater does), its priority
// processor and its scaling-direction admission (so the VPA's evictionRequirements apply), on
// the given clock.
func SelectedWithLimits(vpa *vpa_types.VerticalPodAutoscaler, pods []*corev1.Pod, limitRanges []*corev1.LimitRange, now time.Time, s Settings) []*corev1.Pod {
	calc := priority.NewUpdatePriorityCalculator(vpa, priority.UpdateConfig{
		MinChangePriority:          s.PodUpdateThreshold,
		PodLifetimeUpdateThreshold: s.InRecommendationBoundsEvictionLifetimeThreshold,
		EvictAfterOOMThreshold:     s.EvictAfterOOMThreshold,
	}, recommendations(LimitRangeCalculator(limitRanges)), priority.NewProcessor())
	for _, p := range pods {
		calc.AddPod(p, now, nil)
	}
	admission := priority.NewScalingDirectionPodEvictionAdmission()
	admission.LoopInit(pods, map[*vpa_types.VerticalPodAutoscaler][]*corev1.Pod{vpa: pods})
	return calc.GetSortedPods(admission)
}

// Prediction is what VPA's admission controller will give a new pod of the template: each
// container's requests, and a hash of them that names this prediction.
type Prediction struct {
	Requests map[string]corev1.ResourceList
	Hash     string
}

// Predict is PredictWithLimits in a namespace without LimitRanges.
func Predict(vpa *vpa_types.VerticalPodAutoscaler, template *corev1.Pod) (Prediction, error) {
	return PredictWithLimits(vpa, template, nil)
}

// PredictWithLimits is the prediction for a pod of template created in the VPA's namespace,
// whose LimitRanges (as read from the API server) are limitRanges; LimitRanges of other
// namespaces are ignored. The pod is taken as the API server hands it to VPA's admission
// webhook (admitted: requests defaulted to limits, the LimitRanges' defaults), and its requests
// are what VPA's admission controller (v1.8.1) writes: its own recommendation provider
// (pkg/admission-controller/resource/pod/recommendation) with its capping processor, both over
// LimitRangeCalculator(limitRanges), so the recommendation is capped to the VPA's policy, to the
// container LimitRange's min and max (kept in the container's request-to-limit ratio, its limit
// or the LimitRange's default) and scaled to the pod LimitRange's; each recommended resource
// replaces the container's request (resource_updates.go getContainerPatch). A container
// without a recommendation, or every container under a VPA of mode Off, keeps the requests it
// was admitted with. Limits are not predicted: the admission controller scales them
// (GetProportionalLimit) from these requests, and they change no request. The CPUStartupBoost
// feature gate (alpha, off by default) is not modelled. The hash is of the predicted requests,
// so a LimitRange that changes them changes it.
func PredictWithLimits(vpa *vpa_types.VerticalPodAutoscaler, template *corev1.Pod, limitRanges []*corev1.LimitRange) (Prediction, error) {
	if vpa == nil || template == nil {
		return Prediction{}, errors.New("predicting requests: no VerticalPodAutoscaler or no template")
	}
	limits := LimitRangeCalculator(limitRanges).(limitRangeList)
	pod := admitted(template, vpa.Namespace, limits)
	provider := recommendation.NewProvider(limits, recommendations(limits))
	resources, _, err := provider.GetContainersResourcesForPod(pod, vpa)
	if err != nil {
		return Prediction{}, fmt.Errorf("processing the recommendation of VerticalPodAutoscaler %s/%s: %w", vpa.Namespace, vpa.Name, err)
	}
	off := vpa_api_util.GetUpdateMode(vpa) == vpa_types.UpdateModeOff
	p := Prediction{Requests: map[string]corev1.ResourceList{}}
	var parts []string
	for i, c := range pod.Spec.Containers {
		req := c.Resources.Requests.DeepCopy()
		if !off && i < len(resources) && len(resources[i].Requests) > 0 {
			if req == nil {
				req = corev1.ResourceList{}
			}
			for name, q := range resources[i].Requests {
				req[name] = q
			}
		}
		p.Requests[c.Name] = req
		names := make([]string, 0, len(req))
		for name := range req {
			names = append(names, string(name))
		}
		slices.Sort(names)
		for _, name := range names {
			q := req[corev1.ResourceName(name)]
			parts = append(parts, c.Name+"/"+name+"="+q.String())
		}
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, ",")))
	p.Hash = hex.EncodeToString(sum[:8])
	return p, nil
}

// ControllingVPA picks, among the VerticalPodAutoscalers that target the apps/v1 Deployment
// named name (a targetRef of another group, say a CRD's kind Deployment, is not it), the one
// VPA's own matching picks (vpa.Stronger); nil when none targets it.
func ControllingVPA(vpas []*vpa_types.VerticalPodAutoscaler, namespace, name string) *vpa_types.VerticalPodAutoscaler {
	var controlling *vpa_types.VerticalPodAutoscaler
	for _, v := range vpas {
		ref := v.Spec.TargetRef
		if ref == nil || ref.Kind != "Deployment" || ref.Name != name || v.Namespace != namespace {
			continue
		}
		if group, _, _ := strings.Cut(ref.APIVersion, "/"); ref.APIVersion != "" && group != "apps" {
			continue
		}
		if vpa_api_util.Stronger(v, controlling) {
			controlling = v
		}
	}
	return controlling
}
