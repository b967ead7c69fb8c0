package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"function/config"
	"function/handlers/surge"
	"function/names"
)

// surgeReports are what the surge controller says of the decisions it applies: the metric and
// the Kubernetes Event on the Deployment (report, by surge's table of actions), and a Warning,
// once per value, for a state annotation it ignored (warnState).
type surgeReports struct {
	deps   *Deps                             // the controller's
	warned bounded[string, string, limit10k] // the invalid state last warned about, by Deployment
}

// warnState records, once per value, a Warning Event that the Deployment's state annotation
// was ignored (why).
func (c *surgeReports) warnState(ctx context.Context, d *appsv1.Deployment, why string) {
	if why == "" || c.deps.DryRun {
		return
	}
	sum := sha256.Sum256([]byte(d.Annotations[names.AnnotationSurgeState]))
	key, h := d.Namespace+"/"+d.Name, hex.EncodeToString(sum[:8])
	if holds(&c.warned, key, h) {
		return
	}
	c.warned.put(key, h)
	log := c.deps.Log.With(slog.String("namespace", d.Namespace), slog.String("deployment", d.Name))
	log.WarnContext(ctx, "surge rollout: the Deployment's state is ignored", slog.String("reason", why))
	c.record(ctx, log, d, corev1.EventTypeWarning, names.EventSurgeRolloutStateInvalid, why)
}

// report counts an applied decision and records its Event on the Deployment.
func (c *surgeReports) report(ctx context.Context, log *slog.Logger, d *appsv1.Deployment, dec surge.Decision, now time.Time) {
	if dec.Action == surge.Track {
		log.DebugContext(ctx, "surge rollout: capacity gap", slog.Int("gap", int(dec.State.Gap)))
		return
	}
	log.InfoContext(ctx, "surge rollout", slog.String("prediction", dec.State.Prediction), slog.Int("gap", int(dec.State.Gap)))
	seconds := -1.0
	if dec.Action.Ends() {
		seconds = now.Sub(dec.State.Started).Seconds()
	}
	c.deps.metrics().SurgeRollout(ctx, dec.Outcome(), seconds, int(dec.State.Gap))
	eventType, reason := dec.Event()
	msg := dec.Reason
	if dec.Action == surge.Complete || dec.Action == surge.Abort {
		msg = fmt.Sprintf("%s (capacity gap %d)", dec.Reason, dec.State.Gap)
	}
	c.record(ctx, log, d, eventType, reason, msg)
}

func (c *surgeReports) record(ctx context.Context, log *slog.Logger, d *appsv1.Deployment, eventType, reason, msg string) {
	if c.deps.Events == nil {
		return
	}
	ref := corev1.ObjectReference{Kind: string(config.KindDeployment), APIVersion: config.KindDeployment.Spec().APIVersion(), Namespace: d.Namespace, Name: d.Name, UID: d.UID}
	if err := c.deps.Events.RecordFor(ctx, ref, eventType, reason, msg); err != nil {
		log.WarnContext(ctx, "could not record Kubernetes Event", slog.String("error", err.Error()))
	}
}

// cut bounds a message quoted from elsewhere (an API error quotes the object) to 1 KiB.
func cut(s string) string {
	const max = 1024
	if len(s) <= max {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:max], len(s))
}
