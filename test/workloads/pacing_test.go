//go:build e2e

package workloads

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"function/handlers"
	"function/names"
	"function/test/cluster"
)

// With ensurePodDisruptionBudget, the function creates the PDB a managed 3-replica Deployment
// lacks, and the real disruption controller then paces an updater that evicts all 3 pods at
// once: 1 goes, the others get 429 until its replacement is Ready. When the Deployment is no
// longer managed, the function deletes the PDB it created (and only that one).
// pacedShop starts the function with pacing and a managed 3-replica Deployment shop, and
// waits for the PodDisruptionBudget the function creates for it.
type pacedShop struct {
	ctx       context.Context
	s         *cluster.Stack
	k         *cluster.WorkloadKubelet
	releases  *cluster.Releases
	originals []string
	dep       *appsv1.Deployment
	pdb       *policyv1.PodDisruptionBudget
}

func startPacedShop(t *testing.T) pacedShop {
	t.Helper()
	ctx := testContext(t, 3*time.Minute)
	s, k, releases := startStack(t, cluster.KubeletOptions{StopAfter: ptr.To(time.Second)},
		"ensurePodDisruptionBudget=true", "sweepIntervalSeconds=5")
	originals := managedWorkload(ctx, t, s.Namespace, cluster.DeploymentSpec(s.Namespace, "shop", 3, managedPods))
	dep, err := cp.Client.AppsV1().Deployments(s.Namespace).Get(ctx, "shop", metav1.GetOptions{})
	require.NoError(t, err)
	pdb := waitPDB(ctx, t, s.Namespace, handlers.PDBName("shop"), 1)
	return pacedShop{ctx: ctx, s: s, k: k, releases: releases, originals: originals, dep: dep, pdb: pdb}
}

func TestFunctionPacesEvictionsWithItsPDB(t *testing.T) {
	p := startPacedShop(t)
	ctx, k, releases, originals, dep, pdb := p.ctx, p.k, p.releases, p.originals, p.dep, p.pdb
	c, ns := cp.Client, p.s.Namespace
	pdbName := handlers.PDBName("shop")

	// The function's PDB: maxUnavailable 1, the Deployment's selector, owned by it, labelled.
	assert.Equal(t, 1, pdb.Spec.MaxUnavailable.IntValue())
	assert.Equal(t, dep.Spec.Selector, pdb.Spec.Selector)
	assert.Equal(t, "vpa-graceful-drain", pdb.Labels[names.LabelManagedBy])
	require.Len(t, pdb.OwnerReferences, 1)
	assert.Equal(t, dep.UID, pdb.OwnerReferences[0].UID)
	// A PDB of the user's, for another app: never touched.
	userPDB := pdb.DeepCopy()
	userPDB.ObjectMeta = metav1.ObjectMeta{Name: "users-own", Namespace: ns}
	userPDB.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}}
	_, err := c.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, userPDB, metav1.CreateOptions{})
	require.NoError(t, err)

	// The updater evicts all three at once (eviction tolerance 1.0).
	k.HoldReady(func(p *corev1.Pod) bool { return !slices.Contains(originals, p.Name) })
	evicted, refused := evictAll(ctx, t, ns, originals)
	require.Len(t, evicted, 1, "one eviction goes through (refused: %v)", refused)
	require.Len(t, refused, 2, "the others get 429 (evicted: %v)", evicted)

	// Until the replacement is Ready, the next eviction is refused too, and the evicted pod
	// is held (its containers stopped, its replacement not Ready).
	waitPDB(ctx, t, ns, pdbName, 0)
	require.True(t, apierrors.IsTooManyRequests(cluster.Evict(ctx, c, ns, refused[0], nil)), "429 while the replacement is not Ready")
	require.Eventually(t, func() bool { _, ok := k.StoppedAt(evicted[0]); return ok }, 30*time.Second, 50*time.Millisecond)
	_, released := releases.At(evicted[0])
	assert.False(t, released, "held until its replacement is Ready")

	k.ReleaseReady()
	require.Eventually(t, func() bool { _, ok := releases.At(evicted[0]); return ok }, 30*time.Second, 20*time.Millisecond,
		"released once the replacement is Ready")
	waitPDB(ctx, t, ns, pdbName, 1)
	require.NoError(t, cluster.Evict(ctx, c, ns, refused[0], nil), "the next eviction goes once the replacement is Ready")

	// The Deployment opts out: at the next sweep the function deletes its PDB, not the user's.
	patch := `{"spec":{"template":{"metadata":{"annotations":{"vpa-managed":"false"}}}}}`
	_, err = c.AppsV1().Deployments(ns).Patch(ctx, "shop", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := c.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, pdbName, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}, 30*time.Second, 100*time.Millisecond, "the function deletes its PDB once the Deployment is no longer managed")
	_, err = c.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "users-own", metav1.GetOptions{})
	assert.NoError(t, err, "the user's PDB stays")
}

// The function's budget gives way to the user's: once another PodDisruptionBudget selects
// the same pods (two budgets make every eviction of a pod fail with 500), the function
// deletes its own at the next sweep, does not create it again for new pods, and the user's
// budget paces the evictions alone.
func TestFunctionPacingGivesWayToAnotherBudget(t *testing.T) {
	p := startPacedShop(t)
	ctx, k, originals, dep, ours := p.ctx, p.k, p.originals, p.dep, p.pdb
	c, ns := cp.Client, p.s.Namespace
	pdbName := handlers.PDBName("shop")
	assert.Equal(t, ptr.To(policyv1.AlwaysAllow), ours.Spec.UnhealthyPodEvictionPolicy, "an unready replica never blocks an eviction")

	users := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"},
		Spec:       policyv1.PodDisruptionBudgetSpec{Selector: dep.Spec.Selector, MaxUnavailable: ptr.To(intstr.FromInt32(1))},
	}
	_, err := c.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, users, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := c.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, pdbName, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}, 30*time.Second, 100*time.Millisecond, "the function deletes its budget once the user's selects the same pods")

	// The user's budget paces alone: one eviction goes, the others get 429, never 500.
	waitPDB(ctx, t, ns, "shop", 1)
	k.HoldReady(func(p *corev1.Pod) bool { return !slices.Contains(originals, p.Name) })
	evicted, refused := evictAll(ctx, t, ns, originals)
	require.Len(t, evicted, 1, "one eviction goes through (refused: %v)", refused)
	require.Len(t, refused, 2, "the others get 429 (evicted: %v)", evicted)

	// The replacement gets the finalizer and the function answers its event: by then it has
	// looked at the workload's budgets again (pacing runs before the reply), and it did not
	// create its own.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		held := k.Held()
		require.Len(c, held, 1)
		pod, err := cp.Client.CoreV1().Pods(ns).Get(ctx, held[0], metav1.GetOptions{})
		require.NoError(c, err)
		assert.Contains(c, pod.Finalizers, names.Finalizer)
		assert.NotEmpty(c, p.s.Proxy.Replies(names.ReplyFinalizerAdded, p.s.Subject(held[0])), "the reply to the finalizer's add")
	}, 30*time.Second, 50*time.Millisecond, "the replacement runs, with the finalizer, and its event was answered")
	_, err = c.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, pdbName, metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "not created again while the user's budget selects the pods: %v", err)
	k.ReleaseReady()
}
