package handlers

import "context"

// CleanupPDBs runs the sweeps' clean-up of the PodDisruptionBudgets pacing created.
func (r *Reconciler) CleanupPDBs(ctx context.Context) { r.cleanupPDBs(ctx) }
