// Package handlers applies the pure packages (handlers/drain: the drain policy;
// handlers/advice: advice's findings; handlers/surge: surge rollouts) to the cluster, as one
// type per concern on a shared Deps (clients, clock, log, Event recorder, metrics, dry-run):
// Owners reads pods' workloads with one generic reader; OwnerChecks advises and paces after a
// finalizer is added; the Reconciler (the drain reconciler) reads what a decision needs, writes
// it with Guarded, the one guarded decide-write-reread loop, and re-checks waiting drains;
// the Releaser uninstalls; the Sweeper sweeps every pod, pacing's budgets and the surge
// rollouts; the SurgeController runs surge rollouts. The decisions themselves are not here.
//
// docs/design.md ("Layout") lists the files of each concern and their levels, which
// TestLayersRunOneWay keeps: a file uses only its own concern and lower levels.
package handlers
