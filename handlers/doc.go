// Package handlers applies the pure packages (handlers/drain: the drain policy;
// handlers/advice: advice's findings; handlers/surge: surge rollouts) to the cluster: the Reconciler reads what a decision
// needs (the live pod, its owner's replicas, its EndpointSlices), writes what it decides with
// guarded JSON patches, records Events, and owns the re-checks and sweeps (Run). Every API call
// is here; the decisions themselves are not.
//
// Each of the Reconciler's concerns has its file: reconcile.go (read live, decide, apply
// guarded, retry), decide.go (decide with facts), facts.go (factReads: one read per fact a gate
// of drain.Gates needs), owners.go (ownerReaders: one reader per owner kind the table of kinds
// in config marks Read), siblings.go, rechecks.go, sweep.go, sweeplease.go, advicecheck.go,
// pacing.go, capacitygap.go, stale.go, events.go, serverclock.go, release.go. Surge rollouts
// are a controller of their own, the SurgeController (surgecontroller.go: its queue, sweeps,
// VPA and pod events; surgeapply.go: decide, claim, write; surgebudget.go: the budget's Lease),
// on the Deps it shares with the Reconciler. Every in-memory cache is a bounded map
// (bounded.go). The README's "Layout" says where each kind of change
// goes.
package handlers
