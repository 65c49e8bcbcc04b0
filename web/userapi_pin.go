package web

import (
	"net/http"

	"github.com/otpstep/otpstep/web/jsonapi"
)

// Scopes of PACE's credential checks (docs/api.md).
const (
	ScopePINCheck      = "user:users.pin:check"
	ScopePINUpdate     = "user:users.pin:update"
	ScopePasswordCheck = "user:users.password:check"
)

// checkUserPIN is GET {prefix}/user/pin (PACE's CheckUserPIN): 200 when the
// user has set a PIN, 404 when not. PACE's timeout (long polling until a
// PIN is set) is accepted and answered at once.
func (s *Server) checkUserPIN(w http.ResponseWriter, r *http.Request, c *apiCaller) error {
	ok, err := s.p.HasPIN(r.Context(), c.user.ID)
	if err != nil {
		return err
	}
	if !ok {
		return jsonapi.NotFound("The user has no PIN.")
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// checkUserPassword is GET {prefix}/user/password (PACE's
// CheckUserPassword): 200 when the user has a password, 404 when not (a
// user of an embedding host, or one created by a partner sign-in).
func (s *Server) checkUserPassword(w http.ResponseWriter, r *http.Request, c *apiCaller) error {
	if c.user.PasswordHash == "" {
		return jsonapi.NotFound("The user has no password.")
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// pinOrPassword is the 200 body of PACE's CheckUserPinOrPassword.
type pinOrPassword struct {
	PIN      bool `json:"pin"`
	Password bool `json:"password"`
}

// checkUserPinOrPassword is GET {prefix}/user/pin-or-password: which of the
// two the user has. It needs both scopes, pin:check (checked by userAPI)
// and password:check.
func (s *Server) checkUserPinOrPassword(w http.ResponseWriter, r *http.Request, c *apiCaller) error {
	if !c.principal.Scopes.Has(ScopePasswordCheck) {
		return jsonapi.InsufficientScope(ScopePasswordCheck)
	}
	pin, err := s.p.HasPIN(r.Context(), c.user.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pinOrPassword{PIN: pin, Password: c.user.PasswordHash != ""})
	return nil
}

// updateUserPINBody is PACE's UserPINAndOTPRequest; Android's SDK adds an id.
type updateUserPINBody struct {
	Data *struct {
		Type       *string `json:"type"`
		ID         *string `json:"id"`
		Attributes *struct {
			PIN *string `json:"pin"`
			OTP *string `json:"otp"`
		} `json:"attributes"`
	} `json:"data"`
}

// updateUserPIN is PUT {prefix}/user/pin (PACE's UpdateUserPIN): set the
// PIN, authorised by a live account OTP. 200; 406 pin-not-secure for a PIN
// breaking PACE's rules; 403 invalid-credentials for a wrong OTP.
func (s *Server) updateUserPIN(w http.ResponseWriter, r *http.Request, c *apiCaller) error {
	var body updateUserPINBody
	if err := jsonapi.DecodeBody(r, &body); err != nil {
		return err
	}
	switch {
	case body.Data == nil:
		return jsonapi.Validation("/data", "data is required.")
	case body.Data.Type == nil || *body.Data.Type != "pin":
		return jsonapi.Validation("/data/type", `data.type must be "pin".`)
	case body.Data.Attributes == nil:
		return jsonapi.Validation("/data/attributes", "data.attributes is required.")
	case body.Data.Attributes.OTP == nil || *body.Data.Attributes.OTP == "":
		return jsonapi.Validation("/data/attributes/otp", "otp is required.")
	case len(*body.Data.Attributes.OTP) > 64:
		return jsonapi.Validation("/data/attributes/otp", "otp is too long.")
	}
	pin := ""
	if body.Data.Attributes.PIN != nil {
		pin = *body.Data.Attributes.PIN
	}
	if err := s.p.SetPIN(r.Context(), c.user, pin, *body.Data.Attributes.OTP); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
