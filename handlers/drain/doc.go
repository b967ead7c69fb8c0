// Package drain is the drain policy, pure: what to do with a pod (Decide, DecideWith: pod +
// configuration + clock + facts in, a Decision out), the gates that hold a drain and the facts
// they need, when a drain started, and the guarded JSON patch that applies a decision (Patch).
// It does no I/O: it imports the configuration, the Kubernetes API types and the standard
// library only (TestPolicyIsPure fails otherwise). Package handlers reads the facts a decision
// asks for and writes what it decides. The names it reads and writes (the finalizer, the
// annotations, the reasons and gates) are package names'.
package drain
