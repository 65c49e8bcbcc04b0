#!/usr/bin/env bash
# Tries otpstep with Apache httpd + mod_auth_openidc as a relying party, as
# docs/relying-parties.md describes: curl plays the browser (a cookie jar),
# the emailed codes are read from the --dev server's log. Not part of
# `make test`; needs Debian's apache2 and libapache2-mod-auth-openidc, curl
# and openssl. Every step that fails stops the script with what it got.
#
#   go build -o /tmp/otpstep ./cmd/otpstep
#   OTPSTEP=/tmp/otpstep docs/mod_auth_openidc-check.sh
#
# Ports (all on 127.0.0.1): OP_PORT (4455) and ADMIN_PORT (4455+1) for
# otpstep, RP_PORT..RP_PORT+4 (8089..8093) for Apache's five virtual hosts.
set -euo pipefail

OTPSTEP=${OTPSTEP:?set OTPSTEP to an otpstep binary}
OTPSTEP=$(cd "$(dirname "$OTPSTEP")" && pwd)/$(basename "$OTPSTEP")
OP_PORT=${OP_PORT:-4455}
ADMIN_PORT=${ADMIN_PORT:-$((OP_PORT + 1))}
RP_PORT=${RP_PORT:-8089}
WORK=${WORK:-$(mktemp -d /tmp/otpstep-mod-auth-openidc.XXXXXX)}
OP=http://127.0.0.1:$OP_PORT
LOG=$WORK/otpstep.log
mkdir -p "$WORK/htdocs/protected" "$WORK/htdocs/app" "$WORK/logs" "$WORK/run"
chmod 755 "$WORK"
echo "working in $WORK"

# --- otpstep ---------------------------------------------------------------
cd "$WORK"
export OTPSTEP_SERVER_LISTEN=127.0.0.1:$OP_PORT OTPSTEP_SERVER_ADMIN_LISTEN=127.0.0.1:$ADMIN_PORT
"$OTPSTEP" serve --dev >"$LOG" 2>&1 &
OP_PID=$!
stop() {
	apache2 -f "$WORK/httpd.conf" -k stop 2>/dev/null || true
	kill "$OP_PID" 2>/dev/null || true
}
trap stop EXIT
for _ in $(seq 1 100); do curl -sf "$OP/health/alive" >/dev/null && break; sleep 0.1; done

# Users of their own per run: each account gets otp.max_sends_per_hour (5)
# codes an hour; steps 1-3 take two, 4-6 four.
PASS=rp-check-password-1
new_user() {
	EMAIL=rp-$1-$(date +%s)@example.com
	"$OTPSTEP" --dev users create --email "$EMAIL" --password "$PASS" >/dev/null
}
new_user a

secret_of() { sed -n 's/.*"client_secret": "\([^"]*\)".*/\1/p'; }
new_client() { # id port extra-flags…
	local id=$1 port=$2
	shift 2
	"$OTPSTEP" --dev clients create --id "$id-$(date +%s)" --name "Apache $id" \
		--redirect-uri "http://127.0.0.1:$port/redirect_uri" \
		--post-logout-redirect-uri "http://127.0.0.1:$port/loggedout.html" \
		--scope "openid email" "$@"
}
BASIC=$(new_client basic "$RP_PORT" \
	--backchannel-logout-uri "http://127.0.0.1:$RP_PORT/redirect_uri?logout=backchannel" --backchannel-logout-session-required)
POST=$(new_client post $((RP_PORT + 1)) --token-endpoint-auth-method client_secret_post)
PKJWT=$(new_client pkjwt $((RP_PORT + 2)) --token-endpoint-auth-method private_key_jwt \
	--jwks-uri "http://127.0.0.1:$((RP_PORT + 2))/redirect_uri?jwks=rsa")
STEPUP=$(new_client stepup $((RP_PORT + 3)) --second-factor=false)
# ES256 ID tokens for one client: a key of it first (the others keep RS256).
"$OTPSTEP" --dev keys rotate --alg ES256 >/dev/null
ES256=$(new_client es256 $((RP_PORT + 4)) --id-token-signed-response-alg ES256)
id_of() { sed -n 's/.*"client_id": "\([^"]*\)".*/\1/p'; }

# --- Apache ----------------------------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -keyout rp.key -out rp.crt -days 2 -subj /CN=rp 2>/dev/null
chmod 644 rp.key rp.crt
echo 'protected page: sub=<!--#echo var="OIDC_CLAIM_sub" --> acr=<!--#echo var="OIDC_CLAIM_acr" --> amr=<!--#echo var="OIDC_CLAIM_amr" -->' >htdocs/protected/page.shtml
cp htdocs/protected/page.shtml htdocs/app/page.shtml
echo 'logged out of the RP' >htdocs/loggedout.html

vhost() { # port client-json extra-directives…
	local port=$1 client=$2
	shift 2
	cat <<EOF
Listen 127.0.0.1:$port
<VirtualHost 127.0.0.1:$port>
  OIDCProviderMetadataURL $OP/.well-known/openid-configuration
  OIDCClientID $(id_of <<<"$client")
  OIDCRedirectURI http://127.0.0.1:$port/redirect_uri
  OIDCCryptoPassphrase mod-auth-openidc-check-passphrase
  OIDCPKCEMethod S256
  OIDCScope "openid email"
$(printf '  %s\n' "$@")
  <Location /redirect_uri>
    AuthType openid-connect
    Require valid-user
  </Location>
</VirtualHost>
EOF
}
{
	cat <<EOF
ServerRoot /etc/apache2
ServerName 127.0.0.1
User www-data
Group www-data
PidFile $WORK/run/httpd.pid
DefaultRuntimeDir $WORK/run
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so
LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule include_module /usr/lib/apache2/modules/mod_include.so
LoadModule auth_openidc_module /usr/lib/apache2/modules/mod_auth_openidc.so
ErrorLog $WORK/logs/error.log
LogLevel warn auth_openidc:debug
CustomLog $WORK/logs/access.log "%h %t \"%r\" %>s"
DocumentRoot $WORK/htdocs
TypesConfig /etc/mime.types
AddType text/html .shtml
AddOutputFilter INCLUDES .shtml
<Directory $WORK/htdocs>
  Options +Includes
  Require all granted
</Directory>
EOF
	# A page that needs aal2, the client's secret in a Basic header (default).
	vhost "$RP_PORT" "$BASIC" "OIDCClientSecret $(secret_of <<<"$BASIC")" \
		'OIDCAuthRequestParams acr_values=aal2' \
		'<Location /protected>' '  AuthType openid-connect' '  Require claim acr:aal2' '</Location>'
	vhost $((RP_PORT + 1)) "$POST" "OIDCClientSecret $(secret_of <<<"$POST")" \
		'OIDCProviderTokenEndpointAuth client_secret_post' 'OIDCAuthRequestParams acr_values=aal2' \
		'OIDCProviderAuthRequestMethod POST' \
		'<Location /protected>' '  AuthType openid-connect' '  Require claim acr:aal2' '</Location>'
	# private_key_jwt: the keys before the method, or Apache refuses it.
	# … and the UserInfo request as a POST with the token in the body.
	vhost $((RP_PORT + 2)) "$PKJWT" "OIDCPrivateKeyFiles rp#$WORK/rp.key" "OIDCPublicKeyFiles rp#$WORK/rp.crt" \
		'OIDCUserInfoTokenMethod post_param' \
		'OIDCProviderTokenEndpointAuth private_key_jwt' 'OIDCAuthRequestParams acr_values=aal2' \
		'<Location /protected>' '  AuthType openid-connect' '  Require claim acr:aal2' '</Location>'
	# Step-up: /app takes any login (aal1: this client does not require the
	# second factor), /protected asks for acr_values=aal2 again.
	vhost $((RP_PORT + 3)) "$STEPUP" "OIDCClientSecret $(secret_of <<<"$STEPUP")" \
		'<Location /app>' '  AuthType openid-connect' '  Require valid-user' '</Location>' \
		'<Location /protected>' '  AuthType openid-connect' '  OIDCPathAuthRequestParams acr_values=aal2' \
		'  OIDCUnAutzAction auth true' '  Require claim acr:aal2' '</Location>'
	vhost $((RP_PORT + 4)) "$ES256" "OIDCClientSecret $(secret_of <<<"$ES256")" \
		'OIDCAuthRequestParams acr_values=aal2' \
		'<Location /protected>' '  AuthType openid-connect' '  Require claim acr:aal2' '</Location>'
} >httpd.conf
chown www-data logs run 2>/dev/null || true
apache2 -f "$WORK/httpd.conf" -k start
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$RP_PORT/loggedout.html" && break; sleep 0.1; done

# --- the browser -----------------------------------------------------------
J=$WORK/jar
BODY=
LAST=
fail() {
	echo "FAIL: $*" >&2
	echo "last page: $LAST" >&2
	echo "$BODY" | head -20 >&2
	exit 1
}
# visit GETs $1 and follows redirects; LAST is where it stopped, BODY its body.
visit() {
	local url=$1 out
	for _ in $(seq 1 15); do
		out=$(curl -s -c "$J" -b "$J" -o "$WORK/body" -w '%{http_code} %{redirect_url}' "$url")
		echo "  GET ${out%% *} ${url:0:140}"
		if [ -z "${out#* }" ]; then break; fi
		url=${out#* }
	done
	LAST=$url BODY=$(cat "$WORK/body")
}
# submit POSTs form fields $2… to $1, then follows the redirect.
submit() {
	local url=$1 out args=()
	shift
	for kv in "$@"; do args+=(--data-urlencode "$kv"); done
	out=$(curl -s -c "$J" -b "$J" -o "$WORK/body" -w '%{http_code} %{redirect_url}' "${args[@]}" "$url")
	echo "  POST ${out%% *} ${url:0:140}"
	if [ -n "${out#* }" ]; then visit "${out#* }"; else LAST=$url BODY=$(cat "$WORK/body"); fi
}
unescape() { sed 's/&amp;/\&/g; s/&#43;/+/g; s/&#34;/"/g; s/&#39;/'"'"'/g'; }
field() { sed -n "s/.*name=\"$1\" value=\"\([^\"]*\)\".*/\1/p" <<<"$BODY" | head -1 | unescape; }
action() { sed -n 's/.*<form method="post" action="\([^"]*\)".*/\1/p' <<<"$BODY" | head -1 | unescape; }
mails() { grep -c 'mail: not sent' "$LOG" || true; }
# authenticate answers otpstep's pages from where the browser is (LAST):
# the password, the emailed code (the newest in the log, waiting for it),
# the consent page; then the browser is back at the relying party.
authenticate() {
	local sent=$1 code
	if [[ $LAST == $OP/login\?* ]]; then
		submit "$OP$(action)" "csrf_token=$(field csrf_token)" "return_to=$(field return_to)" "email=$EMAIL" "password=$PASS"
	fi
	if [[ $LAST == $OP/login/otp* ]]; then
		for _ in $(seq 1 50); do [ "$(mails)" -gt "$sent" ] && break; sleep 0.2; done
		code=$(grep 'mail: not sent' "$LOG" | tail -1 | sed -n 's/.*is:\\n\\n *\([0-9]*\)\\n.*/\1/p')
		[ -n "$code" ] || fail "no code was mailed"
		submit "$OP$(action)" "csrf_token=$(field csrf_token)" "return_to=$(field return_to)" "otp=$code"
	fi
	if grep -q 'action="/oauth2/consent"' <<<"$BODY"; then
		submit "$OP/oauth2/consent" "csrf_token=$(field csrf_token)" "authorize_query=$(field authorize_query)" consent=allow
	fi
}
login() { # rp path
	local sent
	sent=$(mails)
	visit "$1$2"
	# OIDCProviderAuthRequestMethod POST: a page that posts the request.
	if grep -q "<form method=\"post\" action=\"$OP/oauth2/auth\">" <<<"$BODY"; then
		local fields=()
		while read -r kv; do fields+=("$kv"); done < <(sed -n 's/.*<input type="hidden" name="\([^"]*\)" value="\([^"]*\)">.*/\1=\2/p' <<<"$BODY" | unescape)
		submit "$OP/oauth2/auth" "${fields[@]}"
	fi
	authenticate "$sent"
}
expect_page() { # rp path want-in-body
	[[ $LAST == "$1$2" ]] && grep -q "$3" <<<"$BODY" || fail "want $1$2 showing '$3'"
	echo "ok: $1$2 shows '$3'"
}
expect_login_asked() { # rp path: the RP sends the browser to otpstep again
	local out
	out=$(curl -s -c "$J" -b "$J" -o /dev/null -w '%{redirect_url}' "$1$2")
	[[ $out == $OP/oauth2/auth\?* ]] || fail "$1$2 did not send the browser to otpstep: '$out'"
	echo "ok: $1$2 asks otpstep again"
}

RP=http://127.0.0.1:$RP_PORT
echo "1. login with acr_values=aal2 and Require claim acr:aal2 (client_secret_basic)"
login "$RP" /protected/page.shtml
expect_page "$RP" /protected/page.shtml 'acr=aal2 amr=pwd,otp'

echo "2. logout at the RP: end_session_endpoint with id_token_hint, back at the RP"
visit "$RP/redirect_uri?logout=$RP/loggedout.html"
expect_page "$RP" /loggedout.html 'logged out of the RP'
expect_login_asked "$RP" /protected/page.shtml

echo "3. back-channel logout: a logout at otpstep ends the RP's session"
login "$RP" /protected/page.shtml
expect_page "$RP" /protected/page.shtml 'acr=aal2'
# Step 2's logout was told on the back channel too: wait for one more.
backchannels() { grep -c 'POST /redirect_uri?logout=backchannel HTTP/1.1" 200' logs/access.log || true; }
told=$(backchannels)
visit "$OP/logout"
submit "$OP$(action)" "csrf_token=$(field csrf_token)"
grep -q 'You are signed out' <<<"$BODY" || fail "otpstep's logout"
for _ in $(seq 1 50); do [ "$(backchannels)" -gt "$told" ] && break; sleep 0.2; done
[ "$(backchannels)" -gt "$told" ] || fail "no back-channel logout reached the RP"
expect_login_asked "$RP" /protected/page.shtml

new_user b
for port in $((RP_PORT + 1)) $((RP_PORT + 2)); do
	echo "4. token endpoint authentication of the RP at $port ($([ "$port" = $((RP_PORT + 1)) ] && echo "client_secret_post; the authorization request POSTed" || echo "private_key_jwt; UserInfo POSTed"))"
	rm -f "$J"
	login "http://127.0.0.1:$port" /protected/page.shtml
	expect_page "http://127.0.0.1:$port" /protected/page.shtml 'acr=aal2'
	visit "http://127.0.0.1:$port/redirect_uri?logout=http://127.0.0.1:$port/loggedout.html"
	expect_page "http://127.0.0.1:$port" /loggedout.html 'logged out of the RP'
done

grep -q 'method=POST path=/userinfo status=200' "$LOG" || fail "no UserInfo POST with the token in the body answered 200"
echo "ok: UserInfo as a POST with access_token in the body"

echo "5. step-up: an aal1 session, then a page that needs aal2"
RP=http://127.0.0.1:$((RP_PORT + 3))
rm -f "$J"
login "$RP" /app/page.shtml
expect_page "$RP" /app/page.shtml 'acr=aal1 amr=pwd'
sent=$(mails)
visit "$RP/protected/page.shtml" # mod_auth_openidc answers an HTML refresh to /oauth2/auth
step=$(sed -n 's/.*url=\([^"]*\)".*/\1/p' <<<"$BODY" | unescape)
[[ $step == $OP/oauth2/auth\?*acr_values=aal2* ]] || fail "no step-up request"
visit "$step"
[[ $LAST == $OP/login/otp* ]] || fail "step-up did not go straight to the OTP page"
authenticate "$sent"
expect_page "$RP" /protected/page.shtml 'acr=aal2 amr=pwd,otp'

echo "6. ES256 ID tokens, verified by mod_auth_openidc through the JWKS (RS256 and ES256 keys)"
RP=http://127.0.0.1:$((RP_PORT + 4))
rm -f "$J"
login "$RP" /protected/page.shtml
expect_page "$RP" /protected/page.shtml 'acr=aal2 amr=pwd,otp'
grep -q 'JWT signature verification with algorithm "ES256" was successful' logs/error.log ||
	fail "Apache's debug log shows no ES256 ID token verified"
grep -q 'JWT signature verification with algorithm "RS256" was successful' logs/error.log ||
	fail "Apache's debug log shows no RS256 ID token verified (the other clients)"
echo "ok: mod_auth_openidc verified this client's ES256 ID token and the others' RS256 ones"

# mod_auth_openidc goes on without userinfo when it fails: every answer 200.
if grep 'path=/userinfo status=' "$LOG" | grep -qv 'status=200'; then fail "a UserInfo request failed: $(grep 'path=/userinfo status=' "$LOG" | grep -v status=200 | head -1)"; fi
echo "ok: every UserInfo request answered 200"

echo "all checks passed"
