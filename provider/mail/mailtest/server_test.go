package mailtest_test

import (
	"errors"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/otpstep/otpstep/provider/mail/mailtest"
)

const rawMessage = "From: a@example.test\r\nTo: b@example.test\r\nSubject: =?UTF-8?q?Gr=C3=BC=C3=9Fe?=\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=XX\r\n\r\n" +
	"--XX\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncode =3D 4711\r\n" +
	"--XX\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+NDcxMTwvYj4=\r\n" +
	"--XX--\r\n"

func send(addr string) error {
	return smtp.SendMail(addr, nil, "a@example.test", []string{"b@example.test"}, []byte(rawMessage))
}

func TestServer_RecordsAndDecodesMessages(t *testing.T) {
	srv := mailtest.StartServer(t)
	if err := send(srv.Addr()); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	msgs := srv.WaitMessages(1, 5*time.Second)
	m := msgs[0]
	if m.From != "a@example.test" || len(m.To) != 1 || m.To[0] != "b@example.test" {
		t.Errorf("envelope %q -> %q", m.From, m.To)
	}
	if m.Subject != "Grüße" || strings.TrimSpace(m.Text) != "code = 4711" || m.HTML != "<b>4711</b>" {
		t.Errorf("decoded subject %q text %q html %q", m.Subject, m.Text, m.HTML)
	}
}

func TestServer_FailingDownAndUp(t *testing.T) {
	srv := mailtest.StartServer(t)

	srv.SetFailing(451)
	var tpErr *textproto.Error
	if err := send(srv.Addr()); !errors.As(err, &tpErr) || tpErr.Code != 451 {
		t.Errorf("SendMail while failing = %v, want a 451 reply", err)
	}
	srv.SetFailing(0)

	srv.Down()
	if err := send(srv.Addr()); err == nil || errors.As(err, &tpErr) {
		t.Errorf("SendMail while down = %v, want a connection error", err)
	}
	srv.Up()
	if err := send(srv.Addr()); err != nil {
		t.Fatalf("SendMail after Up: %v", err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d messages recorded, want 1", n)
	}
}
