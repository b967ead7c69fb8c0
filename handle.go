package function

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilnet "k8s.io/apimachinery/pkg/util/net"

	"function/eventing"
	"function/eventing/auth"
	"function/handlers"
	"function/handlers/drain"
	"function/telemetry"
)

// authenticate answers a request whose sender is not authenticated (see auth.Verifier.Verify)
// and returns false; true lets the request be read. Before setup has read SENDER_AUDIENCE (or
// when setup failed) it answers 503: whether a token is needed is not known yet. It reads
// the headers only.
func (f *Function) authenticate(ctx context.Context, w http.ResponseWriter, r *http.Request) bool {
	f.mu.RLock()
	v, known := f.senders, f.sendersKnown
	f.mu.RUnlock()
	switch {
	case !known:
		eventing.WriteError(w, http.StatusServiceUnavailable, "not ready: starting")
		return false
	case v == nil:
		return true
	}
	_, err := v.Verify(ctx, r.Header)
	if err == nil {
		return true
	}
	var refused *auth.Error
	if !errors.As(err, &refused) {
		refused = &auth.Error{Status: http.StatusServiceUnavailable, Message: err.Error(), RetryAfter: 1}
	}
	level := slog.LevelWarn
	if refused.Status >= http.StatusInternalServerError {
		level = slog.LevelError
	}
	if f.log.Enabled(ctx, level) {
		f.log.LogAttrs(ctx, level, "refused sender", slog.Int("status", refused.Status), slog.String("reason", refused.Message),
			slog.String("remote", r.RemoteAddr))
	}
	refused.Write(w, eventing.WriteError)
	return false
}

// Handle serves one HTTP request: kn func's http scaffolding (func-go's http runtime) calls it
// for every request but the health probes. GET /metrics is served as is; any other request's
// sender is authenticated first when SENDER_AUDIENCE is set (see authenticate). It reads one CloudEvent from the request (binary or
// structured mode), handles it with HandleEvent and writes the answer, all within this call:
// no event ever waits for another request.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) {
	tel := f.telemetry() // nil before Start: nothing is recorded, the event is answered 503
	if r.Method == http.MethodGet && r.URL.Path == MetricsPath {
		tel.MetricsHandler().ServeHTTP(w, r)
		return
	}
	defer f.watch.begin()()
	defer func() {
		if p := recover(); p != nil {
			f.log.Error("handling a request panicked; answering 500", slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			eventing.WriteError(w, http.StatusInternalServerError, fmt.Sprintf("internal error: %v", p))
		}
	}()
	ctx, cancel := context.WithTimeout(r.Context(), f.eventTimeout)
	defer cancel()
	// The sender first (SENDER_AUDIENCE), from the headers alone: a refused request's body is
	// never read. Alive's in-process probe event cannot be sent from outside.
	if r.Context().Value(probeKey{}) == nil && !f.authenticate(ctx, w, r) {
		return
	}
	e, err := eventing.ReadRequest(ctx, r)
	if err != nil {
		status := eventing.Status(err)
		f.log.Warn("rejected request", slog.Int("status", status), slog.String("reason", err.Error()),
			slog.String("method", r.Method), slog.String("contentType", r.Header.Get("Content-Type")))
		eventing.WriteError(w, status, err.Error())
		return
	}
	start := time.Now()
	ctx, span := tel.StartEvent(ctx, *e)
	defer span.End()
	reply, err := f.HandleEvent(ctx, *e)
	if err != nil {
		status, msg := http.StatusInternalServerError, err.Error()
		var res *cehttp.Result
		if protocol.ResultAs(err, &res) {
			status, msg = res.StatusCode, fmt.Sprintf(res.Format, res.Args...)
		}
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, msg)
		}
		tel.Event(ctx, e.Type(), status, time.Since(start))
		eventing.WriteError(w, status, msg) // also a 202 with its one-line message
		return
	}
	tel.Event(ctx, e.Type(), http.StatusOK, time.Since(start))
	if reply != nil {
		telemetry.InjectEvent(ctx, reply) // the reply continues the event's trace
	}
	if err := eventing.WriteReply(ctx, w, reply); err != nil {
		f.log.Warn("could not write the reply", senderAttr("ceId", e.ID()), slog.String("error", err.Error()))
	}
}

// senderAttr is a log attribute of a value the sender chose (an event's id, type, subject,
// source): as is up to drain.MaxQuoted bytes, else cut by drain.Quote, with its length.
func senderAttr(key, v string) slog.Attr {
	if len(v) > drain.MaxQuoted {
		v = drain.Quote(v)
	}
	return slog.String(key, v)
}

// What HandleEvent needs of the controllers function.go wires (parts), and nothing more: the
// drain reconciler's two entries for an event, the sweeps' ask, the surge rollouts' two
// triggers.
type (
	podReconciler interface {
		Reconcile(ctx context.Context, pod *corev1.Pod) (handlers.Outcome, error)
		ReconcileRef(ctx context.Context, namespace, name string) (handlers.Outcome, error)
	}
	sweepAsker   interface{ AskedByEvent() bool }
	surgeTrigger interface {
		ForPod(ctx context.Context, pod *corev1.Pod) (*handlers.SurgeReport, error)
		ForVPA(ctx context.Context, namespace, name string) (*handlers.SurgeReport, error)
	}
)

// HandleEvent decides on one ApiServerSource Pod event and applies the decision (and, with
// surge rollouts on, evaluates the pod's Deployment, or for a VerticalPodAutoscaler event the
// Deployment it targets: see handleVPA). It answers
// 400/413 with a message for an event it rejects (and makes no API call), 503 while not
// ready or when the cluster is unreachable, overloaded or did not answer in time, 500 when
// the cluster failed otherwise (the sender retries both), 202 for a sweep request, and
// otherwise 200 with a reply event for the action taken, or no reply when nothing was done.
// Errors are *cehttp.Result values carrying the HTTP status.
func (f *Function) HandleEvent(ctx context.Context, e event.Event) (*event.Event, error) {
	p, err := f.started()
	if err != nil {
		return nil, cehttp.NewResult(http.StatusServiceUnavailable, "not ready: %v", err)
	}
	var (
		pods  podReconciler = p.drains
		sweep sweepAsker    = p.sweeps
		surge surgeTrigger  = p.surge
	)
	// log writes a line about the event; its attributes are formatted only for a line that is
	// written (most events write none here).
	log := func(level slog.Level, msg string, attrs ...slog.Attr) {
		if f.log.Enabled(ctx, level) {
			f.log.LogAttrs(ctx, level, msg, append([]slog.Attr{senderAttr("ceId", e.ID()), senderAttr("ceType", e.Type()),
				senderAttr("ceSubject", e.Subject())}, attrs...)...)
		}
	}
	if eventing.IsSweep(e) {
		if f.client == nil {
			return nil, cehttp.NewResult(http.StatusUnprocessableEntity, "a sweep needs a cluster (dry-run without one)")
		}
		if !sweep.AskedByEvent() {
			log(slog.LevelDebug, "sweep asked for again within the minimum gap: not repeated", senderAttr("ceSource", e.Source()))
			return nil, cehttp.NewResult(http.StatusAccepted, "sweep not repeated: one was asked for less than %s ago", handlers.MinSweepGap)
		}
		log(slog.LevelInfo, "sweep requested by an event", senderAttr("ceSource", e.Source()))
		return nil, cehttp.NewResult(http.StatusAccepted, "sweep requested")
	}
	in, err := f.decoder.Decode(e)
	if err != nil {
		var bad *eventing.InputError
		if errors.As(err, &bad) {
			log(slog.LevelWarn, "rejected event", slog.Int("status", bad.Status), slog.String("reason", bad.Message))
			return nil, cehttp.NewResult(bad.Status, "%s", bad.Message)
		}
		return nil, cehttp.NewResult(http.StatusBadRequest, "%v", err)
	}
	if in.Object == eventing.ObjectVPA {
		return f.handleVPA(ctx, surge, in, log)
	}
	var out handlers.Outcome
	switch {
	case in.Op == eventing.Delete:
		// Nothing can be written, and nothing is dropped on the event's word: a pending
		// re-check reads the pod and forgets it once it is really gone. A surge rollout's
		// old pod goes this way: its Deployment is evaluated (SurgeController.ForPod).
		log(slog.LevelDebug, "pod deleted", slog.String("pod", in.Namespace+"/"+in.Name))
		return f.surgeReply(ctx, surge, in.Pod, log), nil
	case in.Mode == eventing.Reference:
		out, err = pods.ReconcileRef(ctx, in.Namespace, in.Name)
	default:
		out, err = pods.Reconcile(ctx, in.Pod)
	}
	switch {
	case errors.Is(err, handlers.ErrNoCluster):
		return nil, cehttp.NewResult(http.StatusUnprocessableEntity, "reference-mode event for %s/%s: %v", in.Namespace, in.Name, err)
	case errors.Is(err, handlers.ErrConcurrentWriter):
		// Not the sender's problem: the re-check already scheduled finishes the work.
		log(slog.LevelInfo, "the pod kept changing while applying the decision; a re-check follows", slog.String("pod", in.Namespace+"/"+in.Name), slog.String("error", err.Error()))
		return nil, nil
	case err != nil:
		return nil, failed(ctx, log, slog.String("pod", in.Namespace+"/"+in.Name), err)
	}
	reply, err := eventing.Reply(out)
	if err != nil {
		return nil, cehttp.NewResult(http.StatusInternalServerError, "%v", err)
	}
	pod := in.Pod
	if out.Pod != nil {
		pod = out.Pod // the live pod
	}
	if surged := f.surgeReply(ctx, surge, pod, log); reply == nil {
		reply = surged
	}
	return reply, nil
}

// surgeReply evaluates the surge rollout of the pod's Deployment (SurgeController.ForPod: only
// with surgeRollout on, bounded per Deployment) and returns its reply, if any. It never fails
// the pod's event: what it could not do, the next event or sweep does.
func (f *Function) surgeReply(ctx context.Context, surge surgeTrigger, pod *corev1.Pod, log func(slog.Level, string, ...slog.Attr)) *event.Event {
	rep, err := surge.ForPod(ctx, pod)
	if err == nil {
		var reply *event.Event
		if reply, err = eventing.RolloutReply(rep); err == nil {
			return reply
		}
	}
	log(slog.LevelWarn, "surge rollout: could not evaluate the pod's Deployment; the next event or sweep does",
		slog.String("pod", pod.Namespace+"/"+pod.Name), slog.String("error", err.Error()))
	return nil
}

// handleVPA answers an event about a VerticalPodAutoscaler: surge rollouts evaluate the
// Deployment it targets, on what they read (SurgeController.ForVPA); the event's data is never
// used. A deleted VPA needs nothing (a rollout in flight is followed by its pods' events and
// the sweeps).
func (f *Function) handleVPA(ctx context.Context, surge surgeTrigger, in eventing.Input, log func(slog.Level, string, ...slog.Attr)) (*event.Event, error) {
	if f.client == nil {
		return nil, cehttp.NewResult(http.StatusUnprocessableEntity, "VerticalPodAutoscaler event for %s/%s: %v", in.Namespace, in.Name, handlers.ErrNoCluster)
	}
	if in.Op == eventing.Delete {
		log(slog.LevelDebug, "VerticalPodAutoscaler deleted", slog.String("vpa", in.Namespace+"/"+in.Name))
		return nil, nil
	}
	rep, err := surge.ForVPA(ctx, in.Namespace, in.Name)
	if err != nil {
		return nil, failed(ctx, log, slog.String("vpa", in.Namespace+"/"+in.Name), err)
	}
	reply, err := eventing.RolloutReply(rep)
	if err != nil {
		return nil, cehttp.NewResult(http.StatusInternalServerError, "%v", err)
	}
	return reply, nil
}

// failed answers an event whose handling failed in the cluster: 503 when the cluster is
// unreachable, overloaded or did not answer in time, 500 otherwise (the sender retries both).
func failed(ctx context.Context, log func(slog.Level, string, ...slog.Attr), object slog.Attr, err error) error {
	if ctx.Err() != nil || clusterUnavailable(err) {
		log(slog.LevelWarn, "the cluster is unavailable; the sender will retry", object, slog.String("error", err.Error()))
		return cehttp.NewResult(http.StatusServiceUnavailable, "the cluster is unavailable or did not answer in time: %v", err)
	}
	log(slog.LevelError, "handling event failed", object, slog.String("error", err.Error()))
	return cehttp.NewResult(http.StatusInternalServerError, "%v", err)
}

// clusterUnavailable: the API server could not be reached, was overloaded or timed out, as
// opposed to refusing the request.
func clusterUnavailable(err error) bool {
	return apierrors.IsServiceUnavailable(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsTooManyRequests(err) || utilnet.IsConnectionRefused(err) || utilnet.IsConnectionReset(err) ||
		utilnet.IsProbableEOF(err) || errors.Is(err, context.DeadlineExceeded)
}

// unwrapAll flattens an errors.Join tree one level.
func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
