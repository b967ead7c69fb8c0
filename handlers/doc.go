// Package handlers applies the drain policy (package handlers/drain) to the cluster: the
// Reconciler reads what a decision needs (the live pod, its owner's replicas, its
// EndpointSlices), writes what it decides with guarded JSON patches, records Events, and owns
// the re-checks and sweeps (Run). Every API call is here; the decision itself is not.
package handlers
