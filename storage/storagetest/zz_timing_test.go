package storagetest

import (
	"context"
	"testing"
	"time"

	"github.com/otpstep/otpstep/storage"
)

func TestZZTiming(t *testing.T) {
	t0 := time.Now()
	dsn := PostgresDSN(t)
	t.Log("create db", time.Since(t0))
	t0 = time.Now()
	s, err := storage.Open(context.Background(), dsn, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t.Log("open", time.Since(t0))
	t0 = time.Now()
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Log("migrate", time.Since(t0))
	t0 = time.Now()
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Log("migrate2", time.Since(t0))
}
