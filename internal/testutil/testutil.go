// Package testutil holds the helpers the tests of several packages share: what the fake
// Kubernetes clients recorded, and a buffer safe to write and read from any goroutine.
package testutil

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

// GenerateNames makes a fake client name what it creates with metadata.generateName as the API
// server does (the prefix and a suffix of its own; client-go's fake leaves the name empty, so
// a second such object would collide with the first).
func GenerateNames(c interface {
	PrependReactor(string, string, k8stesting.ReactionFunc)
}) {
	var n atomic.Int64
	c.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if o, err := meta.Accessor(a.(k8stesting.CreateAction).GetObject()); err == nil && o.GetName() == "" && o.GetGenerateName() != "" {
			o.SetName(fmt.Sprintf("%s%05d", o.GetGenerateName(), n.Add(1)))
		}
		return false, nil, nil // the tracker stores it
	})
}

// ActionRecorder is a fake client that records its API calls: client-go's fake Clientset and
// dynamic FakeDynamicClient are.
type ActionRecorder interface {
	Actions() []k8stesting.Action
}

// Verbs returns the API calls c recorded, in order, each as "verb resource" (for example
// "patch pods"; a subresource is not named). It is never nil.
func Verbs(c ActionRecorder) []string {
	out := []string{}
	for _, a := range c.Actions() {
		out = append(out, a.GetVerb()+" "+a.GetResource().Resource)
	}
	return out
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers (process output, logs).
// The zero value is ready to use.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
