package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"function/config"
	"function/handlers/drain"
	"function/names"
)

// PDBName is the name of the PodDisruptionBudget pacing creates for the named workload.
func PDBName(workload string) string { return workload + names.PDBNameSuffix }

// ensurePDB creates the workload's PodDisruptionBudget (the caller found none selecting its
// pods) when it is a Deployment or StatefulSet of 2 or more desired replicas. It reports
// whether one exists now (created, or created meanwhile by another replica).
func (r *OwnerChecks) ensurePDB(ctx context.Context, w ownerObject, log *slog.Logger) bool {
	if !w.Kind.Spec().Paced || w.Replicas == nil || *w.Replicas < 2 || w.Selector == nil {
		return false
	}
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{
			Name:      PDBName(w.Name),
			Namespace: w.Namespace,
			Labels:    map[string]string{names.LabelManagedBy: names.Component, names.LabelOwnerKind: string(w.Kind)},
			// The garbage collector deletes it with its workload.
			OwnerReferences: []metav1.OwnerReference{{APIVersion: w.Kind.Spec().APIVersion(), Kind: string(w.Kind), Name: w.Name, UID: w.UID,
				Controller: ptr.To(false)}},
		},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       w.Selector.DeepCopy(),
			// A replica that is not Ready can always be evicted: it serves nothing, and with
			// the default (IfHealthyBudget) one crash-looping replica would block every node
			// drain and every VPA eviction of the workload.
			UnhealthyPodEvictionPolicy: ptr.To(policyv1.AlwaysAllow),
		},
	}
	_, err := r.Client.PolicyV1().PodDisruptionBudgets(w.Namespace).Create(ctx, pdb, metav1.CreateOptions{FieldManager: names.Component})
	switch {
	case apierrors.IsAlreadyExists(err):
		log.DebugContext(ctx, "pacing: the PodDisruptionBudget exists already", slog.String("pdb", pdb.Name))
		return true
	case err != nil:
		log.WarnContext(ctx, "pacing: cannot create the PodDisruptionBudget (ensurePodDisruptionBudget needs the vpa-graceful-drain-pacing ClusterRole)",
			slog.String("pdb", w.Namespace+"/"+pdb.Name), slog.String("error", err.Error()))
		return false
	}
	log.InfoContext(ctx, "pacing: created a PodDisruptionBudget (maxUnavailable 1), so evictions wait for the replacement to be Ready",
		slog.String("pdb", w.Namespace+"/"+pdb.Name), slog.Int("replicas", int(*w.Replicas)))
	return true
}

// CleanupPDBs deletes the PodDisruptionBudgets this function created whose workload is gone
// or no longer managed, or all of them when uninstalling or when pacing is off. Sweeps call it.
func (r *OwnerChecks) CleanupPDBs(ctx context.Context) {
	if r.Client == nil {
		return
	}
	cfg := r.config()
	n, err := r.prunePDBs(ctx, cfg, cfg.Uninstalling || !cfg.EnsurePDB)
	if err != nil && ctx.Err() == nil {
		r.Log.WarnContext(ctx, "pacing: cleaning up PodDisruptionBudgets failed", slog.Int("deleted", n), slog.String("error", err.Error()))
	}
}

// DeletePDBs deletes every PodDisruptionBudget this function created (labelled
// app.kubernetes.io/managed-by=vpa-graceful-drain), in every namespace, and returns how many
// it deleted (in dry-run, how many it would delete). Uninstalling runs it. A PDB that fails is
// logged and counted in the error; the others are still deleted.
func (r *OwnerChecks) DeletePDBs(ctx context.Context) (int, error) {
	if r.Client == nil {
		return 0, ErrNoCluster
	}
	return r.prunePDBs(ctx, r.config(), true)
}

// prunePDBs deletes the labelled PodDisruptionBudgets that are no longer needed (all of them
// when all is set), each with a UID precondition, and returns how many it deleted.
func (r *OwnerChecks) prunePDBs(ctx context.Context, cfg config.Config, all bool) (int, error) {
	deleted := 0
	var errs []error
	opts := metav1.ListOptions{LabelSelector: names.LabelManagedBy + "=" + names.Component, Limit: defaultPageSize}
	for {
		list, err := r.Client.PolicyV1().PodDisruptionBudgets("").List(ctx, opts)
		if err != nil {
			return deleted, errors.Join(append(errs, fmt.Errorf("listing PodDisruptionBudgets: %w", err))...)
		}
		for i := range list.Items {
			pdb := &list.Items[i]
			if pdb.Labels[names.LabelManagedBy] != names.Component {
				continue // never one this function did not create
			}
			why := "vpa-graceful-drain is being uninstalled or ensurePodDisruptionBudget is off"
			if !all {
				why, err = r.pdbObsolete(ctx, pdb, cfg)
				if err != nil {
					r.Log.WarnContext(ctx, "pacing: cannot tell whether a PodDisruptionBudget is still needed; kept",
						slog.String("pdb", pdb.Namespace+"/"+pdb.Name), slog.String("error", err.Error()))
					continue
				}
				if why == "" {
					continue
				}
			}
			ok, err := r.deletePDB(ctx, pdb, why)
			if err != nil {
				errs = append(errs, err)
			} else if ok {
				deleted++
			}
			if ctx.Err() != nil {
				return deleted, errors.Join(append(errs, ctx.Err())...)
			}
		}
		if list.Continue == "" {
			return deleted, errors.Join(errs...)
		}
		opts.Continue = list.Continue
	}
}

// deletePDB deletes one PodDisruptionBudget pacing created, with a UID precondition (in
// dry-run it only logs), and reports whether it deleted it: not when it was gone already or
// replaced by another object of that name.
func (r *OwnerChecks) deletePDB(ctx context.Context, pdb *policyv1.PodDisruptionBudget, why string) (bool, error) {
	name := pdb.Namespace + "/" + pdb.Name
	if r.DryRun {
		r.Log.InfoContext(ctx, "dry-run: would delete PodDisruptionBudget", slog.String("pdb", name), slog.String("why", why))
		return true, nil
	}
	err := r.Client.PolicyV1().PodDisruptionBudgets(pdb.Namespace).Delete(ctx, pdb.Name,
		metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pdb.UID}})
	switch {
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		return false, nil
	case err != nil:
		r.Log.WarnContext(ctx, "pacing: cannot delete PodDisruptionBudget", slog.String("pdb", name), slog.String("error", err.Error()))
		return false, fmt.Errorf("deleting PodDisruptionBudget %s: %w", name, err)
	}
	r.Log.InfoContext(ctx, "pacing: deleted PodDisruptionBudget", slog.String("pdb", name), slog.String("why", why))
	return true, nil
}

// pdbObsolete says why a PodDisruptionBudget pacing created is no longer needed ("" if it is).
func (r *OwnerChecks) pdbObsolete(ctx context.Context, pdb *policyv1.PodDisruptionBudget, cfg config.Config) (string, error) {
	var ref *metav1.OwnerReference
	for i, o := range pdb.OwnerReferences {
		if s := config.KindOf(o.Kind).Spec(); s.Paced && s.InGroup(o.APIVersion) {
			ref = &pdb.OwnerReferences[i]
			break
		}
	}
	if ref == nil {
		return "it has no Deployment or StatefulSet owner", nil
	}
	kind := config.Kind(ref.Kind)
	if !cfg.Workload(kind).Manage {
		return fmt.Sprintf("%s pods are no longer managed (workloadDefaults)", kind), nil
	}
	w, err := r.Owners.Read(ctx, pdb.Namespace, kind, ref.Name)
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("%s %s is gone", kind, ref.Name), nil
	case err != nil:
		return "", err
	case w.UID != ref.UID:
		return fmt.Sprintf("%s %s was replaced (uid %s, not %s)", kind, ref.Name, w.UID, ref.UID), nil
	}
	optedIn, err := r.templateOptsIn(ctx, w, cfg)
	switch {
	case err != nil:
		return "", err
	case !optedIn:
		return fmt.Sprintf("the pod template of %s %s no longer opts in", kind, w.Name), nil
	case w.Replicas != nil && *w.Replicas < 2:
		return fmt.Sprintf("%s %s has %d replica(s)", kind, w.Name, *w.Replicas), nil
	}
	_, others, err := r.pdbsSelecting(ctx, pdb.Namespace, w.Template.Labels)
	if err != nil {
		return "", err
	}
	if len(others) > 0 {
		return overlapWhy(others, kind, w.Name), nil
	}
	return "", nil
}

// overlapWhy says why pacing deletes its budget when others select the same pods.
func overlapWhy(others []string, kind config.Kind, name string) string {
	return fmt.Sprintf("PodDisruptionBudget %s selects the pods of %s %s too, and the Eviction API refuses (500) every eviction of a pod that two budgets select",
		strings.Join(others, ", "), kind, name)
}

// templateOptsIn reports whether the workload's pods are managed, judged from its pod
// template. VPA's own annotations are set on pods by its admission controller, never on
// templates: where those count (detectVpaAnnotations) and the template neither opts in nor
// out, a workload that a VerticalPodAutoscaler targets counts as opted in. Not knowing (no
// dynamic client) counts as opted in: a PodDisruptionBudget is never deleted on a guess.
func (r *OwnerChecks) templateOptsIn(ctx context.Context, w ownerObject, cfg config.Config) (bool, error) {
	pod := w.templatePod()
	if drain.ManagedBy(pod, cfg) != "" {
		return true, nil
	}
	if _, explicit := pod.Annotations[names.AnnotationManaged]; explicit || !cfg.DetectVpaAnnotations || !cfg.Namespaces.Selects(w.Namespace) {
		return false, nil
	}
	if r.Dynamic == nil {
		return true, nil
	}
	v, err := r.vpaFor(ctx, w.Namespace, w.Kind, w.Name)
	if err != nil {
		return false, err
	}
	return v != nil, nil
}
