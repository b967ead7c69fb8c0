package cluster

import (
	"fmt"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// UserConfig is a client config for a user with no permissions but those RBAC gives it (and
// the groups'), for tests that prove least privilege against the real authorizer.
func (cp *ControlPlane) UserConfig(name string, groups ...string) (*rest.Config, error) {
	user, err := cp.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, fmt.Errorf("adding user %s: %w", name, err)
	}
	return rest.CopyConfig(user.Config()), nil
}
