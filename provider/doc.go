// Package provider composes fosite into otpstep's OAuth2 and OpenID Connect
// provider: ID-token signing keys and their JWKS, the email second-factor stage,
// bearer-token authentication and the linked-identity policy.
// It sits between web and storage, holds no package-level state, and receives
// its storage, clock and secrets through constructors.
package provider
