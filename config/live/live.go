// Package live follows the function's ConfigMap through the API (Live), so every replica
// applies a configuration change without a restart. It is the only part of the configuration
// that does I/O: package config itself (keys, defaults, parsing) imports no client.
package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"function/config"
	"function/names"
)

// Live follows one ConfigMap through the API (a watch on that object only), so every replica
// applies a change within moments, without a restart. Its data overrides Base (the values of
// the environment and mounted files). An invalid change keeps the last good configuration and
// says why: a log line and a Warning Event on the ConfigMap. A ConfigMap that carries
// config.AnnotationUninstalling, or that is gone, means the function is being uninstalled.
type Live struct {
	Client          kubernetes.Interface
	Namespace, Name string
	Base            map[string]string
	Log             *slog.Logger
	// Apply receives every new configuration, the first one before Run's start returns.
	Apply func(config.Config)

	mu   sync.Mutex
	last *config.Config
}

// EventInvalidConfiguration is the reason of the Warning Event on an invalid ConfigMap.
const EventInvalidConfiguration = "InvalidConfiguration"

// ErrNotSynced is returned when the ConfigMap could not be read within Start's wait (RBAC
// missing, the API server away). The watch goes on and applies the ConfigMap once it can read it.
var ErrNotSynced = errors.New("the ConfigMap could not be read yet")

// Start starts the watch and waits, at most `wait` (and until ctx ends), until the first
// configuration has been applied; else it returns ErrNotSynced and the watch goes on. The
// watch ends with ctx.
func (l *Live) Start(ctx context.Context, wait time.Duration) error {
	factory := informers.NewSharedInformerFactoryWithOptions(l.Client, 0, informers.WithNamespace(l.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", l.Name).String()
		}))
	informer := factory.Core().V1().ConfigMaps()
	reg, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { l.apply(ctx, asConfigMap(obj)) },
		UpdateFunc: func(_, obj any) { l.apply(ctx, asConfigMap(obj)) },
		DeleteFunc: func(any) { l.apply(ctx, nil) },
	})
	if err != nil {
		return fmt.Errorf("watching ConfigMap %s/%s: %w", l.Namespace, l.Name, err)
	}
	factory.Start(ctx.Done())
	waitCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	// The handler's own HasSynced: the informer's says only that the store holds the first
	// list, not that the handler has applied it.
	if !cache.WaitForCacheSync(waitCtx.Done(), reg.HasSynced) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("watching ConfigMap %s/%s: %w", l.Namespace, l.Name, err)
		}
		return fmt.Errorf("watching ConfigMap %s/%s for %s: %w", l.Namespace, l.Name, wait, ErrNotSynced)
	}
	if _, err := informer.Lister().ConfigMaps(l.Namespace).Get(l.Name); apierrors.IsNotFound(err) {
		l.apply(ctx, nil)
	}
	return nil
}

func asConfigMap(obj any) *corev1.ConfigMap {
	cm, _ := obj.(*corev1.ConfigMap)
	return cm
}

// apply turns the ConfigMap (nil: gone) into a configuration and hands a valid one to Apply.
func (l *Live) apply(ctx context.Context, cm *corev1.ConfigMap) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cm == nil {
		cfg := config.Default()
		if l.last != nil {
			cfg = *l.last
		} else if base, err := config.Parse(l.Base); err == nil {
			cfg = base
		}
		cfg.Uninstalling = true
		l.Log.WarnContext(ctx, "ConfigMap not found: uninstall mode, no finalizer is added and every one is removed",
			slog.String("configMap", l.Namespace+"/"+l.Name))
		l.last = &cfg
		l.Apply(cfg)
		return
	}
	values := maps.Clone(l.Base)
	if values == nil {
		values = map[string]string{}
	}
	for k, v := range cm.Data {
		values[k] = strings.TrimSpace(v)
	}
	cfg, err := config.Parse(values)
	if err != nil {
		l.Log.ErrorContext(ctx, "invalid configuration in the ConfigMap: keeping the last good one",
			slog.String("configMap", l.Namespace+"/"+l.Name), slog.String("error", err.Error()))
		l.warn(ctx, cm, fmt.Sprintf("Invalid configuration, the last good one stays in force: %v", err))
		return
	}
	cfg.Uninstalling = strings.EqualFold(strings.TrimSpace(cm.Annotations[names.AnnotationUninstalling]), "true")
	if l.last != nil && reflect.DeepEqual(*l.last, cfg) {
		return
	}
	l.Log.InfoContext(ctx, "configuration applied", slog.String("configMap", l.Namespace+"/"+l.Name),
		slog.String("resourceVersion", cm.ResourceVersion), slog.Bool("uninstalling", cfg.Uninstalling))
	l.last = &cfg
	l.Apply(cfg)
}

// warn records a Warning Event on the ConfigMap; failing to is only logged.
func (l *Live) warn(ctx context.Context, cm *corev1.ConfigMap, msg string) {
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: cm.Name + ".", Namespace: cm.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "ConfigMap", APIVersion: "v1", Namespace: cm.Namespace, Name: cm.Name,
			UID: cm.UID, ResourceVersion: cm.ResourceVersion},
		Reason: EventInvalidConfiguration, Message: msg, Type: corev1.EventTypeWarning,
		Source:              corev1.EventSource{Component: names.Component},
		ReportingController: names.ReportingController, ReportingInstance: names.Component,
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	if _, err := l.Client.CoreV1().Events(cm.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		l.Log.WarnContext(ctx, "could not record the Warning Event on the ConfigMap", slog.String("error", err.Error()))
	}
}
