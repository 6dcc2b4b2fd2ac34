#include "tests/net/tcp_connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace converge::testing {
namespace {

Status SetTimeOption(int fd, int name, uint32_t ms, const char* what) {
  timeval tv{};
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  return SysCall(std::string("setsockopt ") + what, [&] {
           return ::setsockopt(fd, SOL_SOCKET, name, &tv, sizeof tv);
         })
      .status();
}

Result<sockaddr_in> Ipv4(const std::string& address, uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1) {
    return InvalidArgumentError("not an IPv4 address: " + address);
  }
  return addr;
}

Result<int> NewSocket() {
  CONVERGE_ASSIGN_OR_RETURN(long fd, SysCall("socket", [] {
    return ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  }));
  return int(fd);
}

}  // namespace

Status ApplyTcpTimeouts(int fd, const TcpTimeouts& t) {
  CONVERGE_RETURN_IF_ERROR(SetTcpLiveness(fd, t.liveness));
  CONVERGE_RETURN_IF_ERROR(
      SetTimeOption(fd, SO_SNDTIMEO, t.blocking_timeout_ms, "SO_SNDTIMEO"));
  return SetTimeOption(fd, SO_RCVTIMEO, t.blocking_timeout_ms, "SO_RCVTIMEO");
}

Result<TcpConnection> TcpConnection::Open(NetnsPair& pair,
                                          NetnsPair::Side client_side,
                                          const TcpTimeouts& timeouts) {
  const NetnsPair::Side server_side = client_side == NetnsPair::Side::kA
                                          ? NetnsPair::Side::kB
                                          : NetnsPair::Side::kA;
  const std::string server_address = pair.address(server_side);
  TcpConnection conn;
  int listen_fd = -1;
  uint16_t port = 0;
  Status listening = pair.RunIn(server_side, [&]() -> Status {
    CONVERGE_ASSIGN_OR_RETURN(listen_fd, NewSocket());
    CONVERGE_RETURN_IF_ERROR(SetTimeOption(listen_fd, SO_RCVTIMEO,
                                           timeouts.blocking_timeout_ms,
                                           "SO_RCVTIMEO"));
    CONVERGE_ASSIGN_OR_RETURN(sockaddr_in addr, Ipv4(server_address, 0));
    CONVERGE_RETURN_IF_ERROR(SysCall("bind " + server_address, [&] {
      return ::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    }));
    CONVERGE_RETURN_IF_ERROR(
        SysCall("listen", [&] { return ::listen(listen_fd, 1); }));
    socklen_t len = sizeof addr;
    CONVERGE_RETURN_IF_ERROR(SysCall("getsockname", [&] {
      return ::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);
    }));
    port = ntohs(addr.sin_port);
    return OkStatus();
  });
  auto close_listener = [&] {
    if (listen_fd >= 0) ::close(listen_fd);
  };
  if (!listening.ok()) {
    close_listener();
    return listening.WithContext("listen on side " + server_address);
  }
  // The connection completes in the listen backlog; accept() takes it after.
  Status connected = pair.RunIn(client_side, [&]() -> Status {
    CONVERGE_ASSIGN_OR_RETURN(conn.client_fd_, NewSocket());
    CONVERGE_RETURN_IF_ERROR(ApplyTcpTimeouts(conn.client_fd_, timeouts));
    CONVERGE_ASSIGN_OR_RETURN(sockaddr_in addr, Ipv4(server_address, port));
    return RetryOnEintr([&] {
             return SysCall(
                 "connect to " + server_address + ":" + std::to_string(port),
                 [&] {
                   return ::connect(conn.client_fd_,
                                    reinterpret_cast<sockaddr*>(&addr),
                                    sizeof addr);
                 });
           })
        .status();
  });
  if (!connected.ok()) {
    close_listener();
    return connected;
  }
  Result<long> accepted = RetryOnEintr([&] {
    return SysCall("accept on " + server_address, [&] {
      return ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    });
  });
  close_listener();
  if (!accepted.ok()) return accepted.status();
  conn.server_fd_ = int(*accepted);
  CONVERGE_RETURN_IF_ERROR(ApplyTcpTimeouts(conn.server_fd_, timeouts));
  return conn;
}

TcpConnection::TcpConnection(TcpConnection&& other) noexcept
    : client_fd_(other.ReleaseClient()), server_fd_(other.ReleaseServer()) {}

TcpConnection::~TcpConnection() {
  if (client_fd_ >= 0) ::close(client_fd_);
  if (server_fd_ >= 0) ::close(server_fd_);
}

int TcpConnection::ReleaseClient() {
  const int fd = client_fd_;
  client_fd_ = -1;
  return fd;
}

int TcpConnection::ReleaseServer() {
  const int fd = server_fd_;
  server_fd_ = -1;
  return fd;
}

}  // namespace converge::testing
