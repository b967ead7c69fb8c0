package handlers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"function/handlers/drain"
	"function/internal/testutil"
	"function/names"
)

// Inspect is the decision the function would make, with every fact it would read: a
// Deployment pod waiting for its replacement shows that gate closed with the count read
// live, a dry-run Reconciler shows the configured policy (not its "release everything"), and
// nothing is written.
func TestInspect(t *testing.T) {
	label := func(p *corev1.Pod) { p.Labels = map[string]string{"app": "web"} }
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-web"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
	sibling := newPod(label, deployment, readyAt(now.Add(-time.Hour)), func(p *corev1.Pod) { p.Name, p.UID = "web-2", "uid-2" })
	evictee := newPod(label, managed, ours, deployment, deletedAt(nowSec.Add(-40*time.Second), 30), evicted(nowSec.Add(-40*time.Second)),
		started(nowSec.Add(-40*time.Second)), stoppedAt(now))
	for _, dryRun := range []bool{false, true} {
		t.Run(fmt.Sprintf("dry-run %v", dryRun), func(t *testing.T) {
			f := newFixture(t, dryRun, dep, sibling, evictee)
			d := f.rec.Inspect(context.Background(), evictee)
			assert.Equal(t, drain.Wait, d.Action, d.Reason)
			assert.Equal(t, "waiting for replacement-ready (1/2 Ready)", d.Reason)
			assert.Equal(t, []drain.Gate{{Name: names.GateGracePeriod, Open: true, Detail: "30s"},
				{Name: names.GateContainers, Open: true, Detail: "all containers terminated"},
				{Name: names.GateReplacement, Detail: "1/2 Ready"}}, d.Gates)
			assert.Equal(t, []string{"get deployments", "list pods"}, testutil.Verbs(f.client), "reads only")
		})
	}
}
