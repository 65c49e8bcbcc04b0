# otpstep container image: make image (or docker build -t otpstep .).
# The binary is pure Go (SQLite is modernc's, no cgo), so it runs on a
# distroless base that carries only CA certificates, tzdata and a non-root user.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# -trimpath and the VCS stamp (otpstep version) need the .git directory in the
# context; without it the binary reports no revision and still works.
RUN CGO_ENABLED=0 GOOS=linux go build -buildvcs=auto -trimpath -ldflags='-s -w' -o /out/otpstep ./cmd/otpstep

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/otpstep /usr/local/bin/otpstep
USER nonroot:nonroot
WORKDIR /home/nonroot
# Inside a container the server listens on every interface; set
# OTPSTEP_SERVER_PUBLIC_URL to the URL browsers use.
ENV OTPSTEP_SERVER_LISTEN=0.0.0.0:4444
# The admin listener (/metrics, /health/ready): publish it on a private
# network only.
ENV OTPSTEP_SERVER_ADMIN_LISTEN=0.0.0.0:4445
EXPOSE 4444 4445
ENTRYPOINT ["/usr/local/bin/otpstep"]
CMD ["serve"]
