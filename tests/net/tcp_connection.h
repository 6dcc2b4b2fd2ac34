// TcpConnection: one TCP connection across a NetnsPair, for tests. The
// client socket is made on one side and connected to a listener on the
// other; both ends get short liveness timeouts (io/socket_transport.h
// TcpLiveness) so a dead link becomes an error within seconds.
//
// Thread-safety: none; one thread uses a TcpConnection at a time.

#ifndef CONVERGE_TESTS_NET_TCP_CONNECTION_H_
#define CONVERGE_TESTS_NET_TCP_CONNECTION_H_

#include <cstdint>

#include "base/status.h"
#include "io/socket_transport.h"
#include "tests/net/netns_pair.h"

namespace converge::testing {

struct TcpTimeouts {
  TcpLiveness liveness{.user_timeout_ms = 2000,
                       .keepalive_idle_s = 1,
                       .keepalive_interval_s = 1};
  // SO_SNDTIMEO and SO_RCVTIMEO: bound the blocking calls (connect,
  // accept, send, recv); io_uring operations ignore them.
  uint32_t blocking_timeout_ms = 5000;
};

// SetTcpLiveness, then the blocking-call timeouts.
[[nodiscard]] Status ApplyTcpTimeouts(int fd, const TcpTimeouts& timeouts);

class TcpConnection {
 public:
  // Listens on the server side's address (a free port), connects from
  // `client_side`, and accepts. Both sockets get `timeouts`.
  [[nodiscard]] static Result<TcpConnection> Open(NetnsPair& pair,
                                                  NetnsPair::Side client_side,
                                                  const TcpTimeouts& timeouts);

  TcpConnection(TcpConnection&& other) noexcept;
  TcpConnection& operator=(TcpConnection&&) = delete;
  TcpConnection(const TcpConnection&) = delete;
  TcpConnection& operator=(const TcpConnection&) = delete;
  ~TcpConnection();  // closes the fds still owned

  // The connected sockets; -1 once released.
  int client_fd() const { return client_fd_; }
  int server_fd() const { return server_fd_; }
  // Give up ownership (e.g. to SocketTransport::FromFd).
  int ReleaseClient();
  int ReleaseServer();

 private:
  TcpConnection() = default;
  int client_fd_ = -1;
  int server_fd_ = -1;
};

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_NET_TCP_CONNECTION_H_
