package surge_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	updaterconfig "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/updater/config"
	"k8s.io/autoscaler/vertical-pod-autoscaler/pkg/utils/status"

	"function/config"
	"function/handlers/surge"
)

// The VPA updater settings surge rollouts decide with default to the updater's own: the
// defaults of package config (the ConfigMap's, which cannot import VPA's updater package: the
// drain policy imports config and must not depend on client-go) are VPA's DefaultUpdaterConfig,
// and so are DefaultSettings. A VPA upgrade that changes one fails here.
func TestDefaultsAreVPAUpdaters(t *testing.T) {
	vpa := updaterconfig.DefaultUpdaterConfig()
	cfg := config.Default().Surge
	assert.Equal(t, vpa.DefaultUpdateThreshold, cfg.PodUpdateThreshold, "podUpdateThreshold")
	assert.Equal(t, vpa.PodLifetimeUpdateThreshold, cfg.InBoundsLifetime, "inRecommendationBoundsEvictionLifetimeThreshold")
	assert.Equal(t, vpa.EvictAfterOOMThreshold, cfg.EvictAfterOOM, "evictAfterOomThreshold")
	assert.Equal(t, vpa.UseAdmissionControllerStatus, cfg.UseAdmissionControllerStatus, "useAdmissionControllerStatus")
	assert.Equal(t, status.AdmissionControllerStatusNamespace, cfg.StatusLeaseNamespace, "admissionControllerStatusLeaseNamespace")
	assert.Equal(t, surge.SettingsOf(cfg), surge.DefaultSettings(), "the ConfigMap's defaults are DefaultSettings")
}
