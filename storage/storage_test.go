package storage_test

import (
	"testing"

	"github.com/otpstep/otpstep/storage/storagetest"
)

func TestSQLite(t *testing.T) {
	storagetest.RunTests(t, storagetest.NewSQLite)
}

func TestPostgres(t *testing.T) {
	storagetest.RunTests(t, storagetest.NewPostgres)
}
