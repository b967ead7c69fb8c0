//go:build e2e

package workloads

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"function/test/cluster"
)

// evictAll evicts the pods concurrently (released together), as an updater with eviction
// tolerance 1.0 does, and returns those evicted and those refused with 429; any other error
// fails the test.
func evictAll(ctx context.Context, t *testing.T, ns string, names []string) (evicted, refused []string) {
	t.Helper()
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		errs  = map[string]error{}
		start = make(chan struct{})
	)
	for _, name := range names {
		wg.Go(func() {
			<-start
			err := cluster.Evict(ctx, cp.Client, ns, name, nil)
			mu.Lock()
			defer mu.Unlock()
			errs[name] = err
		})
	}
	close(start)
	wg.Wait()
	for name, err := range errs {
		switch {
		case err == nil:
			evicted = append(evicted, name)
		case apierrors.IsTooManyRequests(err):
			refused = append(refused, name)
		default:
			t.Errorf("evicting %s: %v", name, err)
		}
	}
	return evicted, refused
}

// waitPDB polls until the disruption controller has computed the PDB's status for its
// current generation with the given disruptionsAllowed.
func waitPDB(ctx context.Context, t *testing.T, ns, name string, allowed int32) *policyv1.PodDisruptionBudget {
	t.Helper()
	var pdb *policyv1.PodDisruptionBudget
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		got, err := cp.Client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, name, metav1.GetOptions{})
		require.NoError(c, err)
		require.Equal(c, got.Generation, got.Status.ObservedGeneration, "status computed for the current generation")
		require.Equal(c, allowed, got.Status.DisruptionsAllowed, "disruptionsAllowed (status: %+v)", got.Status)
		pdb = got
	}, 30*time.Second, 100*time.Millisecond, "PDB %s with disruptionsAllowed %d", name, allowed)
	return pdb
}

// TestPDBPacesEvictionsOfADeployment evicts all three Ready pods of a Deployment at once
// through the Eviction API, as an impatient updater would, with the real disruption
// controller computing the PodDisruptionBudget: without a budget all go at once; with
// maxUnavailable 1 only one, and the next only once its replacement is Ready.
func TestPDBPacesEvictionsOfADeployment(t *testing.T) {
	tests := []struct {
		name        string
		pdb         *intstr.IntOrString // maxUnavailable of a PDB the test creates; nil: none
		wantEvicted int
	}{
		{name: "no PDB", wantEvicted: 3},
		{name: "PDB maxUnavailable 1", pdb: ptr.To(intstr.FromInt32(1)), wantEvicted: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t, 2*time.Minute)
			c := cp.Client
			ns := cp.Namespace(t, "pdb")
			k := startKubelet(t, ns, cluster.KubeletOptions{StopAfter: ptr.To(time.Second)})

			dep := cluster.DeploymentSpec(ns, "web", 3, nil)
			_, err := c.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{})
			require.NoError(t, err)
			originals, err := cluster.WaitForReadyReplicas(ctx, c, ns, appSelector("web"), 3)
			require.NoError(t, err)
			if tc.pdb != nil {
				_, err := c.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
					Spec:       policyv1.PodDisruptionBudgetSpec{Selector: dep.Spec.Selector, MaxUnavailable: tc.pdb},
				}, metav1.CreateOptions{})
				require.NoError(t, err)
				pdb := waitPDB(ctx, t, ns, "web", 1)
				assert.Equal(t, int32(3), pdb.Status.CurrentHealthy)
				assert.Equal(t, int32(2), pdb.Status.DesiredHealthy)
			}
			// Replacements stay not Ready until the test releases them.
			k.HoldReady(func(p *corev1.Pod) bool { return !slices.Contains(originals, p.Name) })

			evicted, refused := evictAll(ctx, t, ns, originals)
			require.Len(t, evicted, tc.wantEvicted, "evictions that went through (refused: %v)", refused)
			require.Len(t, refused, 3-tc.wantEvicted, "evictions refused with 429 (evicted: %v)", evicted)

			// Every evicted pod gets a replacement at once, which runs but is held not Ready.
			require.EventuallyWithT(t, func(c *assert.CollectT) {
				assert.Len(c, k.Held(), tc.wantEvicted)
			}, 30*time.Second, 50*time.Millisecond, "%d replacements running and held", tc.wantEvicted)
			for _, name := range evicted {
				require.Eventually(t, func() bool { _, ok := k.DeletedAt(name); return ok }, 10*time.Second, 50*time.Millisecond,
					"the kubelet finishes evicted %s", name)
			}

			if tc.pdb != nil {
				// The budget is spent while the replacement is not Ready: the next eviction
				// is refused as well.
				waitPDB(ctx, t, ns, "web", 0)
				err := cluster.Evict(ctx, c, ns, refused[0], nil)
				require.True(t, apierrors.IsTooManyRequests(err), "want 429 while the replacement is not Ready, got %v", err)

				replacement := k.Held()[0]
				k.ReleaseReady()
				_, err = cluster.WaitForReadyReplicas(ctx, c, ns, appSelector("web"), 3)
				require.NoError(t, err)
				// The kubelet records the time once its patch is answered, which may come after
				// the API server's watch showed the pod Ready.
				var readyAt time.Time
				require.Eventually(t, func() bool {
					at, ok := k.ReadyAt(replacement)
					readyAt = at
					return ok
				}, 10*time.Second, 10*time.Millisecond, "ReadyAt(%s)", replacement)
				waitPDB(ctx, t, ns, "web", 1)
				require.NoError(t, cluster.Evict(ctx, c, ns, refused[0], nil), "the budget allows one more once the replacement is Ready")
				assert.True(t, time.Now().After(readyAt))
				waitPDB(ctx, t, ns, "web", 0)
			}

			k.ReleaseReady()
			ready, err := cluster.WaitForReadyReplicas(ctx, c, ns, appSelector("web"), 3)
			require.NoError(t, err)
			for _, name := range evicted {
				assert.NotContains(t, ready, name)
			}
		})
	}
}

// TestBudgetsAsTheEvictionAPIApplies them, on the real disruption controller: two budgets
// that select one pod make every eviction of it fail with a 500 (which is why pacing deletes
// its own when another selects the same pods), and with unhealthyPodEvictionPolicy
// AlwaysAllow (as pacing creates its budgets) a replica that is not Ready can be evicted
// while the workload is below its budget, where the default refuses it with a 429.
func TestBudgetsAsTheEvictionAPIApplies(t *testing.T) {
	tests := []struct {
		name      string
		budgets   []*policyv1.UnhealthyPodEvictionPolicyType // one PDB (maxUnavailable 1) each
		unready   int                                        // of the 3 replicas, held not Ready
		wantError func(error) bool
	}{
		{name: "two budgets select the pod: 500", budgets: []*policyv1.UnhealthyPodEvictionPolicyType{nil, nil},
			wantError: apierrors.IsInternalError},
		{name: "one budget: the eviction goes", budgets: []*policyv1.UnhealthyPodEvictionPolicyType{nil},
			wantError: func(err error) bool { return err == nil }},
		{name: "an unready replica below the budget, IfHealthyBudget: 429", budgets: []*policyv1.UnhealthyPodEvictionPolicyType{nil},
			unready: 2, wantError: apierrors.IsTooManyRequests},
		{name: "an unready replica below the budget, AlwaysAllow: the eviction goes",
			budgets: []*policyv1.UnhealthyPodEvictionPolicyType{ptr.To(policyv1.AlwaysAllow)},
			unready: 2, wantError: func(err error) bool { return err == nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t, 2*time.Minute)
			c := cp.Client
			ns := cp.Namespace(t, "budgets")
			k := startKubelet(t, ns, cluster.KubeletOptions{StopAfter: ptr.To(time.Second)})
			var (
				mu   sync.Mutex
				held = map[string]bool{}
			)
			k.HoldReady(func(p *corev1.Pod) bool { // the first tc.unready pods
				mu.Lock()
				defer mu.Unlock()
				if !held[p.Name] && len(held) < tc.unready {
					held[p.Name] = true
				}
				return held[p.Name]
			})
			dep := cluster.DeploymentSpec(ns, "web", 3, nil)
			_, err := c.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{})
			require.NoError(t, err)
			_, err = cluster.WaitForReadyReplicas(ctx, c, ns, appSelector("web"), 3-tc.unready)
			require.NoError(t, err)
			require.EventuallyWithT(t, func(c *assert.CollectT) { assert.Len(c, k.Held(), tc.unready) },
				30*time.Second, 50*time.Millisecond, "%d replicas running, held not Ready", tc.unready)

			for i, policy := range tc.budgets {
				name := fmt.Sprintf("web-%d", i)
				_, err := c.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
					Spec: policyv1.PodDisruptionBudgetSpec{Selector: dep.Spec.Selector, MaxUnavailable: ptr.To(intstr.FromInt32(1)),
						UnhealthyPodEvictionPolicy: policy},
				}, metav1.CreateOptions{})
				require.NoError(t, err)
				// 3 - unready healthy of the 2 desired: one disruption allowed, or none.
				waitPDB(ctx, t, ns, name, int32(max(0, 3-tc.unready-2)))
			}

			victim := k.Held() // an unready replica, when there are some
			if len(victim) == 0 {
				ready, err := cluster.ReadyPods(ctx, c, ns, appSelector("web"))
				require.NoError(t, err)
				victim = ready
			}
			err = cluster.Evict(ctx, c, ns, victim[0], nil)
			assert.True(t, tc.wantError(err), "evicting %s: got %v", victim[0], err)
			if err != nil {
				pod, getErr := c.CoreV1().Pods(ns).Get(ctx, victim[0], metav1.GetOptions{})
				require.NoError(t, getErr)
				assert.Nil(t, pod.DeletionTimestamp, "a refused eviction deletes nothing")
			}
		})
	}
}
