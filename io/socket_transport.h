// SocketTransport: a migration stream over a connected TCP socket, written
// and read through io_uring (UringStream) with bounded write-behind.
// SocketListener: listen/accept on an address, for the receiving side.
//
// Thread-safety: none; one thread uses a transport or listener at a time
// (a sender and a receiver on different threads use different objects).

#ifndef CONVERGE_IO_SOCKET_TRANSPORT_H_
#define CONVERGE_IO_SOCKET_TRANSPORT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"
#include "io/transport.h"
#include "io/uring_stream.h"

namespace converge {

// How a dead link or peer becomes an error instead of a hang. Reads and
// writes go through io_uring, which waits on socket readiness and ignores
// SO_RCVTIMEO and SO_SNDTIMEO; what bounds them is TCP itself.
// TCP_USER_TIMEOUT aborts a connection whose sent data stays unacknowledged
// that long, and keepalive probes (bounded by the same timeout) abort an
// idle receiving end whose peer is gone. Either wakes the pending operation
// with ETIMEDOUT. Without them Linux retransmits for about 15 minutes.
struct TcpLiveness {
  // 0 keeps the kernel's default. Shorter notices a dead link sooner but
  // may abort a connection over a merely congested one.
  uint32_t user_timeout_ms = 30'000;
  // First keepalive probe after this long idle, then every interval;
  // keepalive_idle_s 0 leaves keepalive off.
  uint32_t keepalive_idle_s = 10;
  uint32_t keepalive_interval_s = 5;
};

// Sets TCP_NODELAY and the liveness options on a TCP socket. Errors name
// the option that failed.
[[nodiscard]] Status SetTcpLiveness(int fd, const TcpLiveness& liveness);

class SocketTransport final : public Transport {
 public:
  // Connects to host (a numeric IPv4 or IPv6 address) and port, with
  // TCP_NODELAY and `liveness` set.
  [[nodiscard]] static Result<std::unique_ptr<SocketTransport>> Connect(
      const std::string& host, uint16_t port,
      const UringStreamOptions& options = {},
      const TcpLiveness& liveness = {});
  // Takes ownership of a connected socket fd, as configured by the caller
  // (see SetTcpLiveness).
  [[nodiscard]] static Result<std::unique_ptr<SocketTransport>> FromFd(
      int fd, std::string name, const UringStreamOptions& options = {});

  ~SocketTransport() override;

  Status Write(std::span<const uint8_t> bytes) override;
  Result<size_t> Read(std::span<uint8_t> buf) override;
  Status Flush() override;
  // Flushes, shuts the socket down for writing (the peer reads end of
  // stream) and closes it.
  Status Close() override;

  const UringStream& stream() const { return *stream_; }
  // The socket, still owned by the transport; -1 once closed.
  int fd() const { return fd_; }

 private:
  SocketTransport(int fd, std::unique_ptr<UringStream> stream)
      : fd_(fd), stream_(std::move(stream)) {}

  int fd_;
  std::unique_ptr<UringStream> stream_;
};

class SocketListener {
 public:
  // Listens on host:port (port 0 picks a free port; see port()).
  [[nodiscard]] static Result<std::unique_ptr<SocketListener>> Listen(
      const std::string& host, uint16_t port);
  SocketListener(const SocketListener&) = delete;
  SocketListener& operator=(const SocketListener&) = delete;
  ~SocketListener();

  uint16_t port() const { return port_; }
  // Waits for one connection; sets TCP_NODELAY and `liveness` on it.
  [[nodiscard]] Result<std::unique_ptr<SocketTransport>> Accept(
      const UringStreamOptions& options = {},
      const TcpLiveness& liveness = {});

 private:
  SocketListener(int fd, uint16_t port) : fd_(fd), port_(port) {}
  int fd_;
  uint16_t port_;
};

}  // namespace converge

#endif  // CONVERGE_IO_SOCKET_TRANSPORT_H_
