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

class SocketTransport final : public Transport {
 public:
  // Connects to host (a numeric IPv4 or IPv6 address) and port.
  [[nodiscard]] static Result<std::unique_ptr<SocketTransport>> Connect(
      const std::string& host, uint16_t port,
      const UringStreamOptions& options = {});
  // Takes ownership of a connected socket fd.
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
  // Waits for one connection.
  [[nodiscard]] Result<std::unique_ptr<SocketTransport>> Accept(
      const UringStreamOptions& options = {});

 private:
  SocketListener(int fd, uint16_t port) : fd_(fd), port_(port) {}
  int fd_;
  uint16_t port_;
};

}  // namespace converge

#endif  // CONVERGE_IO_SOCKET_TRANSPORT_H_
