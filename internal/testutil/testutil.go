// Package testutil holds the helpers the tests of several packages share: what the fake
// Kubernetes clients recorded, and a buffer safe to write and read from any goroutine.
package testutil

import (
	"bytes"
	"sync"

	k8stesting "k8s.io/client-go/testing"
)

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
