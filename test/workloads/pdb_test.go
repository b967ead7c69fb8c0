//go:build e2e

package workloads

import (
	"context"
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
				readyAt, ok := k.ReadyAt(replacement)
				require.True(t, ok, "ReadyAt(%s)", replacement)
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
