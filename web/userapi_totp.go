package web

import (
	"encoding/json"
	"net/http"

	"github.com/google/uuid"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/web/jsonapi"
)

// Scopes of PACE's CreateTOTP: either allows the route; only the second
// allows no credentials, within provider.DeviceTOTPFreshAccountWindow of the
// account's creation.
const (
	ScopeDeviceTOTPCreate           = "user:device-totps:create"
	ScopeDeviceTOTPCreateAfterLogin = "user:device-totps:create-after-login"
)

// deviceTOTPType is the JSON:API type of PACE's DeviceTOTP.
const deviceTOTPType = "deviceTOTP"

// createTOTPBody is PACE's DeviceTOTPRequest.
type createTOTPBody struct {
	Data *struct {
		Type       *string `json:"type"`
		ID         *string `json:"id"`
		Attributes *struct {
			OTP      *string `json:"otp"`
			Password *string `json:"password"`
			PIN      *string `json:"pin"`
		} `json:"attributes"`
	} `json:"data"`
}

// deviceTOTPResource is the 201 body of CreateTOTP: PACE's DeviceTOTP.
type deviceTOTPResource struct {
	Data struct {
		Type       string `json:"type"`
		ID         string `json:"id"`
		Attributes struct {
			Secret    string `json:"secret"`
			Period    int    `json:"period"`
			Digits    int    `json:"digits"`
			Algorithm string `json:"algorithm"`
		} `json:"attributes"`
	} `json:"data"`
}

// createTOTP is POST {prefix}/user/devices/totp (PACE's CreateTOTP): the
// caller re-authenticates (provider.AuthorizeDeviceTOTP: OTP, password, PIN,
// or nothing for a fresh account with the -after-login scope; wrong → 403
// invalid-credentials), then gets a device TOTP for the device data.id,
// replacing that device's earlier one: 201 with the secret, shown this once.
func (s *Server) createTOTP(w http.ResponseWriter, r *http.Request, c *apiCaller) error {
	var body createTOTPBody
	if err := jsonapi.DecodeBody(r, &body); err != nil {
		return err
	}
	switch {
	case body.Data == nil:
		return jsonapi.Validation("/data", "data is required.")
	case body.Data.Type == nil || *body.Data.Type != deviceTOTPType:
		return jsonapi.Validation("/data/type", `data.type must be "deviceTOTP".`)
	case body.Data.ID == nil:
		return jsonapi.Validation("/data/id", "data.id (the device's uuid) is required.")
	}
	if _, err := uuid.Parse(*body.Data.ID); err != nil || len(*body.Data.ID) != 36 {
		return jsonapi.Validation("/data/id", "data.id must be a uuid.")
	}
	creds := provider.DeviceTOTPCredentials{IP: s.clientIP(r),
		FreshAccount: c.principal.Scopes.Has(ScopeDeviceTOTPCreateAfterLogin)}
	if a := body.Data.Attributes; a != nil {
		for _, v := range []struct {
			value   *string
			pointer string
		}{{a.OTP, "/data/attributes/otp"}, {a.Password, "/data/attributes/password"}, {a.PIN, "/data/attributes/pin"}} {
			if v.value != nil && len(*v.value) > 1024 {
				return jsonapi.Validation(v.pointer, "The value is too long.")
			}
		}
		creds.OTP, creds.Password, creds.PIN = a.OTP, a.Password, a.PIN
	}
	if err := s.p.AuthorizeDeviceTOTP(r.Context(), c.user, creds); err != nil {
		return err
	}
	created, err := s.p.CreateDeviceTOTP(r.Context(), c.user, *body.Data.ID)
	if err != nil {
		return err
	}
	var out deviceTOTPResource
	out.Data.Type, out.Data.ID = deviceTOTPType, created.DeviceID
	out.Data.Attributes.Secret, out.Data.Attributes.Period = created.Secret, created.Period
	out.Data.Attributes.Digits, out.Data.Attributes.Algorithm = created.Digits, created.Algorithm
	// The secret leaves once: never cached on the way.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", jsonapi.MediaType)
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(out) // the status is sent: a failed write only reaches a gone client
	return nil
}
