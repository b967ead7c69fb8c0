package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"function/handlers/surge"
	"function/names"
)

// surgeListPage is the page size of the sweep's list of Deployments.
const surgeListPage = 500

// Sweep evaluates every Deployment that opted in to surge rollouts in a selected namespace,
// and every rollout of the budget in flight (so one is followed to its end with surgeRollout
// off, or while uninstalling, when none starts): the sweeps run it, on one replica (the sweep
// Lease). The Deployments are listed in pages; a Deployment that cannot be evaluated is
// logged and left to its backoff and the next sweep.
func (c *SurgeController) Sweep(ctx context.Context) (SurgeResult, error) {
	res := SurgeResult{Decisions: map[string]int{}}
	if c == nil || c.Client == nil {
		return res, nil
	}
	cfg := c.config()
	now := c.now()
	on := cfg.Surge.Enabled && !cfg.Uninstalling
	slots, err := c.Budget.Read(ctx, now, cfg.Surge.Timeout)
	switch {
	case err != nil && !on && apierrors.IsForbidden(err):
		// Surge rollouts off and their roles (config/rbac-surge.yaml) not applied: none can
		// be in flight.
		c.Log.DebugContext(ctx, "surge rollouts: the budget's Lease is not readable", slog.String("error", err.Error()))
		return res, nil
	case err != nil:
		return res, err
	}
	keys := map[string]*appsv1.Deployment{} // as listed (nil: read it)
	for _, k := range slots.InFlight() {
		keys[k] = nil
	}
	if on {
		opts := metav1.ListOptions{Limit: surgeListPage}
		for {
			list, err := c.Client.AppsV1().Deployments(metav1.NamespaceAll).List(ctx, opts)
			if err != nil {
				return res, fmt.Errorf("listing Deployments for surge rollouts: %w", err)
			}
			for i := range list.Items {
				d := &list.Items[i]
				if d.Annotations[names.AnnotationSurgeRollout] == "true" && cfg.Namespaces.Selects(d.Namespace) {
					keys[d.Namespace+"/"+d.Name] = d
				}
			}
			if opts.Continue = list.Continue; opts.Continue == "" {
				break
			}
		}
	}
	if len(keys) == 0 {
		return res, nil
	}
	if !c.lock(ctx, true) {
		return res, fmt.Errorf("surge rollouts: %w", ctx.Err())
	}
	defer c.unlock()
	for key, d := range keys {
		ns, name, _ := strings.Cut(key, "/")
		rep, err := c.evaluateLocked(ctx, c.config(), ns, name, d, nil, c.now()) // as in force now: a pass may be long
		switch {
		case ctx.Err() != nil:
			return res, ctx.Err()
		case err != nil:
			c.Log.WarnContext(ctx, "surge rollout: cannot evaluate the Deployment; trying again later",
				slog.String("namespace", ns), slog.String("deployment", name), slog.String("error", err.Error()))
			continue
		}
		res.Deployments++
		action := surge.None
		if rep != nil {
			action = rep.Decision.Action
		}
		res.Decisions[action.String()]++
	}
	return res, nil
}
