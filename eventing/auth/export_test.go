package auth

// WaitRenewals waits for the background renewals started so far to end.
func (v *Verifier) WaitRenewals() { v.renewals.Wait() }
